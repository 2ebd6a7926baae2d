// mistral_model_chat_template and mistral_chat_tokenize.
import CMistralABI
import Glibc
import MistralEngine

// Process-lifetime C strings: written once, never mutated or freed.
nonisolated(unsafe) private let templateNames: [String: UnsafePointer<CChar>] = [
    "mistral-v7": UnsafePointer(strdup("mistral-v7")!), "chatml": UnsafePointer(strdup("chatml")!),
]

@_cdecl("mistral_model_chat_template")
public func mistral_model_chat_template(_ model: OpaquePointer?) -> UnsafePointer<CChar>? {
    guard let t = modelHandle(model)?.model.chatTemplate else { return nil }
    return templateNames[t.name]
}

func utf8String(_ p: UnsafePointer<CChar>?, _ what: String) throws -> String {
    guard let s = String(validatingCString: try require(p, what)) else { throw invalid("\(what) is not valid UTF-8") }
    return s
}

@_cdecl("mistral_chat_tokenize")
public func mistral_chat_tokenize(_ model: OpaquePointer?, _ templateName: UnsafePointer<CChar>?,
                                  _ messages: UnsafePointer<mistral_chat_message>?, _ nMessages: Int,
                                  _ flags: UInt32, _ tokens: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                  _ nTokens: UnsafeMutablePointer<Int>?) -> mistral_status {
    guarded {
        let m = try require(modelHandle(model), "model").model
        let nTokens = try require(nTokens, "n_tokens")
        nTokens.pointee = 0
        guard nMessages > 0, nMessages <= 1 << 20 else { throw invalid("n_messages must be in 1...1048576") }
        let template: ChatTemplate
        if let templateName {
            let name = try utf8String(templateName, "template_name")
            guard let t = ChatTemplate(name: name) else {
                throw MistralError(.unsupported, "unknown chat template '\(name)' (known: mistral-v7, chatml)")
            }
            template = t
        } else {
            guard let t = m.chatTemplate else {
                throw MistralError(.unsupported, "the model's chat template is not recognised; pass a template name or render the prompt yourself and tokenize it with MISTRAL_TOKENIZE_PARSE_SPECIAL")
            }
            template = t
        }
        let list = try require(messages, "messages")
        var chat: [ChatMessage] = []
        for i in 0..<nMessages {
            let msg = list[i]
            guard msg.n_images == 0 else {
                throw MistralError(.unsupported, "message \(i): images in chat messages are not supported by this version")
            }
            chat.append(ChatMessage(role: try utf8String(msg.role, "messages[\(i)].role"),
                                    content: try utf8String(msg.content, "messages[\(i)].content")))
        }
        let ids = try template.render(chat, tokenizer: m.tokenizer,
                                      addGenerationPrompt: flags & MISTRAL_CHAT_ADD_GENERATION_PROMPT != 0)
        try deliver(ids, to: tokens, capacity: capacity, count: nTokens, what: "tokens")
    }
}
