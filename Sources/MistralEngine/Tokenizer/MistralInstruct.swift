// Mistral's instruct formats V3 and V7, as mistral-common 1.13.1 renders a ChatCompletionRequest: its validator
// (MistralRequestValidatorV3 / V5, test or agnostic mode), its normalizer (InstructRequestNormalizer /
// InstructRequestNormalizerV7) and its InstructTokenizerV3 / V7. JSON inside the prompt (tool list, tool calls,
// V3 tool results) is written as Python's json.dumps(..., ensure_ascii=False) writes it (PythonJSON); every text
// is tokenized as plain text, so no message, tool schema or tool result can produce a control token.

struct MistralInstruct {
    let v3: Bool
    let tokenizer: any Tokenizer
    var name: String { v3 ? "Mistral V3" : "Mistral V7" }

    init(v3: Bool, _ tokenizer: any Tokenizer) {
        self.v3 = v3
        self.tokenizer = tokenizer
    }

    func token(_ text: String) throws -> Int32 { try ChatTemplate.token(text, tokenizer, name) }
    func text(_ s: String) -> [Int32] { ChatTemplate.contentTokens(s, tokenizer) }

    // MARK: validation (before normalization, on the messages as given)

    static func isCallId(_ id: String) -> Bool {
        id.utf8.count == 9 && id.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A)
        }
    }

    func validate(_ r: ChatRequest, _ testMode: Bool) throws {
        let ms = r.messages
        guard let first = ms.first, let last = ms.last else {
            throw MistralError.invalid("a conversation needs at least one message")
        }
        for (i, m) in ms.enumerated() where !["system", "user", "assistant", "tool"].contains(m.role) {
            throw MistralError.invalid("message \(i) has role '\(m.role)'; the roles are system, user, assistant and tool")
        }
        if ms.count == 1 && first.role != "user" && first.role != "system" {
            throw MistralError.invalid("a conversation must start with a user or system message, not a lone \(first.role) message")
        }
        if testMode && ms.count > 1 && last.role == "assistant" {
            throw MistralError.invalid(
                "the last message must be a user, tool (or system) message when a generation prompt is wanted, not an assistant message")
        }
        let follows: [String: Set<String>] = [
            "system": ["user", "assistant", "system"], "user": ["assistant", "system", "user"],
            "assistant": ["assistant", "user", "tool"], "tool": ["assistant", "tool", "user"],
        ]
        for i in 1..<ms.count where !(follows[ms[i - 1].role]?.contains(ms[i].role) ?? false) {
            throw MistralError.invalid("message \(i): a \(ms[i].role) message cannot follow a \(ms[i - 1].role) message")
        }
        // each assistant turn's calls are answered by as many tool messages before the next assistant message
        var expected = 0
        for i in 1..<ms.count {
            if ms[i].role == "tool" { expected -= 1 }
            if ms[i].role == "assistant" {
                guard expected == 0 else {
                    throw MistralError.invalid("message \(i): the previous tool calls and tool results do not match in number")
                }
                expected = ms[i].toolCalls.count
            }
        }
        for (i, m) in ms.enumerated() {
            if m.role != "user" && !m.images.isEmpty {
                throw MistralError.invalid("message \(i): only user messages can carry images")
            }
            if m.role != "assistant" && !m.toolCalls.isEmpty {
                throw MistralError.invalid("message \(i): only assistant messages can carry tool calls")
            }
            switch m.role {
            case "assistant":
                if v3 && !m.content.isEmpty == !m.toolCalls.isEmpty {
                    throw MistralError.invalid("message \(i): a V3 assistant message has either content or tool calls, not both or neither")
                }
                if m.content.isEmpty && m.toolCalls.isEmpty {
                    throw MistralError.invalid("message \(i): an assistant message needs content or tool calls")
                }
                for (k, c) in m.toolCalls.enumerated() {
                    if let id = c.id, id != "null" {
                        guard MistralInstruct.isCallId(id) else {
                            throw MistralError.invalid("message \(i) tool call \(k): id '\(id)' must be 9 characters a-z, A-Z, 0-9")
                        }
                    } else if testMode || i != ms.count - 1 {
                        throw MistralError.invalid("message \(i) tool call \(k) needs an id (only a final assistant message without a generation prompt may omit it)")
                    }
                    try ChatRequest.checkName(c.name, "message \(i) tool call \(k) name")
                }
            case "tool":
                if let n = m.name { try ChatRequest.checkName(n, "message \(i) name") }
                guard let id = m.toolCallId else { throw MistralError.invalid("message \(i): a tool message needs a tool_call_id") }
                guard MistralInstruct.isCallId(id) else {
                    throw MistralError.invalid("message \(i): tool_call_id '\(id)' must be 9 characters a-z, A-Z, 0-9")
                }
            default: break
            }
        }
    }

    // MARK: normalization

    /// mistral-common's _normalize_json_content: "" -> "{}", JSON re-serialized, anything else as it is.
    static func normalizedJSON(_ s: String) -> String {
        s.isEmpty ? "{}" : PythonJSON.normalize(s) ?? s
    }

    /// json.loads(s) when it parses, else the string itself (mistral-common's _parse_json_content).
    static func jsonOrString(_ s: String) -> JSON {
        (try? JSON.parse(s, what: "JSON text", preserveOrder: true)) ?? .string(s)
    }

    /// Runs of same-role messages become one (user and assistant contents joined by "\n\n", empty ones skipped;
    /// calls concatenated with their arguments normalized); tool messages stay separate; V7 keeps each system
    /// message in place, V3 drops them (their text becomes `systemPrompt`) and starts with a user message.
    func normalize(_ ms: [ChatMessage]) -> (messages: [ChatMessage], systemPrompt: String?) {
        var out: [ChatMessage] = []
        for m in ms {
            if v3 && m.role == "system" { continue }
            var m = m
            for k in m.toolCalls.indices { m.toolCalls[k].arguments = MistralInstruct.normalizedJSON(m.toolCalls[k].arguments) }
            if v3 && m.role == "tool" { m.content = MistralInstruct.normalizedJSON(m.content) }
            if (m.role == "user" || m.role == "assistant"), let prev = out.last, prev.role == m.role {
                var merged = prev
                merged.images += m.images
                merged.toolCalls += m.toolCalls
                if !m.content.isEmpty { merged.content = prev.content.isEmpty ? m.content : prev.content + "\n\n" + m.content }
                out[out.count - 1] = merged
            } else {
                out.append(m)
            }
        }
        guard v3 else { return (out, nil) }
        if out.first?.role != "user" { out.insert(ChatMessage(role: "user", content: ""), at: 0) }
        let prompts = ms.filter { $0.role == "system" && !$0.content.isEmpty }.map { $0.content }
        return (out, prompts.isEmpty ? nil : prompts.joined(separator: "\n\n"))
    }

    // MARK: encoding

    /// [IMG] x cols per row, rows separated by [IMG_BREAK], the last closed by [IMG_END].
    func imageTokens(_ grid: ImageTokenGrid) throws -> [Int32] {
        let img = try token("[IMG]"), brk = try token("[IMG_BREAK]"), end = try token("[IMG_END]")
        var out: [Int32] = []
        out.reserveCapacity(grid.rows * (grid.cols + 1))
        for r in 0..<grid.rows {
            out.append(contentsOf: repeatElement(img, count: grid.cols))
            out.append(r == grid.rows - 1 ? end : brk)
        }
        return out
    }

    /// [{"name", "arguments", "id"}] as _prepare_function_call writes each call (no "id" when it has none).
    static func callsJSON(_ calls: [ToolCall]) -> String {
        PythonJSON.dumps(.array(calls.map { c in
            var o: [String: JSON] = ["name": .string(c.name), "arguments": jsonOrString(c.arguments)]
            var keys = ["name", "arguments"]
            if let id = c.id, id != "null" {
                o["id"] = .string(id)
                keys.append("id")
            }
            return .object(o, keys: keys)
        }))
    }

    func render(_ request: ChatRequest, _ addGenerationPrompt: Bool) throws -> [Int32] {
        if let tekken = tokenizer as? TekkenTokenizer, ["v11", "v13", "v15"].contains(tekken.version),
           !request.tools.isEmpty || request.messages.contains(where: { !$0.toolCalls.isEmpty || $0.role == "tool" }) {
            throw MistralError.unsupported("tool calling for \(tekken.version) Tekken files is not implemented (V3 and V7 are); render the prompt yourself")
        }
        try validate(request, addGenerationPrompt)
        guard let bos = tokenizer.bosId else { throw MistralError.invalid("the \(name) chat template needs a BOS token") }
        guard let eos = tokenizer.eosId else { throw MistralError.invalid("the \(name) chat template needs an EOS token") }
        let beginInst = try token("[INST]"), endInst = try token("[/INST]")
        let (messages, systemPrompt) = normalize(request.messages)
        let lastUser = messages.lastIndex { $0.role == "user" }

        var out: [Int32] = [bos]
        for (i, m) in messages.enumerated() {
            switch m.role {
            case "system":
                out.append(try token("[SYSTEM_PROMPT]"))
                out += text(m.content)
                out.append(try token("[/SYSTEM_PROMPT]"))
            case "user":
                if i == lastUser && !request.tools.isEmpty {
                    out.append(try token("[AVAILABLE_TOOLS]"))
                    out += text(PythonJSON.dumps(.array(request.tools.map { $0.dumped })))
                    out.append(try token("[/AVAILABLE_TOOLS]"))
                }
                out.append(beginInst)
                let prompt = i == lastUser ? systemPrompt : nil
                if m.images.isEmpty {
                    // V3 folds the system prompt into the last user message's text
                    out += text(prompt.map { $0 + "\n\n" + m.content } ?? m.content)
                } else {
                    // as chunks: the prompt, then images, then the text, each tokenized on its own
                    if let prompt { out += text(prompt + "\n\n") }
                    for grid in m.images { out += try imageTokens(grid) }
                    out += text(m.content)
                }
                out.append(endInst)
            case "tool":
                out.append(try token("[TOOL_RESULTS]"))
                if v3 {
                    let result = JSON.object(["content": MistralInstruct.jsonOrString(m.content),
                                              "call_id": .string(m.toolCallId ?? "")], keys: ["content", "call_id"])
                    out += text(PythonJSON.dumps(result))
                } else {
                    out += text(m.toolCallId ?? "")
                    out.append(try token("[TOOL_CONTENT]"))
                    out += text(m.content)
                }
                out.append(try token("[/TOOL_RESULTS]"))
            default:  // assistant: its text (trailing spaces removed), then its calls, then EOS
                if v3 && !m.content.isEmpty && !m.toolCalls.isEmpty {
                    throw MistralError.invalid("message \(i): after merging, a V3 assistant turn has both content and tool calls")
                }
                if !m.content.isEmpty {
                    var t = Substring(m.content)
                    while t.last == " " { t.removeLast() }
                    out += text(String(t))
                }
                if !m.toolCalls.isEmpty {
                    out.append(try token("[TOOL_CALLS]"))
                    out += text(MistralInstruct.callsJSON(m.toolCalls))
                }
                out.append(eos)
            }
        }
        return out
    }
}
