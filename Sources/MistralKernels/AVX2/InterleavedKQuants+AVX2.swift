// K-quant kernels on the row-interleaved layout (Interleave.swift) with AVX2: tiles of 8 weight rows (half a
// 64-byte chunk, one ymm) x up to 8 tokens against q8_K activations. Q4_K (and Q5_K, its fifth bits or-ed in as
// 16) per 256-block: the mins term first — the 8 rows' six-bit mins as int16 pairs, 4 vpmaddwd against each
// token's per-32 activation sums — then per sub-block the 8 value registers unpack once and every token takes
// 8 vpmaddubsw, summed as int16 (Q4: all 8, |Σ| <= 16·15·127; Q5: 4 at a time), and one vpmaddwd by the rows'
// sub-block scale as an int16 pair, which widens and scales at once. Q6_K: the -32 offset as 8 vpmaddwd of the
// rows' int8 scales (int16 pairs) against the per-16 activation sums, then per 16-value sub-block 4 vpmaddubsw,
// summed two at a time (|Σ| <= 4·63·127), and vpmaddwd by its scale. All exact in int32, then InterleavedGeneric's
// FMAs in its order, so results equal it bit for bit, whatever tile serves a token.
import _Builtin_intrinsics.intel

public enum InterleavedKQuantsAVX2 {
    public static func q4_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTilesAVX2.groups(Q45KTileAVX2<Q4KKind>.self, w, rowBytes, rows, x, tokens, y, yStride)
    }

    public static func q5_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTilesAVX2.groups(Q45KTileAVX2<Q5KKind>.self, w, rowBytes, rows, x, tokens, y, yStride)
    }

    public static func q6_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTilesAVX2.groups(Q6KTileAVX2.self, w, rowBytes, rows, x, tokens, y, yStride)
    }
}

@inline(__always) private func srl(_ v: __m256i, _ n: Int) -> __m256i {
    _mm256_srli_epi32(v, Int32(truncatingIfNeeded: n))
}

/// An int32 lane's low 16 bits in both of its halves (a vpmaddwd factor: a·x_lo + a·x_hi).
@inline(__always) private func pair16(_ v: __m256i) -> __m256i {
    _mm256_or_si256(v, _mm256_slli_epi32(v, 16))  // v < 2^16
}

/// Q4_K, and Q5_K (the same tile with each value's fifth bit or-ed in as 16).
enum Q45KTileAVX2<V: Q45Kind>: InterleavedTileAVX2 {
    @inline(__always)
    static func tile<T: TokenTile>(_: T.Type, _ grp: UnsafeRawPointer, _ half: Int, _ x: ActivationView, _ t: Int,
                                   _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nt = T.width, cols = x.cols, nb = cols >> 8, sumsPerRow = x.sumsPerRow
        let five = V.five
        let groupBytes: Int = five ? 2816 : 2304  // 16 blocks of 176 or 144 bytes
        let low = _mm256_set1_epi8(15), bit4 = _mm256_set1_epi8(0x10), six = _mm256_set1_epi32(63)
        let four = _mm256_set1_epi32(15), hi2 = _mm256_set1_epi32(0x30), zero = _mm256_setzero_si256()

        /// Block b of rows 8·h ... + 7 against the tile's tokens.
        @inline(__always) func block(_ b: Int, _ h: Int, _ acc: inout AccAVX2) {
            let p = grp + b &* groupBytes
            let lanes = 32 &* h  // this half's bytes in each 64-byte chunk
            let dw = _mm256_cvtph_ps(load128(p + 16 &* h)), dmin = _mm256_cvtph_ps(load128(p + (32 &+ 16 &* h)))
            let p0 = load256(p + (64 &+ lanes)), p1 = load256(p + (128 &+ lanes)), p2 = load256(p + (192 &+ lanes))

            // mins: m_j (6 bits) of the 8 rows, as int16 pairs (m_2i, m_2i+1) per 32-bit lane
            @inline(__always) func minOf(_ j: Int) -> __m256i {
                if j < 4 { return _mm256_and_si256(srl(p1, 8 &* j), six) }
                let k = 8 &* (j &- 4)
                return _mm256_or_si256(_mm256_and_si256(srl(p2, k &+ 4), four), _mm256_and_si256(srl(p1, k &+ 2), hi2))
            }
            @inline(__always) func pair(_ j: Int) -> __m256i {
                _mm256_or_si256(minOf(j), _mm256_slli_epi32(minOf(j &+ 1), 16))
            }
            let m01 = pair(0), m23 = pair(2), m45 = pair(4), m67 = pair(6)
            @inline(__always) func mins(_ u: Int, _ acc: inout __m256) {
                // (Σa of sub-block 2i, of 2i + 1) as one int16 pair: adjacent in sums32, one memory broadcast
                let s = UnsafeRawPointer(x.sums32 + ((t &+ u) &* (sumsPerRow >> 1) &+ b &* 8))
                @inline(__always) func bc(_ i: Int) -> __m256i {
                    _mm256_set1_epi32(s.loadUnaligned(fromByteOffset: 4 &* i, as: Int32.self))
                }
                let m = _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(m01, bc(0)), _mm256_madd_epi16(m23, bc(1))),
                                         _mm256_add_epi32(_mm256_madd_epi16(m45, bc(2)), _mm256_madd_epi16(m67, bc(3))))
                let da = x.d[(t &+ u) &* x.scalesPerRow &+ b]
                acc = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_cvtepi32_ps(m)),
                                      _mm256_mul_ps(dmin, _mm256_set1_ps(da)), acc)
            }
            mins(0, &acc.a0)
            if nt > 1 { mins(1, &acc.a1); mins(2, &acc.a2); mins(3, &acc.a3) }
            if nt > 4 { mins(4, &acc.a4); mins(5, &acc.a5); mins(6, &acc.a6); mins(7, &acc.a7) }

            var i0 = zero, i1 = zero, i2 = zero, i3 = zero, i4 = zero, i5 = zero, i6 = zero, i7 = zero
            // unrolled: every shift an immediate, and sub-blocks 2p and 2p + 1 share their nibble loads
            @inline(__always) func sub(_ j: Int) {
                // an eighth of the block group 4 ahead per sub-block, spread out (one burst of 36 lines
                // per block filled the miss buffers and stalled the loads behind it)
                if h == 0 { prefetchLines(p + (4 &* groupBytes &+ j &* (groupBytes >> 3)), groupBytes >> 3) }
                // sub-block j's scale per row, as an int16 pair
                let sc: __m256i
                if j < 4 {
                    sc = pair16(_mm256_and_si256(srl(p0, 8 &* j), six))
                } else {
                    let k = 8 &* (j &- 4)
                    sc = pair16(_mm256_or_si256(_mm256_and_si256(srl(p2, k), four), _mm256_and_si256(srl(p0, k &+ 2), hi2)))
                }
                let q = p + ((five ? 768 : 256) &+ 512 &* (j >> 1) &+ lanes)
                let qh = p + (256 &+ lanes)
                @inline(__always) func val(_ k: Int) -> __m256i {
                    let c = load256(q + 64 &* k)
                    let v = _mm256_and_si256(j & 1 == 0 ? c : _mm256_srli_epi16(c, 4), low)
                    guard five else { return v }
                    // bit j of each qh byte moved to bit 4 (16-bit shifts by less than 8 keep each byte's own bit)
                    let h = load256(qh + 64 &* k)
                    let moved = j <= 4 ? _mm256_slli_epi16(h, Int32(truncatingIfNeeded: 4 &- j))
                                       : _mm256_srli_epi16(h, Int32(truncatingIfNeeded: j &- 4))
                    return _mm256_or_si256(v, _mm256_and_si256(moved, bit4))
                }
                let v0 = val(0), v1 = val(1), v2 = val(2), v3 = val(3), v4 = val(4), v5 = val(5), v6 = val(6), v7 = val(7)
                @inline(__always) func step(_ u: Int, _ acc: inout __m256i) {
                    let row: Int = (t &+ u) &* x.rowStride
                    let a = UnsafeRawPointer(x.qs + (row &+ b &* 256 &+ j &* 32))
                    @inline(__always) func bc(_ o: Int) -> __m256i {
                        _mm256_set1_epi32(a.loadUnaligned(fromByteOffset: o, as: Int32.self))
                    }
                    let s0 = _mm256_add_epi16(_mm256_maddubs_epi16(v0, bc(0)), _mm256_maddubs_epi16(v1, bc(4)))
                    let s1 = _mm256_add_epi16(_mm256_maddubs_epi16(v2, bc(8)), _mm256_maddubs_epi16(v3, bc(12)))
                    let s2 = _mm256_add_epi16(_mm256_maddubs_epi16(v4, bc(16)), _mm256_maddubs_epi16(v5, bc(20)))
                    let s3 = _mm256_add_epi16(_mm256_maddubs_epi16(v6, bc(24)), _mm256_maddubs_epi16(v7, bc(28)))
                    let d: __m256i
                    if five {
                        d = _mm256_add_epi32(_mm256_madd_epi16(_mm256_add_epi16(s0, s1), sc),
                                             _mm256_madd_epi16(_mm256_add_epi16(s2, s3), sc))
                    } else {
                        d = _mm256_madd_epi16(_mm256_add_epi16(_mm256_add_epi16(s0, s1), _mm256_add_epi16(s2, s3)), sc)
                    }
                    acc = _mm256_add_epi32(acc, d)
                }
                step(0, &i0)
                if nt > 1 { step(1, &i1); step(2, &i2); step(3, &i3) }
                if nt > 4 { step(4, &i4); step(5, &i5); step(6, &i6); step(7, &i7) }
            }
            sub(0); sub(1); sub(2); sub(3); sub(4); sub(5); sub(6); sub(7)
            @inline(__always) func scaled(_ u: Int, _ i: __m256i, _ acc: inout __m256) {
                let da = x.d[(t &+ u) &* x.scalesPerRow &+ b]
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(dw, _mm256_set1_ps(da)), acc)
            }
            scaled(0, i0, &acc.a0)
            if nt > 1 { scaled(1, i1, &acc.a1); scaled(2, i2, &acc.a2); scaled(3, i3, &acc.a3) }
            if nt > 4 { scaled(4, i4, &acc.a4); scaled(5, i5, &acc.a5); scaled(6, i6, &acc.a6); scaled(7, i7, &acc.a7) }
        }

        InterleavedTilesAVX2.blocks(nb, tokens: nt, half: half, y, yStride, block)
    }
}

enum Q6KTileAVX2: InterleavedTileAVX2 {
    @inline(__always)
    static func tile<T: TokenTile>(_: T.Type, _ grp: UnsafeRawPointer, _ half: Int, _ x: ActivationView, _ t: Int,
                                   _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nt = T.width, cols = x.cols, nb = cols >> 8, sumsPerRow = x.sumsPerRow
        let low = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30), zero = _mm256_setzero_si256()
        // vpshufb index: byte 4m of each 32-bit lane m of a 128-bit half into the high bytes of both int16 halves
        // (the low bytes zeroed); + i·0x01000100 picks byte 4m + i instead
        let toHigh = _mm256_set1_epi32(Int32(bitPattern: 0x0080_0080)), lanes4 = _mm256_setr_epi32(0, 0x0400_0400, 0x0800_0800,
            0x0C00_0C00, 0, 0x0400_0400, 0x0800_0800, 0x0C00_0C00)
        let pick = _mm256_or_si256(toHigh, lanes4)

        /// Block b of rows 8·h ... + 7 against the tile's tokens.
        @inline(__always) func block(_ b: Int, _ h: Int, _ acc: inout AccAVX2) {
            let p = grp + b &* (16 &* 210)
            let lanes = 32 &* h  // this half's bytes in each 64-byte chunk
            let dw = _mm256_cvtph_ps(load128(p + 16 &* h))
            /// The rows' int8 scales i and j of chunk c, sign-extended into the low and high int16 of each lane
            /// (vpshufb into the high bytes, then an arithmetic shift right by 8).
            @inline(__always) func scales(_ c: Int, _ i: Int, _ j: Int) -> __m256i {
                let idx = _mm256_add_epi32(pick, _mm256_set1_epi32(Int32(truncatingIfNeeded: i << 8 | j << 24)))
                return _mm256_srai_epi16(_mm256_shuffle_epi8(load256(p + (32 &+ 64 &* c &+ lanes)), idx), 8)
            }
            // the -32 offset: -32 · Σ_s sc_s · (Σa)_s, the int accumulator's starting value
            let s0 = scales(0, 0, 1), s1 = scales(0, 2, 3), s2 = scales(1, 0, 1), s3 = scales(1, 2, 3)
            let s4 = scales(2, 0, 1), s5 = scales(2, 2, 3), s6 = scales(3, 0, 1), s7 = scales(3, 2, 3)
            @inline(__always) func offset(_ u: Int) -> __m256i {
                let s = UnsafeRawPointer(x.sums + ((t &+ u) &* sumsPerRow &+ b &* 16))
                @inline(__always) func bc(_ i: Int) -> __m256i {
                    _mm256_set1_epi32(s.loadUnaligned(fromByteOffset: 4 &* i, as: Int32.self))
                }
                let o = _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(s0, bc(0)), _mm256_madd_epi16(s1, bc(1))),
                                         _mm256_add_epi32(_mm256_madd_epi16(s2, bc(2)), _mm256_madd_epi16(s3, bc(3))))
                let o2 = _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(s4, bc(4)), _mm256_madd_epi16(s5, bc(5))),
                                          _mm256_add_epi32(_mm256_madd_epi16(s6, bc(6)), _mm256_madd_epi16(s7, bc(7))))
                return _mm256_sub_epi32(zero, _mm256_slli_epi32(_mm256_add_epi32(o, o2), 5))
            }
            var i0 = offset(0), i1 = zero, i2 = zero, i3 = zero, i4 = zero, i5 = zero, i6 = zero, i7 = zero
            if nt > 1 { i1 = offset(1); i2 = offset(2); i3 = offset(3) }
            if nt > 4 { i4 = offset(4); i5 = offset(5); i6 = offset(6); i7 = offset(7) }

            // sub-block sb = 8h + 2q + gh: values 128h + 32q + 16gh ... + 15, four registers of 8 rows x 4 values;
            // the low 4 bits are A's or B's (q odd) nibble (q >= 2: the high one), the top 2 bits qh's bits 2q, 2q + 1.
            // q is unrolled, so each value takes its shifts as constants.
            var hg = 0
            while hg < 4 {
                let hv = hg >> 1, gh = hg & 1
                let base = p + (288 &+ 1536 &* hv &+ 256 &* gh &+ lanes)
                @inline(__always) func sub(_ q: Int) {
                    let sb = 8 &* hv &+ 2 &* q &+ gh
                    // a sixteenth of the block group 4 ahead per sub-block, spread out as for Q4_K
                    if h == 0 { prefetchLines(p + (4 &* 3360 &+ sb &* 210), 210) }
                    let sc = scales(sb >> 2, sb & 3, sb & 3)
                    let xq = base + (q & 1) &* 512, hq = base + 1024
                    @inline(__always) func val(_ k: Int) -> __m256i {
                        let nib = load256(xq + 64 &* k), hb = load256(hq + 64 &* k)
                        let lo = _mm256_and_si256(q < 2 ? nib : _mm256_srli_epi16(nib, 4), low)
                        // qh bits 2q, 2q + 1 to bits 4, 5
                        let hs: __m256i = switch q {
                        case 0: _mm256_slli_epi16(hb, 4)
                        case 1: _mm256_slli_epi16(hb, 2)
                        case 2: hb
                        default: _mm256_srli_epi16(hb, 2)
                        }
                        return _mm256_or_si256(lo, _mm256_and_si256(hs, m30))
                    }
                    let v0 = val(0), v1 = val(1), v2 = val(2), v3 = val(3)
                    @inline(__always) func step(_ u: Int, _ acc: inout __m256i) {
                        let row: Int = (t &+ u) &* x.rowStride
                        let a = UnsafeRawPointer(x.qs + (row &+ b &* 256 &+ sb &* 16))
                        @inline(__always) func bc(_ o: Int) -> __m256i {
                            _mm256_set1_epi32(a.loadUnaligned(fromByteOffset: o, as: Int32.self))
                        }
                        let d0 = _mm256_add_epi16(_mm256_maddubs_epi16(v0, bc(0)), _mm256_maddubs_epi16(v1, bc(4)))
                        let d1 = _mm256_add_epi16(_mm256_maddubs_epi16(v2, bc(8)), _mm256_maddubs_epi16(v3, bc(12)))
                        acc = _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(d0, sc), _mm256_madd_epi16(d1, sc)))
                    }
                    step(0, &i0)
                    if nt > 1 { step(1, &i1); step(2, &i2); step(3, &i3) }
                    if nt > 4 { step(4, &i4); step(5, &i5); step(6, &i6); step(7, &i7) }
                }
                sub(0); sub(1); sub(2); sub(3)
                hg &+= 1
            }
            @inline(__always) func scaled(_ u: Int, _ i: __m256i, _ acc: inout __m256) {
                let da = x.d[(t &+ u) &* x.scalesPerRow &+ b]
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(dw, _mm256_set1_ps(da)), acc)
            }
            scaled(0, i0, &acc.a0)
            if nt > 1 { scaled(1, i1, &acc.a1); scaled(2, i2, &acc.a2); scaled(3, i3, &acc.a3) }
            if nt > 4 { scaled(4, i4, &acc.a4); scaled(5, i5, &acc.a5); scaled(6, i6, &acc.a6); scaled(7, i7, &acc.a7) }
        }

        InterleavedTilesAVX2.blocks(nb, tokens: nt, half: half, y, yStride, block)
    }
}
