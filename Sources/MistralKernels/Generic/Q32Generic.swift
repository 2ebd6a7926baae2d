// Plain-Swift reference kernels for the 32-value-block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) against q8_0
// activations: the oracle of the AVX2/AVX-512 kernels and the path of CPUs without them. Each block's
// Σ q·a is an exact integer; the offset (Q4_0: -8, Q5_0: -16) or min (Q4_1, Q5_1) enters through the
// activation block's Σa, so a fast kernel differs from these only by float rounding of per-block products.

public enum Q32Generic {
    /// Q4_0: d (f16), qs[16]; value (q - 8)·d, low nibbles = values 0...15, high nibbles = 16...31.
    public static func q4_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachBlock(w, rowBytes, rows, x, tokens, y, yStride, 18) { blk, a in
            let d = kernelHalf(blk)
            return (d, -8 * d, nibbleDot(blk + 2, nil, a))
        }
    }

    /// Q4_1: d, m (f16), qs[16]; value q·d + m.
    public static func q4_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachBlock(w, rowBytes, rows, x, tokens, y, yStride, 20) { blk, a in
            (kernelHalf(blk), kernelHalf(blk + 2), nibbleDot(blk + 4, nil, a))
        }
    }

    /// Q5_0: d (f16), qh (u32, bit j = value j's fifth bit), qs[16]; value (q - 16)·d.
    public static func q5_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachBlock(w, rowBytes, rows, x, tokens, y, yStride, 22) { blk, a in
            let d = kernelHalf(blk)
            return (d, -16 * d, nibbleDot(blk + 6, blk.loadUnaligned(fromByteOffset: 2, as: UInt32.self), a))
        }
    }

    /// Q5_1: d, m (f16), qh (u32), qs[16]; value q·d + m.
    public static func q5_1(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachBlock(w, rowBytes, rows, x, tokens, y, yStride, 24) { blk, a in
            (kernelHalf(blk), kernelHalf(blk + 2),
             nibbleDot(blk + 8, blk.loadUnaligned(fromByteOffset: 4, as: UInt32.self), a))
        }
    }

    /// Q8_0: d (f16), qs[32] (int8); value q·d.
    public static func q8_0(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachBlock(w, rowBytes, rows, x, tokens, y, yStride, 34) { blk, a in
            let q = (blk + 2).assumingMemoryBound(to: Int8.self)
            var dot: Int32 = 0
            for j in 0..<32 { dot &+= Int32(q[j]) &* Int32(a[j]) }
            return (kernelHalf(blk), 0, dot)
        }
    }

    /// Σ over 32 values of q·a, q = nibble (+ 16 where qh's bit is set): low nibbles are values 0...15.
    @inline(__always)
    static func nibbleDot(_ qs: UnsafeRawPointer, _ qh: UInt32?, _ a: UnsafePointer<Int8>) -> Int32 {
        let q = qs.assumingMemoryBound(to: UInt8.self)
        let h = qh ?? 0
        var dot: Int32 = 0
        for j in 0..<16 {
            let lo = Int32(q[j] & 0xF) | Int32((h >> UInt32(truncatingIfNeeded: j)) & 1) << 4
            let hi = Int32(q[j] >> 4) | Int32((h >> UInt32(truncatingIfNeeded: j &+ 16)) & 1) << 4
            dot &+= lo &* Int32(a[j]) &+ hi &* Int32(a[j &+ 16])
        }
        return dot
    }

    /// y[t * yStride + r] = Σ_b da_b · (dw·Σ q·a + c·Σa) with (dw, c, Σ q·a) = block(weights, acts).
    @inline(__always)
    static func forEachBlock(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                             _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int,
                             _ blockBytes: Int,
                             _ block: (UnsafeRawPointer, UnsafePointer<Int8>) -> (Float, Float, Int32)) {
        let nb = x.cols / 32
        for t in tokens {
            let a = x.values(t), da = x.scales(t), sa = x.partialSums(t)
            for r in rows {
                let row = w + r &* rowBytes
                var acc: Float = 0
                for b in 0..<nb {
                    let (dw, c, dot) = block(row + b &* blockBytes, a + b &* 32)
                    acc += da[b] * (dw * Float(dot) + c * Float(sa[b]))
                }
                y[t &* yStride &+ r] = acc
            }
        }
    }
}
