// 32-value-block (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) x q8_0 kernels with AVX2. Per block: the 32 weight values as
// bytes, vpmaddubsw against the int8 activations (unsigned 0...31 x signed; Q8_0 signed x signed through
// |w| x sign(a, w), exact as activations are never -128), vpmaddwd with ones -> 8 int32, then one float FMA
// with the block's d_w·d_a taken from a vector of 8 blocks' scales. The Q4_0/Q5_0 offset and the Q4_1/Q5_1
// min are per block c·d_a·Σa, c = -8·d_w, -16·d_w or m: one FMA per 8 blocks from the activation sums.
// One weight row's unpacked blocks serve up to 4 tokens.
import _Builtin_intrinsics.intel

public enum Q32AVX2 {
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

    /// Every row against 4-token tiles, then the leftover tokens one at a time.
    @inline(__always)
    static func tiled<L: Q32Layout>(_ layout: L.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>,
                                    _ x: ActivationView, _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>,
                                    _ yStride: Int) {
        forEachTile(rows, tokens,
                    four: { r, t in row(layout, FourTokens.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) },
                    one: { r, t in row(layout, OneToken.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) })
    }

    /// The 32 values of the block at blk as bytes in value order (unsigned, or Q8_0's signed).
    @inline(__always)
    static func values<L: Q32Layout>(_: L.Type, _ blk: UnsafeRawPointer, _ m4: __m256i, _ spread: __m256i,
                       _ bit: __m256i, _ sixteen: __m256i) -> __m256i {
        let l = L.self
        if l.int8 { return load256(blk + l.qs) }
        // [q | q] >> [0 | 4] per 64 bits, then the nibbles: low = values 0...15, high = 16...31
        let q = _mm256_broadcastsi128_si256(load128(blk + l.qs))
        var v = _mm256_and_si256(_mm256_srlv_epi64(q, _mm256_set_epi64x(4, 4, 0, 0)), m4)
        if l.qh != 0 {
            // byte i gets qh's byte i / 8, then its bit i % 8 -> 16
            let qh = _mm256_set1_epi32(Int32(bitPattern: blk.loadUnaligned(fromByteOffset: l.qh, as: UInt32.self)))
            let b = _mm256_and_si256(_mm256_shuffle_epi8(qh, spread), bit)
            v = _mm256_or_si256(v, _mm256_and_si256(_mm256_cmpeq_epi8(b, bit), sixteen))
        }
        return v
    }

    struct Acc {
        var f0 = _mm256_setzero_ps(), f1 = _mm256_setzero_ps(), f2 = _mm256_setzero_ps(), f3 = _mm256_setzero_ps()
        var g0 = _mm256_setzero_ps()  // token 0's odd blocks when alone: two FMA chains
        var c0: Float = 0, c1: Float = 0, c2: Float = 0, c3: Float = 0  // the tail blocks' c·d_a·Σa
    }

    /// One weight row against T.width (1 or 4) tokens from t; y[u * yStride] for token t + u.
    @inline(__always)
    static func row<L: Q32Layout, T: TokenTile>(_: L.Type, _: T.Type, _ row: UnsafeRawPointer, _ x: ActivationView,
                                                _ t: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nt = T.width, nb = x.cols / 32
        let m4 = _mm256_set1_epi8(15), sixteen = _mm256_set1_epi8(16), ones = _mm256_set1_epi16(1)
        // byte i: i / 8 (which qh byte), 1 << i % 8 (which bit of it)
        let spread = _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0)
        let bit = _mm256_set1_epi64x(Int64(bitPattern: 0x8040_2010_0804_0201))
        let u1 = nt > 1 ? 1 : 0, u2 = nt > 1 ? 2 : 0, u3 = nt > 1 ? 3 : 0
        let a = (x.values(t), x.values(t &+ u1), x.values(t &+ u2), x.values(t &+ u3))
        let d = (x.scales(t), x.scales(t &+ u1), x.scales(t &+ u2), x.scales(t &+ u3))
        let s = (x.partialSums(t), x.partialSums(t &+ u1), x.partialSums(t &+ u2), x.partialSums(t &+ u3))
        let hasC = L.min || L.offset != 0
        var acc = Acc()

        /// Block j's Σ q·a for token a as 8 float lanes.
        @inline(__always) func dot(_ v: __m256i, _ av: __m256i, _ a: UnsafePointer<Int8>) -> __m256 {
            let q = load256(a)
            let p = _mm256_maddubs_epi16(av, L.int8 ? _mm256_sign_epi8(q, v) : q)
            return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones))
        }

        var b = 0
        while b &+ 8 <= nb {
            // 8 blocks: d_w (and m) as vectors; per token their d_w·d_a, and c·d_a·Σa added at once
            let blk = row + b &* L.bytes
            let (dw, c) = L.min ? BlockFields.pairs8(blk, L.bytes) : { let d = BlockFields.halves8(blk, L.bytes); return (d, d * SIMD8(repeating: -L.offset)) }()
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
                let v = values(L.self, blk + j &* L.bytes, m4, spread, bit, sixteen)
                let av = L.int8 ? _mm256_sign_epi8(v, v) : v
                let o = (b &+ j) &* 32
                if nt > 1 {
                    acc.f0 = _mm256_fmadd_ps(dot(v, av, a.0 + o), _mm256_permutevar8x32_ps(s0, idx), acc.f0)
                    acc.f1 = _mm256_fmadd_ps(dot(v, av, a.1 + o), _mm256_permutevar8x32_ps(s1, idx), acc.f1)
                    acc.f2 = _mm256_fmadd_ps(dot(v, av, a.2 + o), _mm256_permutevar8x32_ps(s2, idx), acc.f2)
                    acc.f3 = _mm256_fmadd_ps(dot(v, av, a.3 + o), _mm256_permutevar8x32_ps(s3, idx), acc.f3)
                } else if j & 1 == 1 {
                    acc.g0 = _mm256_fmadd_ps(dot(v, av, a.0 + o), _mm256_permutevar8x32_ps(s0, idx), acc.g0)
                } else {
                    acc.f0 = _mm256_fmadd_ps(dot(v, av, a.0 + o), _mm256_permutevar8x32_ps(s0, idx), acc.f0)
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
            let c = L.min ? half(blk + 2) : -L.offset * dw
            let v = values(L.self, blk, m4, spread, bit, sixteen)
            let av = L.int8 ? _mm256_sign_epi8(v, v) : v
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
            y[yStride] = hsum256(acc.f1) + acc.c1
            y[2 &* yStride] = hsum256(acc.f2) + acc.c2
            y[3 &* yStride] = hsum256(acc.f3) + acc.c3
        }
    }
}
