// 32-value-block (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) x q8_0 kernels with AVX-512 BW/VL + VNNI, at 256 bits, for
// tiles of 4 tokens: per block the 32 weight values as unsigned bytes (nibbles, + 16 for Q5's fifth bit from
// a byte mask; Q8_0's int8 XOR 0x80 = w + 128), one vpdpbusd against each token's int8 activations (-> 8
// int32, exact), then one float FMA with the block's d_w·d_a taken from a vector of 8 blocks' scales. 256
// bits because Zen 4 splits 512-bit operations in two: two blocks per zmm measured no faster and need more
// shuffles. The offsets (Q4_0 -8, Q5_0 -16, Q8_0 -128) and the Q4_1/Q5_1 min are per block c·d_a·Σa: one FMA
// per 8 blocks from the activation sums. Tokens left over from the tiles run the AVX2 kernel (see below).
import _Builtin_intrinsics.intel
import MistralKernels

public enum Q32AVX512 {
    public static func q4_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        tiled(Q4_0Layout.self, w, rowBytes, rows, x, tokens, y, yStride)
    }

    public static func q4_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        tiled(Q4_1Layout.self, w, rowBytes, rows, x, tokens, y, yStride)
    }

    public static func q5_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        tiled(Q5_0Layout.self, w, rowBytes, rows, x, tokens, y, yStride)
    }

    public static func q5_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        tiled(Q5_1Layout.self, w, rowBytes, rows, x, tokens, y, yStride)
    }

    public static func q8_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        tiled(Q8_0Layout.self, w, rowBytes, rows, x, tokens, y, yStride)
    }

    /// Every row against each group of 4 tokens, then the tokens left over one at a time. Each token is computed
    /// exactly alike in both (two FMA chains, even and odd blocks), so a token's bits never depend on how many
    /// tokens share the call: batched decoding stacks sessions' rows into one call (MatMul). (The AVX2 kernel
    /// kernel, once used for the leftovers, measured a little faster for one token on Zen 4 — 1.20 vs 1.34 ns per
    /// block on 576-column rows — but rounds differently.)
    @inline(__always)
    static func tiled<L: Q32Layout>(_ layout: L.Type, _ w: UnsafeRawPointer, _ rowBytes: Int,
                                    _ rows: Range<Int>, _ x: ActivationView, _ tokens: Range<Int>,
                                    _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        var t = tokens.lowerBound
        while t &+ 4 <= tokens.upperBound {
            for r in rows { row(layout, FourTokens.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) }
            t &+= 4
        }
        while t < tokens.upperBound {
            for r in rows { row(layout, OneToken.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) }
            t &+= 1
        }
    }

    /// One block's 32 values as unsigned bytes in value order.
    @inline(__always)
    static func values1<L: Q32Layout>(_: L.Type, _ blk: UnsafeRawPointer) -> __m256i {
        if L.int8 { return _mm256_xor_si256(load256(blk + L.qs), _mm256_set1_epi8(-128)) }
        // [q | q] >> [0 | 4] per 64 bits, then the nibbles: low = values 0...15, high = 16...31
        let q = _mm256_broadcastsi128_si256(load128(blk + L.qs))
        var v = _mm256_and_si256(_mm256_srlv_epi64(q, _mm256_set_epi64x(4, 4, 0, 0)), _mm256_set1_epi8(15))
        if L.qh != 0 {
            v = _mm256_mask_add_epi8(v, blk.loadUnaligned(fromByteOffset: L.qh, as: UInt32.self), v, _mm256_set1_epi8(16))
        }
        return v
    }

    struct Acc {
        // per token two FMA chains: even blocks (f) and odd blocks (g) of each group of 8
        var f0 = _mm256_setzero_ps(), f1 = _mm256_setzero_ps(), f2 = _mm256_setzero_ps(), f3 = _mm256_setzero_ps()
        var g0 = _mm256_setzero_ps(), g1 = _mm256_setzero_ps(), g2 = _mm256_setzero_ps(), g3 = _mm256_setzero_ps()
        var c0: Float = 0, c1: Float = 0, c2: Float = 0, c3: Float = 0  // the tail blocks' c·d_a·Σa
    }

    /// One weight row against T.width (1 or 4) tokens from t; y[u * yStride] for token t + u.
    @inline(__always)
    static func row<L: Q32Layout, T: TokenTile>(_: L.Type, _: T.Type, _ row: UnsafeRawPointer, _ x: ActivationView,
                                                _ t: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nt = T.width, nb = x.cols / 32
        let u1 = nt > 1 ? 1 : 0, u2 = nt > 1 ? 2 : 0, u3 = nt > 1 ? 3 : 0
        let a = (x.values(t), x.values(t &+ u1), x.values(t &+ u2), x.values(t &+ u3))
        let d = (x.scales(t), x.scales(t &+ u1), x.scales(t &+ u2), x.scales(t &+ u3))
        let s = (x.partialSums(t), x.partialSums(t &+ u1), x.partialSums(t &+ u2), x.partialSums(t &+ u3))
        // Σa's coefficient: the f16 m, or -offset·d_w (Q8_0's +128 included)
        let offset: Float = L.int8 ? 128 : L.offset
        let hasC = L.min || offset != 0
        var acc = Acc()

        /// Σ (unsigned v)·a over 8 int32 lanes, as floats (the masked form: the plain one is a C macro).
        @inline(__always) func dot(_ v: __m256i, _ av: __m256i, _ a: UnsafePointer<Int8>) -> __m256 {
            _mm256_cvtepi32_ps(_mm256_maskz_dpbusd_epi32(0xFF, _mm256_setzero_si256(), v, load256(a)))
        }

        var b = 0
        while b &+ 8 <= nb {
            // 8 blocks: d_w (and m) as vectors; per token their d_w·d_a, and c·d_a·Σa added at once
            let blk = row + b &* L.bytes
            let (dw, c) = L.min ? BlockFields.pairs8(blk, L.bytes) : { let d = BlockFields.halves8(blk, L.bytes); return (d, d * SIMD8(repeating: -offset)) }()
            @inline(__always) func scales(_ d: UnsafePointer<Float>, _ s: UnsafePointer<Int16>, _ f: inout __m256) -> __m256 {
                let da = UnsafeRawPointer(d + b).loadUnaligned(as: __m256.self)
                if hasC { f = _mm256_fmadd_ps(c, da * _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(load128(s + b))), f) }
                return dw * da
            }
            let z = _mm256_setzero_ps()
            let s0 = scales(d.0, s.0, &acc.f0)
            let s1 = nt > 1 ? scales(d.1, s.1, &acc.f1) : z
            let s2 = nt > 1 ? scales(d.2, s.2, &acc.f2) : z
            let s3 = nt > 1 ? scales(d.3, s.3, &acc.f3) : z
            // a loop-carried index (and a bound the compiler cannot see is 8) keeps vpermps: with constant
            // indices LLVM splits the scales into scalar multiplies and broadcasts
            var idx = _mm256_setzero_si256()
            let one = _mm256_set1_epi32(1), count = Swift.min(8, nb &- b)
            var j = 0
            while j < count {
                let v = values1(L.self, blk + j &* L.bytes), av = v
                let o = (b &+ j) &* 32
                if j & 1 == 1 {
                    acc.g0 = _mm256_fmadd_ps(dot(v, av, a.0 + o), _mm256_permutevar8x32_ps(s0, idx), acc.g0)
                    if nt > 1 {
                        acc.g1 = _mm256_fmadd_ps(dot(v, av, a.1 + o), _mm256_permutevar8x32_ps(s1, idx), acc.g1)
                        acc.g2 = _mm256_fmadd_ps(dot(v, av, a.2 + o), _mm256_permutevar8x32_ps(s2, idx), acc.g2)
                        acc.g3 = _mm256_fmadd_ps(dot(v, av, a.3 + o), _mm256_permutevar8x32_ps(s3, idx), acc.g3)
                    }
                } else {
                    acc.f0 = _mm256_fmadd_ps(dot(v, av, a.0 + o), _mm256_permutevar8x32_ps(s0, idx), acc.f0)
                    if nt > 1 {
                        acc.f1 = _mm256_fmadd_ps(dot(v, av, a.1 + o), _mm256_permutevar8x32_ps(s1, idx), acc.f1)
                        acc.f2 = _mm256_fmadd_ps(dot(v, av, a.2 + o), _mm256_permutevar8x32_ps(s2, idx), acc.f2)
                        acc.f3 = _mm256_fmadd_ps(dot(v, av, a.3 + o), _mm256_permutevar8x32_ps(s3, idx), acc.f3)
                    }
                }
                idx = _mm256_add_epi32(idx, one)
                j &+= 1
            }
            b &+= 8
        }
        // the last nb % 8 blocks, one at a time with scalar scales
        while b < nb {
            let blk = row + b &* L.bytes
            let dw = half(blk)
            let c = L.min ? half(blk + 2) : -offset * dw
            let v = values1(L.self, blk), av = v
            let o = b &* 32
            @inline(__always) func one(_ a: UnsafePointer<Int8>, _ d: UnsafePointer<Float>, _ s: UnsafePointer<Int16>,
                                       _ f: inout __m256, _ cs: inout Float) {
                f = _mm256_fmadd_ps(dot(v, av, a + o), _mm256_set1_ps(dw * d[b]), f)
                if hasC { cs += c * d[b] * Float(s[b]) }
            }
            one(a.0, d.0, s.0, &acc.f0, &acc.c0)
            if nt > 1 {
                one(a.1, d.1, s.1, &acc.f1, &acc.c1)
                one(a.2, d.2, s.2, &acc.f2, &acc.c2)
                one(a.3, d.3, s.3, &acc.f3, &acc.c3)
            }
            b &+= 1
        }
        y[0] = hsum256(acc.f0 + acc.g0) + acc.c0
        if nt > 1 {
            y[yStride] = hsum256(acc.f1 + acc.g1) + acc.c1
            y[2 &* yStride] = hsum256(acc.f2 + acc.g2) + acc.c2
            y[3 &* yStride] = hsum256(acc.f3 + acc.g3) + acc.c3
        }
    }
}
