// Chat prompts as token ids. Message content is always tokenized as plain text (special-token texts in it stay
// text); control tokens come from the template only, so a user cannot inject "[INST]" or "<|im_end|>".

/// One message of a conversation. A user message may carry images, given by their token grids (rows x cols of
/// [IMG] tokens after the 2x2 merge): V7 renders them before the text, as mistral-common does for a message whose
/// chunks are images then text, each as [IMG] rows separated by [IMG_BREAK] and closed by [IMG_END].
public struct ChatMessage: Sendable {
    /// "system", "user" or "assistant".
    public var role: String
    public var content: String
    public var images: [ImageTokenGrid]

    public init(role: String, content: String, images: [ImageTokenGrid] = []) {
        self.role = role
        self.content = content
        self.images = images
    }
}

public enum ChatTemplate: Sendable {
    /// The name the C API and CLI use: "mistral-v7" or "chatml".
    public var name: String {
        switch self {
        case .mistralV7: return "mistral-v7"
        case .chatML: return "chatml"
        }
    }

    public init?(name: String) {
        switch name {
        case "mistral-v7", "mistral-v7-tekken": self = .mistralV7
        case "chatml": self = .chatML
        default: return nil
        }
    }

    /// Mistral recommends a low temperature for Mistral Small 3.1 (0.15); other chat models get a common default.
    public var recommendedTemperature: Float {
        switch self {
        case .mistralV7: return 0.15
        case .chatML: return 0.7
        }
    }

    /// Tekken / Mistral Small 3.1: mistral-common's InstructTokenizerV7.
    case mistralV7
    /// `<|im_start|>role\n...<|im_end|>\n` (SmolLM2's GGUF template, without its default system prompt).
    case chatML

    /// Recognises a GGUF `tokenizer.chat_template` (Jinja source text): the Mistral V7 templates (those using both
    /// [SYSTEM_PROMPT] and [INST] ... [/INST]) and ChatML ones (<|im_start|> ... <|im_end|>); also llama.cpp's
    /// built-in template names "mistral-v7", "mistral-v7-tekken" and "chatml". Nil when unknown, including the
    /// older Mistral formats (V1-V3, [INST] without [SYSTEM_PROMPT]), which place the system prompt differently.
    public static func detect(jinja: String) -> ChatTemplate? {
        var name = Substring(jinja)
        while let c = name.first, c.isWhitespace { name.removeFirst() }
        while let c = name.last, c.isWhitespace { name.removeLast() }
        switch name {
        case "mistral-v7", "mistral-v7-tekken": return .mistralV7
        case "chatml": return .chatML
        default: break
        }
        if jinja.contains("[SYSTEM_PROMPT]") && jinja.contains("[INST]") && jinja.contains("[/INST]") {
            return .mistralV7
        }
        if jinja.contains("<|im_start|>") && jinja.contains("<|im_end|>") { return .chatML }
        return nil
    }

    /// Token ids for the conversation.
    ///
    /// `.mistralV7` renders exactly as mistral-common 1.13.1's MistralTokenizer.encode_chat_completion with an
    /// InstructTokenizerV7 (text only, no tools):
    /// - validation: at least one message; roles system/user/assistant; a single message must be system or user;
    ///   a system message cannot follow an assistant message; assistant messages need content; with
    ///   `addGenerationPrompt` (mistral-common's serving/test mode) a conversation of several messages must not end
    ///   with an assistant message (it ends with the user's turn, or a system message); without it (its "agnostic"
    ///   mode) it may end with anything, e.g. a complete assistant reply;
    /// - normalization: consecutive user messages, and consecutive assistant messages, become one, their non-empty
    ///   contents joined by "\n\n"; consecutive system messages stay separate;
    /// - rendering: BOS, then per message `[SYSTEM_PROMPT]text[/SYSTEM_PROMPT]`, `[INST]text[/INST]` or
    ///   `text</s>` (assistant text with trailing spaces removed). The system prompt stays where it is in the
    ///   conversation (V7 does not move it into a user message).
    ///
    /// `.chatML`: BOS when the tokenizer adds one by default, then `<|im_start|>{role}\n{content}<|im_end|>\n` per
    /// message and `<|im_start|>assistant\n` when `addGenerationPrompt`.
    ///
    /// Throws `.invalidArgument` for an invalid conversation or a tokenizer that lacks the template's tokens.
    public func render(_ messages: [ChatMessage], tokenizer: any Tokenizer, addGenerationPrompt: Bool) throws -> [Int32] {
        for (i, m) in messages.enumerated() where m.role != "system" && m.role != "user" && m.role != "assistant" {
            throw MistralError.invalid("message \(i) has role '\(m.role)'; the roles are system, user and assistant")
        }
        switch self {
        case .mistralV7: return try ChatTemplate.renderV7(messages, tokenizer, addGenerationPrompt)
        case .chatML: return try ChatTemplate.renderChatML(messages, tokenizer, addGenerationPrompt)
        }
    }

    static func token(_ text: String, _ tokenizer: any Tokenizer, _ template: String) throws -> Int32 {
        guard let id = tokenizer.tokenId(forText: text) else {
            throw MistralError.invalid("the \(template) chat template needs a '\(text)' token, which this tokenizer lacks")
        }
        return id
    }

    /// A message's content as tokens: plain text, special-token texts not parsed. (Image parts will go here.)
    static func contentTokens(_ text: String, _ tokenizer: any Tokenizer) -> [Int32] {
        tokenizer.tokenize(text, addBos: false, parseSpecial: false)
    }

    // MARK: Mistral V7

    /// [IMG] x cols per row, rows separated by [IMG_BREAK], the last closed by [IMG_END].
    static func imageTokens(_ grid: ImageTokenGrid, _ tokenizer: any Tokenizer) throws -> [Int32] {
        let name = "Mistral V7 image"
        let img = try token("[IMG]", tokenizer, name), brk = try token("[IMG_BREAK]", tokenizer, name)
        let end = try token("[IMG_END]", tokenizer, name)
        var out: [Int32] = []
        out.reserveCapacity(grid.rows * (grid.cols + 1))
        for r in 0..<grid.rows {
            out.append(contentsOf: repeatElement(img, count: grid.cols))
            out.append(r == grid.rows - 1 ? end : brk)
        }
        return out
    }

    static func validateV7(_ messages: [ChatMessage], _ addGenerationPrompt: Bool) throws {
        guard let first = messages.first, let last = messages.last else {
            throw MistralError.invalid("a conversation needs at least one message")
        }
        if messages.count == 1 && first.role == "assistant" {
            throw MistralError.invalid("a conversation must start with a user or system message, not a lone assistant message")
        }
        if addGenerationPrompt && messages.count > 1 && last.role == "assistant" {
            throw MistralError.invalid(
                "the last message must be a user (or system) message when a generation prompt is wanted, not an assistant message")
        }
        for i in 1..<max(messages.count, 1) where messages[i].role == "system" && messages[i - 1].role == "assistant" {
            throw MistralError.invalid("message \(i): a system message cannot follow an assistant message")
        }
        for (i, m) in messages.enumerated() where m.role != "user" && !m.images.isEmpty {
            throw MistralError.invalid("message \(i): only user messages can carry images")
        }
        for (i, m) in messages.enumerated() where m.role == "assistant" && m.content.isEmpty {
            throw MistralError.invalid("message \(i): an assistant message needs content")
        }
    }

    static func renderV7(_ messages: [ChatMessage], _ tokenizer: any Tokenizer, _ addGenerationPrompt: Bool) throws -> [Int32] {
        try validateV7(messages, addGenerationPrompt)
        let name = "Mistral V7"
        guard let bos = tokenizer.bosId else { throw MistralError.invalid("the \(name) chat template needs a BOS token") }
        guard let eos = tokenizer.eosId else { throw MistralError.invalid("the \(name) chat template needs an EOS token") }
        let beginInst = try token("[INST]", tokenizer, name)
        let endInst = try token("[/INST]", tokenizer, name)
        let beginSystem = try token("[SYSTEM_PROMPT]", tokenizer, name)
        let endSystem = try token("[/SYSTEM_PROMPT]", tokenizer, name)

        // Normalize: merge runs of user messages and runs of assistant messages; system messages stay separate.
        var merged: [ChatMessage] = []
        for m in messages {
            if m.role != "system", let prev = merged.last, prev.role == m.role {
                merged[merged.count - 1].images += m.images
                if !m.content.isEmpty {
                    merged[merged.count - 1].content = prev.content.isEmpty ? m.content : prev.content + "\n\n" + m.content
                }
            } else {
                merged.append(m)
            }
        }

        var out: [Int32] = [bos]
        for m in merged {
            switch m.role {
            case "system":
                out.append(beginSystem)
                out.append(contentsOf: contentTokens(m.content, tokenizer))
                out.append(endSystem)
            case "user":
                out.append(beginInst)
                for grid in m.images { out.append(contentsOf: try imageTokens(grid, tokenizer)) }
                out.append(contentsOf: contentTokens(m.content, tokenizer))
                out.append(endInst)
            default:  // assistant
                var text = Substring(m.content)
                while text.last == " " { text.removeLast() }
                out.append(contentsOf: contentTokens(String(text), tokenizer))
                out.append(eos)
            }
        }
        return out
    }

    // MARK: ChatML

    static func renderChatML(_ messages: [ChatMessage], _ tokenizer: any Tokenizer, _ addGenerationPrompt: Bool) throws -> [Int32] {
        let name = "ChatML"
        if messages.contains(where: { !$0.images.isEmpty }) {
            throw MistralError.unsupported("the ChatML template has no image tokens")
        }
        let start = try token("<|im_start|>", tokenizer, name)
        let end = try token("<|im_end|>", tokenizer, name)
        let newline = tokenizer.tokenize("\n", addBos: false, parseSpecial: false)
        var out: [Int32] = []
        if tokenizer.addBosByDefault, let bos = tokenizer.bosId { out.append(bos) }
        for m in messages {
            out.append(start)
            // role and content as one text, as llama.cpp tokenizes the rendered template (white space at the start
            // of the content can merge with the newline)
            out.append(contentsOf: contentTokens(m.role + "\n" + m.content, tokenizer))
            out.append(end)
            out.append(contentsOf: newline)
        }
        if addGenerationPrompt {
            out.append(start)
            out.append(contentsOf: tokenizer.tokenize("assistant\n", addBos: false, parseSpecial: false))
        }
        return out
    }
}
