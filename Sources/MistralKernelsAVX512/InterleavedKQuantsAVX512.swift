// K-quant kernels on the row-interleaved layout (Interleave.swift) with AVX-512 VNNI: tiles of 16 weight rows x
// up to 8 tokens against q8_K activations. Q4_K (and Q5_K, with the fifth bits or-ed into the values) per 256-block: the mins term first — the 8 six-bit mins of the
// 16 rows as int16 pairs, 4 vpdpwssd against each token's per-32 activation sums — then per sub-block the 8
// value registers unpack once and every token takes 8 vpdpbusd, one vpmulld by the rows' sub-block scales and
// an add, all exact in int32; two FMAs per block and token turn the sums into floats. Q6_K: the -32 offset as
// 8 vpdpwssd of the rows' int8 scales (int16 pairs) against the per-16 activation sums, then per 16-value
// sub-block 4 vpdpbusd and a vpmulld by its scale; one FMA per block and token. InterleavedGeneric does the
// same arithmetic in the same order, so the results equal it bit for bit.
import _Builtin_intrinsics.intel
import MistralKernels

public enum InterleavedKQuantsAVX512 {
    public static func q4_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTiles.groups(Q45KTile<NoFifthBit>.self, w, rowBytes, rows, x, tokens, y, yStride)
    }

    public static func q5_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTiles.groups(Q45KTile<FifthBit>.self, w, rowBytes, rows, x, tokens, y, yStride)
    }

    public static func q6_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTiles.groups(Q6KTile.self, w, rowBytes, rows, x, tokens, y, yStride)
    }

}

@inline(__always) func srl(_ v: __m512i, _ n: Int) -> __m512i { _mm512_srli_epi32(v, UInt32(truncatingIfNeeded: n)) }

/// Whether the Q4_K tile reads Q5_K's fifth bits (a type, so each form is compiled with the branch folded).
protocol FifthBits { static var present: Bool { get } }
enum NoFifthBit: FifthBits { static var present: Bool { false } }
enum FifthBit: FifthBits { static var present: Bool { true } }

/// Q4_K, and Q5_K (the same tile with each value's fifth bit or-ed in as 16).
enum Q45KTile<V: FifthBits>: InterleavedTile {
    @inline(__always)
    static func tile<T: TokenTile>(_: T.Type, _ grp: UnsafeRawPointer, _ x: ActivationView, _ t: Int,
                                   _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nt = T.width, cols = x.cols, nb = cols >> 8, sumsPerRow = x.sumsPerRow
        let five = V.present
        let groupBytes: Int = five ? 2816 : 2304  // 16 blocks of 176 or 144 bytes
        let bit4 = _mm512_set1_epi8(0x10)
        let low = _mm512_set1_epi8(15), six = _mm512_set1_epi32(63), four = _mm512_set1_epi32(15)
        let hi2 = _mm512_set1_epi32(0x30), zero = _mm512_setzero_si512()
        OutputSums.zero(y, tokens: nt, yStride)

        var b = 0
        while b < nb {
            let p = grp + b &* groupBytes
            let dw = _mm512_cvtph_ps(load256(p)), dmin = _mm512_cvtph_ps(load256(p + 32))
            let p0 = load512(p + 64), p1 = load512(p + 128), p2 = load512(p + 192)

            // mins: m_j (6 bits) of the 16 rows, as int16 pairs (m_2i, m_2i+1) per 32-bit lane
            @inline(__always) func minOf(_ j: Int) -> __m512i {
                if j < 4 { return _mm512_and_si512(srl(p1, 8 &* j), six) }
                let k = 8 &* (j &- 4)
                return _mm512_or_si512(_mm512_and_si512(srl(p2, k &+ 4), four), _mm512_and_si512(srl(p1, k &+ 2), hi2))
            }
            @inline(__always) func pair(_ j: Int) -> __m512i {
                _mm512_or_si512(minOf(j), _mm512_slli_epi32(minOf(j &+ 1), 16))
            }
            let m01 = pair(0), m23 = pair(2), m45 = pair(4), m67 = pair(6)
            @inline(__always) func mins(_ u: Int) {
                // (Σa of sub-block 2i, of 2i + 1) as one int16 pair: adjacent in sums32, one memory broadcast
                let s = UnsafeRawPointer(x.sums32 + ((t &+ u) &* (sumsPerRow >> 1) &+ b &* 8))
                @inline(__always) func bc(_ i: Int) -> __m512i {
                    _mm512_set1_epi32(s.loadUnaligned(fromByteOffset: 4 &* i, as: Int32.self))
                }
                var m = _mm512_dpwssd_epi32(zero, m01, bc(0))
                m = _mm512_dpwssd_epi32(m, m23, bc(1))
                m = _mm512_dpwssd_epi32(m, m45, bc(2))
                m = _mm512_dpwssd_epi32(m, m67, bc(3))
                let da = x.d[(t &+ u) &* x.scalesPerRow &+ b]
                OutputSums.update(y, u, yStride) { _mm512_fmadd_ps(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_cvtepi32_ps(m)),
                                                _mm512_mul_ps(dmin, _mm512_set1_ps(da)), $0) }
            }
            mins(0)
            if nt > 1 { mins(1); mins(2); mins(3) }
            if nt > 4 { mins(4); mins(5); mins(6); mins(7) }

            var i0 = zero, i1 = zero, i2 = zero, i3 = zero, i4 = zero, i5 = zero, i6 = zero, i7 = zero
            // one call per sub-block with a constant j, so every shift and offset below is an immediate (a loop
            // over j left variable shift counts and address arithmetic that doubled the decode instructions)
            @inline(__always) func subBlock(_ j: Int) {
                // an eighth of the block group two groups ahead per sub-block: spread out, not one 36-line burst
                let part = groupBytes >> 3
                prefetchLines(p + (kQuantPrefetchGroups &* groupBytes &+ j &* part), part)
                // sub-block j's scale per row
                let sc: __m512i
                if j < 4 {
                    sc = _mm512_and_si512(srl(p0, 8 &* j), six)
                } else {
                    let k = 8 &* (j &- 4)
                    sc = _mm512_or_si512(_mm512_and_si512(srl(p2, k), four), _mm512_and_si512(srl(p0, k &+ 2), hi2))
                }
                let q = p + ((five ? 768 : 256) &+ 512 &* (j >> 1))
                let shift: UInt32 = j & 1 == 0 ? 0 : 4
                let qh = p + 256, bitJ = _mm512_set1_epi8(Int8(truncatingIfNeeded: 1 &<< j))
                @inline(__always) func val(_ k: Int) -> __m512i {
                    let v = _mm512_and_si512(_mm512_srli_epi16(load512(q + 64 &* k), shift), low)
                    guard five else { return v }
                    // + 16 where bit j of the qh byte is set
                    return _mm512_mask_add_epi8(v, _mm512_test_epi8_mask(load512(qh + 64 &* k), bitJ), v, bit4)
                }
                let v0 = val(0), v1 = val(1), v2 = val(2), v3 = val(3), v4 = val(4), v5 = val(5), v6 = val(6), v7 = val(7)
                @inline(__always) func step(_ u: Int, _ acc: inout __m512i) {
                    let row: Int = (t &+ u) &* x.rowStride
                    let a = UnsafeRawPointer(x.qs + (row &+ b &* 256 &+ j &* 32))
                    let c = dpbusdChain(zero, (v0, v1, v2, v3, v4, v5, v6, v7), a)
                    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(c, sc))
                }
                step(0, &i0)
                if nt > 1 { step(1, &i1); step(2, &i2); step(3, &i3) }
                if nt > 4 { step(4, &i4); step(5, &i5); step(6, &i6); step(7, &i7) }
            }
            subBlock(0); subBlock(1); subBlock(2); subBlock(3); subBlock(4); subBlock(5); subBlock(6); subBlock(7)
            @inline(__always) func scaled(_ u: Int, _ i: __m512i) {
                let da = x.d[(t &+ u) &* x.scalesPerRow &+ b]
                OutputSums.update(y, u, yStride) { _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(dw, _mm512_set1_ps(da)), $0) }
            }
            scaled(0, i0)
            if nt > 1 { scaled(1, i1); scaled(2, i2); scaled(3, i3) }
            if nt > 4 { scaled(4, i4); scaled(5, i5); scaled(6, i6); scaled(7, i7) }
            b &+= 1
        }
    }
}

enum Q6KTile: InterleavedTile {
    @inline(__always)
    static func tile<T: TokenTile>(_: T.Type, _ grp: UnsafeRawPointer, _ x: ActivationView, _ t: Int,
                                   _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nt = T.width, cols = x.cols, nb = cols >> 8, sumsPerRow = x.sumsPerRow
        let low = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30), zero = _mm512_setzero_si512()
        let mask16 = _mm512_set1_epi32(0xFFFF)
        OutputSums.zero(y, tokens: nt, yStride)

        var b = 0
        while b < nb {
            let p = grp + b &* (16 &* 210)
            let dw = _mm512_cvtph_ps(load256(p))
            /// Sub-block sb's int8 scale of each row, sign-extended to 32 bits.
            @inline(__always) func scale(_ sb: Int) -> __m512i {
                let c = load512(p + (32 &+ 64 &* (sb >> 2)))
                return _mm512_srai_epi32(_mm512_slli_epi32(c, UInt32(truncatingIfNeeded: 24 &- 8 &* (sb & 3))), 24)
            }
            /// Sub-blocks 4j...4j + 3's scales as two registers of int16 pairs: (4j, 4j + 1) and (4j + 2, 4j + 3).
            /// 16-bit shifts, not scale(sb)'s: LLVM merged the two and kept all 16 sub-blocks' scales live for the
            /// whole block, spilling the tile's registers.
            @inline(__always) func pairs(_ j: Int) -> (__m512i, __m512i) {
                let c = load512(p + (32 &+ 64 &* j))
                let even = _mm512_srai_epi16(_mm512_slli_epi16(c, 8), 8), odd = _mm512_srai_epi16(c, 8)  // bytes 0, 2 | 1, 3
                return (_mm512_or_si512(_mm512_and_si512(even, mask16), _mm512_slli_epi32(odd, 16)),
                        _mm512_or_si512(_mm512_srli_epi32(even, 16), _mm512_andnot_si512(mask16, odd)))
            }
            // the -32 offset: -32 · Σ_s sc_s · (Σa)_s, the int accumulator's starting value
            let (s0, s1) = pairs(0), (s2, s3) = pairs(1), (s4, s5) = pairs(2), (s6, s7) = pairs(3)
            @inline(__always) func offset(_ u: Int) -> __m512i {
                let s = UnsafeRawPointer(x.sums + ((t &+ u) &* sumsPerRow &+ b &* 16))
                @inline(__always) func bc(_ i: Int) -> __m512i { _mm512_set1_epi32(s.loadUnaligned(fromByteOffset: 4 &* i, as: Int32.self)) }
                var o = _mm512_dpwssd_epi32(zero, s0, bc(0))
                var o2 = _mm512_dpwssd_epi32(zero, s1, bc(1))
                o = _mm512_dpwssd_epi32(o, s2, bc(2))
                o2 = _mm512_dpwssd_epi32(o2, s3, bc(3))
                o = _mm512_dpwssd_epi32(o, s4, bc(4))
                o2 = _mm512_dpwssd_epi32(o2, s5, bc(5))
                o = _mm512_dpwssd_epi32(o, s6, bc(6))
                o2 = _mm512_dpwssd_epi32(o2, s7, bc(7))
                return _mm512_sub_epi32(zero, _mm512_slli_epi32(_mm512_add_epi32(o, o2), 5))
            }
            var i0 = offset(0), i1 = zero, i2 = zero, i3 = zero, i4 = zero, i5 = zero, i6 = zero, i7 = zero
            if nt > 1 { i1 = offset(1); i2 = offset(2); i3 = offset(3) }
            if nt > 4 { i4 = offset(4); i5 = offset(5); i6 = offset(6); i7 = offset(7) }

            // sub-block sb = 8h + 2q + gh: values 128h + 32q + 16gh ... + 15, four registers of 16 rows x 4 values;
            // the low 4 bits are A's or B's (q odd) nibble (q >= 2: the high one), the top 2 bits qh's bits 2q, 2q + 1
            // one call per sub-block with a constant sb (immediate shifts and offsets, as in Q45KTile)
            @inline(__always) func subBlock(_ sb: Int) {
                prefetchLines(p + (kQuantPrefetchGroups &* 16 &* 210 &+ sb &* 210), 210)  // a 16th per sub-block
                let h = sb >> 3, q = (sb >> 1) & 3, gh = sb & 1
                let sc = scale(sb)
                let base = p + (288 &+ 1536 &* h &+ 256 &* gh)
                let loShift = UInt32(truncatingIfNeeded: 4 &* (q >> 1)), hiShift = UInt32(truncatingIfNeeded: 2 &* q)
                let xq = base + (q & 1) &* 512, hq = base + 1024
                @inline(__always) func val(_ k: Int) -> __m512i {
                    let lo = _mm512_and_si512(_mm512_srli_epi16(load512(xq + 64 &* k), loShift), low)
                    let hi = _mm512_and_si512(_mm512_slli_epi16(_mm512_srli_epi16(load512(hq + 64 &* k), hiShift), 4), m30)
                    return _mm512_or_si512(lo, hi)
                }
                let v0 = val(0), v1 = val(1), v2 = val(2), v3 = val(3)
                @inline(__always) func step(_ u: Int, _ acc: inout __m512i) {
                    let row: Int = (t &+ u) &* x.rowStride
                    let a = UnsafeRawPointer(x.qs + (row &+ b &* 256 &+ sb &* 16))
                    @inline(__always) func bc(_ o: Int) -> __m512i { _mm512_set1_epi32(a.loadUnaligned(fromByteOffset: o, as: Int32.self)) }
                    var d = _mm512_dpbusd_epi32(zero, v0, bc(0))
                    d = _mm512_dpbusd_epi32(d, v1, bc(4))
                    d = _mm512_dpbusd_epi32(d, v2, bc(8))
                    d = _mm512_dpbusd_epi32(d, v3, bc(12))
                    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(d, sc))
                }
                step(0, &i0)
                if nt > 1 { step(1, &i1); step(2, &i2); step(3, &i3) }
                if nt > 4 { step(4, &i4); step(5, &i5); step(6, &i6); step(7, &i7) }
            }
            // the four sub-blocks of one (h, gh) share their qh bytes, and q and q + 2 their value bytes: in this
            // order one set of them is live at a time (in index order LLVM kept two, spilled, and ran ~25 % slower);
            // the int32 sums are the same in any order
            subBlock(0); subBlock(2); subBlock(4); subBlock(6); subBlock(1); subBlock(3); subBlock(5); subBlock(7)
            subBlock(8); subBlock(10); subBlock(12); subBlock(14); subBlock(9); subBlock(11); subBlock(13); subBlock(15)
            @inline(__always) func scaled(_ u: Int, _ i: __m512i) {
                let da = x.d[(t &+ u) &* x.scalesPerRow &+ b]
                OutputSums.update(y, u, yStride) { _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(dw, _mm512_set1_ps(da)), $0) }
            }
            scaled(0, i0)
            if nt > 1 { scaled(1, i1); scaled(2, i2); scaled(3, i3) }
            if nt > 4 { scaled(4, i4); scaled(5, i5); scaled(6, i6); scaled(7, i7) }
            b &+= 1
        }
    }
}
