// Whole-position operations on a KV cache: copying positions between caches (converting between storage types),
// and moving positions down with their keys re-rotated (context shift). Rows are all KV heads of one position of
// one layer; positions 0..<n of a layer are contiguous (KVCache's layout).
import Glibc

extension KVCache {
    /// One position's keys (or values) of one layer as kvDim floats.
    func loadRow(_ base: UnsafeMutableRawPointer, layer: Int, pos: Int, into dst: UnsafeMutablePointer<Float>) {
        load(base, layer: layer, pos: pos, count: 1, head: 0, headDim: kvDim, into: dst)
    }

    /// Copies positions 0..<n of every layer from `src` (same model: same layer count and kvDim), converting when
    /// the storage types differ (through f32, so f16 -> f16 is exact and q8_0 -> f16 loses nothing q8_0 kept).
    func copyPrefix(from src: KVCache, layers: Int, count n: Int) throws {
        guard n > 0 else { return }
        if src.type == type {
            for l in 0..<layers {
                memcpy(k + offset(layer: l, pos: 0), src.k + src.offset(layer: l, pos: 0), n * rowBytes)
                memcpy(v + offset(layer: l, pos: 0), src.v + src.offset(layer: l, pos: 0), n * rowBytes)
            }
            return
        }
        let row = try allocateZeroed(Float.self, count: kvDim, what: "KV conversion row")
        defer { free(row) }
        for l in 0..<layers {
            for p in 0..<n {
                src.loadRow(src.k, layer: l, pos: p, into: row)
                store(row, into: k, layer: l, pos: p, n: 1)
                src.loadRow(src.v, layer: l, pos: p, into: row)
                store(row, into: v, layer: l, pos: p, n: 1)
            }
        }
    }

    /// Moves positions from..<to of every layer down by `delta` (to from-delta..<to-delta). Values are moved as
    /// they are; each key is dequantized, rotated by `rotate(row, p)` (p its old position) and stored again.
    func shiftDown(layers: Int, from: Int, to: Int, delta: Int,
                   rotate: (UnsafeMutablePointer<Float>, Int) -> Void) throws {
        guard delta > 0, from >= delta, to > from else { return }
        let row = try allocateZeroed(Float.self, count: kvDim, what: "KV shift row")
        defer { free(row) }
        for l in 0..<layers {
            memmove(v + offset(layer: l, pos: from - delta), v + offset(layer: l, pos: from), (to - from) * rowBytes)
            // ascending: row p - delta was already read (as a source) before it is written
            for p in from..<to {
                loadRow(k, layer: l, pos: p, into: row)
                rotate(row, p)
                store(row, into: k, layer: l, pos: p - delta, n: 1)
            }
        }
    }
}
