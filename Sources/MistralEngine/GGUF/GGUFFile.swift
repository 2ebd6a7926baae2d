// GGUF v2/v3 reader over a memory map. Every read is bounds-checked: a truncated or lying file is a format error
// naming the field, never a crash.

public enum GGUFValue: Sendable {
    case u8(UInt8), i8(Int8), u16(UInt16), i16(Int16), u32(UInt32), i32(Int32), u64(UInt64), i64(Int64)
    case f32(Float), f64(Double), bool(Bool), string(String)
    case array([GGUFValue])

    public var int: Int? {
        switch self {
        case .u8(let v): return Int(v)
        case .i8(let v): return Int(v)
        case .u16(let v): return Int(v)
        case .i16(let v): return Int(v)
        case .u32(let v): return Int(v)
        case .i32(let v): return Int(v)
        case .u64(let v): return Int(exactly: v)
        case .i64(let v): return Int(v)
        case .bool(let v): return v ? 1 : 0
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case .f32(let v): return Double(v)
        case .f64(let v): return v
        default: return int.map(Double.init)
        }
    }

    public var bool: Bool? {
        if case .bool(let v) = self { return v }
        return int.map { $0 != 0 }
    }

    public var string: String? {
        if case .string(let v) = self { return v }
        return nil
    }

    public var array: [GGUFValue]? {
        if case .array(let v) = self { return v }
        return nil
    }
}

public struct GGUFTensorInfo: Sendable {
    public let name: String
    /// Dimensions with the fastest-varying first (ggml's ne[0], ne[1], ...).
    public let shape: [Int]
    public let type: GGMLType
    /// Absolute byte offset of the data in the file.
    public let fileOffset: Int
    public let byteCount: Int
    public var elementCount: Int { shape.reduce(1, *) }
}

public final class GGUFFile: @unchecked Sendable {  // immutable after init
    public let file: MappedFile
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    public let tensors: [String: GGUFTensorInfo]
    /// Tensor names in file order.
    public let tensorNames: [String]
    public let alignment: Int

    static let magic: UInt32 = 0x4655_4747  // "GGUF" little-endian
    static let maxDims = 4
    static let maxArrayDepth = 4

    public static func isGGUF(_ file: MappedFile) -> Bool {
        file.size >= 4 && file.base.loadUnaligned(as: UInt32.self) == magic
    }

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        var r = ByteReader(base: file.base, size: file.size, path: file.path)
        guard try r.u32("magic") == GGUFFile.magic else {
            throw MistralError.format("'\(file.path)' is not a GGUF file (bad magic)")
        }
        version = try r.u32("version")
        guard version == 2 || version == 3 else {
            throw MistralError.unsupported("GGUF version \(version) is not supported (2 and 3 are)")
        }
        let tensorCount = try r.count("tensor_count", minElementBytes: 24)
        let kvCount = try r.count("kv_count", minElementBytes: 13)

        var metadata: [String: GGUFValue] = [:]
        for i in 0..<kvCount {
            let key = try r.string("metadata key #\(i)")
            let type = try r.u32("type of '\(key)'")
            metadata[key] = try r.value(type: type, field: key, depth: 0)
        }
        self.metadata = metadata

        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.int, v > 0, v <= 1 << 20, v & (v - 1) == 0 else {
                throw MistralError.format("general.alignment must be a power of two, got \(a)")
            }
            alignment = v
        }
        self.alignment = alignment

        var infos: [(String, [Int], GGMLType, Int)] = []
        infos.reserveCapacity(tensorCount)
        for i in 0..<tensorCount {
            let name = try r.string("name of tensor #\(i)")
            let nDims = Int(try r.u32("n_dims of '\(name)'"))
            guard nDims >= 1 && nDims <= GGUFFile.maxDims else {
                throw MistralError.format("tensor '\(name)': n_dims \(nDims) out of range 1...\(GGUFFile.maxDims)")
            }
            var shape: [Int] = []
            var elements = 1
            for d in 0..<nDims {
                let v = try r.u64("dimension \(d) of '\(name)'")
                guard v > 0, v < 1 << 40 else {
                    throw MistralError.format("tensor '\(name)': dimension \(d) is \(v)")
                }
                shape.append(Int(v))
                let (m, o) = elements.multipliedReportingOverflow(by: Int(v))
                guard !o, m < 1 << 48 else { throw MistralError.format("tensor '\(name)': element count overflows") }
                elements = m
            }
            let type = GGMLType(rawValue: try r.u32("type of '\(name)'"))
            guard type.isKnown else {
                throw MistralError.unsupported("tensor '\(name)' has unknown ggml type \(type.rawValue)")
            }
            let offset = try r.u64("offset of '\(name)'")
            guard offset < 1 << 48, Int(offset) % alignment == 0 else {
                throw MistralError.format("tensor '\(name)': offset \(offset) is not aligned to \(alignment)")
            }
            infos.append((name, shape, type, Int(offset)))
        }

        let dataStart = (r.offset + alignment - 1) / alignment * alignment
        guard dataStart <= file.size else {
            throw MistralError.format("'\(file.path)' is truncated: tensor data would start at \(dataStart), file has \(file.size) bytes")
        }
        var tensors: [String: GGUFTensorInfo] = [:]
        var names: [String] = []
        for (name, shape, type, offset) in infos {
            guard let rowBytes = type.rowBytes(shape[0]) else {
                throw MistralError.format("tensor '\(name)': row length \(shape[0]) is not a multiple of \(type.name)'s block size \(type.blockSize)")
            }
            let rows = shape.dropFirst().reduce(1, *)
            let (bytes, o) = rowBytes.multipliedReportingOverflow(by: rows)
            let begin = dataStart + offset
            guard !o, begin <= file.size, bytes <= file.size - begin else {
                throw MistralError.format("tensor '\(name)': data [\(begin), +\(bytes)) lies outside the file (\(file.size) bytes); the file is truncated or its offsets are corrupt")
            }
            guard tensors[name] == nil else { throw MistralError.format("tensor '\(name)' appears twice") }
            tensors[name] = GGUFTensorInfo(name: name, shape: shape, type: type, fileOffset: begin, byteCount: bytes)
            names.append(name)
        }
        self.tensors = tensors
        self.tensorNames = names
    }

    /// Raw pointer to a tensor's data inside the map.
    public func data(_ info: GGUFTensorInfo) -> UnsafeRawPointer { file.base + info.fileOffset }

    /// Every tensor as a reference into the mapping.
    var tensorRefs: [String: TensorRef] {
        var refs: [String: TensorRef] = [:]
        for (name, t) in tensors {
            refs[name] = TensorRef(name: name, shape: t.shape, type: t.type, data: data(t), byteCount: t.byteCount)
        }
        return refs
    }

    // MARK: typed metadata access

    public func int(_ key: String) throws -> Int? {
        guard let v = metadata[key] else { return nil }
        guard let i = v.int else { throw MistralError.format("metadata '\(key)' is not an integer") }
        return i
    }

    public func double(_ key: String) throws -> Double? {
        guard let v = metadata[key] else { return nil }
        guard let d = v.double else { throw MistralError.format("metadata '\(key)' is not a number") }
        return d
    }

    public func string(_ key: String) throws -> String? {
        guard let v = metadata[key] else { return nil }
        guard let s = v.string else { throw MistralError.format("metadata '\(key)' is not a string") }
        return s
    }

    public func bool(_ key: String) throws -> Bool? {
        guard let v = metadata[key] else { return nil }
        guard let b = v.bool else { throw MistralError.format("metadata '\(key)' is not a boolean") }
        return b
    }

    public func stringArray(_ key: String) throws -> [String]? {
        guard let v = metadata[key] else { return nil }
        guard let a = v.array else { throw MistralError.format("metadata '\(key)' is not an array") }
        return try a.map {
            guard let s = $0.string else { throw MistralError.format("metadata '\(key)' holds a non-string") }
            return s
        }
    }

    public func intArray(_ key: String) throws -> [Int]? {
        guard let v = metadata[key] else { return nil }
        guard let a = v.array else { throw MistralError.format("metadata '\(key)' is not an array") }
        return try a.map {
            guard let i = $0.int else { throw MistralError.format("metadata '\(key)' holds a non-integer") }
            return i
        }
    }
}

/// Little-endian cursor that refuses to read past the end.
struct ByteReader {
    let base: UnsafeRawPointer
    let size: Int
    let path: String
    var offset = 0

    init(base: UnsafeRawPointer, size: Int, path: String) {
        self.base = base
        self.size = size
        self.path = path
    }

    var remaining: Int { size - offset }

    mutating func take<T>(_ type: T.Type, _ field: String) throws -> T {
        let n = MemoryLayout<T>.size
        guard remaining >= n else {
            throw MistralError.format("'\(path)' is truncated: reading \(field) at byte \(offset) needs \(n) bytes, \(remaining) left")
        }
        let v = base.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += n
        return v
    }

    mutating func u32(_ field: String) throws -> UInt32 { UInt32(littleEndian: try take(UInt32.self, field)) }
    mutating func u64(_ field: String) throws -> UInt64 { UInt64(littleEndian: try take(UInt64.self, field)) }

    /// A 64-bit element count that must fit in what is left of the file.
    mutating func count(_ field: String, minElementBytes: Int) throws -> Int {
        let v = try u64(field)
        guard v <= UInt64(remaining / max(minElementBytes, 1)) else {
            throw MistralError.format("\(field) = \(v) cannot fit in the \(remaining) bytes left of '\(path)'")
        }
        return Int(v)
    }

    mutating func string(_ field: String) throws -> String {
        let n = try u64("length of \(field)")
        guard n <= UInt64(remaining) else {
            throw MistralError.format("'\(path)' is truncated: \(field) claims \(n) bytes, \(remaining) left")
        }
        let s = String(decoding: UnsafeRawBufferPointer(start: base + offset, count: Int(n)), as: UTF8.self)
        offset += Int(n)
        return s
    }

    mutating func value(type: UInt32, field: String, depth: Int) throws -> GGUFValue {
        switch type {
        case 0: return .u8(try take(UInt8.self, field))
        case 1: return .i8(try take(Int8.self, field))
        case 2: return .u16(UInt16(littleEndian: try take(UInt16.self, field)))
        case 3: return .i16(Int16(littleEndian: try take(Int16.self, field)))
        case 4: return .u32(try u32(field))
        case 5: return .i32(Int32(littleEndian: try take(Int32.self, field)))
        case 6: return .f32(Float(bitPattern: try u32(field)))
        case 7:
            let b = try take(UInt8.self, field)
            guard b <= 1 else { throw MistralError.format("metadata '\(field)': bool byte is \(b)") }
            return .bool(b == 1)
        case 8: return .string(try string(field))
        case 9:
            guard depth < GGUFFile.maxArrayDepth else {
                throw MistralError.format("metadata '\(field)': arrays nested deeper than \(GGUFFile.maxArrayDepth)")
            }
            let elementType = try u32("element type of \(field)")
            let minBytes: Int
            switch elementType {
            case 0, 1, 7: minBytes = 1
            case 2, 3: minBytes = 2
            case 4, 5, 6: minBytes = 4
            case 8, 10, 11, 12: minBytes = 8
            case 9: minBytes = 12
            default: throw MistralError.format("metadata '\(field)': unknown array element type \(elementType)")
            }
            let n = try count("length of \(field)", minElementBytes: minBytes)
            var out: [GGUFValue] = []
            out.reserveCapacity(n)
            for _ in 0..<n { out.append(try value(type: elementType, field: field, depth: depth + 1)) }
            return .array(out)
        case 10: return .u64(try u64(field))
        case 11: return .i64(Int64(littleEndian: try take(Int64.self, field)))
        case 12: return .f64(Double(bitPattern: try u64(field)))
        default: throw MistralError.format("metadata '\(field)': unknown value type \(type)")
        }
    }
}
