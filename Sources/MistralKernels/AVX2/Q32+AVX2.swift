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
        forEachTile(rows, tokens,
                    four: { r, t in row(Q4_0Layout.self, FourTokens.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) },
                    one: { r, t in row(Q4_0Layout.self, OneToken.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) })
    }

    public static func q4_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachTile(rows, tokens,
                    four: { r, t in row(Q4_1Layout.self, FourTokens.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) },
                    one: { r, t in row(Q4_1Layout.self, OneToken.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) })
    }

    public static func q5_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachTile(rows, tokens,
                    four: { r, t in row(Q5_0Layout.self, FourTokens.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) },
                    one: { r, t in row(Q5_0Layout.self, OneToken.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) })
    }

    public static func q5_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachTile(rows, tokens,
                    four: { r, t in row(Q5_1Layout.self, FourTokens.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) },
                    one: { r, t in row(Q5_1Layout.self, OneToken.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) })
    }

    public static func q8_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachTile(rows, tokens,
                    four: { r, t in row(Q8_0Layout.self, FourTokens.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) },
                    one: { r, t in row(Q8_0Layout.self, OneToken.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) })
    }

    /// f16 fields at `p + j * stride` for j < n (zero beyond) as floats.
    @inline(__always)
    static func halves8(_ p: UnsafeRawPointer, _ stride: Int, _ n: Int) -> __m256 {
        var h = SIMD8<UInt16>()
        if n == 8 {
            h = SIMD8(p.loadUnaligned(as: UInt16.self), (p + stride).loadUnaligned(as: UInt16.self),
                      (p + 2 &* stride).loadUnaligned(as: UInt16.self), (p + 3 &* stride).loadUnaligned(as: UInt16.self),
                      (p + 4 &* stride).loadUnaligned(as: UInt16.self), (p + 5 &* stride).loadUnaligned(as: UInt16.self),
                      (p + 6 &* stride).loadUnaligned(as: UInt16.self), (p + 7 &* stride).loadUnaligned(as: UInt16.self))
        } else {
            for j in 0..<n { h[j] = (p + j &* stride).loadUnaligned(as: UInt16.self) }
        }
        return _mm256_cvtph_ps(unsafeBitCast(h, to: __m128i.self))
    }

    /// The activation scales and block sums of blocks b..<b+n (zero beyond), never reading past them.
    @inline(__always)
    static func actScales(_ d: UnsafePointer<Float>, _ s: UnsafePointer<Int16>, _ n: Int) -> (__m256, __m256) {
        if n == 8 {
            return (UnsafeRawPointer(d).loadUnaligned(as: __m256.self),
                    _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(load128(s))))
        }
        var da = SIMD8<Float>(), sa = SIMD8<Float>()
        for j in 0..<n {
            da[j] = d[j]
            sa[j] = Float(s[j])
        }
        return (da, sa)
    }

    /// The 32 values of the block at blk as bytes in value order (unsigned, or Q8_0's signed).
    @inline(__always)
    static func values<L: Q32Layout>(_: L.Type, _ blk: UnsafeRawPointer, _ m4: __m256i, _ spread: __m256i,
                       _ bit: __m256i, _ sixteen: __m256i) -> __m256i {
        let l = L.self
        if l.int8 { return load256(blk + l.qs) }
        let q = load128(blk + l.qs)
        var v = _mm256_and_si256(__m256i(lowHalf: q, highHalf: _mm_srli_epi16(q, 4)), m4)
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
    }

    /// One weight row against `nt` (1 or 4) tokens from t; y[u * yStride] for token t + u.
    @inline(__always)
    static func row<L: Q32Layout, T: TokenTile>(_: L.Type, _: T.Type, _ row: UnsafeRawPointer, _ x: ActivationView,
                                                _ t: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let l = L.self, nt = T.width
        let nb = x.cols / 32
        let m4 = _mm256_set1_epi8(15), sixteen = _mm256_set1_epi8(16), ones = _mm256_set1_epi16(1)
        // byte i: i / 8 (which qh byte), 1 << i % 8 (which bit of it)
        let spread = _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0)
        let bit = _mm256_set1_epi64x(Int64(bitPattern: 0x8040_2010_0804_0201))
        let u1 = nt > 1 ? 1 : 0, u2 = nt > 1 ? 2 : 0, u3 = nt > 1 ? 3 : 0
        let a = (x.values(t), x.values(t &+ u1), x.values(t &+ u2), x.values(t &+ u3))
        let d = (x.scales(t), x.scales(t &+ u1), x.scales(t &+ u2), x.scales(t &+ u3))
        let s = (x.partialSums(t), x.partialSums(t &+ u1), x.partialSums(t &+ u2), x.partialSums(t &+ u3))
        var acc = Acc()

        @inline(__always) func group(_ b: Int, _ n: Int, _ acc: inout Acc) {
            let blk = row + b &* l.bytes
            let dw = halves8(blk, l.bytes, n)
            let c = l.min ? halves8(blk + 2, l.bytes, n) : dw * SIMD8(repeating: -l.offset)
            let hasC = l.min || l.offset != 0
            // per token: the 8 blocks' d_w·d_a, and c·d_a·Σa added at once
            @inline(__always) func scales(_ d: UnsafePointer<Float>, _ s: UnsafePointer<Int16>, _ f: inout __m256) -> __m256 {
                let (da, sa) = actScales(d + b, s + b, n)
                if hasC { f = _mm256_fmadd_ps(c, da * sa, f) }
                return dw * da
            }
            let z = _mm256_setzero_ps()
            let s0 = scales(d.0, s.0, &acc.f0)
            let s1 = nt > 1 ? scales(d.1, s.1, &acc.f1) : z
            let s2 = nt > 1 ? scales(d.2, s.2, &acc.f2) : z
            let s3 = nt > 1 ? scales(d.3, s.3, &acc.f3) : z
            @inline(__always) func block(_ j: Int, _ odd: Bool, _ acc: inout Acc) {
                let v = values(L.self, blk + j &* l.bytes, m4, spread, bit, sixteen)
                let av = l.int8 ? _mm256_sign_epi8(v, v) : v
                let o = (b &+ j) &* 32
                let idx = _mm256_set1_epi32(Int32(truncatingIfNeeded: j))
                @inline(__always) func dot(_ a: UnsafePointer<Int8>, _ sc: __m256, _ f: inout __m256) {
                    let q = load256(a + o)
                    let p = _mm256_maddubs_epi16(av, l.int8 ? _mm256_sign_epi8(q, v) : q)
                    f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones)), _mm256_permutevar8x32_ps(sc, idx), f)
                }
                if nt > 1 {
                    dot(a.0, s0, &acc.f0)
                    dot(a.1, s1, &acc.f1)
                    dot(a.2, s2, &acc.f2)
                    dot(a.3, s3, &acc.f3)
                } else if odd {
                    dot(a.0, s0, &acc.g0)
                } else {
                    dot(a.0, s0, &acc.f0)
                }
            }
            var j = 0
            while j &+ 2 <= n {
                block(j, false, &acc)
                block(j &+ 1, true, &acc)
                j &+= 2
            }
            if j < n { block(j, false, &acc) }
        }

        var b = 0
        while b &+ 8 <= nb {
            group(b, 8, &acc)
            b &+= 8
        }
        if b < nb { group(b, nb &- b, &acc) }
        y[0] = hsum256(acc.f0 + acc.g0)
        if nt > 1 {
            y[yStride] = hsum256(acc.f1)
            y[2 &* yStride] = hsum256(acc.f2)
            y[3 &* yStride] = hsum256(acc.f3)
        }
    }
}
