// Q2_K and Q3_K x q8_K kernels with AVX2, as ggml lays the values out: per 32 values, the unsigned 2-bit
// (Q3_K: 3-bit, the hmask bit on top) values as bytes, vpmaddubsw against the int8 activations (pairs ->
// int16, at most 2·7·127), vpmaddwd with the two 16-value scales (-> int32), summed per block, then one float
// FMA per block and token. Q2_K's mins and Q3_K's -4 offset come from the activations' per-16 sums.
// One weight row's unpacked values serve up to 4 tokens.
import _Builtin_intrinsics.intel

public enum KQuantsLowAVX2 {
    public static func q2_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachTile(rows, tokens,
                    four: { r, t in q2KRow(FourTokens.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) },
                    one: { r, t in q2KRow(OneToken.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) })
    }

    public static func q3_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachTile(rows, tokens,
                    four: { r, t in q3KRow(FourTokens.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) },
                    one: { r, t in q3KRow(OneToken.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) })
    }

    /// One Q2_K row against T.width tokens from t; y[u * yStride] for token t + u.
    @inline(__always)
    static func q2KRow<T: TokenTile>(_: T.Type, _ row: UnsafeRawPointer, _ x: ActivationView, _ t: Int,
                                     _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nt = T.width, nb = x.cols / 256
        let m3 = _mm256_set1_epi8(3), m4 = _mm_set1_epi8(15)
        var f = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps())
        var m = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps())
        let u1 = nt > 1 ? 1 : 0, u2 = nt > 1 ? 2 : 0, u3 = nt > 1 ? 3 : 0
        let a = (x.values(t), x.values(t &+ u1), x.values(t &+ u2), x.values(t &+ u3))
        let d = (x.scales(t), x.scales(t &+ u1), x.scales(t &+ u2), x.scales(t &+ u3))
        let s = (x.partialSums(t), x.partialSums(t &+ u1), x.partialSums(t &+ u2), x.partialSums(t &+ u3))
        var blk = row
        for b in 0..<nb {
            let dw = half(blk + 80), dmin = half(blk + 82)
            let packed = load128(blk)
            let scales = _mm_and_si128(packed, m4)
            let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), m4))
            var acc = (_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256())
            let o = b &* 256
            for n in 0..<2 {
                let q = load256(blk + 16 + 32 &* n)
                for j in 0..<4 {
                    let v = _mm256_and_si256(_mm256_srli_epi16(q, Int32(truncatingIfNeeded: 2 &* j)), m3)
                    let sc = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(scales, scalePair(4 &* n &+ j)))
                    let oj = o &+ 128 &* n &+ 32 &* j
                    @inline(__always) func part(_ a: UnsafePointer<Int8>) -> __m256i {
                        _mm256_madd_epi16(_mm256_maddubs_epi16(v, load256(a + oj)), sc)
                    }
                    acc.0 = _mm256_add_epi32(acc.0, part(a.0))
                    if nt > 1 {
                        acc.1 = _mm256_add_epi32(acc.1, part(a.1))
                        acc.2 = _mm256_add_epi32(acc.2, part(a.2))
                        acc.3 = _mm256_add_epi32(acc.3, part(a.3))
                    }
                }
            }
            @inline(__always) func finish(_ acc: __m256i, _ d: UnsafePointer<Float>, _ s: UnsafePointer<Int16>,
                                          _ f: inout __m256, _ m: inout __m256) {
                let da = d[b]
                f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(dw * da), f)
                let mm = _mm256_madd_epi16(load256(s + b &* 16), mins)
                m = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mm), _mm256_set1_ps(dmin * da), m)
            }
            finish(acc.0, d.0, s.0, &f.0, &m.0)
            if nt > 1 {
                finish(acc.1, d.1, s.1, &f.1, &m.1)
                finish(acc.2, d.2, s.2, &f.2, &m.2)
                finish(acc.3, d.3, s.3, &f.3, &m.3)
            }
            blk += 84
        }
        y[0] = hsum256(f.0) - hsum256(m.0)
        if nt > 1 {
            y[yStride] = hsum256(f.1) - hsum256(m.1)
            y[2 &* yStride] = hsum256(f.2) - hsum256(m.2)
            y[3 &* yStride] = hsum256(f.3) - hsum256(m.3)
        }
    }

    /// One Q3_K row against T.width tokens from t.
    @inline(__always)
    static func q3KRow<T: TokenTile>(_: T.Type, _ row: UnsafeRawPointer, _ x: ActivationView, _ t: Int,
                                     _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nt = T.width, nb = x.cols / 256
        let m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1), bias = _mm_set1_epi8(32)
        var f = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps())
        let u1 = nt > 1 ? 1 : 0, u2 = nt > 1 ? 2 : 0, u3 = nt > 1 ? 3 : 0
        let a = (x.values(t), x.values(t &+ u1), x.values(t &+ u2), x.values(t &+ u3))
        let d = (x.scales(t), x.scales(t &+ u1), x.scales(t &+ u2), x.scales(t &+ u3))
        let s = (x.partialSums(t), x.partialSums(t &+ u1), x.partialSums(t &+ u2), x.partialSums(t &+ u3))
        var blk = row
        for b in 0..<nb {
            let dw = half(blk + 108)
            let scales = _mm_sub_epi8(bytes16(q3KScales(blk + 96)), bias)  // -32...31
            let sc16 = _mm256_cvtepi8_epi16(scales)
            let h = load256(blk)
            var acc = (_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256())
            let o = b &* 256
            for n in 0..<2 {
                let q = load256(blk + 32 + 32 &* n)
                for j in 0..<4 {
                    let lo = _mm256_and_si256(_mm256_srli_epi16(q, Int32(truncatingIfNeeded: 2 &* j)), m3)
                    let hb = _mm256_and_si256(_mm256_srli_epi16(h, Int32(truncatingIfNeeded: 4 &* n &+ j)), one)
                    let v = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2))
                    let sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, scalePair(4 &* n &+ j)))
                    let oj = o &+ 128 &* n &+ 32 &* j
                    @inline(__always) func part(_ a: UnsafePointer<Int8>) -> __m256i {
                        _mm256_madd_epi16(_mm256_maddubs_epi16(v, load256(a + oj)), sc)
                    }
                    acc.0 = _mm256_add_epi32(acc.0, part(a.0))
                    if nt > 1 {
                        acc.1 = _mm256_add_epi32(acc.1, part(a.1))
                        acc.2 = _mm256_add_epi32(acc.2, part(a.2))
                        acc.3 = _mm256_add_epi32(acc.3, part(a.3))
                    }
                }
            }
            @inline(__always) func finish(_ acc: __m256i, _ d: UnsafePointer<Float>, _ s: UnsafePointer<Int16>,
                                          _ f: inout __m256) {
                // the -4 offset: Σ_k s_k · bsum_k · 4
                let off = _mm256_slli_epi32(_mm256_madd_epi16(load256(s + b &* 16), sc16), 2)
                f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc, off)), _mm256_set1_ps(dw * d[b]), f)
            }
            finish(acc.0, d.0, s.0, &f.0)
            if nt > 1 {
                finish(acc.1, d.1, s.1, &f.1)
                finish(acc.2, d.2, s.2, &f.2)
                finish(acc.3, d.3, s.3, &f.3)
            }
            blk += 110
        }
        y[0] = hsum256(f.0)
        if nt > 1 {
            y[yStride] = hsum256(f.1)
            y[2 &* yStride] = hsum256(f.2)
            y[3 &* yStride] = hsum256(f.3)
        }
    }
}

/// Byte shuffle giving [s_2g x8, s_2g+1 x8] from 16 scale bytes (arithmetic, so it folds to a constant).
@inline(__always) func scalePair(_ g: Int) -> __m128i {
    let ones: Int64 = 0x0101_0101_0101_0101
    return _mm_set_epi64x(Int64(truncatingIfNeeded: 2 &* g &+ 1) &* ones, Int64(truncatingIfNeeded: 2 &* g) &* ones)
}
