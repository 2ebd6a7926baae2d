// JSON schema -> GBNF, in the shape of llama.cpp's json_schema_to_grammar (examples/json_schema_to_grammar.py):
// the same primitive rules, property order as written, required properties first then optional ones through
// "-rest" chains, no additional properties unless the schema asks for them, and bounded free whitespace
// (`space ::= | " " | "\n"{1,2} [ \t]{0,20}`, only around punctuation) so a model cannot loop on spaces.
// Supported: type (and lists of types), properties/required/additionalProperties, enum, const, items/prefixItems
// with minItems/maxItems, anyOf/oneOf, $ref to local definitions (recursion allowed), string minLength/maxLength
// and the formats date, time, date-time and uuid. `pattern` and allOf are refused; numeric bounds
// (minimum/maximum) are not enforced by the grammar.

public enum JSONSchemaGrammar {
    /// GBNF text for `schemaText`; MistralError(.invalidArgument) for invalid JSON or an unsupported schema.
    public static func convert(_ schemaText: String) throws -> String {
        let schema = try SchemaJSON.parse(schemaText, what: "json_schema")
        var c = SchemaConverter(root: schema)
        _ = try c.visit(schema, name: "", path: "#")
        return c.formatGrammar()
    }

    /// Any JSON object (OpenAI's response_format json_object).
    public static let anyObject = #"{"type": "object"}"#
}

struct SchemaConverter {
    static let space = #"| " " | "\n"{1,2} [ \t]{0,20}"#
    static let primitives: [String: (String, [String])] = [
        "boolean": (#"("true" | "false")"#, []),
        "decimal-part": ("[0-9]{1,16}", []),
        "integral-part": ("[0] | [1-9] [0-9]{0,15}", []),
        "number": (#"("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?"#, ["integral-part", "decimal-part"]),
        "integer": (#"("-"? integral-part)"#, ["integral-part"]),
        "value": ("object | array | string | number | boolean | null", ["object", "array", "string", "number", "boolean", "null"]),
        "object": (#""{" space ( string ":" space value ("," space string ":" space value)* )? space "}""#, ["string", "value"]),
        "array": (#""[" space ( value ("," space value)* )? space "]""#, ["value"]),
        "uuid": (#""\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} "\"""#, []),
        "char": (#"[^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})"#, []),
        "string": (#""\"" char* "\"""#, ["char"]),
        "null": (#""null""#, []),
    ]
    static let formats: [String: (String, [String])] = [
        "date": (#"[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )"#, []),
        "time": (#"([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )"#, []),
        "date-time": (#"date "T" time"#, ["date", "time"]),
        "date-string": (#""\"" date "\"""#, ["date"]),
        "time-string": (#""\"" time "\"""#, ["time"]),
        "date-time-string": (#""\"" date-time "\"""#, ["date-time"]),
    ]
    static let reserved: Set<String> = Set(["root", "dot"]).union(primitives.keys).union(formats.keys)

    let root: SchemaJSON
    var rules: [String: String] = ["space": SchemaConverter.space]
    var refNames: [String: String] = [:]

    init(root: SchemaJSON) { self.root = root }

    func fail(_ path: String, _ message: String) -> MistralError {
        MistralError.invalid("json_schema: \(message) at \(path)")
    }

    static func escapeName(_ name: String) -> String {
        var out = "", inBad = false
        for u in name.unicodeScalars {
            let ok = (u >= "a" && u <= "z") || (u >= "A" && u <= "Z") || (u >= "0" && u <= "9") || u == "-"
            if ok { out.unicodeScalars.append(u); inBad = false } else if !inBad { out += "-"; inBad = true }
        }
        return out
    }

    /// A GBNF string literal for `text` (every character outside printable ASCII as an escape).
    static func literal(_ text: String) -> String {
        var out = "\""
        for u in text.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 || u.value >= 0x7F { out += classChar(u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// One code point as an escape usable inside literals and classes.
    static func classChar(_ v: UInt32) -> String {
        let h = String(v, radix: 16, uppercase: true)
        return "\\U" + String(repeating: "0", count: max(0, 8 - h.count)) + h
    }

    mutating func addRule(_ name: String, _ rule: String) -> String {
        let esc = SchemaConverter.escapeName(name)
        var key = esc
        if let existing = rules[esc], existing != rule {
            var i = 0
            while true {
                key = "\(esc)\(i)"
                if rules[key] == nil || rules[key] == rule { break }
                i += 1
            }
        }
        rules[key] = rule
        return key
    }

    mutating func addPrimitive(_ name: String, _ def: (String, [String])) -> String {
        let n = addRule(name, def.0)
        for dep in def.1 where rules[dep] == nil {
            if let d = SchemaConverter.primitives[dep] ?? SchemaConverter.formats[dep] { _ = addPrimitive(dep, d) }
        }
        return n
    }

    static func repetition(_ item: String, min lo: Int, max hi: Int?, separator: String? = nil) -> String {
        if hi == 0 { return "" }
        if lo == 0 && hi == 1 { return "\(item)?" }
        guard let separator else {
            if lo == 1 && hi == nil { return "\(item)+" }
            if lo == 0 && hi == nil { return "\(item)*" }
            return "\(item){\(lo),\(hi.map(String.init) ?? "")}"
        }
        let result = item + " " + repetition("(\(separator) \(item))", min: lo > 0 ? lo - 1 : 0, max: hi.map { $0 - 1 })
        return lo == 0 ? "(\(result))?" : result
    }

    func resolvePointer(_ ref: String, path: String) throws -> SchemaJSON {
        guard ref.hasPrefix("#") else { throw fail(path, "only local $ref (\"#/...\") is supported, got \"\(ref)\"") }
        var node = root
        let fragment = ref.dropFirst()
        if fragment.isEmpty { return node }
        guard fragment.hasPrefix("/") else { throw fail(path, "unsupported $ref \"\(ref)\"") }
        for rawPart in fragment.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            let part = String(rawPart).replacingAll("~1", "/").replacingAll("~0", "~")
            if let v = node[part] {
                node = v
            } else if let a = node.array, let k = Int(part), k >= 0, k < a.count {
                node = a[k]
            } else {
                throw fail(path, "$ref \"\(ref)\" does not resolve ('\(part)' not found)")
            }
        }
        return node
    }

    mutating func resolveRef(_ ref: String, path: String) throws -> String {
        if let n = refNames[ref] { return n }
        let target = try resolvePointer(ref, path: path)
        let last = ref.split(separator: "/").last.map(String.init) ?? "root"
        var name = "ref-" + SchemaConverter.escapeName(last == "#" ? "root" : last)
        while rules[name] != nil { name += "-ref" }
        refNames[ref] = name
        rules[name] = ""  // reserved: a recursive reference finds the name while its body is being built
        let actual = try visit(target, name: name, path: ref)
        if actual != name { rules[name] = actual }
        return name
    }

    func child(_ name: String, _ suffix: String) -> String { name.isEmpty ? suffix : "\(name)-\(suffix)" }

    mutating func visit(_ schema: SchemaJSON, name: String, path: String) throws -> String {
        if case .bool(let b) = schema {  // `true` accepts anything, `false` nothing a grammar can express
            guard b else { throw fail(path, "the schema `false` accepts no value") }
            return try visit(.object([]), name: name, path: path)
        }
        guard let members = schema.members else { throw fail(path, "a schema must be an object") }
        let ruleName = SchemaConverter.reserved.contains(name) ? name + "-" : (name.isEmpty ? "root" : name)
        let type = schema["type"]
        for key in ["minLength", "maxLength", "minItems", "maxItems"] {
            if let v = schema[key], v.count == nil { throw fail(path, "\(key) must be a non-negative integer") }
        }
        if let ref = schema["$ref"] {
            guard let r = ref.string else { throw fail(path, "$ref must be a string") }
            return addRule(ruleName, try resolveRef(r, path: path))
        }
        if schema["allOf"] != nil { throw fail(path, "allOf is not supported; combine the constraints in one schema") }
        if let alts = schema["oneOf"] ?? schema["anyOf"] {
            guard let list = alts.array, !list.isEmpty else { throw fail(path, "anyOf/oneOf must be a non-empty array") }
            var parts: [String] = []
            for (i, alt) in list.enumerated() {
                parts.append(try visit(alt, name: name.isEmpty ? "alternative-\(i)" : "\(name)-\(i)", path: "\(path)/anyOf/\(i)"))
            }
            return addRule(ruleName, parts.joined(separator: " | "))
        }
        if let types = type?.array {
            guard !types.isEmpty else { throw fail(path, "type must not be empty") }
            var parts: [String] = []
            for (i, t) in types.enumerated() {
                let single = SchemaJSON.object(members.map { $0.key == "type" ? ("type", t) : $0 })
                parts.append(try visit(single, name: name.isEmpty ? "alternative-\(i)" : "\(name)-\(i)", path: path))
            }
            return addRule(ruleName, parts.joined(separator: " | "))
        }
        if let c = schema["const"] {
            return addRule(ruleName, SchemaConverter.literal(c.pythonDumps))
        }
        if let e = schema["enum"] {
            guard let values = e.array, !values.isEmpty else { throw fail(path, "enum must be a non-empty array") }
            return addRule(ruleName, "(" + values.map { SchemaConverter.literal($0.pythonDumps) }.joined(separator: " | ") + ")")
        }
        let t: String?
        if let type {
            guard let s = type.string else { throw fail(path, "type must be a string or a list of strings") }
            t = s
        } else {
            t = nil
        }
        let additional = schema["additionalProperties"]
        if (t == nil || t == "object") && (schema["properties"] != nil || (additional != nil && additional != .bool(true))) {
            guard let props = (schema["properties"] ?? .object([])).members else { throw fail(path, "properties must be an object") }
            var required = Set<String>()
            if let r = schema["required"] {
                guard let list = r.array else { throw fail(path, "required must be an array") }
                for v in list {
                    guard let s = v.string else { throw fail(path, "required must list strings") }
                    required.insert(s)
                }
            }
            return addRule(ruleName, try objectRule(props, required: required, name: name, additional: additional, path: path))
        }
        if t == "array" || (t == nil && (schema["items"] != nil || schema["prefixItems"] != nil)) {
            let items = schema["items"] ?? schema["prefixItems"] ?? .object([])
            if let tuple = items.array {
                var parts: [String] = []
                for (i, item) in tuple.enumerated() {
                    parts.append(try visit(item, name: child(name, "tuple-\(i)"), path: "\(path)/items/\(i)"))
                }
                return addRule(ruleName, #""[" space "# + parts.joined(separator: #" "," space "#) + #" space "]""#)
            }
            let item = try visit(items, name: child(name, "item"), path: "\(path)/items")
            let lo = schema["minItems"]?.count ?? 0, hi = schema["maxItems"]?.count
            if let hi, hi < lo { throw fail(path, "maxItems \(hi) is below minItems \(lo)") }
            return addRule(ruleName, #""[" space "# + SchemaConverter.repetition(item, min: lo, max: hi, separator: #""," space"#)
                           + #" space "]""#)
        }
        if (t == nil || t == "string") && schema["pattern"] != nil {
            throw fail(path, "pattern is not supported")
        }
        let format = schema["format"]?.string ?? ""
        if t == nil || t == "string" {
            if format.hasPrefix("uuid") && (format.count == 4 || (format.count == 5 && "12345".contains(format.last ?? " "))) {
                return addPrimitive(ruleName == "root" ? "root" : format, SchemaConverter.primitives["uuid"] ?? ("", []))
            }
            if let f = SchemaConverter.formats[format + "-string"] {
                return addRule(ruleName, addPrimitive(format + "-string", f))
            }
            if schema["minLength"] != nil || schema["maxLength"] != nil {
                let ch = addPrimitive("char", SchemaConverter.primitives["char"] ?? ("", []))
                let lo = schema["minLength"]?.count ?? 0, hi = schema["maxLength"]?.count
                if let hi, hi < lo { throw fail(path, "maxLength \(hi) is below minLength \(lo)") }
                return addRule(ruleName, #""\"" "# + SchemaConverter.repetition(ch, min: lo, max: hi) + #" "\"""#)
            }
        }
        if t == "object" {
            return addRule(ruleName, addPrimitive("object", SchemaConverter.primitives["object"] ?? ("", [])))
        }
        guard let t else {
            return addRule(ruleName, addPrimitive("value", SchemaConverter.primitives["value"] ?? ("", [])))
        }
        guard let prim = SchemaConverter.primitives[t], ["boolean", "number", "integer", "string", "null"].contains(t) else {
            throw fail(path, "unknown type \"\(t)\"")
        }
        return addPrimitive(ruleName == "root" ? "root" : t, prim)
    }

    mutating func objectRule(_ properties: [(key: String, value: SchemaJSON)], required: Set<String>, name: String,
                             additional: SchemaJSON?, path: String) throws -> String {
        var kv: [String: String] = [:]
        let additionalKey = "\u{0}*"
        for (prop, schema) in properties {
            let valueRule = try visit(schema, name: child(name, prop), path: "\(path)/properties/\(prop)")
            kv[prop] = addRule(child(name, "\(prop)-kv"),
                               SchemaConverter.literal(SchemaJSON.quote(prop)) + #" space ":" space "# + valueRule)
        }
        let sorted = properties.map(\.key)
        let requiredProps = sorted.filter { required.contains($0) }
        var optionalProps = sorted.filter { !required.contains($0) }
        if let additional, additional != .bool(false) {
            let sub = child(name, "additional")
            let valueRule: String
            if case .object = additional {
                valueRule = try visit(additional, name: "\(sub)-value", path: "\(path)/additionalProperties")
            } else {
                valueRule = addPrimitive("value", SchemaConverter.primitives["value"] ?? ("", []))
            }
            let keyRule = sorted.isEmpty ? addPrimitive("string", SchemaConverter.primitives["string"] ?? ("", []))
                : addRule("\(sub)-k", notStrings(sorted))
            kv[additionalKey] = addRule("\(sub)-kv", keyRule + #" ":" space "# + valueRule)
            optionalProps.append(additionalKey)
        }
        if requiredProps.isEmpty && optionalProps.isEmpty { return #""{" space "}""# }
        var rule = #""{" space "# + requiredProps.compactMap { kv[$0] }.joined(separator: #" "," space "#)
        if !optionalProps.isEmpty {
            rule += " ("
            if !requiredProps.isEmpty { rule += #" "," space ( "# }
            var alternatives = [String](repeating: "", count: optionalProps.count)
            var suffix: String? = nil
            for i in stride(from: optionalProps.count - 1, through: 0, by: -1) {
                let k = optionalProps[i]
                let kvRule = kv[k] ?? ""
                let isAdditional = k == additionalKey
                let commaRef = #"( "," space "# + kvRule + " )"
                var suffixRef = ""
                if let suffix {
                    suffixRef = " " + addRule(child(name, "\(isAdditional ? "additional" : k)-rest"), suffix)
                }
                alternatives[i] = kvRule + (isAdditional ? " " + commaRef + "*" : "") + suffixRef
                suffix = commaRef + (isAdditional ? "*" : "?") + suffixRef
            }
            rule += alternatives.joined(separator: " | ")
            if !requiredProps.isEmpty { rule += " )" }
            rule += " )?"
        }
        return rule + #" space "}""#
    }

    /// A JSON string key that is none of `strings` (llama.cpp's _not_strings, over a trie of the names).
    mutating func notStrings(_ strings: [String]) -> String {
        final class Node { var children: [UInt32: Node] = [:]; var end = false }
        let trie = Node()
        for s in strings {
            var n = trie
            for u in s.unicodeScalars {
                let next = n.children[u.value] ?? Node()
                n.children[u.value] = next
                n = next
            }
            n.end = true
        }
        let ch = addPrimitive("char", SchemaConverter.primitives["char"] ?? ("", []))
        var out = #"["] ( "#
        func walk(_ node: Node) {
            var rejects = ""
            var first = true
            for c in node.children.keys.sorted() {
                guard let childNode = node.children[c] else { continue }
                rejects += SchemaConverter.classChar(c)
                if !first { out += " | " }
                first = false
                out += "[" + SchemaConverter.classChar(c) + "]"
                if !childNode.children.isEmpty {
                    out += " ("
                    walk(childNode)
                    out += ")"
                } else if childNode.end {
                    out += " \(ch)+"
                }
            }
            if !node.children.isEmpty {
                if !first { out += " | " }
                out += #"[^"\\"# + rejects + "] \(ch)*"
            }
        }
        walk(trie)
        out += " )" + (trie.end ? "" : "?") + #" ["] space"#
        return out
    }

    func formatGrammar() -> String {
        rules.keys.sorted().map { "\($0) ::= \(rules[$0] ?? "")" }.joined(separator: "\n") + "\n"
    }
}

extension String {
    /// Foundation-free replacement of every occurrence of `target`.
    func replacingAll(_ target: String, _ replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = "", rest = Substring(self)
        while let r = rest.range(of: target) {
            out += rest[..<r.lowerBound] + replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

private extension Substring {
    func range(of target: String) -> Range<Substring.Index>? {
        let t = Array(target.unicodeScalars)
        let scalars = unicodeScalars
        var i = scalars.startIndex
        while i != scalars.endIndex {
            var j = i, k = 0
            while k < t.count && j != scalars.endIndex && scalars[j] == t[k] { j = scalars.index(after: j); k += 1 }
            if k == t.count { return i..<j }
            i = scalars.index(after: i)
        }
        return nil
    }
}
