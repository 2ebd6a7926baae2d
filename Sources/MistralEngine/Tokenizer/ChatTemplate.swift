// Chat prompts as token ids. Message content is always tokenized as plain text (special-token texts in it stay
// text); control tokens come from the template only, so a user cannot inject "[INST]" or "<|im_end|>".

/// One message of a conversation. A user message may carry images, given by their token grids (rows x cols of
/// [IMG] tokens after the 2x2 merge): Mistral templates render them before the text, as mistral-common does for a
/// message whose chunks are images then text, each as [IMG] rows separated by [IMG_BREAK] and closed by [IMG_END].
/// An assistant message may carry tool calls; a "tool" message is a tool's result for the call `toolCallId`.
public struct ChatMessage: Sendable {
    /// "system", "user", "assistant" or "tool".
    public var role: String
    public var content: String
    public var images: [ImageTokenGrid]
    public var toolCalls: [ToolCall] = []
    public var toolCallId: String?
    /// The tool's name (tool messages; optional, checked but not rendered by V3/V7).
    public var name: String?

    public init(role: String, content: String, images: [ImageTokenGrid] = []) {
        self.role = role
        self.content = content
        self.images = images
    }
}

public enum ChatTemplate: Sendable {
    /// The name the C API and CLI use: "mistral-v7", "mistral-v3" or "chatml".
    public var name: String {
        switch self {
        case .mistralV7: return "mistral-v7"
        case .mistralV3: return "mistral-v3"
        case .chatML: return "chatml"
        }
    }

    public static let knownNames = "mistral-v7, mistral-v3, chatml"

    public init?(name: String) {
        switch name {
        case "mistral-v7", "mistral-v7-tekken": self = .mistralV7
        case "mistral-v3", "mistral-v3-tekken": self = .mistralV3
        case "chatml": self = .chatML
        default: return nil
        }
    }

    /// The template of a Tekken file, by its config.version, as mistral-common's MistralTokenizer.from_file picks
    /// the instruct tokenizer: v3 -> InstructTokenizerV3 (Mistral NeMo, Pixtral 12B: tekken_240718.json and
    /// tekken_240911.json as shipped), v7 -> InstructTokenizerV7 (Mistral Small 3.1). Later versions (v11+) render
    /// text as V7 does; their tool formats differ and are refused (see render).
    public static func forTekken(version: String) -> ChatTemplate {
        version == "v1" || version == "v2" || version == "v3" ? .mistralV3 : .mistralV7
    }

    /// Mistral recommends a low temperature for Mistral Small 3.1 (0.15); other chat models get a common default.
    public var recommendedTemperature: Float {
        switch self {
        case .mistralV7: return 0.15
        case .mistralV3: return 0.3
        case .chatML: return 0.7
        }
    }

    /// Tekken / Mistral Small 3.1: mistral-common's InstructTokenizerV7.
    case mistralV7
    /// Tekken v3 files (Mistral NeMo, Pixtral 12B): mistral-common's InstructTokenizerV3.
    case mistralV3
    /// `<|im_start|>role\n...<|im_end|>\n` (SmolLM2's GGUF template, without its default system prompt).
    case chatML

    /// Recognises a GGUF `tokenizer.chat_template` (Jinja source text): the Mistral V7 templates (those using both
    /// [SYSTEM_PROMPT] and [INST] ... [/INST]) and ChatML ones (<|im_start|> ... <|im_end|>); also llama.cpp's
    /// built-in template names "mistral-v7", "mistral-v7-tekken", "mistral-v3-tekken" and "chatml", and the V3
    /// Tekken template by llama.cpp's own test for it. Nil when unknown, including the SentencePiece Mistral
    /// formats (V1-V3 with spaces around [INST]).
    public static func detect(jinja: String) -> ChatTemplate? {
        var name = Substring(jinja)
        while let c = name.first, c.isWhitespace { name.removeFirst() }
        while let c = name.last, c.isWhitespace { name.removeLast() }
        switch name {  // llama.cpp's names; its "mistral-v3" is the SentencePiece form (spaces around [INST])
        case "mistral-v7", "mistral-v7-tekken": return .mistralV7
        case "mistral-v3-tekken": return .mistralV3
        case "chatml": return .chatML
        default: break
        }
        if jinja.contains("[SYSTEM_PROMPT]") && jinja.contains("[INST]") && jinja.contains("[/INST]") {
            return .mistralV7
        }
        // llama.cpp's test for its "mistral-v3-tekken" template: tools, and "[INST]" with no space around it
        if jinja.contains("[AVAILABLE_TOOLS]") && jinja.contains("\"[INST]\"") && !jinja.contains(" [INST]") {
            return .mistralV3
        }
        if jinja.contains("<|im_start|>") && jinja.contains("<|im_end|>") { return .chatML }
        return nil
    }

    /// Token ids for the conversation (no tools).
    public func render(_ messages: [ChatMessage], tokenizer: any Tokenizer, addGenerationPrompt: Bool) throws -> [Int32] {
        try render(ChatRequest(messages: messages), tokenizer: tokenizer, addGenerationPrompt: addGenerationPrompt)
    }

    /// Token ids for the request.
    ///
    /// `.mistralV7` / `.mistralV3` render exactly as mistral-common 1.13.1's MistralTokenizer.encode_chat_completion
    /// with an InstructTokenizerV7 / InstructTokenizerV3 (validation, normalization and encoding: see
    /// MistralInstruct.swift). With `addGenerationPrompt` the request is validated as mistral-common's test mode
    /// does (a conversation of several messages must not end with an assistant message; tool calls need ids);
    /// without it as its "agnostic" mode (it may end with anything, e.g. a complete assistant reply, whose calls
    /// may lack ids).
    ///
    /// `.chatML`: BOS when the tokenizer adds one by default, then `<|im_start|>{role}\n{content}<|im_end|>\n` per
    /// message and `<|im_start|>assistant\n` when `addGenerationPrompt`; no tools.
    ///
    /// Throws `.invalidArgument` for an invalid conversation or a tokenizer that lacks the template's tokens.
    public func render(_ request: ChatRequest, tokenizer: any Tokenizer, addGenerationPrompt: Bool) throws -> [Int32] {
        switch self {
        case .mistralV7: return try MistralInstruct(v3: false, tokenizer).render(request, addGenerationPrompt)
        case .mistralV3: return try MistralInstruct(v3: true, tokenizer).render(request, addGenerationPrompt)
        case .chatML:
            for (i, m) in request.messages.enumerated() where m.role != "system" && m.role != "user" && m.role != "assistant" {
                throw MistralError.invalid("message \(i) has role '\(m.role)'; the ChatML roles are system, user and assistant")
            }
            if !request.tools.isEmpty || request.messages.contains(where: { !$0.toolCalls.isEmpty }) {
                throw MistralError.unsupported("the ChatML template has no tool format")
            }
            return try ChatTemplate.renderChatML(request.messages, tokenizer, addGenerationPrompt)
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
