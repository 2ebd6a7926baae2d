// The loop every AVX2 row-interleaved kernel shares: groups of 16 rows (Interleave.swift), each against the
// tokens in register tiles of 4, then 1, and each tile as two halves of 8 rows — the lanes a ymm holds of a
// 64-byte chunk (rows 0...7 in its first 32 bytes, 8...15 in its second). A weight type supplies only its tile.

/// One weight type's AVX2 register tile: rows 8·half ... 8·half + 7 of the group of 16 rows at `grp` against
/// T.width tokens from t; token t + u's 8 outputs go to y + u * yStride.
protocol InterleavedTileAVX2 {
    static func tile<T: TokenTile>(_: T.Type, _ grp: UnsafeRawPointer, _ half: Int, _ x: ActivationView, _ t: Int,
                                   _ y: UnsafeMutablePointer<Float>, _ yStride: Int)
}

enum InterleavedTilesAVX2 {
    /// Every group of 16 rows in `rows` (16-aligned) against the tokens in tiles of 4, then 1.
    @inline(__always)
    static func groups<K: InterleavedTileAVX2>(_: K.Type, _ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>,
                                               _ x: ActivationView, _ tokens: Range<Int>,
                                               _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        var g = rows.lowerBound
        while g < rows.upperBound {
            let grp = w + g &* rowBytes  // group g / 16 starts at (g / 16) * 16 * rowBytes
            var t = tokens.lowerBound
            while t &+ 4 <= tokens.upperBound {
                K.tile(FourTokens.self, grp, 0, x, t, y + t &* yStride + g, yStride)
                K.tile(FourTokens.self, grp, 1, x, t, y + t &* yStride + (g &+ 8), yStride)
                t &+= 4
            }
            while t < tokens.upperBound {
                K.tile(OneToken.self, grp, 0, x, t, y + t &* yStride + g, yStride)
                K.tile(OneToken.self, grp, 1, x, t, y + t &* yStride + (g &+ 8), yStride)
                t &+= 1
            }
            g &+= 16
        }
    }
}
