import Glibc
// Safetensors reader over a memory map: an 8-byte header length, a JSON header naming each tensor's dtype, shape
// and byte range, then the data. Every range is checked against the file.

/// A named tensor inside some mapped container, in ggml orientation: shape[0] varies fastest (a safetensors
/// [out, in] matrix is [in, out] here; the bytes are the same).
public struct TensorRef: @unchecked Sendable {  // points into a mapping its container keeps alive
    public let name: String
    public let shape: [Int]
    public let type: GGMLType
    public let data: UnsafeRawPointer
    public let byteCount: Int
}

extension TensorRef {
    /// A 1-D float tensor (norm weights, biases) of `n` values, converted to f32 in fresh memory the caller frees.
    func floatVector(_ n: Int) throws -> UnsafeMutablePointer<Float> {
        guard shape == [n] else { throw MistralError.format("tensor '\(name)' has shape \(shape), expected [\(n)]") }
        guard [.f32, .f16, .bf16].contains(type) else {
            throw MistralError.unsupported("tensor '\(name)' has type \(type.name); vectors must be F32/F16/BF16")
        }
        let out = try allocateZeroed(Float.self, count: n, what: "'\(name)'")
        do {
            try WeightMatrix(data: data, type: type, rows: 1, cols: n).dequantizeRow(0, into: out)
        } catch {
            free(out)
            throw error
        }
        return out
    }
}

public final class SafetensorsFile: @unchecked Sendable {  // immutable after init
    public let file: MappedFile
    public let tensors: [String: TensorRef]
    /// Tensors whose dtype this engine cannot use (kept so a missing-tensor error can say why).
    public let unsupported: [String: String]

    static let dtypes: [String: (GGMLType, Int)] = ["F32": (.f32, 4), "F16": (.f16, 2), "BF16": (.bf16, 2)]

    public init(path: String) throws {
        file = try MappedFile(path: path)
        guard file.size >= 8 else { throw MistralError.format("'\(path)' is too small for a safetensors file") }
        let headerLength = file.base.loadUnaligned(as: UInt64.self)
        guard headerLength > 1, headerLength <= UInt64(min(file.size - 8, 256 << 20)) else {
            throw MistralError.format("'\(path)': safetensors header length \(headerLength) does not fit the file (\(file.size) bytes)")
        }
        let header = try JSON.parse(UnsafeRawBufferPointer(start: file.base + 8, count: Int(headerLength)),
                                    what: "safetensors header of '\(path)'")
        guard let entries = header.object else { throw MistralError.format("'\(path)': header is not a JSON object") }
        let dataStart = 8 + Int(headerLength)
        let dataSize = file.size - dataStart
        var tensors: [String: TensorRef] = [:]
        var unsupported: [String: String] = [:]
        for (name, entry) in entries where name != "__metadata__" {
            guard let dtype = entry["dtype"]?.string, let shapeJSON = entry["shape"]?.array,
                  let offsets = entry["data_offsets"]?.array, offsets.count == 2,
                  let begin = offsets[0].int, let end = offsets[1].int else {
                throw MistralError.format("'\(path)': tensor '\(name)' lacks dtype, shape or data_offsets")
            }
            var dims: [Int] = []
            var count = 1
            for d in shapeJSON {
                guard let v = d.int, v >= 0, v < 1 << 40 else {
                    throw MistralError.format("'\(path)': tensor '\(name)' has a bad dimension")
                }
                dims.append(v)
                let (m, o) = count.multipliedReportingOverflow(by: v)
                guard !o, m < 1 << 48 else { throw MistralError.format("'\(path)': tensor '\(name)' is too large") }
                count = m
            }
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw MistralError.format("'\(path)': tensor '\(name)' data [\(begin), \(end)) lies outside the file's \(dataSize) data bytes; the file is truncated or corrupt")
            }
            guard let (type, elementSize) = SafetensorsFile.dtypes[dtype] else {
                unsupported[name] = dtype
                continue
            }
            guard end - begin == count * elementSize else {
                throw MistralError.format("'\(path)': tensor '\(name)' has \(end - begin) bytes for \(count) \(dtype) values")
            }
            tensors[name] = TensorRef(name: name, shape: dims.reversed(), type: type, data: file.base + dataStart + begin,
                                      byteCount: end - begin)
        }
        self.tensors = tensors
        self.unsupported = unsupported
    }
}
