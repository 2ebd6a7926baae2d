// Q2_K and Q3_K x q8_K kernels with AVX-512 BW + VNNI. Per 64 weights: the unsigned 2-bit (Q3_K: with the
// hmask bit as + 4, from a byte mask) values as bytes, vpmaddubsw against the int8 activations (pairs ->
// int16, at most 2·7·127), then vpdpwssd with the 16-value scales (-> int32, accumulated). One weight row's
// unpacked values serve up to 4 tokens; Q2_K's mins and Q3_K's -4 offset come from the per-16 sums.
import _Builtin_intrinsics.intel
import MistralKernels

public enum KQuantsLowAVX512 {
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

    /// The 2-bit fields of 32 bytes q as values [shift 0 | shift 2] and [shift 4 | shift 6]: ggml's quarters
    /// 0, 1 and 2, 3 of a half block.
    @inline(__always)
    static func quarters(_ q: __m256i, _ m3: __m512i) -> (__m512i, __m512i) {
        let j = join(q, _mm256_srli_epi16(q, 2))
        return (_mm512_and_si512(j, m3), _mm512_and_si512(_mm512_srli_epi16(j, 4), m3))
    }

    /// One Q2_K row against T.width tokens from t; y[u * yStride] for token t + u.
    @inline(__always)
    static func q2KRow<T: TokenTile>(_: T.Type, _ row: UnsafeRawPointer, _ x: ActivationView, _ t: Int,
                                     _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nt = T.width, nb = x.cols / 256
        let m3 = _mm512_set1_epi8(3), m4 = _mm_set1_epi8(15)
        // int16 lane i of a vpmaddubsw result covers values 2i, 2i+1 of its 64: scale 4k + i / 8
        let idx0 = eightEach(0), idx1 = eightEach(4)
        let idx2 = eightEach(8), idx3 = eightEach(12)
        var f0 = _mm512_setzero_ps(), f1 = _mm512_setzero_ps(), f2 = _mm512_setzero_ps(), f3 = _mm512_setzero_ps()
        var m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps(), m2 = _mm256_setzero_ps(), m3f = _mm256_setzero_ps()
        let u1 = nt > 1 ? 1 : 0, u2 = nt > 1 ? 2 : 0, u3 = nt > 1 ? 3 : 0
        let a0 = x.values(t), a1 = x.values(t &+ u1), a2 = x.values(t &+ u2), a3 = x.values(t &+ u3)
        let d0 = x.scales(t), d1 = x.scales(t &+ u1), d2 = x.scales(t &+ u2), d3 = x.scales(t &+ u3)
        let s0 = x.partialSums(t), s1 = x.partialSums(t &+ u1), s2 = x.partialSums(t &+ u2), s3 = x.partialSums(t &+ u3)
        var blk = row
        for b in 0..<nb {
            let dw = half(blk + 80), dmin = half(blk + 82)
            let packed = load128(blk)
            let sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, m4))
            let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), m4))
            let sc512 = _mm512_castsi256_si512(sc16)
            let sc0 = _mm512_permutexvar_epi16(idx0, sc512), sc1 = _mm512_permutexvar_epi16(idx1, sc512)
            let sc2 = _mm512_permutexvar_epi16(idx2, sc512), sc3 = _mm512_permutexvar_epi16(idx3, sc512)
            let (v0, v1) = quarters(load256(blk + 16), m3), (v2, v3) = quarters(load256(blk + 48), m3)
            let o = b &* 256
            @inline(__always) func token(_ a: UnsafePointer<Int8>, _ d: UnsafePointer<Float>, _ s: UnsafePointer<Int16>,
                                         _ f: inout __m512, _ m: inout __m256) {
                var acc = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(v0, load512(a + o)), sc0)
                acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(v1, load512(a + o + 64)), sc1)
                acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(v2, load512(a + o + 128)), sc2)
                acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(v3, load512(a + o + 192)), sc3)
                let da = d[b]
                f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(dw * da), f)
                let mm = _mm256_madd_epi16(load256(s + b &* 16), mins)
                m = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mm), _mm256_set1_ps(dmin * da), m)
            }
            token(a0, d0, s0, &f0, &m0)
            if nt > 1 {
                token(a1, d1, s1, &f1, &m1)
                token(a2, d2, s2, &f2, &m2)
                token(a3, d3, s3, &f3, &m3f)
            }
            blk += 84
        }
        y[0] = _mm512_reduce_add_ps(f0) - hsum256(m0)
        if nt > 1 {
            y[yStride] = _mm512_reduce_add_ps(f1) - hsum256(m1)
            y[2 &* yStride] = _mm512_reduce_add_ps(f2) - hsum256(m2)
            y[3 &* yStride] = _mm512_reduce_add_ps(f3) - hsum256(m3f)
        }
    }

    /// One Q3_K row against T.width tokens from t.
    @inline(__always)
    static func q3KRow<T: TokenTile>(_: T.Type, _ row: UnsafeRawPointer, _ x: ActivationView, _ t: Int,
                                     _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nt = T.width, nb = x.cols / 256
        let m3 = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4), bias = _mm_set1_epi8(32)
        let idx0 = eightEach(0), idx1 = eightEach(4)
        let idx2 = eightEach(8), idx3 = eightEach(12)
        var f0 = _mm512_setzero_ps(), f1 = _mm512_setzero_ps(), f2 = _mm512_setzero_ps(), f3 = _mm512_setzero_ps()
        let u1 = nt > 1 ? 1 : 0, u2 = nt > 1 ? 2 : 0, u3 = nt > 1 ? 3 : 0
        let a0 = x.values(t), a1 = x.values(t &+ u1), a2 = x.values(t &+ u2), a3 = x.values(t &+ u3)
        let d0 = x.scales(t), d1 = x.scales(t &+ u1), d2 = x.scales(t &+ u2), d3 = x.scales(t &+ u3)
        let s0 = x.partialSums(t), s1 = x.partialSums(t &+ u1), s2 = x.partialSums(t &+ u2), s3 = x.partialSums(t &+ u3)
        var blk = row
        for b in 0..<nb {
            let dw = half(blk + 108)
            let sc16 = _mm256_cvtepi8_epi16(_mm_sub_epi8(unsafeBitCast(q3KScales(blk + 96), to: __m128i.self), bias))
            let sc512 = _mm512_castsi256_si512(sc16)
            let sc0 = _mm512_permutexvar_epi16(idx0, sc512), sc1 = _mm512_permutexvar_epi16(idx1, sc512)
            let sc2 = _mm512_permutexvar_epi16(idx2, sc512), sc3 = _mm512_permutexvar_epi16(idx3, sc512)
            // quarter j of half n has its high bit at bit 4n + j of hmask[l]: [h | h >> 1] tests bits 4n + (0, 2)
            let h = load256(blk)
            let hh = join(h, _mm256_srli_epi16(h, 1))
            @inline(__always) func high(_ v: __m512i, _ bit: Int8) -> __m512i {
                _mm512_mask_add_epi8(v, _mm512_test_epi8_mask(hh, _mm512_set1_epi8(bit)), v, four)
            }
            let (l0, l1) = quarters(load256(blk + 32), m3), (l2, l3) = quarters(load256(blk + 64), m3)
            let v0 = high(l0, 1), v1 = high(l1, 4), v2 = high(l2, 16), v3 = high(l3, 64)
            let o = b &* 256
            @inline(__always) func token(_ a: UnsafePointer<Int8>, _ d: UnsafePointer<Float>, _ s: UnsafePointer<Int16>,
                                         _ f: inout __m512) {
                var acc = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(v0, load512(a + o)), sc0)
                acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(v1, load512(a + o + 64)), sc1)
                acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(v2, load512(a + o + 128)), sc2)
                acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(v3, load512(a + o + 192)), sc3)
                // the -4 offset: Σ_k s_k · bsum_k · 4
                let off = _mm256_madd_epi16(load256(s + b &* 16), sc16)
                acc = _mm512_sub_epi32(acc, _mm512_zextsi256_si512(_mm256_slli_epi32(off, 2)))
                f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(dw * d[b]), f)
            }
            token(a0, d0, s0, &f0)
            if nt > 1 {
                token(a1, d1, s1, &f1)
                token(a2, d2, s2, &f2)
                token(a3, d3, s3, &f3)
            }
            blk += 110
        }
        y[0] = _mm512_reduce_add_ps(f0)
        if nt > 1 {
            y[yStride] = _mm512_reduce_add_ps(f1)
            y[2 &* yStride] = _mm512_reduce_add_ps(f2)
            y[3 &* yStride] = _mm512_reduce_add_ps(f3)
        }
    }
}

/// permutexvar index for 16-bit lanes: lane i -> first + i / 8 (arithmetic, so it folds to a constant).
@inline(__always) func eightEach(_ first: Int64) -> __m512i {
    let c: Int64 = 0x0001_0001_0001_0001
    return _mm512_set_epi64((first + 3) &* c, (first + 3) &* c, (first + 2) &* c, (first + 2) &* c,
                            (first + 1) &* c, (first + 1) &* c, first &* c, first &* c)
}
