// K-quant (Q4_K, Q5_K, Q6_K) x q8_K kernels with AVX-512 BW + VNNI. Per 64 weights: the unsigned weight values
// as bytes, vpmaddubsw against the int8 activations (pairs -> int16, no overflow: 2·63·127 < 2^15), then
// vpdpwssd with the sub-block scales (pairs of int16 -> int32, accumulated). One weight row's unpacked values
// serve up to 4 tokens; mins / the Q6_K offset come from the activations' per-16 sums.
import _Builtin_intrinsics.intel
import MistralKernels

/// Q4_K or Q5_K, as a type so each is compiled with its branches folded.
protocol Q45Kind { static var five: Bool { get } }
enum Q4KKind: Q45Kind { static var five: Bool { false } }
enum Q5KKind: Q45Kind { static var five: Bool { true } }

public enum KQuantsAVX512 {
    public static func q4_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        q45K(Q4KKind.self, short: KQuantsAVX2.q4_K, w, rowBytes, rows, x, tokens, y, yStride)
    }

    public static func q5_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        q45K(Q5KKind.self, short: KQuantsAVX2.q5_K, w, rowBytes, rows, x, tokens, y, yStride)
    }

    /// Below a full 4-token tile (decode) the 256-bit kernel `short` streams faster on CPUs that split 512-bit
    /// operations (Zen 4: 18.5 vs 13.9 GB/s for Q4_K, KernelBench); the 512-bit one wins on prompt tiles.
    @inline(__always)
    static func q45K<K: Q45Kind>(_ kind: K.Type, short: QuantDotKernel, _ w: UnsafeRawPointer, _ rowBytes: Int,
                                 _ rows: Range<Int>, _ x: ActivationView, _ tokens: Range<Int>,
                                 _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        if tokens.count < 4 {
            short(w, rowBytes, rows, x, tokens, y, yStride)
            return
        }
        forEachTile(rows, tokens,
                    four: { r, t in q45KRow(kind, FourTokens.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) },
                    one: { r, t in q45KRow(kind, OneToken.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) })
    }

    public static func q6_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachTile(rows, tokens,
                    four: { r, t in q6KRow(FourTokens.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) },
                    one: { r, t in q6KRow(OneToken.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) })
    }

    /// The 8 scales and 8 mins of a Q4_K/Q5_K block as 16 int16 lanes [sc0...sc7, m0...m7].
    @inline(__always)
    static func scalesMins(_ p: UnsafeRawPointer) -> __m256i { _mm256_cvtepu8_epi16(BlockFields.kScalesMins(p)) }

    /// One weight row (Q4_K or Q5_K) against `nt` (1 or 4) tokens from t; y[u * yStride] for token t + u.
    @inline(__always)
    static func q45KRow<K: Q45Kind, T: TokenTile>(_: K.Type, _: T.Type, _ row: UnsafeRawPointer, _ x: ActivationView,
                                                 _ t: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let five = K.five, nt = T.width
        let nb = x.cols / 256
        let blockBytes = five ? 176 : 144
        let m4 = _mm512_set1_epi8(15)
        let sixteen = _mm512_set1_epi8(16)
        let idx0 = i16x32(SIMD32<Int16>(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1))
        let idx1 = i16x32(SIMD32<Int16>(2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3))
        let idx2 = i16x32(SIMD32<Int16>(4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5))
        let idx3 = i16x32(SIMD32<Int16>(6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7))
        let idxM = unsafeBitCast(SIMD16<Int16>(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15), to: __m256i.self)
        var f0 = _mm512_setzero_ps(), f1 = _mm512_setzero_ps(), f2 = _mm512_setzero_ps(), f3 = _mm512_setzero_ps()
        var m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps(), m2 = _mm256_setzero_ps(), m3 = _mm256_setzero_ps()
        let a0 = x.values(t), a1 = x.values(t &+ (nt > 1 ? 1 : 0))
        let a2 = x.values(t &+ (nt > 1 ? 2 : 0)), a3 = x.values(t &+ (nt > 1 ? 3 : 0))
        let d0 = x.scales(t), d1 = x.scales(t &+ (nt > 1 ? 1 : 0))
        let d2 = x.scales(t &+ (nt > 1 ? 2 : 0)), d3 = x.scales(t &+ (nt > 1 ? 3 : 0))
        let s0 = x.partialSums(t), s1 = x.partialSums(t &+ (nt > 1 ? 1 : 0))
        let s2 = x.partialSums(t &+ (nt > 1 ? 2 : 0)), s3 = x.partialSums(t &+ (nt > 1 ? 3 : 0))
        var blk = row
        for b in 0..<nb {
            let dw = half(blk), dmin = half(blk + 2)
            let sm = scalesMins(blk + 4)
            let sm512 = _mm512_castsi256_si512(sm)
            let sc0 = _mm512_permutexvar_epi16(idx0, sm512), sc1 = _mm512_permutexvar_epi16(idx1, sm512)
            let sc2 = _mm512_permutexvar_epi16(idx2, sm512), sc3 = _mm512_permutexvar_epi16(idx3, sm512)
            let mins = _mm256_permutexvar_epi16(idxM, sm)
            // values of sub-blocks (2k, 2k+1) as 64 bytes, matching activations 64k..<64k+64
            let qs = blk + (five ? 48 : 16)
            @inline(__always) func values(_ k: Int) -> __m512i {
                let q = load256(qs + 32 &* k)
                var v = _mm512_and_si512(join(q, _mm256_srli_epi16(q, 4)), m4)
                if five {
                    let h = load256(blk + 16)
                    let hh = join(h, _mm256_srli_epi16(h, 1))
                    let bit = _mm512_set1_epi8(Int8(1 << (2 * k)))
                    v = _mm512_mask_add_epi8(v, _mm512_test_epi8_mask(hh, bit), v, sixteen)
                }
                return v
            }
            let v0 = values(0), v1 = values(1), v2 = values(2), v3 = values(3)
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
                token(a3, d3, s3, &f3, &m3)
            }
            blk += blockBytes
        }
        y[0] = _mm512_reduce_add_ps(f0) - hsum256(m0)
        if nt > 1 {
            y[yStride] = _mm512_reduce_add_ps(f1) - hsum256(m1)
            y[2 &* yStride] = _mm512_reduce_add_ps(f2) - hsum256(m2)
            y[3 &* yStride] = _mm512_reduce_add_ps(f3) - hsum256(m3)
        }
    }

    /// One Q6_K weight row against `nt` (1 or 4) tokens from t.
    @inline(__always)
    static func q6KRow<T: TokenTile>(_: T.Type, _ row: UnsafeRawPointer, _ x: ActivationView, _ t: Int,
                                     _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nt = T.width
        let nb = x.cols / 256
        let m4 = _mm512_set1_epi8(15), m3 = _mm512_set1_epi8(3)
        // int16 lane i of a vpmaddubsw result covers values 2i, 2i+1: scale (2i) / 16 of its 64-value quarter pair
        let idx0 = i16x32(SIMD32<Int16>(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3))
        let idx1 = i16x32(SIMD32<Int16>(4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7))
        let idx2 = i16x32(SIMD32<Int16>(8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11))
        let idx3 = i16x32(SIMD32<Int16>(12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15))
        var f0 = _mm512_setzero_ps(), f1 = _mm512_setzero_ps(), f2 = _mm512_setzero_ps(), f3 = _mm512_setzero_ps()
        let a0 = x.values(t), a1 = x.values(t &+ (nt > 1 ? 1 : 0))
        let a2 = x.values(t &+ (nt > 1 ? 2 : 0)), a3 = x.values(t &+ (nt > 1 ? 3 : 0))
        let d0 = x.scales(t), d1 = x.scales(t &+ (nt > 1 ? 1 : 0))
        let d2 = x.scales(t &+ (nt > 1 ? 2 : 0)), d3 = x.scales(t &+ (nt > 1 ? 3 : 0))
        let s0 = x.partialSums(t), s1 = x.partialSums(t &+ (nt > 1 ? 1 : 0))
        let s2 = x.partialSums(t &+ (nt > 1 ? 2 : 0)), s3 = x.partialSums(t &+ (nt > 1 ? 3 : 0))
        var blk = row
        for b in 0..<nb {
            let dw = half(blk + 208)
            let sc16 = _mm256_cvtepi8_epi16(load128(blk + 192))
            let sc512 = _mm512_castsi256_si512(sc16)
            let sc0 = _mm512_permutexvar_epi16(idx0, sc512), sc1 = _mm512_permutexvar_epi16(idx1, sc512)
            let sc2 = _mm512_permutexvar_epi16(idx2, sc512), sc3 = _mm512_permutexvar_epi16(idx3, sc512)
            // half n: values 128n + (0..<64) from the low nibbles, + (64..<128) from the high ones
            @inline(__always) func values(_ n: Int) -> (__m512i, __m512i) {
                let lo = load256(blk + 64 &* n), hi = load256(blk + 64 &* n + 32)
                let qh = load256(blk + 128 + 32 &* n)
                let h = join(qh, _mm256_srli_epi16(qh, 2))
                let ql = join(lo, hi)
                let v01 = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_slli_epi16(_mm512_and_si512(h, m3), 4))
                let v23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                          _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(h, 4), m3), 4))
                return (v01, v23)
            }
            let (v0, v1) = values(0), (v2, v3) = values(1)
            let o = b &* 256
            @inline(__always) func token(_ a: UnsafePointer<Int8>, _ d: UnsafePointer<Float>, _ s: UnsafePointer<Int16>,
                                         _ f: inout __m512) {
                var acc = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(v0, load512(a + o)), sc0)
                acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(v1, load512(a + o + 64)), sc1)
                acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(v2, load512(a + o + 128)), sc2)
                acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(v3, load512(a + o + 192)), sc3)
                // the -32 offset: Σ_k sc_k · bsum_k · 32
                let off = _mm256_madd_epi16(load256(s + b &* 16), sc16)
                acc = _mm512_sub_epi32(acc, _mm512_zextsi256_si512(_mm256_slli_epi32(off, 5)))
                f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(dw * d[b]), f)
            }
            token(a0, d0, s0, &f0)
            if nt > 1 {
                token(a1, d1, s1, &f1)
                token(a2, d2, s2, &f2)
                token(a3, d3, s3, &f3)
            }
            blk += 210
        }
        y[0] = _mm512_reduce_add_ps(f0)
        if nt > 1 {
            y[yStride] = _mm512_reduce_add_ps(f1)
            y[2 &* yStride] = _mm512_reduce_add_ps(f2)
            y[3 &* yStride] = _mm512_reduce_add_ps(f3)
        }
    }
}
