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

    /// Q4_K against q8_K: per block Σ_j sc_j·(Σ q·a)_j and Σ_j m_j·(Σa)_j exact in Int32, then
    /// acc += -Float(mins)·(dmin·d_a) and acc += Float(dot)·(d·d_a), two fused multiply-adds in that order.
    public static func q4_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        q4or5K(five: false, w, rowBytes, rows, x, tokens, y, yStride)
    }

    /// Q5_K: Q4_K's arithmetic with each value's fifth bit (+16) from the qh chunks.
    public static func q5_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        q4or5K(five: true, w, rowBytes, rows, x, tokens, y, yStride)
    }

    static func q4or5K(five: Bool, _ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                       _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nb = x.cols / 256
        let groupBytes: Int = five ? 2816 : 2304  // 16 blocks of 176 or 144 bytes
        let qsAt: Int = five ? 768 : 256           // Q5_K's fifth bits come first
        for t in tokens {
            let a = x.values(t), da = x.scales(t), sa = x.partialSums(t)
            for r in rows {
                let lane = r & 15, group = r >> 4
                let base = w + group &* 16 &* rowBytes
                var acc: Float = 0
                for b in 0..<nb {
                    let grp = base + b &* groupBytes
                    // the row's 12 packed scale bytes, gathered from the 3 chunks: 4 consecutive bytes in each
                    var sc: (UInt32, UInt32, UInt32) = (0, 0, 0)
                    sc.0 = grp.loadUnaligned(fromByteOffset: 64 &+ 4 &* lane, as: UInt32.self)
                    sc.1 = grp.loadUnaligned(fromByteOffset: 128 &+ 4 &* lane, as: UInt32.self)
                    sc.2 = grp.loadUnaligned(fromByteOffset: 192 &+ 4 &* lane, as: UInt32.self)
                    var dot: Int32 = 0, mins: Int32 = 0
                    for j in 0..<8 {
                        let (s, m) = withUnsafeBytes(of: sc) { raw -> (Int32, Int32) in
                            guard let p = raw.baseAddress else { return (0, 0) }
                            return kScaleMin(j, p.assumingMemoryBound(to: UInt8.self))
                        }
                        var sub: Int32 = 0
                        for i in 0..<32 {
                            let chunk: Int = 64 &* (i >> 2) &+ 4 &* lane &+ (i & 3)
                            let byte = grp.load(fromByteOffset: qsAt &+ 512 &* (j >> 1) &+ chunk, as: UInt8.self)
                            var q = Int32(j & 1 == 0 ? byte & 15 : byte >> 4)
                            if five {
                                let h = grp.load(fromByteOffset: 256 &+ chunk, as: UInt8.self)
                                q |= Int32((h >> UInt8(j)) & 1) << 4
                            }
                            sub &+= q &* Int32(a[b &* 256 &+ j &* 32 &+ i])
                        }
                        dot &+= s &* sub
                        mins &+= m &* (Int32(sa[b &* 16 &+ 2 &* j]) &+ Int32(sa[b &* 16 &+ 2 &* j &+ 1]))
                    }
                    let dw = kernelHalf(grp + (2 &* lane)), dmin = kernelHalf(grp + (32 &+ 2 &* lane))
                    acc = acc.addingProduct(-Float(mins), dmin * da[b])
                    acc = acc.addingProduct(Float(dot), dw * da[b])
                }
                y[t &* yStride &+ r] = acc
            }
        }
    }

    /// Q6_K against q8_K: per block Σ_s sc_s·(Σ q·a)_s - 32·Σ_s sc_s·(Σa)_s exact in Int32 (q unsigned, 0...63),
    /// then acc += Float(dot)·(d·d_a), one fused multiply-add.
    public static func q6_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        let nb = x.cols / 256
        for t in tokens {
            let a = x.values(t), da = x.scales(t), sa = x.partialSums(t)
            for r in rows {
                let lane = r & 15, group = r >> 4
                let base = w + group &* 16 &* rowBytes
                var acc: Float = 0
                for b in 0..<nb {
                    let grp = base + b &* 16 &* 210
                    var dot: Int32 = 0, off: Int32 = 0
                    for sb in 0..<16 {
                        let sc = Int32(grp.load(fromByteOffset: 32 &+ 64 &* (sb >> 2) &+ 4 &* lane &+ (sb & 3), as: Int8.self))
                        var sub: Int32 = 0
                        for e in 0..<16 {
                            let v = sb &* 16 &+ e
                            let h = v >> 7, q = (v >> 5) & 3, g = (v >> 2) & 7, i = v & 3
                            let half = grp + (288 &+ 1536 &* h &+ 64 &* g &+ 4 &* lane &+ i)
                            let ab = half.load(fromByteOffset: q & 1 == 0 ? 0 : 512, as: UInt8.self)
                            let hb = half.load(fromByteOffset: 1024, as: UInt8.self)
                            let lo = q < 2 ? ab & 15 : ab >> 4
                            let value = Int32(lo | ((hb >> UInt8(2 &* q)) & 3) << 4)
                            sub &+= value &* Int32(a[b &* 256 &+ v])
                        }
                        dot &+= sc &* sub
                        off &+= sc &* Int32(sa[b &* 16 &+ sb])
                    }
                    let dw = kernelHalf(grp + (2 &* lane))
                    acc = acc.addingProduct(Float(dot &- 32 &* off), dw * da[b])
                }
                y[t &* yStride &+ r] = acc
            }
        }
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
