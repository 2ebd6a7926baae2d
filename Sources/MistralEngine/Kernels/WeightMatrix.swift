// A 2-D weight tensor: `rows` output features, each a row of `cols` input features stored in the blocks of
// `type` — in place in the mapped file, or repacked at load into the row-interleaved layout of the AVX-512 GEMM
// kernels (Interleave.swift), which holds the same bytes in another order.
import MistralKernels

public struct WeightMatrix: @unchecked Sendable {  // points into an immutable mapping owned by the model
    public let data: UnsafeRawPointer
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let rowBytes: Int
    /// Rows in groups of 16 with their blocks side by side (Interleave.swift) rather than one after another.
    public let interleaved: Bool

    public init(data: UnsafeRawPointer, type: GGMLType, rows: Int, cols: Int, interleaved: Bool = false) throws {
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
        self.interleaved = interleaved
    }

    /// Whether this matrix has a row-interleaved form whose kernels the current path runs faster.
    public var shouldInterleave: Bool {
        guard !interleaved, let q = QuantType(rawValue: type.rawValue) else { return false }
        return rows % Interleave.rows == 0 && KernelDispatch.prefersInterleaved(q)
    }

    /// The same matrix repacked into `dst` (rows * rowBytes bytes) in the row-interleaved layout.
    public func interleavedCopy(into dst: UnsafeMutableRawPointer) throws -> WeightMatrix {
        guard let q = QuantType(rawValue: type.rawValue), !interleaved,
              Interleave.repack(q, data, rowBytes: rowBytes, rows: rows, into: dst) else {
            throw MistralError.unsupported("\(type.name) matrix of \(rows) rows has no interleaved layout")
        }
        return try WeightMatrix(data: UnsafeRawPointer(dst), type: type, rows: rows, cols: cols, interleaved: true)
    }

    @inline(__always) func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }

    /// Writes row `r` as floats (used for embedding lookups).
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        if interleaved, let q = QuantType(rawValue: type.rawValue) {
            // block by block back into the file's layout (at most 256 bytes a block)
            let n = q.blockSize
            withUnsafeTemporaryAllocation(byteCount: 256, alignment: 16) { tmp in
                guard let blk = tmp.baseAddress else { return }
                for b in 0..<cols / n {
                    Interleave.fileBlock(q, data, rowBytes: rowBytes, row: r, block: b, into: blk)
                    (try? WeightMatrix(data: UnsafeRawPointer(blk), type: type, rows: 1, cols: n))?
                        .dequantizeRow(0, into: out + b * n)
                }
            }
            return
        }
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
        case .q5_0, .q5_1:
            let one = type == .q5_1, bytes = type.blockBytes
            for b in 0..<cols / 32 {
                let blk = src + b * bytes
                let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
                let m = one ? halfToFloat(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) : 0
                let qh = blk.loadUnaligned(fromByteOffset: one ? 4 : 2, as: UInt32.self)
                let qs = (blk + (one ? 8 : 6)).assumingMemoryBound(to: UInt8.self)
                let offset: Int32 = one ? 0 : 16
                for j in 0..<16 {
                    let h0 = Int32(((qh >> UInt32(j)) << 4) & 0x10), h1 = Int32((qh >> UInt32(j + 12)) & 0x10)
                    out[b * 32 + j] = d * Float((Int32(qs[j] & 0xF) | h0) - offset) + m
                    out[b * 32 + j + 16] = d * Float((Int32(qs[j] >> 4) | h1) - offset) + m
                }
            }
        case .q4_K, .q5_K:
            for b in 0..<cols / 256 { WeightMatrix.decodeQ45K(src + b * type.blockBytes, out + b * 256, five: type == .q5_K) }
        case .q6_K:
            for b in 0..<cols / 256 { WeightMatrix.decodeQ6K(src + b * 210, out + b * 256) }
        case .q2_K:
            for b in 0..<cols / 256 { KBlockDecode.q2_K(src + b * 84, out + b * 256) }
        case .q3_K:
            for b in 0..<cols / 256 { KBlockDecode.q3_K(src + b * 110, out + b * 256) }
        default:
            out.update(repeating: 0, count: cols)
        }
    }

    /// The 6-bit scale and min of sub-block j (of 8) from a K-quant's 12 packed scale bytes (ggml's get_scale_min_k4).
    @inline(__always)
    static func scaleMin(_ j: Int, _ q: UnsafePointer<UInt8>) -> (Float, Float) {
        if j < 4 { return (Float(q[j] & 63), Float(q[j + 4] & 63)) }
        return (Float((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4)), Float((q[j + 4] >> 4) | ((q[j] >> 6) << 4)))
    }

    /// One 256-weight Q4_K block (d, dmin, scales[12], qs[128]) or Q5_K block (the same with qh[32] before qs).
    static func decodeQ45K(_ blk: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, five: Bool) {
        let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
        let dmin = halfToFloat(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        let scales = (blk + 4).assumingMemoryBound(to: UInt8.self)
        let qh = (blk + 16).assumingMemoryBound(to: UInt8.self)
        var q = (blk + (five ? 48 : 16)).assumingMemoryBound(to: UInt8.self)
        var u1: UInt8 = 1, u2: UInt8 = 2
        for j in stride(from: 0, to: 256, by: 64) {
            let (s1, m1) = scaleMin(j / 32, scales), (s2, m2) = scaleMin(j / 32 + 1, scales)
            let d1 = d * s1, min1 = dmin * m1, d2 = d * s2, min2 = dmin * m2
            for l in 0..<32 {
                let hi1: Float = five && qh[l] & u1 != 0 ? 16 : 0
                let hi2: Float = five && qh[l] & u2 != 0 ? 16 : 0
                y[j + l] = d1 * (Float(q[l] & 0xF) + hi1) - min1
                y[j + 32 + l] = d2 * (Float(q[l] >> 4) + hi2) - min2
            }
            q += 32
            u1 <<= 2
            u2 <<= 2
        }
    }

    /// One 256-weight Q6_K block: ql[128], qh[64], scales[16] (int8), d.
    static func decodeQ6K(_ blk: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = halfToFloat(blk.loadUnaligned(fromByteOffset: 208, as: UInt16.self))
        var ql = blk.assumingMemoryBound(to: UInt8.self)
        var qh = (blk + 128).assumingMemoryBound(to: UInt8.self)
        var sc = (blk + 192).assumingMemoryBound(to: Int8.self)
        var y = y
        for _ in 0..<2 {
            for l in 0..<32 {
                let s = l / 16
                let q1 = Int32((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32
                let q2 = Int32((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32
                let q3 = Int32((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32
                let q4 = Int32((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32
                y[l] = d * Float(sc[s]) * Float(q1)
                y[l + 32] = d * Float(sc[s + 2]) * Float(q2)
                y[l + 64] = d * Float(sc[s + 4]) * Float(q3)
                y[l + 96] = d * Float(sc[s + 6]) * Float(q4)
            }
            y += 128
            ql += 64
            qh += 32
            sc += 8
        }
    }
}
