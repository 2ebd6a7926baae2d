// A 2-D weight tensor in place in the mapped file: `rows` output features, each a row of `cols` input features
// stored in the blocks of `type`.

public struct WeightMatrix: @unchecked Sendable {  // points into an immutable mapping owned by the model
    public let data: UnsafeRawPointer
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let rowBytes: Int

    public init(data: UnsafeRawPointer, type: GGMLType, rows: Int, cols: Int) throws {
        guard type.isComputable else {
            throw MistralError.unsupported("tensor type \(type.name) is not supported by the matrix kernels")
        }
        guard let rb = type.rowBytes(cols) else {
            throw MistralError.format("row of \(cols) is not a whole number of \(type.name) blocks")
        }
        self.data = data
        self.type = type
        self.rows = rows
        self.cols = cols
        self.rowBytes = rb
    }

    @inline(__always) func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }

    /// Writes row `r` as floats (used for embedding lookups).
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        let src = row(r)
        switch type {
        case .f32:
            out.update(from: src.assumingMemoryBound(to: Float.self), count: cols)
        case .f16:
            let h = src.assumingMemoryBound(to: UInt16.self)
            for i in 0..<cols { out[i] = halfToFloat(h[i]) }
        case .bf16:
            let h = src.assumingMemoryBound(to: UInt16.self)
            for i in 0..<cols { out[i] = bf16ToFloat(h[i]) }
        case .q8_0:
            for b in 0..<cols / 32 {
                let blk = src + b * 34
                let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
                let qs = (blk + 2).assumingMemoryBound(to: Int8.self)
                for j in 0..<32 { out[b * 32 + j] = d * Float(qs[j]) }
            }
        case .q4_0:
            for b in 0..<cols / 32 {
                let blk = src + b * 18
                let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
                let qs = (blk + 2).assumingMemoryBound(to: UInt8.self)
                for j in 0..<16 {
                    out[b * 32 + j] = d * Float(Int32(qs[j] & 15) - 8)
                    out[b * 32 + j + 16] = d * Float(Int32(qs[j] >> 4) - 8)
                }
            }
        case .q4_1:
            for b in 0..<cols / 32 {
                let blk = src + b * 20
                let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
                let m = halfToFloat(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
                let qs = (blk + 4).assumingMemoryBound(to: UInt8.self)
                for j in 0..<16 {
                    out[b * 32 + j] = d * Float(qs[j] & 15) + m
                    out[b * 32 + j + 16] = d * Float(qs[j] >> 4) + m
                }
            }
        default:
            out.update(repeating: 0, count: cols)
        }
    }
}
