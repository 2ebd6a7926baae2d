// Row quantization to ggml Q8_0 / Q4_0 (ggml's reference rounding), used to shrink float checkpoints at load time.

public enum Quantize {
    /// Writes `n` floats (n % 32 == 0) as Q8_0 blocks to `dst`.
    public static func rowQ8_0(_ x: UnsafePointer<Float>, _ n: Int, _ dst: UnsafeMutableRawPointer) {
        for b in 0..<n / 32 {
            let src = x + b * 32
            var amax: Float = 0
            for j in 0..<32 { amax = max(amax, abs(src[j])) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            let blk = dst + b * 34
            blk.storeBytes(of: floatToHalf(d), as: UInt16.self)
            let qs = (blk + 2).assumingMemoryBound(to: Int8.self)
            for j in 0..<32 { qs[j] = Int8(clampedInt(src[j] * id, 127)) }
        }
    }

    /// Writes `n` floats (n % 32 == 0) as Q4_0 blocks to `dst`.
    public static func rowQ4_0(_ x: UnsafePointer<Float>, _ n: Int, _ dst: UnsafeMutableRawPointer) {
        for b in 0..<n / 32 {
            let src = x + b * 32
            var amax: Float = 0, maxValue: Float = 0
            for j in 0..<32 where abs(src[j]) > amax {
                amax = abs(src[j])
                maxValue = src[j]
            }
            let d = maxValue / -8
            let id: Float = d != 0 ? 1 / d : 0
            let blk = dst + b * 18
            blk.storeBytes(of: floatToHalf(d), as: UInt16.self)
            let qs = (blk + 2).assumingMemoryBound(to: UInt8.self)
            for j in 0..<16 {
                let lo = UInt8(clampedInt(src[j] * id + 8.5, 15, truncate: true, low: 0))
                let hi = UInt8(clampedInt(src[j + 16] * id + 8.5, 15, truncate: true, low: 0))
                qs[j] = lo | hi << 4
            }
        }
    }
}

/// round(v) (or trunc(v)) clamped to low...high; NaN gives 0. Float-to-int conversion traps on NaN or overflow,
/// and a corrupt model can feed such values here, so every quantizer converts through this.
@inline(__always)
func clampedInt(_ v: Float, _ high: Int32, truncate: Bool = false, low: Int32? = nil) -> Int32 {
    let lo = Float(low ?? -high), hi = Float(high)
    let r = truncate ? v.rounded(.towardZero) : v.rounded()
    if r >= hi { return high }
    if r <= lo { return Int32(lo) }
    return r == r ? Int32(r) : 0
}
