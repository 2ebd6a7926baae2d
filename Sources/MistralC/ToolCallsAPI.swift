// mistral_tool_calls_*: the calls a model wrote, parsed into a handle of C strings.
import CMistralABI
import Glibc
import MistralEngine

/// The parsed calls with their strings copied once into malloc'ed C strings, freed with the handle.
final class ToolCallsHandle {
    let names: [UnsafeMutablePointer<CChar>]
    let arguments: [UnsafeMutablePointer<CChar>]
    let ids: [UnsafeMutablePointer<CChar>]
    let content: UnsafeMutablePointer<CChar>
    let json: UnsafeMutablePointer<CChar>

    init(_ p: ParsedToolCalls) throws {
        func copy(_ s: String) throws -> UnsafeMutablePointer<CChar> {
            guard let c = strdup(s) else { throw MistralError(.outOfMemory, "out of memory copying a tool call") }
            return c
        }
        names = try p.calls.map { try copy($0.name) }
        arguments = try p.calls.map { try copy($0.arguments) }
        ids = try p.calls.map { try copy($0.id ?? "") }
        content = try copy(p.content)
        json = try copy(p.openAIJSON)
    }

    deinit {
        for s in names + arguments + ids { free(s) }
        free(content)
        free(json)
    }
}

func toolCallsHandle(_ p: OpaquePointer?) -> ToolCallsHandle? {
    guard let p else { return nil }
    return Unmanaged<ToolCallsHandle>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue()
}

/// Parses with `body` and stores a new handle in *out (NULL on failure).
func deliverCalls(_ out: UnsafeMutablePointer<OpaquePointer?>?, _ body: () throws -> ParsedToolCalls) -> mistral_status {
    out?.pointee = nil
    return guarded {
        let out = try require(out, "out_calls")
        let handle = try ToolCallsHandle(try body())
        out.pointee = OpaquePointer(Unmanaged.passRetained(handle).toOpaque())
    }
}

@_cdecl("mistral_tool_calls_parse")
public func mistral_tool_calls_parse(_ model: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int,
                                     _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mistral_status {
    deliverCalls(out) {
        let m = try require(modelHandle(model), "model").model
        guard nTokens >= 0, nTokens <= maxTokenCount else { throw invalid("n_tokens is out of range") }
        let ids = nTokens == 0 ? [] : Array(UnsafeBufferPointer(start: try require(tokens, "tokens"), count: nTokens))
        return try ToolCallParser.parse(tokens: ids, tokenizer: m.tokenizer)
    }
}

@_cdecl("mistral_tool_calls_parse_text")
public func mistral_tool_calls_parse_text(_ text: UnsafePointer<CChar>?, _ len: Int,
                                          _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mistral_status {
    deliverCalls(out) {
        guard len >= 0, len <= maxTextBytes else { throw invalid("len is out of range") }
        let start = len > 0 ? UnsafeRawPointer(try require(text, "text")) : nil
        let bytes = UnsafeBufferPointer(start: start?.assumingMemoryBound(to: UInt8.self), count: len)
        guard let s = String(validating: bytes, as: UTF8.self) else { throw invalid("text is not valid UTF-8") }
        return try ToolCallParser.parse(text: s)
    }
}

@_cdecl("mistral_session_last_tool_calls")
public func mistral_session_last_tool_calls(_ session: OpaquePointer?,
                                            _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mistral_status {
    deliverCalls(out) {
        let s = try require(sessionHandle(session), "session").session
        return try ToolCallParser.parse(tokens: try s.lastGeneratedTokens(), tokenizer: s.model.tokenizer)
    }
}

@_cdecl("mistral_tool_calls_count")
public func mistral_tool_calls_count(_ calls: OpaquePointer?) -> Int { toolCallsHandle(calls)?.names.count ?? 0 }

func element(_ calls: OpaquePointer?, _ index: Int, _ field: (ToolCallsHandle) -> [UnsafeMutablePointer<CChar>])
    -> UnsafePointer<CChar>? {
    guard let h = toolCallsHandle(calls) else { return nil }
    let list = field(h)
    guard index >= 0, index < list.count else { return nil }
    return UnsafePointer(list[index])
}

@_cdecl("mistral_tool_calls_name")
public func mistral_tool_calls_name(_ calls: OpaquePointer?, _ index: Int) -> UnsafePointer<CChar>? {
    element(calls, index) { $0.names }
}

@_cdecl("mistral_tool_calls_arguments")
public func mistral_tool_calls_arguments(_ calls: OpaquePointer?, _ index: Int) -> UnsafePointer<CChar>? {
    element(calls, index) { $0.arguments }
}

@_cdecl("mistral_tool_calls_id")
public func mistral_tool_calls_id(_ calls: OpaquePointer?, _ index: Int) -> UnsafePointer<CChar>? {
    element(calls, index) { $0.ids }
}

@_cdecl("mistral_tool_calls_content")
public func mistral_tool_calls_content(_ calls: OpaquePointer?) -> UnsafePointer<CChar>? {
    toolCallsHandle(calls).map { UnsafePointer($0.content) }
}

@_cdecl("mistral_tool_calls_json")
public func mistral_tool_calls_json(_ calls: OpaquePointer?) -> UnsafePointer<CChar>? {
    toolCallsHandle(calls).map { UnsafePointer($0.json) }
}

@_cdecl("mistral_tool_calls_free")
public func mistral_tool_calls_free(_ calls: OpaquePointer?) {
    guard let calls else { return }
    Unmanaged<ToolCallsHandle>.fromOpaque(UnsafeRawPointer(calls)).release()
}
