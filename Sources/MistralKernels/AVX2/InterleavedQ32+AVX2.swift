// 32-value-block kernels (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) on the row-interleaved layout (Interleave.swift) with
// AVX2: register tiles of 8 weight rows (half a 64-byte chunk, one ymm) x up to 8 tokens. Per block the 8 rows'
// 32 values unpack once into 8 ymm of bytes (lane r = 4 values of row r); each token takes 8 vpmaddubsw against
// its 4-byte activation groups broadcast to every lane, sums them as int16 where that cannot overflow (Q4: all
// 8, |Σ| <= 16·15·127; Q5: 4 at a time), widens with vpmaddwd by ones, converts, subtracts offset·Σa with one
// FMA (integers below 2^24, so exact) and adds Float(dot)·(d_w·d_a) with one FMA (and m·(d_a·Σa) for the types
// with a min). Q8_0's stored w + 128 would saturate vpmaddubsw, so its signed w (xor 0x80) goes in as |w| x
// sign(a, w), exact since activations are never -128, and each product pair is widened on its own. The integer
// sums are exact and the float steps are InterleavedGeneric's in its order, so results equal it bit for bit,
// whatever tile serves a token.
import _Builtin_intrinsics.intel

public enum InterleavedQ32AVX2 {
    public static func q4_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTilesAVX2.groups(Q32TileAVX2<Q4_0Layout>.self, w, rowBytes, rows, x, tokens, y, yStride)
    }
    public static func q4_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTilesAVX2.groups(Q32TileAVX2<Q4_1Layout>.self, w, rowBytes, rows, x, tokens, y, yStride)
    }
    public static func q5_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTilesAVX2.groups(Q32TileAVX2<Q5_0Layout>.self, w, rowBytes, rows, x, tokens, y, yStride)
    }
    public static func q5_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTilesAVX2.groups(Q32TileAVX2<Q5_1Layout>.self, w, rowBytes, rows, x, tokens, y, yStride)
    }
    public static func q8_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTilesAVX2.groups(Q32TileAVX2<Q8_0Layout>.self, w, rowBytes, rows, x, tokens, y, yStride)
    }

    /// Rows 8·half ... + 7 of one group (all 16 with one token) against T.width tokens from t; token t + u's
    /// outputs go to y + u * yStride.
    @inline(__always)
    static func tile<L: Q32Layout, T: TokenTile>(_: L.Type, _: T.Type, _ grp: UnsafeRawPointer, _ half: Int,
                                                 _ x: ActivationView, _ t: Int, _ y: UnsafeMutablePointer<Float>,
                                                 _ yStride: Int) {
        let nt = T.width, cols = x.cols, nb = cols >> 5
        let stride = 16 &* L.bytes
        let five = L.qh != 0
        let mOff = 32, hOff = L.min ? 64 : 32, qOff = hOff + (five ? 64 : 0)
        let offset = Int32(L.offset), offsetF = _mm256_set1_ps(Float(L.offset))
        let low = _mm256_set1_epi8(15), sixteen = _mm256_set1_epi8(16), ones = _mm256_set1_epi16(1)
        let flip = _mm256_set1_epi8(-128)
        // byte i: i / 8 (which byte of the 32 fifth bits), 1 << i % 8 (which bit of it)
        let spread = _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0)
        let bit = _mm256_set1_epi64x(Int64(bitPattern: 0x8040_2010_0804_0201))

        /// Block b of rows 8·h ... + 7 against the tile's tokens.
        @inline(__always) func block(_ b: Int, _ h: Int, _ acc: inout AccAVX2) {
            let p = grp + b &* stride
            if h == 0 { prefetchLines(p + 16 &* stride, stride) }  // 16 block groups ahead
            let dw = _mm256_cvtph_ps(load128(p + 16 &* h))
            let m = L.min ? _mm256_cvtph_ps(load128(p + (mOff &+ 16 &* h))) : _mm256_setzero_ps()
            let q = p + (qOff &+ 32 &* h)  // this half's bytes in each 64-byte chunk
            var v0, v1, v2, v3, v4, v5, v6, v7: __m256i
            if L.int8 {
                // signed w; sign() needs it per token, abs() once
                v0 = _mm256_xor_si256(load256(q), flip); v1 = _mm256_xor_si256(load256(q + 64), flip)
                v2 = _mm256_xor_si256(load256(q + 128), flip); v3 = _mm256_xor_si256(load256(q + 192), flip)
                v4 = _mm256_xor_si256(load256(q + 256), flip); v5 = _mm256_xor_si256(load256(q + 320), flip)
                v6 = _mm256_xor_si256(load256(q + 384), flip); v7 = _mm256_xor_si256(load256(q + 448), flip)
            } else {
                let c0 = load256(q), c1 = load256(q + 64), c2 = load256(q + 128), c3 = load256(q + 192)
                v0 = _mm256_and_si256(c0, low); v4 = _mm256_and_si256(_mm256_srli_epi16(c0, 4), low)
                v1 = _mm256_and_si256(c1, low); v5 = _mm256_and_si256(_mm256_srli_epi16(c1, 4), low)
                v2 = _mm256_and_si256(c2, low); v6 = _mm256_and_si256(_mm256_srli_epi16(c2, 4), low)
                v3 = _mm256_and_si256(c3, low); v7 = _mm256_and_si256(_mm256_srli_epi16(c3, 4), low)
                if five {
                    /// + 16 where the value's fifth bit is set: this half's 32 bits of h[k], one per byte.
                    @inline(__always) func bit5(_ v: __m256i, _ k: Int) -> __m256i {
                        let hk = (p + (hOff &+ 8 &* k &+ 4 &* h)).loadUnaligned(as: Int32.self)
                        let s = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(hk), spread), bit)
                        return _mm256_or_si256(v, _mm256_and_si256(_mm256_cmpeq_epi8(s, bit), sixteen))
                    }
                    v0 = bit5(v0, 0); v1 = bit5(v1, 1); v2 = bit5(v2, 2); v3 = bit5(v3, 3)
                    v4 = bit5(v4, 4); v5 = bit5(v5, 5); v6 = bit5(v6, 6); v7 = bit5(v7, 7)
                }
            }
            let w0 = L.int8 ? _mm256_abs_epi8(v0) : v0, w1 = L.int8 ? _mm256_abs_epi8(v1) : v1
            let w2 = L.int8 ? _mm256_abs_epi8(v2) : v2, w3 = L.int8 ? _mm256_abs_epi8(v3) : v3
            let w4 = L.int8 ? _mm256_abs_epi8(v4) : v4, w5 = L.int8 ? _mm256_abs_epi8(v5) : v5
            let w6 = L.int8 ? _mm256_abs_epi8(v6) : v6, w7 = L.int8 ? _mm256_abs_epi8(v7) : v7

            /// Token t + u: Σ q·a of the 8 rows in int32, the offset, one FMA (two with a min).
            @inline(__always) func step(_ u: Int, _ acc: inout __m256) {
                let row: Int = (t &+ u) &* x.rowStride
                let a = UnsafeRawPointer(x.qs + (row &+ b &* 32))
                @inline(__always) func bc(_ o: Int) -> __m256i {
                    _mm256_set1_epi32(a.loadUnaligned(fromByteOffset: o, as: Int32.self))
                }
                let k = (t &+ u) &* x.scalesPerRow &+ b
                let da = x.d[k]
                var dot: __m256i
                if L.int8 {
                    @inline(__always) func pd(_ w: __m256i, _ v: __m256i, _ o: Int) -> __m256i {
                        _mm256_madd_epi16(_mm256_maddubs_epi16(w, _mm256_sign_epi8(bc(o), v)), ones)
                    }
                    let d0 = _mm256_add_epi32(pd(w0, v0, 0), pd(w1, v1, 4))
                    let d1 = _mm256_add_epi32(pd(w2, v2, 8), pd(w3, v3, 12))
                    let d2 = _mm256_add_epi32(pd(w4, v4, 16), pd(w5, v5, 20))
                    let d3 = _mm256_add_epi32(pd(w6, v6, 24), pd(w7, v7, 28))
                    dot = _mm256_add_epi32(_mm256_add_epi32(d0, d1), _mm256_add_epi32(d2, d3))
                } else {
                    let s0 = _mm256_add_epi16(_mm256_maddubs_epi16(w0, bc(0)), _mm256_maddubs_epi16(w1, bc(4)))
                    let s1 = _mm256_add_epi16(_mm256_maddubs_epi16(w2, bc(8)), _mm256_maddubs_epi16(w3, bc(12)))
                    let s2 = _mm256_add_epi16(_mm256_maddubs_epi16(w4, bc(16)), _mm256_maddubs_epi16(w5, bc(20)))
                    let s3 = _mm256_add_epi16(_mm256_maddubs_epi16(w6, bc(24)), _mm256_maddubs_epi16(w7, bc(28)))
                    if five {
                        dot = _mm256_add_epi32(_mm256_madd_epi16(_mm256_add_epi16(s0, s1), ones),
                                               _mm256_madd_epi16(_mm256_add_epi16(s2, s3), ones))
                    } else {
                        dot = _mm256_madd_epi16(_mm256_add_epi16(_mm256_add_epi16(s0, s1), _mm256_add_epi16(s2, s3)), ones)
                    }
                }
                var dotF = _mm256_cvtepi32_ps(dot)
                // dot - offset·Σa exactly (integers below 2^24), Σa as a float from memory: no scalar to vector move
                if offset != 0 { dotF = _mm256_fnmadd_ps(offsetF, _mm256_set1_ps(x.floatSums[k]), dotF) }
                acc = _mm256_fmadd_ps(dotF, _mm256_mul_ps(dw, _mm256_set1_ps(da)), acc)
                if L.min { acc = _mm256_fmadd_ps(m, _mm256_set1_ps(x.scaledSums[k]), acc) }  // da · Float(sa), precomputed
            }
            step(0, &acc.a0)
            if nt > 1 { step(1, &acc.a1); step(2, &acc.a2); step(3, &acc.a3) }
            if nt > 4 { step(4, &acc.a4); step(5, &acc.a5); step(6, &acc.a6); step(7, &acc.a7) }
        }

        InterleavedTilesAVX2.blocks(nb, tokens: nt, half: half, y, yStride, block)
    }
}

/// A 32-value-block type's register tile, as the shared tile loop takes it.
enum Q32TileAVX2<L: Q32Layout>: InterleavedTileAVX2 {
    @inline(__always)
    static func tile<T: TokenTile>(_: T.Type, _ grp: UnsafeRawPointer, _ half: Int, _ x: ActivationView, _ t: Int,
                                   _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedQ32AVX2.tile(L.self, T.self, grp, half, x, t, y, yStride)
    }
}
