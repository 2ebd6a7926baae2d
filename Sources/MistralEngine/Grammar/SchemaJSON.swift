// JSON as a JSON schema needs it: object keys in document order (the grammar writes properties in that order) and
// numbers kept as written (a `const` is reproduced exactly), read by Support/JSON.swift's parser.

public indirect enum SchemaJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([SchemaJSON])
    case object([(key: String, value: SchemaJSON)])

    public static func == (a: SchemaJSON, b: SchemaJSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    public subscript(key: String) -> SchemaJSON? {
        if case .object(let o) = self { return o.first { $0.key == key }?.value }
        return nil
    }

    var string: String? { if case .string(let s) = self { return s }; return nil }
    var array: [SchemaJSON]? { if case .array(let a) = self { return a }; return nil }
    var members: [(key: String, value: SchemaJSON)]? { if case .object(let o) = self { return o }; return nil }
    var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    /// A non-negative integer (minItems, maxLength, ...), as written without fraction or exponent.
    var count: Int? {
        guard case .number(let t) = self, let v = Int(t), v >= 0 else {
            if case .number(let t) = self, let d = Double(t), d >= 0, d.rounded() == d, d < 1e9 { return Int(d) }
            return nil
        }
        return v
    }

    /// Python's json.dumps with its defaults (", " and ": " separators, non-ASCII as \uXXXX), which is what
    /// llama.cpp's converter writes into const/enum literals.
    public var pythonDumps: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let t): return t
        case .string(let s): return SchemaJSON.quote(s)
        case .array(let a): return "[" + a.map(\.pythonDumps).joined(separator: ", ") + "]"
        case .object(let o):
            return "{" + o.map { SchemaJSON.quote($0.key) + ": " + $0.value.pythonDumps }.joined(separator: ", ") + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 || u.value > 0x7E {
                    func hex(_ v: UInt32) -> String {
                        let h = String(v, radix: 16)
                        return "\\u" + String(repeating: "0", count: max(0, 4 - h.count)) + h
                    }
                    if u.value > 0xFFFF {
                        let v = u.value - 0x10000
                        out += hex(0xD800 + (v >> 10)) + hex(0xDC00 + (v & 0x3FF))
                    } else {
                        out += hex(u.value)
                    }
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    /// Parsed by the project's one JSON reader (Support/JSON.swift) in its order-preserving mode: a repeated key
    /// keeps its first place and takes the last value, numbers keep their literal text. A malformed schema is the
    /// caller's argument, so its errors are invalid-argument ones.
    public static func parse(_ text: String, what: String = "JSON") throws -> SchemaJSON {
        let size = text.utf8.count
        guard size <= 16 << 20 else { throw MistralError.invalid("\(what): \(size) bytes is too large") }
        do {
            return SchemaJSON(try JSON.parse(text, what: what, preserveOrder: true))
        } catch let e as MistralError where e.status == .format {
            throw MistralError.invalid(e.message)
        }
    }

    init(_ j: JSON) {
        switch j {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let d, let literal): self = .number(literal ?? String(d))
        case .string(let s): self = .string(s)
        case .array(let a): self = .array(a.map(SchemaJSON.init))
        case .object(let o, let keys): self = .object(keys.compactMap { k in o[k].map { (key: k, value: SchemaJSON($0)) } })
        }
    }
}
