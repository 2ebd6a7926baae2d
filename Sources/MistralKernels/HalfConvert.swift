// f16 <-> f32 rows for the KV cache (F16C, part of x86-64-v3).
import _Builtin_intrinsics.intel
import CCPUFeatures

public enum HalfConvert {
    /// dst[i] = Float(src[i]) for n values. Inlinable: attention converts one 64-128 value KV row per call.
    @inlinable @inline(__always)
    public static func toFloat(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i &+ 8 <= n {
            let h = UnsafeRawPointer(src + i).loadUnaligned(as: __m128i.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: _mm256_cvtph_ps(h), as: __m256.self)
            i &+= 8
        }
        while i < n {
            dst[i] = Float(Float16(bitPattern: src[i]))
            i &+= 1
        }
    }

    /// The 16 halves at src as floats (exact), two vcvtph2ps.
    @inlinable @inline(__always)
    public static func toFloat16(_ src: UnsafePointer<UInt16>) -> SIMD16<Float> {
        let lo = _mm256_cvtph_ps(UnsafeRawPointer(src).loadUnaligned(as: __m128i.self))
        let hi = _mm256_cvtph_ps(UnsafeRawPointer(src + 8).loadUnaligned(as: __m128i.self))
        return unsafeBitCast((lo, hi), to: SIMD16<Float>.self)
    }

    /// dst[i] = f16(src[i]) (round to nearest even, as Float16(_:) rounds) for n values, 8 at a time.
    @inlinable @inline(__always)
    public static func toHalf(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, _ n: Int) {
        var i = 0
        while i &+ 8 <= n {
            mistral_float_to_half8(src + i, dst + i)
            i &+= 8
        }
        while i < n {
            dst[i] = Float16(src[i]).bitPattern
            i &+= 1
        }
    }
}
