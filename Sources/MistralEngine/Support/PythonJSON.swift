// JSON text exactly as Python's `json.dumps(value, ensure_ascii=False)` writes it (default separators ", " and
// ": "), because mistral-common renders tool lists, tool calls and V3 tool results that way and the model was
// trained on those bytes. Objects need the key order of a `JSON.parse(..., preserveOrder: true)` tree.

public enum PythonJSON {
    /// `json.dumps(json.loads(text), ensure_ascii=False)`, or nil when `text` is not JSON Python would read
    /// (NaN/Infinity literals and lone surrogates, which Python accepts, are refused here and give nil too).
    public static func normalize(_ text: String) -> String? {
        guard let v = try? JSON.parse(text, what: "JSON text", preserveOrder: true) else { return nil }
        return dumps(v)
    }

    public static func dumps(_ value: JSON) -> String {
        var out: [UInt8] = []
        write(value, &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func write(_ value: JSON, _ out: inout [UInt8]) {
        switch value {
        case .null: out += Array("null".utf8)
        case .bool(let b): out += Array((b ? "true" : "false").utf8)
        case .number(let d, let literal): out += Array(number(d, literal).utf8)
        case .string(let s): writeString(s, &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (k, v) in a.enumerated() {
                if k > 0 { out += [UInt8(ascii: ","), UInt8(ascii: " ")] }
                write(v, &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o, let keys):
            // a tree parsed without preserveOrder has no order: sorted keys keep the output deterministic
            let order = keys.count == o.count ? keys : o.keys.sorted()
            out.append(UInt8(ascii: "{"))
            for (k, key) in order.enumerated() {
                if k > 0 { out += [UInt8(ascii: ","), UInt8(ascii: " ")] }
                writeString(key, &out)
                out += [UInt8(ascii: ":"), UInt8(ascii: " ")]
                if let v = o[key] { write(v, &out) }
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Python reads an integer literal as an int (exact, any size) and anything with a fraction or exponent as a
    /// float, written back by float.__repr__ (shortest round-trip digits; Swift's description uses the same
    /// digits and the same switch to exponent form below 1e-4 and from 1e16 on).
    static func number(_ d: Double, _ literal: String?) -> String {
        if let literal, !literal.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) {
            return literal == "-0" ? "0" : literal
        }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        if d.isNaN { return "NaN" }
        return d.description
    }

    static let hex = Array("0123456789abcdef".utf8)

    /// Python's py_encode_basestring: `"` `\` and control characters escaped, everything else as UTF-8.
    static func writeString(_ s: String, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x0C: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0..<0x20:
                out += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                        hex[Int(b >> 4)], hex[Int(b & 15)]]
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
