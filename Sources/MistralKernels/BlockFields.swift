// Block fields that every instruction-set path reads the same way: f16 scales of 8 consecutive 32-blocks and the
// packed 6-bit scales/mins of a Q4_K/Q5_K block. @inlinable so the AVX-512 target inlines them (compiled there
// with its own flags) instead of calling across modules once per block.
import _Builtin_intrinsics.intel

public enum BlockFields {
    /// The f16 fields at p + j * stride, j < 8, as floats.
    @inlinable @inline(__always)
    public static func halves8(_ p: UnsafeRawPointer, _ stride: Int) -> __m256 {
        let h = SIMD8<UInt16>(p.loadUnaligned(as: UInt16.self), (p + stride).loadUnaligned(as: UInt16.self),
                              (p + 2 &* stride).loadUnaligned(as: UInt16.self), (p + 3 &* stride).loadUnaligned(as: UInt16.self),
                              (p + 4 &* stride).loadUnaligned(as: UInt16.self), (p + 5 &* stride).loadUnaligned(as: UInt16.self),
                              (p + 6 &* stride).loadUnaligned(as: UInt16.self), (p + 7 &* stride).loadUnaligned(as: UInt16.self))
        return _mm256_cvtph_ps(unsafeBitCast(h, to: __m128i.self))
    }

    /// The (d, m) f16 pairs at p + j * stride, j < 8, as (d0...d7, m0...m7): one 32-bit load per block.
    @inlinable @inline(__always)
    public static func pairs8(_ p: UnsafeRawPointer, _ stride: Int) -> (__m256, __m256) {
        let u = SIMD8<UInt32>(p.loadUnaligned(as: UInt32.self), (p + stride).loadUnaligned(as: UInt32.self),
                              (p + 2 &* stride).loadUnaligned(as: UInt32.self), (p + 3 &* stride).loadUnaligned(as: UInt32.self),
                              (p + 4 &* stride).loadUnaligned(as: UInt32.self), (p + 5 &* stride).loadUnaligned(as: UInt32.self),
                              (p + 6 &* stride).loadUnaligned(as: UInt32.self), (p + 7 &* stride).loadUnaligned(as: UInt32.self))
        let v = unsafeBitCast(u, to: __m256i.self)
        let lo = _mm256_cvtph_ps(v.lowHalf), hi = _mm256_cvtph_ps(v.highHalf)  // [d0 m0 d1 m1 ...], [d4 m4 ...]
        let even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6), odd = _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7)
        let upper = _mm256_castsi256_ps(_mm256_setr_epi32(0, 0, 0, 0, -1, -1, -1, -1))
        let d = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, even), _mm256_permutevar8x32_ps(hi, even), upper)
        let m = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, odd), _mm256_permutevar8x32_ps(hi, odd), upper)
        return (d, m)
    }

    /// Q4_K/Q5_K scales and mins as bytes [sc0...sc7, m0...m7] from the block's 12 packed bytes (ggml's kmask unpack).
    @inlinable @inline(__always)
    public static func kScalesMins(_ p: UnsafeRawPointer) -> __m128i {
        var u0 = p.loadUnaligned(as: UInt32.self)
        var u1 = p.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        var u2 = p.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        let u3 = ((u2 >> 4) & 0x0f0f_0f0f) | (((u1 >> 6) & 0x0303_0303) << 4)
        let mins = u1 & 0x3f3f_3f3f
        u1 = (u2 & 0x0f0f_0f0f) | (((u0 >> 6) & 0x0303_0303) << 4)
        u2 = mins
        u0 &= 0x3f3f_3f3f
        return _mm_set_epi32(Int32(bitPattern: u3), Int32(bitPattern: u2), Int32(bitPattern: u1), Int32(bitPattern: u0))
    }
}
