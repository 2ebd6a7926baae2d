// 32-value-block kernels (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) on the row-interleaved layout (Interleave.swift) with
// AVX-512 VNNI: a register tile of 16 weight rows x up to 8 tokens. Per block the 16 rows' 32 values unpack
// once into 8 zmm of unsigned bytes (lane r = 4 values of row r), then each token takes 8 vpdpbusd against its
// 4-byte activation groups broadcast to every lane — 16 rows' Σ q·a in 16 int32 lanes, no horizontal sums —
// folds the offset in as -offset·Σa, and adds Float(dot)·(d_w·d_a) with one FMA. Stores are 16 consecutive
// floats per token. The arithmetic is InterleavedGeneric's, in the same order, so results equal it bit for bit.
import _Builtin_intrinsics.intel
import MistralKernels

public enum InterleavedQ32AVX512 {
    public static func q4_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTiles.groups(Q32Tile<Q4_0Layout>.self, w, rowBytes, rows, x, tokens, y, yStride)
    }
    public static func q4_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTiles.groups(Q32Tile<Q4_1Layout>.self, w, rowBytes, rows, x, tokens, y, yStride)
    }
    public static func q5_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTiles.groups(Q32Tile<Q5_0Layout>.self, w, rowBytes, rows, x, tokens, y, yStride)
    }
    public static func q5_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTiles.groups(Q32Tile<Q5_1Layout>.self, w, rowBytes, rows, x, tokens, y, yStride)
    }
    public static func q8_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedTiles.groups(Q32Tile<Q8_0Layout>.self, w, rowBytes, rows, x, tokens, y, yStride)
    }

    /// One group of 16 rows against T.width tokens from t; token t + u's 16 outputs go to y + u * yStride.
    @inline(__always)
    static func tile<L: Q32Layout, T: TokenTile>(_: L.Type, _: T.Type, _ grp: UnsafeRawPointer, _ x: ActivationView,
                                                 _ t: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nt = T.width, cols = x.cols, nb = cols >> 5
        let stride = 16 &* L.bytes
        let five = L.qh != 0
        let mOff = 32, hOff = L.min ? 64 : 32, qOff = hOff + (five ? 64 : 0)
        let offset: Int32 = L.int8 ? 128 : Int32(L.offset)
        let low = _mm512_set1_epi8(15), sixteen = _mm512_set1_epi8(16), zero = _mm512_setzero_si512()
        var acc0 = _mm512_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0
        var acc4 = acc0, acc5 = acc0, acc6 = acc0, acc7 = acc0

        var b = 0
        while b < nb {
            let p = grp + b &* stride
            // non-temporal: a decode step reads each weight once (prefill's token tiles re-read a group while it is in
            // L1), and streaming them through the outer caches evicted the sessions' KV caches its attention reads
            // next (SmolLM2 Q4_1, 8 streams: attention -10 %, the step -5 %; one stream -5 %; KernelBench unchanged)
            prefetchLinesOnce(p + q32PrefetchBytes, stride)
            let dw = _mm512_cvtph_ps(load256(p))
            let m = L.min ? _mm512_cvtph_ps(load256(p + mOff)) : _mm512_setzero_ps()
            var v0, v1, v2, v3, v4, v5, v6, v7: __m512i
            if L.int8 {
                v0 = load512(p + qOff); v1 = load512(p + qOff + 64); v2 = load512(p + qOff + 128)
                v3 = load512(p + qOff + 192); v4 = load512(p + qOff + 256); v5 = load512(p + qOff + 320)
                v6 = load512(p + qOff + 384); v7 = load512(p + qOff + 448)
            } else {
                let c0 = load512(p + qOff), c1 = load512(p + qOff + 64)
                let c2 = load512(p + qOff + 128), c3 = load512(p + qOff + 192)
                v0 = _mm512_and_si512(c0, low); v4 = _mm512_and_si512(_mm512_srli_epi16(c0, 4), low)
                v1 = _mm512_and_si512(c1, low); v5 = _mm512_and_si512(_mm512_srli_epi16(c1, 4), low)
                v2 = _mm512_and_si512(c2, low); v6 = _mm512_and_si512(_mm512_srli_epi16(c2, 4), low)
                v3 = _mm512_and_si512(c3, low); v7 = _mm512_and_si512(_mm512_srli_epi16(c3, 4), low)
                if five {
                    @inline(__always) func bit5(_ v: __m512i, _ k: Int) -> __m512i {
                        _mm512_mask_add_epi8(v, (p + (hOff &+ 8 &* k)).loadUnaligned(as: UInt64.self), v, sixteen)
                    }
                    v0 = bit5(v0, 0); v1 = bit5(v1, 1); v2 = bit5(v2, 2); v3 = bit5(v3, 3)
                    v4 = bit5(v4, 4); v5 = bit5(v5, 5); v6 = bit5(v6, 6); v7 = bit5(v7, 7)
                }
            }

            /// Token t + u: 8 vpdpbusd in one chain, the offset, one FMA (two with a min).
            @inline(__always) func step(_ u: Int, _ acc: inout __m512) {
                let row: Int = (t &+ u) &* x.rowStride
                let a = UnsafeRawPointer(x.qs + (row &+ b &* 32))
                let k = (t &+ u) &* x.scalesPerRow &+ b
                let da = x.d[k], sa = Int32(x.sums[k])
                // the offset's -offset·Σa seeds the chain (exact: it is all int32)
                let dot = dpbusdChain(offset != 0 ? _mm512_set1_epi32(0 &- offset &* sa) : zero,
                                      (v0, v1, v2, v3, v4, v5, v6, v7), a)
                acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, _mm512_set1_ps(da)), acc)
                if L.min { acc = _mm512_fmadd_ps(m, _mm512_set1_ps(x.scaledSums[k]), acc) }  // da · Float(sa), precomputed
            }
            step(0, &acc0)
            if nt > 1 { step(1, &acc1); step(2, &acc2); step(3, &acc3) }
            if nt > 4 { step(4, &acc4); step(5, &acc5); step(6, &acc6); step(7, &acc7) }
            b &+= 1
        }
        @inline(__always) func store(_ u: Int, _ v: __m512) { _mm512_storeu_ps(y + u &* yStride, v) }
        store(0, acc0)
        if nt > 1 { store(1, acc1); store(2, acc2); store(3, acc3) }
        if nt > 4 { store(4, acc4); store(5, acc5); store(6, acc6); store(7, acc7) }
    }
}

/// A 32-value-block type's register tile, as the shared tile loop takes it.
enum Q32Tile<L: Q32Layout>: InterleavedTile {
    @inline(__always)
    static func tile<T: TokenTile>(_: T.Type, _ grp: UnsafeRawPointer, _ x: ActivationView, _ t: Int,
                                   _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        InterleavedQ32AVX512.tile(L.self, T.self, grp, x, t, y, yStride)
    }
}
