// JSON as a JSON schema needs it: object keys in document order (the grammar writes properties in that order) and
// numbers kept as written (a `const` is reproduced exactly). Strict RFC 8259, depth and size bounded, errors name
// the byte offset.

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

    public static func parse(_ text: String, what: String = "JSON") throws -> SchemaJSON {
        let bytes = Array(text.utf8)
        guard bytes.count <= 16 << 20 else { throw MistralError.invalid("\(what): \(bytes.count) bytes is too large") }
        var p = SchemaJSONParser(s: bytes, what: what)
        p.space()
        let v = try p.value(depth: 0)
        p.space()
        guard p.i == bytes.count else { throw p.fail("trailing characters") }
        return v
    }
}

private struct SchemaJSONParser {
    let s: [UInt8]
    let what: String
    var i = 0

    func fail(_ m: String) -> MistralError { MistralError.invalid("\(what): invalid JSON at byte \(i): \(m)") }

    mutating func space() {
        while i < s.count, s[i] == 0x20 || s[i] == 0x0A || s[i] == 0x0D || s[i] == 0x09 { i += 1 }
    }

    mutating func literal(_ word: String, _ v: SchemaJSON) throws -> SchemaJSON {
        let w = Array(word.utf8)
        guard i + w.count <= s.count, Array(s[i..<i + w.count]) == w else { throw fail("unexpected character") }
        i += w.count
        return v
    }

    mutating func value(depth: Int) throws -> SchemaJSON {
        guard depth < 128 else { throw fail("nested too deeply") }
        guard i < s.count else { throw fail("unexpected end") }
        switch s[i] {
        case UInt8(ascii: "{"):
            i += 1
            var members: [(key: String, value: SchemaJSON)] = []
            space()
            if i < s.count && s[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                space()
                guard i < s.count, s[i] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                let k = try string()
                space()
                guard i < s.count, s[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                space()
                let v = try value(depth: depth + 1)
                if let at = members.firstIndex(where: { $0.key == k }) { members[at].value = v } else { members.append((k, v)) }
                space()
                guard i < s.count else { throw fail("unexpected end") }
                if s[i] == UInt8(ascii: ",") { i += 1; continue }
                if s[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var a: [SchemaJSON] = []
            space()
            if i < s.count && s[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
            while true {
                space()
                a.append(try value(depth: depth + 1))
                space()
                guard i < s.count else { throw fail("unexpected end") }
                if s[i] == UInt8(ascii: ",") { i += 1; continue }
                if s[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        default: return .number(try number())
        }
    }

    mutating func digits() -> Int {
        let start = i
        while i < s.count, s[i] >= 0x30 && s[i] <= 0x39 { i += 1 }
        return i - start
    }

    mutating func number() throws -> String {
        let start = i
        if i < s.count && s[i] == UInt8(ascii: "-") { i += 1 }
        guard digits() > 0 else { throw fail("expected a value") }
        if i < s.count && s[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw fail("bad number") }
        }
        if i < s.count && (s[i] == UInt8(ascii: "e") || s[i] == UInt8(ascii: "E")) {
            i += 1
            if i < s.count && (s[i] == UInt8(ascii: "+") || s[i] == UInt8(ascii: "-")) { i += 1 }
            guard digits() > 0 else { throw fail("bad number") }
        }
        return String(decoding: s[start..<i], as: UTF8.self)
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= s.count else { throw fail("bad \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = s[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("bad \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    mutating func string() throws -> String {
        i += 1
        var out = String.UnicodeScalarView()
        var run: [UInt8] = []
        func flush() { if !run.isEmpty { out.append(contentsOf: String(decoding: run, as: UTF8.self).unicodeScalars); run.removeAll() } }
        while true {
            guard i < s.count else { throw fail("unterminated string") }
            let c = s[i]
            if c == UInt8(ascii: "\"") { i += 1; break }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") { run.append(c); i += 1; continue }
            flush()
            i += 1
            guard i < s.count else { throw fail("unterminated string") }
            let e = s[i]
            i += 1
            let simple: [UInt8: UInt32] = [0x22: 0x22, 0x5C: 0x5C, 0x2F: 0x2F, 0x62: 8, 0x66: 12, 0x6E: 10, 0x72: 13, 0x74: 9]
            if let v = simple[e] { out.append(Unicode.Scalar(UInt8(truncatingIfNeeded: v))); continue }
            guard e == UInt8(ascii: "u") else { throw fail("bad escape") }
            var v = try hex4()
            if (0xD800...0xDBFF).contains(v) {
                guard i + 6 <= s.count, s[i] == 0x5C, s[i + 1] == UInt8(ascii: "u") else { throw fail("unpaired surrogate") }
                i += 2
                let low = try hex4()
                guard (0xDC00...0xDFFF).contains(low) else { throw fail("unpaired surrogate") }
                v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(v) {
                throw fail("unpaired surrogate")
            }
            guard let u = Unicode.Scalar(v) else { throw fail("bad code point") }
            out.append(u)
        }
        flush()
        return String(out)
    }
}
