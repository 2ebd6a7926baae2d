// 32-value-block (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) x q8_0 kernels with AVX-512 BW + VNNI. Two blocks per 512-bit
// vector: the 64 weight values as unsigned bytes (nibbles, + 16 for Q5's fifth bit from a byte mask; Q8_0's
// int8 XOR 0x80 = w + 128), one vpdpbusd against the int8 activations (-> 8 int32 per block, exact), then
// one float FMA with [d_w·d_a of block 0 x8 | of block 1 x8] picked from a vector of 16 blocks' scales.
// The offsets (Q4_0 -8, Q5_0 -16, Q8_0 -128) and the Q4_1/Q5_1 min are per block c·d_a·Σa: one FMA per 16
// blocks from the activation sums. One weight row's unpacked blocks serve up to 4 tokens.
import _Builtin_intrinsics.intel
import MistralKernels

public enum Q32AVX512 {
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
    static func halves16(_ p: UnsafeRawPointer, _ stride: Int, _ n: Int) -> __m512 {
        var h = SIMD16<UInt16>()
        for j in 0..<n { h[j] = (p + j &* stride).loadUnaligned(as: UInt16.self) }
        return _mm512_cvtph_ps(unsafeBitCast(h, to: __m256i.self))
    }

    /// The activation scales and block sums of blocks b..<b+n (zero beyond), never reading past them.
    @inline(__always)
    static func actScales(_ d: UnsafePointer<Float>, _ s: UnsafePointer<Int16>, _ n: Int) -> (__m512, __m512) {
        if n == 16 {
            return (UnsafeRawPointer(d).loadUnaligned(as: __m512.self),
                    _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(load256(s))))
        }
        var da = SIMD16<Float>(), sa = SIMD16<Float>()
        for j in 0..<n {
            da[j] = d[j]
            sa[j] = Float(s[j])
        }
        return (da, sa)
    }

    /// One block's 32 values as unsigned bytes in value order.
    @inline(__always)
    static func values1<L: Q32Layout>(_: L.Type, _ blk: UnsafeRawPointer) -> __m256i {
        if L.int8 { return _mm256_xor_si256(load256(blk + L.qs), _mm256_set1_epi8(-128)) }
        let q = load128(blk + L.qs)
        var v = _mm256_and_si256(__m256i(lowHalf: q, highHalf: _mm_srli_epi16(q, 4)), _mm256_set1_epi8(15))
        if L.qh != 0 {
            v = _mm256_mask_add_epi8(v, blk.loadUnaligned(fromByteOffset: L.qh, as: UInt32.self), v, _mm256_set1_epi8(16))
        }
        return v
    }

    /// Blocks blk and blk + L.bytes as 64 unsigned bytes in value order.
    @inline(__always)
    static func values2<L: Q32Layout>(_: L.Type, _ blk: UnsafeRawPointer, _ spread: __m512i, _ shifts: __m512i) -> __m512i {
        let next = blk + L.bytes
        if L.int8 { return _mm512_xor_si512(join(load256(blk + L.qs), load256(next + L.qs)), _mm512_set1_epi8(-128)) }
        // [q0 | q1] -> [q0, q0 >> 4, q1, q1 >> 4] per 128 bits, then the nibbles
        let q = __m256i(lowHalf: load128(blk + L.qs), highHalf: load128(next + L.qs))
        let z = _mm512_srlv_epi64(_mm512_permutexvar_epi64(spread, _mm512_castsi256_si512(q)), shifts)
        var v = _mm512_and_si512(z, _mm512_set1_epi8(15))
        if L.qh != 0 {
            let h = UInt64(blk.loadUnaligned(fromByteOffset: L.qh, as: UInt32.self))
                | UInt64(next.loadUnaligned(fromByteOffset: L.qh, as: UInt32.self)) << 32
            v = _mm512_mask_add_epi8(v, h, v, _mm512_set1_epi8(16))
        }
        return v
    }

    struct Acc {
        var f0 = _mm512_setzero_ps(), f1 = _mm512_setzero_ps(), f2 = _mm512_setzero_ps(), f3 = _mm512_setzero_ps()
        var g0 = _mm512_setzero_ps()  // token 0's odd pairs when alone: two FMA chains
    }

    /// One weight row against T.width (1 or 4) tokens from t; y[u * yStride] for token t + u.
    @inline(__always)
    static func row<L: Q32Layout, T: TokenTile>(_: L.Type, _: T.Type, _ row: UnsafeRawPointer, _ x: ActivationView,
                                                _ t: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nt = T.width, nb = x.cols / 32
        let spread = _mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0), shifts = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0)
        let u1 = nt > 1 ? 1 : 0, u2 = nt > 1 ? 2 : 0, u3 = nt > 1 ? 3 : 0
        let a = (x.values(t), x.values(t &+ u1), x.values(t &+ u2), x.values(t &+ u3))
        let d = (x.scales(t), x.scales(t &+ u1), x.scales(t &+ u2), x.scales(t &+ u3))
        let s = (x.partialSums(t), x.partialSums(t &+ u1), x.partialSums(t &+ u2), x.partialSums(t &+ u3))
        // Σa's coefficient: the f16 m, or -offset·d_w (Q8_0's +128 included)
        let offset: Float = L.int8 ? 128 : L.offset
        var acc = Acc()

        @inline(__always) func group(_ b: Int, _ n: Int, _ acc: inout Acc) {
            let blk = row + b &* L.bytes
            let dw = halves16(blk, L.bytes, n)
            let c = L.min ? halves16(blk + 2, L.bytes, n) : dw * SIMD16(repeating: -offset)
            @inline(__always) func scales(_ d: UnsafePointer<Float>, _ s: UnsafePointer<Int16>, _ f: inout __m512) -> __m512 {
                let (da, sa) = actScales(d + b, s + b, n)
                if L.min || offset != 0 { f = _mm512_fmadd_ps(c, da * sa, f) }
                return dw * da
            }
            let z = _mm512_setzero_ps()
            let s0 = scales(d.0, s.0, &acc.f0)
            let s1 = nt > 1 ? scales(d.1, s.1, &acc.f1) : z
            let s2 = nt > 1 ? scales(d.2, s.2, &acc.f2) : z
            let s3 = nt > 1 ? scales(d.3, s.3, &acc.f3) : z
            // blocks j, j + 1 (j + 1 only if `two`)
            @inline(__always) func pair(_ j: Int, _ two: Bool, _ odd: Bool, _ acc: inout Acc) {
                let bj = blk + j &* L.bytes
                let v = two ? values2(L.self, bj, spread, shifts) : _mm512_zextsi256_si512(values1(L.self, bj))
                let o = (b &+ j) &* 32
                let jj = Int16(truncatingIfNeeded: j)
                let idx = _mm512_mask_blend_epi32(0xFF00, _mm512_set1_epi32(Int32(jj)), _mm512_set1_epi32(Int32(jj &+ 1)))
                @inline(__always) func dot(_ a: UnsafePointer<Int8>, _ sc: __m512, _ f: inout __m512) {
                    let q = two ? load512(a + o) : _mm512_zextsi256_si512(load256(a + o))
                    let i = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v, q)
                    f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_permutexvar_ps(idx, sc), f)
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
            while j &+ 4 <= n {
                pair(j, true, false, &acc)
                pair(j &+ 2, true, true, &acc)
                j &+= 4
            }
            if j &+ 2 <= n {
                pair(j, true, false, &acc)
                j &+= 2
            }
            if j < n { pair(j, false, true, &acc) }
        }

        var b = 0
        while b &+ 16 <= nb {
            group(b, 16, &acc)
            b &+= 16
        }
        if b < nb { group(b, nb &- b, &acc) }
        y[0] = _mm512_reduce_add_ps(acc.f0 + acc.g0)
        if nt > 1 {
            y[yStride] = _mm512_reduce_add_ps(acc.f1)
            y[2 &* yStride] = _mm512_reduce_add_ps(acc.f2)
            y[3 &* yStride] = _mm512_reduce_add_ps(acc.f3)
        }
    }
}
