// The loop every row-interleaved kernel shares: groups of 16 rows (Interleave.swift), each against the tokens in
// register tiles of 8, then 4, then 1. A weight type supplies only its tile.
import _Builtin_intrinsics.intel
import MistralKernels

/// How far ahead the tiles prefetch, in block groups for the K-quants (2-3 KB each; the reads inside one jump
/// between its fields, and the hardware prefetcher alone left decode from memory at 60 % of the bandwidth) and in
/// bytes for the 32-value types (288-544 bytes per block group: 4 KB ahead made prompt tiles ~15 % faster).
let kQuantPrefetchGroups = 2
let q32PrefetchBytes = 4096

/// A tile's float sums kept in its output rows (16 floats per token, the tile's alone) instead of registers, for
/// tiles whose 8-token form needs those registers for unpacked values (with them in registers the K-quant tiles
/// needed 36 zmm and LLVM spilled the values instead).
enum OutputSums {
    /// Zeroes the 16 sums of each of the first `tokens` tokens.
    @inline(__always)
    static func zero(_ y: UnsafeMutablePointer<Float>, tokens: Int, _ yStride: Int) {
        for u in 0..<tokens { _mm512_storeu_ps(y + u &* yStride, _mm512_setzero_ps()) }
    }

    /// Token u's sums = f(its sums).
    @inline(__always)
    static func update(_ y: UnsafeMutablePointer<Float>, _ u: Int, _ yStride: Int, _ f: (__m512) -> __m512) {
        let yp = y + u &* yStride
        _mm512_storeu_ps(yp, f(_mm512_loadu_ps(yp)))
    }
}

/// seed + the 16 rows' Σ v·a over 32 values: 8 vpdpbusd in one chain, v_k (lane r = row r's 4 values 4k...4k+3)
/// against the 4 activation bytes at a + 4k broadcast to every lane. One chain per token: the 8-token tiles then
/// hold 8 chains in flight without a second accumulator per token (8 more registers).
@inline(__always)
func dpbusdChain(_ seed: __m512i, _ v: (__m512i, __m512i, __m512i, __m512i, __m512i, __m512i, __m512i, __m512i),
                 _ a: UnsafeRawPointer) -> __m512i {
    @inline(__always) func bc(_ o: Int) -> __m512i { _mm512_set1_epi32(a.loadUnaligned(fromByteOffset: o, as: Int32.self)) }
    var c = _mm512_dpbusd_epi32(seed, v.0, bc(0))
    c = _mm512_dpbusd_epi32(c, v.1, bc(4))
    c = _mm512_dpbusd_epi32(c, v.2, bc(8))
    c = _mm512_dpbusd_epi32(c, v.3, bc(12))
    c = _mm512_dpbusd_epi32(c, v.4, bc(16))
    c = _mm512_dpbusd_epi32(c, v.5, bc(20))
    c = _mm512_dpbusd_epi32(c, v.6, bc(24))
    return _mm512_dpbusd_epi32(c, v.7, bc(28))
}

/// One weight type's register tile: one group of 16 rows at `grp` against T.width tokens from t; token t + u's 16
/// outputs go to y + u * yStride.
protocol InterleavedTile {
    static func tile<T: TokenTile>(_: T.Type, _ grp: UnsafeRawPointer, _ x: ActivationView, _ t: Int,
                                   _ y: UnsafeMutablePointer<Float>, _ yStride: Int)
}

enum InterleavedTiles {
    /// Every group of 16 rows in `rows` (16-aligned) against the tokens in tiles of 8, then 4, then 1.
    @inline(__always)
    static func groups<K: InterleavedTile>(_: K.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>,
                                           _ x: ActivationView, _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>,
                                           _ yStride: Int) {
        var g = rows.lowerBound
        while g < rows.upperBound {
            let grp = w + g &* rowBytes  // group g / 16 starts at (g / 16) * 16 * rowBytes
            var t = tokens.lowerBound
            while t &+ 8 <= tokens.upperBound {
                K.tile(EightTokens.self, grp, x, t, y + t &* yStride + g, yStride)
                t &+= 8
            }
            if t &+ 4 <= tokens.upperBound {
                K.tile(FourTokens.self, grp, x, t, y + t &* yStride + g, yStride)
                t &+= 4
            }
            while t < tokens.upperBound {
                K.tile(OneToken.self, grp, x, t, y + t &* yStride + g, yStride)
                t &+= 1
            }
            g &+= 16
        }
    }
}
