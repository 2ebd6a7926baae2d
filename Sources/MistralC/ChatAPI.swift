// mistral_model_chat_template, mistral_chat_tokenize and the JSON request forms (tools).
import CMistralABI
import Glibc
import MistralEngine

// Process-lifetime C strings: written once, never mutated or freed.
nonisolated(unsafe) private let templateNames: [String: UnsafePointer<CChar>] = [
    "mistral-v7": UnsafePointer(strdup("mistral-v7")!), "mistral-v3": UnsafePointer(strdup("mistral-v3")!),
    "chatml": UnsafePointer(strdup("chatml")!),
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

/// The template to use: `name` when given, else the model's own.
func chatTemplate(_ m: Model, _ templateName: UnsafePointer<CChar>?) throws -> ChatTemplate {
    if let templateName {
        let name = try utf8String(templateName, "template_name")
        guard let t = ChatTemplate(name: name) else {
            throw MistralError(.unsupported, "unknown chat template '\(name)' (known: \(ChatTemplate.knownNames))")
        }
        return t
    }
    guard let t = m.chatTemplate else {
        throw MistralError(.unsupported, "the model's chat template is not recognised; pass a template name or render the prompt yourself and tokenize it with MISTRAL_TOKENIZE_PARSE_SPECIAL")
    }
    return t
}

/// Converts C messages; images become their token grids, and are also returned in prompt order.
func chatMessages(_ m: Model, _ messages: UnsafePointer<mistral_chat_message>?, _ n: Int) throws
    -> ([ChatMessage], [ImageHandle]) {
    guard n > 0, n <= 1 << 20 else { throw invalid("n_messages must be in 1...1048576") }
    let list = try require(messages, "messages")
    var chat: [ChatMessage] = []
    var images: [ImageHandle] = []
    for i in 0..<n {
        let msg = list[i]
        guard msg.n_images <= 1024 else { throw invalid("messages[\(i)].n_images is out of range") }
        var grids: [ImageTokenGrid] = []
        if msg.n_images > 0 {
            let ptrs = try require(msg.images, "messages[\(i)].images")
            for k in 0..<msg.n_images {
                let img = try require(imageHandle(ptrs[k]), "messages[\(i)].images[\(k)]")
                grids.append(try m.imageGrid(width: img.image.width, height: img.image.height))
                images.append(img)
            }
        }
        chat.append(ChatMessage(role: try utf8String(msg.role, "messages[\(i)].role"),
                                content: try utf8String(msg.content, "messages[\(i)].content"), images: grids))
    }
    return (chat, images)
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
        let template = try chatTemplate(m, templateName)
        let (chat, _) = try chatMessages(m, messages, nMessages)
        let ids = try template.render(chat, tokenizer: m.tokenizer,
                                      addGenerationPrompt: flags & MISTRAL_CHAT_ADD_GENERATION_PROMPT != 0)
        try deliver(ids, to: tokens, capacity: capacity, count: nTokens, what: "tokens")
    }
}

/// A JSON chat request plus its images (handles, in the order of the request's image parts).
func chatRequest(_ m: Model, _ json: UnsafePointer<CChar>?, _ len: Int, _ images: UnsafePointer<OpaquePointer?>?,
                 _ nImages: Int) throws -> (ChatRequest, [ImageHandle]) {
    guard len >= 0, len <= maxTextBytes else { throw invalid("len is out of range") }  // a negative size_t
    guard nImages >= 0, nImages <= 1 << 16 else { throw invalid("n_images is out of range") }
    let start = len > 0 ? UnsafeRawPointer(try require(json, "request_json")) : nil
    let bytes = UnsafeBufferPointer(start: start?.assumingMemoryBound(to: UInt8.self), count: len)
    guard let text = String(validating: bytes, as: UTF8.self) else { throw invalid("request_json is not valid UTF-8") }
    var handles: [ImageHandle] = []
    var grids: [ImageTokenGrid] = []
    if nImages > 0 {
        let list = try require(images, "images")
        for k in 0..<nImages {
            let img = try require(imageHandle(list[k]), "images[\(k)]")
            grids.append(try m.imageGrid(width: img.image.width, height: img.image.height))
            handles.append(img)
        }
    }
    return (try ChatRequest.parse(text, imageGrids: grids), handles)
}

@_cdecl("mistral_chat_tokenize_json")
public func mistral_chat_tokenize_json(_ model: OpaquePointer?, _ templateName: UnsafePointer<CChar>?,
                                       _ json: UnsafePointer<CChar>?, _ len: Int,
                                       _ images: UnsafePointer<OpaquePointer?>?, _ nImages: Int, _ flags: UInt32,
                                       _ tokens: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                       _ nTokens: UnsafeMutablePointer<Int>?) -> mistral_status {
    guarded {
        let m = try require(modelHandle(model), "model").model
        let nTokens = try require(nTokens, "n_tokens")
        nTokens.pointee = 0
        let template = try chatTemplate(m, templateName)
        let (request, _) = try chatRequest(m, json, len, images, nImages)
        let ids = try template.render(request, tokenizer: m.tokenizer,
                                      addGenerationPrompt: flags & MISTRAL_CHAT_ADD_GENERATION_PROMPT != 0)
        try deliver(ids, to: tokens, capacity: capacity, count: nTokens, what: "tokens")
    }
}

/// Renders with the generation prompt, encodes the images and brings the session to exactly that context.
func evalChat(_ s: Session, _ template: ChatTemplate, _ request: ChatRequest, _ images: [ImageHandle]) throws {
    let m = s.model
    let ids = try template.render(request, tokenizer: m.tokenizer, addGenerationPrompt: true)
    var rows: [Float] = []
    var tags: [UInt64] = []
    if !images.isEmpty {
        rows = try m.embedImages(images.map { $0.image }, threads: s.threadCount)
        for img in images {
            let grid = try m.imageGrid(width: img.image.width, height: img.image.height)
            for r in 0..<grid.count { tags.append(img.contentHash &+ UInt64(r)) }
        }
    }
    try rows.withUnsafeBufferPointer {
        try s.evalPrompt(ids, imageToken: images.isEmpty ? nil : m.imageTokenId, imageRows: $0.baseAddress,
                         imageTags: tags, reusePrefix: true)
    }
}

@_cdecl("mistral_session_eval_chat_json")
public func mistral_session_eval_chat_json(_ session: OpaquePointer?, _ templateName: UnsafePointer<CChar>?,
                                           _ json: UnsafePointer<CChar>?, _ len: Int,
                                           _ images: UnsafePointer<OpaquePointer?>?, _ nImages: Int) -> mistral_status {
    guarded {
        let s = try require(sessionHandle(session), "session").session
        let template = try chatTemplate(s.model, templateName)
        let (request, handles) = try chatRequest(s.model, json, len, images, nImages)
        try evalChat(s, template, request, handles)
    }
}

@_cdecl("mistral_session_eval_chat")
public func mistral_session_eval_chat(_ session: OpaquePointer?, _ templateName: UnsafePointer<CChar>?,
                                      _ messages: UnsafePointer<mistral_chat_message>?, _ nMessages: Int) -> mistral_status {
    guarded {
        let s = try require(sessionHandle(session), "session").session
        let m = s.model
        let template = try chatTemplate(m, templateName)
        let (chat, images) = try chatMessages(m, messages, nMessages)
        try evalChat(s, template, ChatRequest(messages: chat), images)
    }
}
