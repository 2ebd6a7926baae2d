// A chat request in OpenAI's shape (messages with tool calls and tool results, plus the tool list), read from JSON
// text: the form the C API's *_json entry points and the Python binding pass, so new fields never change the ABI.

/// One call the assistant made: the function name, its arguments as JSON text, and its id (nil when absent).
public struct ToolCall: Sendable, Equatable {
    public var id: String?
    public var name: String
    public var arguments: String

    public init(id: String?, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// A tool the model may call: OpenAI's {"type": "function", "function": {"name", "description", "parameters"}}.
public struct ChatTool: Sendable, Equatable {
    public var name: String
    public var description: String
    /// The JSON schema of the arguments, parsed with key order kept (it is re-serialized for the prompt).
    public var parameters: JSON

    public init(name: String, description: String = "", parameters: JSON) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }

    /// mistral-common's `tool.model_dump(exclude={"function": {"strict": True}})`: pydantic's field order.
    var dumped: JSON {
        .object(["type": .string("function"),
                 "function": .object(["name": .string(name), "description": .string(description),
                                      "parameters": parameters], keys: ["name", "description", "parameters"])],
                keys: ["type", "function"])
    }
}

public struct ChatRequest: Sendable {
    public var messages: [ChatMessage]
    public var tools: [ChatTool]

    public init(messages: [ChatMessage], tools: [ChatTool] = []) {
        self.messages = messages
        self.tools = tools
    }

    /// Reads `{"messages": [...], "tools": [...]}` (other top-level keys, e.g. "model", are ignored).
    /// Message content is a string, null, or a list of parts {"type": "text", "text": ...} and {"type": "image"};
    /// each image part takes the next of `imageGrids` (the caller's images, in order), all of which must be used.
    /// Throws `.invalidArgument` naming the first offending field.
    public static func parse(_ json: String, imageGrids: [ImageTokenGrid] = []) throws -> ChatRequest {
        let root: JSON
        do {
            root = try JSON.parse(json, what: "chat request", preserveOrder: true)
        } catch let e as MistralError {
            throw MistralError.invalid(e.message)
        }
        return try parse(root, imageGrids: imageGrids)
    }

    /// The same from a tree parsed with `preserveOrder` (else tool schemas lose their key order).
    public static func parse(_ root: JSON, imageGrids: [ImageTokenGrid] = []) throws -> ChatRequest {
        guard root.object != nil else { throw MistralError.invalid("the chat request must be a JSON object") }
        guard let list = root["messages"]?.array else {
            throw MistralError.invalid("the chat request needs a 'messages' array")
        }
        var nextImage = 0
        var messages: [ChatMessage] = []
        for (i, m) in list.enumerated() {
            messages.append(try message(m, "messages[\(i)]", imageGrids, &nextImage))
        }
        guard nextImage == imageGrids.count else {
            throw MistralError.invalid("\(imageGrids.count) images were passed but the messages have \(nextImage) image parts")
        }
        var tools: [ChatTool] = []
        if let t = root["tools"], !t.isNull {
            guard let array = t.array else { throw MistralError.invalid("'tools' must be an array") }
            for (i, tool) in array.enumerated() { tools.append(try ChatRequest.tool(tool, "tools[\(i)]")) }
        }
        return ChatRequest(messages: messages, tools: tools)
    }

    static func string(_ v: JSON?, _ what: String, optional: Bool = false) throws -> String? {
        guard let v, !v.isNull else {
            if optional { return nil }
            throw MistralError.invalid("\(what) is missing")
        }
        guard let s = v.string else { throw MistralError.invalid("\(what) must be a string") }
        return s
    }

    static func tool(_ t: JSON, _ what: String) throws -> ChatTool {
        guard t.object != nil else { throw MistralError.invalid("\(what) must be an object") }
        if let type = try string(t["type"], "\(what).type", optional: true), type != "function" {
            throw MistralError.invalid("\(what).type is '\(type)'; only 'function' tools exist")
        }
        guard let f = t["function"], f.object != nil else { throw MistralError.invalid("\(what).function must be an object") }
        let name = try string(f["name"], "\(what).function.name") ?? ""
        try ChatRequest.checkName(name, "\(what).function.name")
        let description = try string(f["description"], "\(what).function.description", optional: true) ?? ""
        guard let parameters = f["parameters"], parameters.object != nil else {
            throw MistralError.invalid("\(what).function.parameters must be a JSON schema object")
        }
        return ChatTool(name: name, description: description, parameters: parameters)
    }

    /// mistral-common's rule for function and tool names: ^[a-zA-Z0-9_-]{1,64}$.
    static func checkName(_ name: String, _ what: String) throws {
        let ok = !name.isEmpty && name.utf8.count <= 64 && name.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2D
        }
        guard ok else {
            throw MistralError.invalid("\(what) '\(name)' must be 1 to 64 characters a-z, A-Z, 0-9, '_' or '-'")
        }
    }

    static func message(_ m: JSON, _ what: String, _ grids: [ImageTokenGrid], _ nextImage: inout Int) throws -> ChatMessage {
        guard m.object != nil else { throw MistralError.invalid("\(what) must be an object") }
        let role = try string(m["role"], "\(what).role") ?? ""
        var msg = ChatMessage(role: role, content: "")
        switch m["content"] {
        case .none, .some(.null): break
        case .some(.string(let s)): msg.content = s
        case .some(.array(let parts)):
            // text parts are joined as mistral-common joins a message's text chunks; images render before the text,
            // so an image may follow text only as the single last part (which mistral-common moves first)
            var texts: [String] = []
            var sawText = false
            for (k, part) in parts.enumerated() {
                let pw = "\(what).content[\(k)]"
                guard part.object != nil else { throw MistralError.invalid("\(pw) must be an object") }
                switch try string(part["type"], "\(pw).type") ?? "" {
                case "text":
                    let t = try string(part["text"], "\(pw).text") ?? ""
                    if !t.isEmpty { texts.append(t) }
                    sawText = true
                case "image", "image_url":
                    guard nextImage < grids.count else {
                        throw MistralError.invalid("\(pw) is an image part but only \(grids.count) images were passed")
                    }
                    if sawText && k != parts.count - 1 || sawText && !msg.images.isEmpty {
                        throw MistralError.unsupported("\(pw): images must come before the text of a message")
                    }
                    msg.images.append(grids[nextImage])
                    nextImage += 1
                default:
                    throw MistralError.invalid("\(pw).type must be 'text' or 'image'")
                }
            }
            msg.content = texts.joined(separator: "\n\n")
        default:
            throw MistralError.invalid("\(what).content must be a string, null or a list of parts")
        }
        if let calls = m["tool_calls"], !calls.isNull {
            guard let list = calls.array else { throw MistralError.invalid("\(what).tool_calls must be an array") }
            for (k, c) in list.enumerated() {
                let cw = "\(what).tool_calls[\(k)]"
                guard c.object != nil else { throw MistralError.invalid("\(cw) must be an object") }
                if let type = try string(c["type"], "\(cw).type", optional: true), type != "function" {
                    throw MistralError.invalid("\(cw).type is '\(type)'; only 'function' calls exist")
                }
                guard let f = c["function"], f.object != nil else {
                    throw MistralError.invalid("\(cw).function must be an object")
                }
                let name = try string(f["name"], "\(cw).function.name") ?? ""
                // arguments: JSON text as OpenAI sends it; an object is taken as its JSON; null is "{}"
                let arguments: String
                switch f["arguments"] {
                case .none, .some(.null): arguments = "{}"
                case .some(.string(let s)): arguments = s
                case .some(let v) where v.object != nil: arguments = PythonJSON.dumps(v)
                default: throw MistralError.invalid("\(cw).function.arguments must be a JSON string or an object")
                }
                msg.toolCalls.append(ToolCall(id: try string(c["id"], "\(cw).id", optional: true), name: name,
                                              arguments: arguments))
            }
        }
        msg.toolCallId = try string(m["tool_call_id"], "\(what).tool_call_id", optional: true)
        msg.name = try string(m["name"], "\(what).name", optional: true)
        return msg
    }
}
