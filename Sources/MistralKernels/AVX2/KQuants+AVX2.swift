// K-quant (Q4_K, Q5_K, Q6_K) x q8_K kernels with AVX2: unsigned weight bytes vpmaddubsw int8 activations
// (-> int16 pairs, no overflow), vpmaddwd with the sub-block scale (-> int32), summed per block, then one float
// FMA per block and token. One weight row's unpacked values serve up to 4 tokens.
import _Builtin_intrinsics.intel

/// Q4_K or Q5_K, as a type so each is compiled with its branches folded.
protocol Q45Kind { static var five: Bool { get } }
enum Q4KKind: Q45Kind { static var five: Bool { false } }
enum Q5KKind: Q45Kind { static var five: Bool { true } }

public enum KQuantsAVX2 {
    public static func q4_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        q45K(Q4KKind.self, w, rowBytes, rows, x, tokens, y, yStride)
    }

    public static func q5_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        q45K(Q5KKind.self, w, rowBytes, rows, x, tokens, y, yStride)
    }

    @inline(__always)
    static func q45K<K: Q45Kind>(_ kind: K.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>,
                                 _ x: ActivationView, _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>,
                                 _ yStride: Int) {
        if tokens.count == 1 && x.cols > 8192 {  // decode of wide rows: two rows share each activation load
            let t = tokens.lowerBound
            var r = rows.lowerBound
            while r &+ 2 <= rows.upperBound {
                q45KRowPair(kind, w + r &* rowBytes, w + (r &+ 1) &* rowBytes, x, t, y + t &* yStride + r)
                r &+= 2
            }
            if r < rows.upperBound { q45KRow(kind, OneToken.self, w + r &* rowBytes, x, t, y + t &* yStride + r, yStride) }
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

    /// 16 int16 lanes all equal to byte j of both 128-bit halves of v: shuffle control [j, 0x80] x 16, built as
    /// one multiply of a constant (no per-lane inserts, which cost ~100 cycles per row).
    @inline(__always)
    static func broadcastByte(_ v: __m256i, _ j: UInt8) -> __m256i {
        let c = _mm256_set1_epi16(Int16(bitPattern: 0x8000 | UInt16(j)))
        return _mm256_shuffle_epi8(v, c)
    }

    @inline(__always)
    static func q45KRow<K: Q45Kind, T: TokenTile>(_: K.Type, _: T.Type, _ row: UnsafeRawPointer, _ x: ActivationView,
                                                 _ t: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let five = K.five, nt = T.width
        let nb = x.cols / 256
        let blockBytes = five ? 176 : 144
        let m4 = _mm256_set1_epi8(15)
        let sixteen = _mm256_set1_epi8(16)
        let dup = bytes16(SIMD16<UInt8>(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15))
        var f = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps())
        var m = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps())
        let u1 = nt > 1 ? 1 : 0, u2 = nt > 1 ? 2 : 0, u3 = nt > 1 ? 3 : 0
        let a = (x.values(t), x.values(t &+ u1), x.values(t &+ u2), x.values(t &+ u3))
        let d = (x.scales(t), x.scales(t &+ u1), x.scales(t &+ u2), x.scales(t &+ u3))
        let s = (x.partialSums(t), x.partialSums(t &+ u1), x.partialSums(t &+ u2), x.partialSums(t &+ u3))
        var blk = row
        for b in 0..<nb {
            let dw = half(blk), dmin = half(blk + 2)
            let sm = BlockFields.kScalesMins(blk + 4)
            let sm2 = _mm256_broadcastsi128_si256(sm)
            let minsDup = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, dup))
            let qs = blk + (five ? 48 : 16)
            let h = five ? load256(blk + 16) : _mm256_setzero_si256()
            var acc = (_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256())
            let o = b &* 256
            for k in 0..<4 {
                let q = load256(qs + 32 &* k)
                var lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4)
                if five {
                    let b0 = _mm256_set1_epi8(Int8(1 << (2 * k))), b1 = _mm256_set1_epi8(Int8(bitPattern: UInt8(2 << (2 * k))))
                    lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, b0), b0), sixteen))
                    hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, b1), b1), sixteen))
                }
                let sLo = broadcastByte(sm2, UInt8(2 * k)), sHi = broadcastByte(sm2, UInt8(2 * k + 1))
                @inline(__always) func part(_ a: UnsafePointer<Int8>) -> __m256i {
                    let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load256(a + o + 64 &* k)), sLo)
                    let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load256(a + o + 64 &* k + 32)), sHi)
                    return _mm256_add_epi32(p0, p1)
                }
                acc.0 = _mm256_add_epi32(acc.0, part(a.0))
                if nt > 1 {
                    acc.1 = _mm256_add_epi32(acc.1, part(a.1))
                    acc.2 = _mm256_add_epi32(acc.2, part(a.2))
                    acc.3 = _mm256_add_epi32(acc.3, part(a.3))
                }
            }
            @inline(__always) func finish(_ acc: __m256i, _ d: UnsafePointer<Float>, _ s: UnsafePointer<Int16>,
                                          _ f: inout __m256, _ m: inout __m256) {
                let da = d[b]
                f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(dw * da), f)
                let mm = _mm256_madd_epi16(load256(s + b &* 16), minsDup)
                m = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mm), _mm256_set1_ps(dmin * da), m)
            }
            finish(acc.0, d.0, s.0, &f.0, &m.0)
            if nt > 1 {
                finish(acc.1, d.1, s.1, &f.1, &m.1)
                finish(acc.2, d.2, s.2, &f.2, &m.2)
                finish(acc.3, d.3, s.3, &f.3, &m.3)
            }
            blk += blockBytes
        }
        y[0] = hsum256(f.0) - hsum256(m.0)
        if nt > 1 {
            y[yStride] = hsum256(f.1) - hsum256(m.1)
            y[2 &* yStride] = hsum256(f.2) - hsum256(m.2)
            y[3 &* yStride] = hsum256(f.3) - hsum256(m.3)
        }
    }

    /// Rows r and r + 1 (at rowA, rowB) against one token: each activation vector is loaded once for both, which
    /// halves the L1/L2 traffic of wide rows (the 32768-wide FFN down projection's activations do not fit L1):
    /// 6.5 -> 8.5 GB/s there (KernelBench 5120 x 32768), while on 5120-wide rows the single-row kernel is faster
    /// (17 vs 6 GB/s), so only rows wider than 8192 take this path. Writes y[0] and y[1].
    @inline(__always)
    static func q45KRowPair<K: Q45Kind>(_: K.Type, _ rowA: UnsafeRawPointer, _ rowB: UnsafeRawPointer,
                                        _ x: ActivationView, _ t: Int, _ y: UnsafeMutablePointer<Float>) {
        let five = K.five
        let nb = x.cols / 256
        let blockBytes = five ? 176 : 144
        let m4 = _mm256_set1_epi8(15)
        let sixteen = _mm256_set1_epi8(16)
        let dup = bytes16(SIMD16<UInt8>(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15))
        var fA = _mm256_setzero_ps(), mA = _mm256_setzero_ps(), fB = _mm256_setzero_ps(), mB = _mm256_setzero_ps()
        let a = x.values(t), d = x.scales(t), s = x.partialSums(t)
        var pa = rowA, pb = rowB
        for b in 0..<nb {
            let smA = BlockFields.kScalesMins(pa + 4), smB = BlockFields.kScalesMins(pb + 4)
            let smA2 = _mm256_broadcastsi128_si256(smA), smB2 = _mm256_broadcastsi128_si256(smB)
            let qsA = pa + (five ? 48 : 16), qsB = pb + (five ? 48 : 16)
            let hA = five ? load256(pa + 16) : _mm256_setzero_si256()
            let hB = five ? load256(pb + 16) : _mm256_setzero_si256()
            var accA = _mm256_setzero_si256(), accB = _mm256_setzero_si256()
            let o = b &* 256
            for k in 0..<4 {
                let a0 = load256(a + o + 64 &* k), a1 = load256(a + o + 64 &* k + 32)
                @inline(__always) func part(_ qs: UnsafeRawPointer, _ h: __m256i, _ sm2: __m256i) -> __m256i {
                    let q = load256(qs + 32 &* k)
                    var lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4)
                    if five {
                        let b0 = _mm256_set1_epi8(Int8(1 << (2 * k))), b1 = _mm256_set1_epi8(Int8(bitPattern: UInt8(2 << (2 * k))))
                        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, b0), b0), sixteen))
                        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, b1), b1), sixteen))
                    }
                    let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, a0), broadcastByte(sm2, UInt8(2 * k)))
                    let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, a1), broadcastByte(sm2, UInt8(2 * k + 1)))
                    return _mm256_add_epi32(p0, p1)
                }
                accA = _mm256_add_epi32(accA, part(qsA, hA, smA2))
                accB = _mm256_add_epi32(accB, part(qsB, hB, smB2))
            }
            let da = d[b]
            let bs = load256(s + b &* 16)
            fA = _mm256_fmadd_ps(_mm256_cvtepi32_ps(accA), _mm256_set1_ps(half(pa) * da), fA)
            fB = _mm256_fmadd_ps(_mm256_cvtepi32_ps(accB), _mm256_set1_ps(half(pb) * da), fB)
            let minsA = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(smA, dup)), minsB = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(smB, dup))
            mA = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, minsA)), _mm256_set1_ps(half(pa + 2) * da), mA)
            mB = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, minsB)), _mm256_set1_ps(half(pb + 2) * da), mB)
            pa += blockBytes
            pb += blockBytes
        }
        y[0] = hsum256(fA) - hsum256(mA)
        y[1] = hsum256(fB) - hsum256(mB)
    }

    @inline(__always)
    static func q6KRow<T: TokenTile>(_: T.Type, _ row: UnsafeRawPointer, _ x: ActivationView, _ t: Int,
                                     _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nt = T.width
        let nb = x.cols / 256
        let m4 = _mm256_set1_epi8(15), m3 = _mm256_set1_epi8(3)
        var f = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps())
        let u1 = nt > 1 ? 1 : 0, u2 = nt > 1 ? 2 : 0, u3 = nt > 1 ? 3 : 0
        let a = (x.values(t), x.values(t &+ u1), x.values(t &+ u2), x.values(t &+ u3))
        let d = (x.scales(t), x.scales(t &+ u1), x.scales(t &+ u2), x.scales(t &+ u3))
        let s = (x.partialSums(t), x.partialSums(t &+ u1), x.partialSums(t &+ u2), x.partialSums(t &+ u3))
        do {
            var blk = row
            for b in 0..<nb {
                let dw = half(blk + 208)
                let scBytes = load128(blk + 192)
                let sc16 = _mm256_cvtepi8_epi16(scBytes)
                var acc = (_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256())
                let o = b &* 256
                for n in 0..<2 {
                    let lo = load256(blk + 64 &* n), hi = load256(blk + 64 &* n + 32)
                    let qh = load256(blk + 128 + 32 &* n)
                    let v0 = _mm256_or_si256(_mm256_and_si256(lo, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4))
                    let v1 = _mm256_or_si256(_mm256_and_si256(hi, m4),
                                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4))
                    let v2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo, 4), m4),
                                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4))
                    let v3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(hi, 4), m4),
                                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4))
                    let s0 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scBytes, pairShuffle(4 &* n &+ 0)))
                    let s1 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scBytes, pairShuffle(4 &* n &+ 1)))
                    let s2 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scBytes, pairShuffle(4 &* n &+ 2)))
                    let s3 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scBytes, pairShuffle(4 &* n &+ 3)))
                    let on = o + 128 &* n
                    @inline(__always) func part(_ a: UnsafePointer<Int8>) -> __m256i {
                        let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(v0, load256(a + on)), s0)
                        let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(v1, load256(a + on + 32)), s1)
                        let p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(v2, load256(a + on + 64)), s2)
                        let p3 = _mm256_madd_epi16(_mm256_maddubs_epi16(v3, load256(a + on + 96)), s3)
                        return _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3))
                    }
                    acc.0 = _mm256_add_epi32(acc.0, part(a.0))
                    if nt > 1 {
                        acc.1 = _mm256_add_epi32(acc.1, part(a.1))
                        acc.2 = _mm256_add_epi32(acc.2, part(a.2))
                        acc.3 = _mm256_add_epi32(acc.3, part(a.3))
                    }
                }
                @inline(__always) func finish(_ acc: __m256i, _ d: UnsafePointer<Float>, _ s: UnsafePointer<Int16>,
                                              _ f: inout __m256) {
                    let off = _mm256_slli_epi32(_mm256_madd_epi16(load256(s + b &* 16), sc16), 5)
                    f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc, off)), _mm256_set1_ps(dw * d[b]), f)
                }
                finish(acc.0, d.0, s.0, &f.0)
                if nt > 1 {
                    finish(acc.1, d.1, s.1, &f.1)
                    finish(acc.2, d.2, s.2, &f.2)
                    finish(acc.3, d.3, s.3, &f.3)
                }
                blk += 210
            }
        }
        y[0] = hsum256(f.0)
        if nt > 1 {
            y[yStride] = hsum256(f.1)
            y[2 &* yStride] = hsum256(f.2)
            y[3 &* yStride] = hsum256(f.3)
        }
    }
}

/// Byte shuffle giving [s_2g x8, s_2g+1 x8] from 16 scale bytes: two 8-byte halves of repeated indices.
@inline(__always) func pairShuffle(_ g: Int) -> __m128i {
    let lo = UInt64(truncatingIfNeeded: 2 &* g) &* 0x0101_0101_0101_0101
    return _mm_set_epi64x(Int64(bitPattern: lo &+ 0x0101_0101_0101_0101), Int64(bitPattern: lo))
}

@inline(__always) func half(_ p: UnsafeRawPointer) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self)))
}
