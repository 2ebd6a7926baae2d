// The loop every AVX2 row-interleaved kernel shares: groups of 16 rows (Interleave.swift), each against the
// tokens in register tiles of 8, 4, then 1. An 8- or 4-token tile takes the group as two halves of 8 rows — the
// lanes a ymm holds of a 64-byte chunk (rows 0...7 in its first 32 bytes, 8...15 in its second); a 1-token tile
// takes both halves in one pass, so decode reads each 64-byte line once (two passes over a group larger than L1
// ran at half the speed from memory). An 8-token tile unpacks each weight block once for all 8 (two 4-token tiles
// unpacked it twice: a batched step of 8 sessions ran 17-24 % slower on Q4_0/Q4_1/Q8_0/Q6_K). All tiles run
// software prefetches some KB ahead of their reads (a wide tile in its first half, the one that reads the group
// from memory): the hardware's alone left the K-quants' decode at half the file-layout kernels' speed once the
// weights came from DRAM, and a batched step of 4 sessions at 0.55x (Q6_K) and 0.8x (Q4_0) of what they reach
// with them. A weight type supplies only its tile.
import _Builtin_intrinsics.intel

/// One weight type's AVX2 register tile: rows 8·half ... 8·half + 7 (all 16 rows when T.width is 1, half 0) of
/// the group of 16 rows at `grp` against T.width tokens from t; token t + u's outputs go to y + u * yStride.
protocol InterleavedTileAVX2 {
    static func tile<T: TokenTile>(_: T.Type, _ grp: UnsafeRawPointer, _ half: Int, _ x: ActivationView, _ t: Int,
                                   _ y: UnsafeMutablePointer<Float>, _ yStride: Int)
}

enum InterleavedTilesAVX2 {
    /// Every group of 16 rows in `rows` (16-aligned) against the tokens in tiles of 8, then 4, then 1.
    @inline(__always)
    static func groups<K: InterleavedTileAVX2>(_: K.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>,
                                               _ x: ActivationView, _ tokens: Range<Int>,
                                               _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        var g = rows.lowerBound
        while g < rows.upperBound {
            let grp = w + g &* rowBytes  // group g / 16 starts at (g / 16) * 16 * rowBytes
            var t = tokens.lowerBound
            while t &+ 8 <= tokens.upperBound {
                K.tile(EightTokens.self, grp, 0, x, t, y + t &* yStride + g, yStride)
                K.tile(EightTokens.self, grp, 1, x, t, y + t &* yStride + (g &+ 8), yStride)
                t &+= 8
            }
            while t &+ 4 <= tokens.upperBound {
                K.tile(FourTokens.self, grp, 0, x, t, y + t &* yStride + g, yStride)
                K.tile(FourTokens.self, grp, 1, x, t, y + t &* yStride + (g &+ 8), yStride)
                t &+= 4
            }
            while t < tokens.upperBound {
                K.tile(OneToken.self, grp, 0, x, t, y + t &* yStride + g, yStride)
                t &+= 1
            }
            g &+= 16
        }
    }
}

extension InterleavedTilesAVX2 {
    /// A tile's blocks 0..<nb: block(b, half, &sums) for the tile's rows, and for a 1-token tile also
    /// block(b, 1, &second) for rows 8...15 right after it, so decode reads each line of a block group once; then
    /// token u's 8 sums go to y + u * yStride (a 1-token tile's second 8 to y + 8).
    @inline(__always)
    static func blocks(_ nb: Int, tokens nt: Int, half: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int,
                       _ block: (_ b: Int, _ half: Int, _ sums: inout AccAVX2) -> Void) {
        var acc = AccAVX2(), second = AccAVX2()
        var b = 0
        while b < nb {
            block(b, half, &acc)
            if nt == 1 { block(b, 1, &second) }
            b &+= 1
        }
        acc.store(nt, y, yStride)
        if nt == 1 { second.store(1, y + 8, yStride) }
    }
}

/// A tile's float accumulators, one per token of up to 8.
struct AccAVX2 {
    var a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps()
    var a4 = _mm256_setzero_ps(), a5 = _mm256_setzero_ps(), a6 = _mm256_setzero_ps(), a7 = _mm256_setzero_ps()

    /// Token u's 8 outputs to y + u * yStride, for the first `tokens` (1, 4 or 8).
    @inline(__always) func store(_ tokens: Int, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        _mm256_storeu_ps(y, a0)
        if tokens > 1 {
            _mm256_storeu_ps(y + yStride, a1)
            _mm256_storeu_ps(y + 2 &* yStride, a2)
            _mm256_storeu_ps(y + 3 &* yStride, a3)
        }
        if tokens > 4 {
            _mm256_storeu_ps(y + 4 &* yStride, a4)
            _mm256_storeu_ps(y + 5 &* yStride, a5)
            _mm256_storeu_ps(y + 6 &* yStride, a6)
            _mm256_storeu_ps(y + 7 &* yStride, a7)
        }
    }
}
