// The tool calls a Mistral model writes: `[TOOL_CALLS]` (a control token) followed by a JSON list of
// {"name", "arguments", "id"?} (V3/V7, as the prompt's own tool calls are rendered), possibly more than one such
// block. Turned into OpenAI-shaped calls: arguments as JSON text (json.dumps form, as vLLM's Mistral parser writes
// them), and an id of 9 random alphanumerics when the model wrote none. Malformed JSON is an error, never a trap.

public struct ParsedToolCalls: Sendable, Equatable {
    /// The text before the first [TOOL_CALLS] (the whole text when there is none).
    public var content: String
    public var calls: [ToolCall]

    /// OpenAI's `tool_calls` list: [{"id", "type": "function", "function": {"name", "arguments"}}].
    public var openAIJSON: String {
        PythonJSON.dumps(.array(calls.map { c in
            .object(["id": .string(c.id ?? ""), "type": .string("function"),
                     "function": .object(["name": .string(c.name), "arguments": .string(c.arguments)],
                                         keys: ["name", "arguments"])],
                    keys: ["id", "type", "function"])
        }))
    }
}

public enum ToolCallParser {
    static let marker = "[TOOL_CALLS]"
    static let idAlphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)

    /// mistral-common's id form: 9 characters a-z, A-Z, 0-9.
    public static func newId() -> String {
        var g = SystemRandomNumberGenerator()
        return String(decoding: (0..<9).map { _ in idAlphabet[Int.random(in: 0..<idAlphabet.count, using: &g)] },
                      as: UTF8.self)
    }

    /// From generated token ids: the [TOOL_CALLS] control token starts each block (text that merely spells
    /// "[TOOL_CALLS]" does not). Throws `.invalidArgument` for ids outside the vocabulary, `.format` for
    /// malformed call JSON.
    public static func parse(tokens: [Int32], tokenizer: any Tokenizer) throws -> ParsedToolCalls {
        var blocks: [[Int32]] = [[]]
        let marker = tokenizer.tokenId(forText: ToolCallParser.marker).flatMap { tokenizer.isControl($0) ? $0 : nil }
        for t in tokens {
            if let marker, t == marker { blocks.append([]) } else { blocks[blocks.count - 1].append(t) }
        }
        let texts = try blocks.map { String(decoding: try tokenizer.detokenize($0, special: false), as: UTF8.self) }
        return try parse(blocks: texts)
    }

    /// From text in which "[TOOL_CALLS]" marks each block (generated with special tokens rendered as text).
    public static func parse(text: String) throws -> ParsedToolCalls {
        let bytes = Array(text.utf8), m = Array(ToolCallParser.marker.utf8)
        var blocks: [String] = []
        var start = 0, i = 0
        while i + m.count <= bytes.count {
            if bytes[i] == m[0] && Array(bytes[i..<i + m.count]) == m {
                blocks.append(String(decoding: bytes[start..<i], as: UTF8.self))
                i += m.count
                start = i
            } else {
                i += 1
            }
        }
        blocks.append(String(decoding: bytes[start...], as: UTF8.self))
        return try parse(blocks: blocks)
    }

    /// blocks[0] is the content; each later one a JSON list of calls (or a single call object).
    static func parse(blocks: [String]) throws -> ParsedToolCalls {
        var calls: [ToolCall] = []
        for (b, block) in blocks.enumerated().dropFirst() {
            let json: JSON
            do {
                json = try JSON.parse(block, what: "tool call block \(b)", preserveOrder: true)
            } catch let e as MistralError {
                throw MistralError.format("the model's tool calls are not valid JSON: \(e.message)")
            }
            let list = json.array ?? (json.object != nil ? [json] : nil)
            guard let list else { throw MistralError.format("tool call block \(b) is not a JSON list of calls") }
            for (k, c) in list.enumerated() {
                guard let name = c["name"]?.string, !name.isEmpty else {
                    throw MistralError.format("tool call \(k) of block \(b) has no 'name' string")
                }
                let arguments: String
                switch c["arguments"] {
                case .none, .some(.null): arguments = "{}"
                case .some(.string(let s)): arguments = s
                case .some(let v): arguments = PythonJSON.dumps(v)
                }
                let id = c["id"]?.string.flatMap { $0.isEmpty || $0 == "null" ? nil : $0 } ?? newId()
                calls.append(ToolCall(id: id, name: name, arguments: arguments))
            }
        }
        return ParsedToolCalls(content: blocks[0], calls: calls)
    }
}
