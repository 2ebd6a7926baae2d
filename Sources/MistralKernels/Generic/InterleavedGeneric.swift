// Plain-Swift kernels on the row-interleaved layout (Interleave.swift): the oracle of the AVX-512 interleaved
// kernels, with the same arithmetic in the same order — Σ q·a exact in Int32, the offset folded in as
// -offset·Σa, then acc += Float(dot) · (d_w·d_a) as one fused multiply-add per block (and + m·(d_a·Σa) for the
// types with a min) — so the fast kernels must equal these bit for bit. Also the path a matrix repacked under
// AVX-512 takes when a test switches the dispatcher to a path without interleaved kernels.

public enum InterleavedGeneric {
    public static func q4_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        q32(.q4_0, w, rowBytes, rows, x, tokens, y, yStride)
    }
    public static func q4_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        q32(.q4_1, w, rowBytes, rows, x, tokens, y, yStride)
    }
    public static func q5_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        q32(.q5_0, w, rowBytes, rows, x, tokens, y, yStride)
    }
    public static func q5_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        q32(.q5_1, w, rowBytes, rows, x, tokens, y, yStride)
    }
    public static func q8_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        q32(.q8_0, w, rowBytes, rows, x, tokens, y, yStride)
    }

    /// The unsigned stored value v (0...31) of row lane `lane` in one interleaved block group: nibble (+ 16 for
    /// a set fifth bit), or Q8_0's w + 128.
    @inline(__always)
    static func value(_ type: QuantType, _ grp: UnsafeRawPointer, _ lane: Int, _ v: Int) -> Int32 {
        let f = Interleave.q32Fields(type)
        let k = v >> 2, i = v & 3
        if type == .q8_0 { return Int32(grp.load(fromByteOffset: f.q &+ 64 &* k &+ 4 &* lane &+ i, as: UInt8.self)) }
        let byte = grp.load(fromByteOffset: f.q &+ 64 &* (k & 3) &+ 4 &* lane &+ i, as: UInt8.self)
        var q = Int32(k < 4 ? byte & 15 : byte >> 4)
        if type == .q5_0 || type == .q5_1 {
            let h = grp.loadUnaligned(fromByteOffset: f.h &+ 8 &* k, as: UInt64.self)
            q |= Int32((h >> UInt64(4 &* lane &+ i)) & 1) << 4
        }
        return q
    }

    static func q32(_ type: QuantType, _ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                    _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let bytes = type.blockBytes, nb = x.cols / 32, f = Interleave.q32Fields(type)
        let min = type == .q4_1 || type == .q5_1
        let offset: Int32 = switch type {
        case .q4_0: 8
        case .q5_0: 16
        case .q8_0: 128
        default: 0
        }
        for t in tokens {
            let a = x.values(t), da = x.scales(t), sa = x.partialSums(t)
            for r in rows {
                let lane = r & 15, base = w + (r >> 4) &* 16 &* rowBytes
                var acc: Float = 0
                for b in 0..<nb {
                    let grp = base + b &* 16 &* bytes
                    var dot: Int32 = 0
                    for v in 0..<32 { dot &+= value(type, grp, lane, v) &* Int32(a[b &* 32 &+ v]) }
                    dot &-= offset &* Int32(sa[b])
                    let dw = kernelHalf(grp + (2 &* lane))
                    acc = acc.addingProduct(Float(dot), dw * da[b])
                    if min { acc = acc.addingProduct(kernelHalf(grp + (f.m &+ 2 &* lane)), da[b] * Float(sa[b])) }
                }
                y[t &* yStride &+ r] = acc
            }
        }
    }
}
