// Plain-Swift reference kernels for the small K-quants (Q2_K, Q3_K; 256-value blocks) against q8_K
// activations, in ggml's element order (dequantize_row_q2_K / _q3_K): value e of a block sits in half
// n = e / 128, quarter j = (e % 128) / 32, at l = e % 32, as bits 2j...2j+1 of qs[32n + l]; its scale is the
// one of its 16-value group e / 16. Integer sums are exact, as in KQuantsGeneric.

public enum KQuantsLowGeneric {
    /// Q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin (f16); value d·sc·q - dmin·m.
    public static func q2_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachRowToken(w, rowBytes, rows, x, tokens, y, yStride, 84) { blk, a, bs in
            let sc = blk.assumingMemoryBound(to: UInt8.self)
            let qs = (blk + 16).assumingMemoryBound(to: UInt8.self)
            var sumq: Int32 = 0, summ: Int32 = 0
            for k in 0..<16 {
                let base = 32 &* (k / 8) &+ 16 &* (k & 1), shift = UInt8(truncatingIfNeeded: 2 &* ((k % 8) / 2))
                var dot: Int32 = 0
                for l in 0..<16 { dot &+= Int32((qs[base &+ l] >> shift) & 3) &* Int32(a[16 &* k &+ l]) }
                sumq &+= Int32(sc[k] & 0xF) &* dot
                summ &+= Int32(sc[k] >> 4) &* Int32(bs[k])
            }
            return (kernelHalf(blk + 80), kernelHalf(blk + 82), sumq, summ)
        }
    }

    /// Q3_K: hmask[32], qs[64], scales[12] (16 6-bit scales, stored + 32), d (f16); value d·s·(u - 4) with
    /// u = the 2 bits of qs | hmask[l]'s bit 4n + j << 2.
    public static func q3_K(_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ x: ActivationView,
                            _ tokens: Range<Int>, _ y: UnsafeMutablePointer<Float>, _ yStride: Int) {
        forEachRowToken(w, rowBytes, rows, x, tokens, y, yStride, 110) { blk, a, bs in
            let hm = blk.assumingMemoryBound(to: UInt8.self)
            let qs = (blk + 32).assumingMemoryBound(to: UInt8.self)
            let s = q3KScales(blk + 96)
            var sumq: Int32 = 0, offset: Int32 = 0
            for k in 0..<16 {
                let n = k / 8, j = (k % 8) / 2, half = 16 &* (k & 1)
                let shift = UInt8(truncatingIfNeeded: 2 &* j), hbit = UInt8(truncatingIfNeeded: 4 &* n &+ j)
                var dot: Int32 = 0
                for l in 0..<16 {
                    let u = Int32((qs[32 &* n &+ half &+ l] >> shift) & 3) | Int32((hm[half &+ l] >> hbit) & 1) << 2
                    dot &+= u &* Int32(a[16 &* k &+ l])
                }
                let sk = Int32(s[k]) &- 32
                sumq &+= sk &* dot
                offset &+= sk &* Int32(bs[k])
            }
            // d·Σ s·(u - 4)·a = d·(sumq - 4·Σ s·bsum), as (d, dmin = d, sumq, 4·offset)
            let d = kernelHalf(blk + 108)
            return (d, d, sumq, 4 &* offset)
        }
    }
}

/// The 16 Q3_K scales (0...63, stored + 32) from their 12 packed bytes, in ggml's kmask1/kmask2 unpack:
/// low nibbles from bytes 0...7, high nibbles of those for scales 8...15, the 2-bit tops from bytes 8...11.
@inline(__always)
public func q3KScales(_ p: UnsafeRawPointer) -> SIMD16<UInt8> {
    let a0 = p.loadUnaligned(as: UInt32.self), a1 = p.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
    let tmp = p.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
    let m2: UInt32 = 0x0f0f_0f0f, m1: UInt32 = 0x0303_0303
    let w = SIMD4<UInt32>((a0 & m2) | (((tmp >> 0) & m1) << 4), (a1 & m2) | (((tmp >> 2) & m1) << 4),
                          ((a0 >> 4) & m2) | (((tmp >> 4) & m1) << 4), ((a1 >> 4) & m2) | (((tmp >> 6) & m1) << 4))
    return unsafeBitCast(w, to: SIMD16<UInt8>.self)
}
