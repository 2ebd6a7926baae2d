// One Q2_K or Q3_K block (256 values) to floats, in ggml's element order and float arithmetic
// (dequantize_row_q2_K / _q3_K): used for embedding lookups and as the tests' reading of the layouts.

public enum KBlockDecode {
    /// Q2_K: scales[16], qs[64], d, dmin; y = (d·sc)·q - dmin·m.
    public static func q2_K(_ blk: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let sc = blk.assumingMemoryBound(to: UInt8.self)
        let qs = (blk + 16).assumingMemoryBound(to: UInt8.self)
        let d = kernelHalf(blk + 80), dmin = kernelHalf(blk + 82)
        for e in 0..<256 {
            let n = e / 128, j = (e % 128) / 32, l = e % 32, k = e / 16
            let q = (qs[32 &* n &+ l] >> UInt8(truncatingIfNeeded: 2 &* j)) & 3
            y[e] = d * Float(sc[k] & 0xF) * Float(q) - dmin * Float(sc[k] >> 4)
        }
    }

    /// Q3_K: hmask[32], qs[64], scales[12], d; y = (d·(s - 32))·(q - (hmask bit ? 0 : 4)).
    public static func q3_K(_ blk: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let hm = blk.assumingMemoryBound(to: UInt8.self)
        let qs = (blk + 32).assumingMemoryBound(to: UInt8.self)
        let s = q3KScales(blk + 96)
        let d = kernelHalf(blk + 108)
        for e in 0..<256 {
            let n = e / 128, j = (e % 128) / 32, l = e % 32
            let q = Int32((qs[32 &* n &+ l] >> UInt8(truncatingIfNeeded: 2 &* j)) & 3)
            let high = (hm[l] >> UInt8(truncatingIfNeeded: 4 &* n &+ j)) & 1 != 0
            y[e] = d * Float(Int32(s[e / 16]) &- 32) * Float(high ? q : q &- 4)
        }
    }
}
