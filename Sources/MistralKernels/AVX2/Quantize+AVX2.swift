// Activation quantization with AVX2 (the library's baseline, x86-64-v3): the same arithmetic as
// ActivationQuantizer.quantizeReference — d = max|x| / 127, q = round-half-even(x / d), sums of q — 8 lanes at a time.
import _Builtin_intrinsics.intel

enum QuantizeAVX2 {
    static func quantize(_ x: UnsafePointer<Float>, _ n: Int, blockSize: Int, sumSize: Int,
                         q: UnsafeMutablePointer<Int8>, d: UnsafeMutablePointer<Float>,
                         sums: UnsafeMutablePointer<Int16>) {
        let absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff))
        var b = 0
        while b < n / blockSize {
            let src = x + b &* blockSize
            var amax = _mm256_setzero_ps(), total = _mm256_setzero_ps()
            var i = 0
            while i < blockSize {
                let a = _mm256_and_ps(UnsafeRawPointer(src + i).loadUnaligned(as: __m256.self), absMask)
                amax = _mm256_max_ps(amax, a)
                total = _mm256_add_ps(total, a)  // a NaN or infinity anywhere makes this non-finite
                i &+= 8
            }
            let mv = unsafeBitCast(amax, to: SIMD8<Float>.self), tv = unsafeBitCast(total, to: SIMD8<Float>.self)
            var m = max(max(max(mv[0], mv[1]), max(mv[2], mv[3])), max(max(mv[4], mv[5]), max(mv[6], mv[7])))
            let t = ((tv[0] + tv[1]) + (tv[2] + tv[3])) + ((tv[4] + tv[5]) + (tv[6] + tv[7]))
            // a non-finite block quantizes to zeros, as the reference does
            if !m.isFinite || !t.isFinite { m = 0 }
            let scale = m / 127
            d[b] = scale
            let dst = q + b &* blockSize
            if scale == 0 {
                dst.update(repeating: 0, count: blockSize)
            } else {
                let inv = _mm256_set1_ps(1 / scale)
                i = 0
                while i < blockSize {
                    // 32 values -> 4 x 8 int32 (cvtps rounds half to even) -> int16 -> int8, lanes put back in order
                    let a = _mm256_cvtps_epi32(_mm256_mul_ps(UnsafeRawPointer(src + i).loadUnaligned(as: __m256.self), inv))
                    let bb = _mm256_cvtps_epi32(_mm256_mul_ps(UnsafeRawPointer(src + i + 8).loadUnaligned(as: __m256.self), inv))
                    let c = _mm256_cvtps_epi32(_mm256_mul_ps(UnsafeRawPointer(src + i + 16).loadUnaligned(as: __m256.self), inv))
                    let e = _mm256_cvtps_epi32(_mm256_mul_ps(UnsafeRawPointer(src + i + 24).loadUnaligned(as: __m256.self), inv))
                    let p = _mm256_packs_epi16(_mm256_packs_epi32(a, bb), _mm256_packs_epi32(c, e))
                    let ordered = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
                    UnsafeMutableRawPointer(dst + i).storeBytes(of: ordered, as: __m256i.self)
                    i &+= 32
                }
            }
            b &+= 1
        }
        // Σq per sumSize (16 or 32) values: vpmaddubsw with ones, then vpmaddwd with ones
        let ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1)
        var j = 0
        while j &+ 32 <= n {
            let v = UnsafeRawPointer(q + j).loadUnaligned(as: __m256i.self)
            let s32 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, v), ones16)  // 8 lanes of 4-value sums
            let l = unsafeBitCast(s32, to: SIMD8<Int32>.self)
            let s0 = l[0] &+ l[1] &+ l[2] &+ l[3], s1 = l[4] &+ l[5] &+ l[6] &+ l[7]
            if sumSize == 16 {
                sums[j / 16] = Int16(truncatingIfNeeded: s0)
                sums[j / 16 &+ 1] = Int16(truncatingIfNeeded: s1)
            } else {
                sums[j / 32] = Int16(truncatingIfNeeded: s0 &+ s1)
            }
            j &+= 32
        }
    }
}
