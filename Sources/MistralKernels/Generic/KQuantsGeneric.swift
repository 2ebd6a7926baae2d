// Plain-Swift reference kernels for the K-quants (256-value blocks) against q8_K activations: the test oracle of
// the AVX2/AVX-512 kernels and the path of CPUs without them. Integer sums are exact, so a fast kernel that
// sums in another order differs from these only by float rounding of the per-block products.

/// Σ_r over `rows`, Σ_t over `tokens`: y[t * yStride + r] = dot(row r, token t), one block at a time.
@inline(__always)
func forEachRowToken(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                     _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int,
                     _ blockBytes: Int, _ block: (UnsafeRawPointer, UnsafePointer<Int8>, UnsafePointer<Int16>) -> (Float, Float, Int32, Int32)) {
    let nb = x.cols / 256
    for t in tokens {
        let a = x.values(t), da = x.scales(t), bs = x.partialSums(t)
        for r in rows {
            let row = w + r * rowBytes
            var acc: Float = 0
            for b in 0..<nb {
                // (d, dmin, Σ scale·Σqa, Σ min·Σa)
                let (d, dmin, sumq, summ) = block(row + b * blockBytes, a + b * 256, bs + b * 16)
                acc += da[b] * (d * Float(sumq) - dmin * Float(summ))
            }
            y[t * yStride + r] = acc
        }
    }
}

/// The 6-bit scale and min of sub-block j (of 8) from 12 packed bytes (ggml's get_scale_min_k4).
@inline(__always)
public func kScaleMin(_ j: Int, _ q: UnsafePointer<UInt8>) -> (Int32, Int32) {
    if j < 4 { return (Int32(q[j] & 63), Int32(q[j + 4] & 63)) }
    return (Int32((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4)), Int32((q[j + 4] >> 4) | ((q[j] >> 6) << 4)))
}

public enum KQuantsGeneric {
    /// Q4_K: d, dmin (f16), scales[12], qs[128]; value = d·sc·q - dmin·m, q in 0...15, 8 sub-blocks of 32.
    public static func q4_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachRowToken(w, rowBytes, rows, x, tokens, y, yStride, 144) { blk, a, bs in
            q45K(blk, a, bs, qh: nil, qs: (blk + 16).assumingMemoryBound(to: UInt8.self))
        }
    }

    /// Q5_K: as Q4_K with qh[32] (bit j of qh[l] is the fifth bit of sub-block j's value l) before qs.
    public static func q5_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachRowToken(w, rowBytes, rows, x, tokens, y, yStride, 176) { blk, a, bs in
            q45K(blk, a, bs, qh: (blk + 16).assumingMemoryBound(to: UInt8.self),
                 qs: (blk + 48).assumingMemoryBound(to: UInt8.self))
        }
    }

    @inline(__always)
    static func q45K(_ blk: UnsafeRawPointer, _ a: UnsafePointer<Int8>, _ bs: UnsafePointer<Int16>,
                     qh: UnsafePointer<UInt8>?, qs: UnsafePointer<UInt8>) -> (Float, Float, Int32, Int32) {
        let scales = (blk + 4).assumingMemoryBound(to: UInt8.self)
        var sumq: Int32 = 0, summ: Int32 = 0
        for j in 0..<8 {
            let (sc, m) = kScaleMin(j, scales)
            var dot: Int32 = 0
            for l in 0..<32 {
                let byte = qs[(j / 2) * 32 + l]
                var q = Int32(j & 1 == 0 ? byte & 0xF : byte >> 4)
                if let qh { q |= Int32((qh[l] >> UInt8(j)) & 1) << 4 }
                dot += q * Int32(a[j * 32 + l])
            }
            sumq += sc * dot
            summ += m * (Int32(bs[2 * j]) + Int32(bs[2 * j + 1]))
        }
        return (kernelHalf(blk), kernelHalf(blk + 2), sumq, summ)
    }

    /// Q6_K: ql[128], qh[64], scales[16] (int8), d (f16); value = d·sc·(q - 32), q in 0...63, 16 sub-blocks of 16.
    /// Value e of half n (0, 1) and quarter g (0...3) of that half, l = e % 32:
    /// low 4 bits from ql[64n + 32(g & 1) + l] (>> 4 when g >= 2), high 2 from qh[32n + l] >> 2g.
    public static func q6_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachRowToken(w, rowBytes, rows, x, tokens, y, yStride, 210) { blk, a, bs in
            let ql = blk.assumingMemoryBound(to: UInt8.self)
            let qh = (blk + 128).assumingMemoryBound(to: UInt8.self)
            let sc = (blk + 192).assumingMemoryBound(to: Int8.self)
            var sumq: Int32 = 0
            for e in 0..<256 {
                let n = e / 128, g = (e % 128) / 32, l = e % 32
                let lo = ql[64 * n + 32 * (g & 1) + l]
                let q = Int32(g >= 2 ? lo >> 4 : lo & 0xF) | Int32((qh[32 * n + l] >> UInt8(2 * g)) & 3) << 4
                sumq += Int32(sc[e / 16]) * q * Int32(a[e])
            }
            var offset: Int32 = 0
            for k in 0..<16 { offset += Int32(sc[k]) * Int32(bs[k]) }
            // d·Σ sc·(q-32)·a = d·(sumq - 32·Σ sc·bsum); expressed as (d, dmin = d, sumq, 32·offset)
            let d = kernelHalf(blk + 208)
            return (d, d, sumq, 32 * offset)
        }
    }
}
