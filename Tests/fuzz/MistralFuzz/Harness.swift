// libFuzzer harnesses over libmistral's public C API, one per input class, picked by $MISTRAL_FUZZ_TARGET.
// Built by Tests/fuzz/run.sh with -sanitize=fuzzer,address -DFUZZING (libFuzzer then supplies main); a normal build
// gets Replay.swift's main instead, which runs saved inputs through the same code (the regression tests use it).
import CMistralABI
import Glibc
import MistralC
import MistralEngine  // SessionStateFile.reseal, so edited session files get past the checksum

/// Every target: name, and what it does with one input.
let fuzzTargets: [(String, @Sendable (UnsafeRawBufferPointer) -> Void)] = [
    ("gguf-vocab", { loadFile($0, name: "m.gguf", vocabOnly: true) }),
    ("gguf", { loadFile($0, name: "m.gguf", vocabOnly: false) }),
    ("mmproj", fuzzMmproj),
    ("hf", fuzzHuggingFace),
    ("native", fuzzNative),
    ("tekken", { loadFile($0, name: "tekken.json", vocabOnly: false) }),
    ("image", fuzzImage),
    ("tokenize-bpe", { fuzzTokenize($0, Fixture.bpeModel) }),
    ("tokenize-tekken", { fuzzTokenize($0, Fixture.tekkenModel) }),
    ("chat", fuzzChat),
    ("grammar", fuzzGrammar),
    ("chat-json", fuzzChatJSON),
    ("session-state", fuzzSessionState),
]

/// A valid saved state of the text session (5 tokens evaluated, logits valid), made once.
nonisolated(unsafe) let savedState: [UInt8] = {
    guard let session = Fixture.textSession else { return [] }
    _ = mistral_session_reset(session)
    var ids: [Int32] = [1, 2, 3, 4, 5]
    guard mistral_eval(session, &ids, ids.count, nil) == MISTRAL_OK else { return [] }
    var n = 0
    _ = mistral_session_save_memory(session, nil, 0, &n)
    var blob = [UInt8](repeating: 0, count: n)
    return mistral_session_save_memory(session, &blob, n, &n) == MISTRAL_OK ? blob : []
}()

/// Byte 0: bit 0 = edit the valid saved state (else the rest of the input is the file), bit 1 = fix the edited
/// file's checksum (so the checks past it run), bit 2 = also load through a file. In edit mode bytes 1-2 are an
/// offset, byte 3 cuts up to 255 bytes off the end, and the rest is XORed onto the state from the offset.
/// After a successful load, generates two tokens from the restored state.
func fuzzSessionState(_ data: UnsafeRawBufferPointer) {
    guard let first = data.first, let session = Fixture.textSession else { return }
    var blob: [UInt8]
    if first & 1 != 0, data.count >= 4, !savedState.isEmpty {
        blob = savedState
        let offset = Int(data[1]) | Int(data[2]) << 8
        for (i, x) in data.dropFirst(4).enumerated() where offset + i < blob.count { blob[offset + i] ^= x }
        blob.removeLast(min(Int(data[3]), blob.count))
        if first & 2 != 0 { SessionStateFile.reseal(&blob) }
    } else {
        blob = Array(data.dropFirst())
    }
    _ = mistral_session_reset(session)
    var status = blob.withUnsafeBytes { mistral_session_load_memory(session, $0.baseAddress, $0.count) }
    if first & 4 != 0 {
        status = mistral_session_load_file(session, writeFile("state.bin", blob))
    }
    guard status == MISTRAL_OK else { return }
    var gp = mistral_generate_params()
    mistral_generate_params_init(&gp)
    gp.max_tokens = 2
    gp.flags = MISTRAL_GENERATE_CONTEXT_SHIFT
    _ = mistral_generate(session, nil, 0, &gp, nil, nil)
}

/// Byte 0: bit 0 = JSON schema (else GBNF grammar), bits 1-2 = temperature 0 / 0.5 / 1 / 2, bit 3 = logprobs;
/// the rest (up to a NUL) is the grammar or schema text. Generates a few tokens under it (or gets refused).
func fuzzGrammar(_ data: UnsafeRawBufferPointer) {
    guard let first = data.first, let session = Fixture.textSession else { return }
    let text = Array(data.dropFirst().prefix { $0 != 0 }).map { CChar(bitPattern: $0) } + [0]
    var schemaGrammar = [CChar](repeating: 0, count: 1 << 16)
    var n = 0
    if first & 1 != 0 { _ = mistral_json_schema_to_grammar(text, &schemaGrammar, schemaGrammar.count, &n) }
    _ = mistral_session_reset(session)
    var gp = mistral_generate_params()
    mistral_generate_params_init(&gp)
    gp.max_tokens = 6
    gp.temperature = [0, 0.5, 1, 2][Int(first >> 1 & 3)]
    gp.seed = 1
    gp.n_logprobs = first & 8 != 0 ? 3 : 0
    var prompt: [Int32] = [1]
    text.withUnsafeBufferPointer { t in
        if first & 1 != 0 { gp.json_schema = t.baseAddress } else { gp.grammar = t.baseAddress }
        _ = mistral_generate_ex(session, &prompt, 1, &gp, { _, _ in 0 }, nil)
    }
}

/// Inputs made of several files (a folder) separate them with this marker.
let partSeparator: [UInt8] = Array("\n--8<--\n".utf8)

enum Fixture {
    /// The repository root, from this file's path (Tests/fuzz/MistralFuzz/Harness.swift).
    static let root: String = {
        var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(4)
        return parts.joined(separator: "/")
    }()
    static let tiny = root + "/Tests/Fixtures/tiny-s"
    /// Loaded next to each input: run.sh points these at small synthetic files (fast loads); tiny-s otherwise.
    static let tekkenPath = env("MISTRAL_FUZZ_TEKKEN") ?? tiny + "/tokenizer/tekken.json"
    static let textGGUFPath = env("MISTRAL_FUZZ_TEXT_GGUF") ?? tiny + "/gguf/tiny-s-Q8_0.gguf"
    static let ggufPath = tiny + "/gguf/tiny-s-Q8_0.gguf"

    static func env(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
    nonisolated(unsafe) static let bpeModel: OpaquePointer? = load(ggufPath, vocabOnly: true)
    nonisolated(unsafe) static let tekkenModel: OpaquePointer? = load(tiny + "/tokenizer/tekken.json", vocabOnly: true)
    /// A small decoder with weights and one session on it, for generating under a fuzzed grammar.
    nonisolated(unsafe) static let textModel: OpaquePointer? = load(textGGUFPath, vocabOnly: false)
    nonisolated(unsafe) static let textSession: OpaquePointer? = {
        var sp = mistral_session_params()
        mistral_session_params_init(&sp)
        sp.n_ctx = 32
        sp.n_threads = 1
        var s: OpaquePointer?
        return mistral_session_create(textModel, &sp, &s) == MISTRAL_OK ? s : nil
    }()

    static func load(_ path: String, vocabOnly: Bool) -> OpaquePointer? {
        var p = mistral_model_params()
        mistral_model_params_init(&p)
        p.vocab_only = vocabOnly ? 1 : 0
        var m: OpaquePointer?
        return mistral_model_load(path, &p, &m) == MISTRAL_OK ? m : nil
    }

    /// A fresh scratch folder per process; each input overwrites its files.
    static let scratch: String = {
        var template = Array("/tmp/mistral-fuzz-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { $0.baseAddress.flatMap { mkdtemp($0) } }
        return dir.map { String(cString: $0) } ?? "/tmp"
    }()
}

func splitParts(_ data: UnsafeRawBufferPointer) -> [[UInt8]] {
    let bytes = Array(data)
    var parts: [[UInt8]] = []
    var start = 0, i = 0
    while i + partSeparator.count <= bytes.count {
        if bytes[i..<i + partSeparator.count].elementsEqual(partSeparator) {
            parts.append(Array(bytes[start..<i]))
            i += partSeparator.count
            start = i
        } else {
            i += 1
        }
    }
    parts.append(Array(bytes[start...]))
    return parts
}

@discardableResult
func writeFile(_ name: String, _ bytes: [UInt8]) -> String {
    let path = Fixture.scratch + "/" + name
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    if fd >= 0 {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { b in b.baseAddress.map { write(fd, $0 + done, b.count - done) } ?? 0 }
            if n <= 0 { break }
            done += n
        }
        close(fd)
    }
    return path
}

func clearScratch(_ names: [String]) {
    for n in names { unlink(Fixture.scratch + "/" + n) }
}

/// Loads a model from `path`; when it loads, exercises it a little (a session on tiny configs) and frees it.
func loadAndUse(_ path: String, vocabOnly: Bool, tokenizer: String? = nil, mmproj: String? = nil) {
    var p = mistral_model_params()
    mistral_model_params_init(&p)
    p.vocab_only = vocabOnly ? 1 : 0
    var model: OpaquePointer?
    let status = tokenizer.withOptionalCString { tok in
        mmproj.withOptionalCString { mm in
            p.tokenizer_path = tok
            p.mmproj_path = mm
            // What `mistral-cli info` does with a file: the estimate reads the same headers without loading.
            var estimate = mistral_memory_estimate()
            estimate.struct_size = MemoryLayout<mistral_memory_estimate>.size
            _ = mistral_model_estimate(path, &p, nil, &estimate)
            return mistral_model_load(path, &p, &model)
        }
    }
    guard status == MISTRAL_OK, let model else { return }
    defer { mistral_model_free(model) }
    _ = mistral_model_n_ctx_train(model)
    _ = mistral_model_desc(model)
    var ids = [Int32](repeating: 0, count: 64)
    var n = 0
    let text = "Hello [INST] world </s>"
    _ = mistral_tokenize(model, text, text.utf8.count, MISTRAL_TOKENIZE_PARSE_SPECIAL | MISTRAL_TOKENIZE_ADD_BOS,
                         &ids, ids.count, &n)
    // Small decoders only: a session's cost grows with the file's dimensions, not with its bytes.
    let embd = Int(mistral_model_n_embd(model)), layers = Int(mistral_model_n_layer(model))
    if !vocabOnly, embd > 0, embd * layers <= 1 << 14 {
        var sp = mistral_session_params()
        mistral_session_params_init(&sp)
        sp.n_ctx = 8
        sp.n_threads = 1
        var s: OpaquePointer?
        if mistral_session_create(model, &sp, &s) == MISTRAL_OK, let s {
            var tok: [Int32] = [Int32(max(0, min(n > 0 ? Int(ids[0]) : 0, Int(mistral_model_n_vocab(model)) - 1)))]
            _ = mistral_eval(s, &tok, 1, nil)
            mistral_session_free(s)
        }
    }
    if mistral_model_has_vision(model) != 0 {
        var rows: UInt32 = 0, cols: UInt32 = 0
        _ = mistral_image_token_grid(model, 56, 28, &rows, &cols)
    }
}

func loadFile(_ data: UnsafeRawBufferPointer, name: String, vocabOnly: Bool) {
    let path = writeFile(name, Array(data))
    loadAndUse(path, vocabOnly: vocabOnly)
}

func fuzzMmproj(_ data: UnsafeRawBufferPointer) {
    let path = writeFile("mmproj.gguf", Array(data))
    loadAndUse(Fixture.textGGUFPath, vocabOnly: false, mmproj: path)
}

/// config.json, then model.safetensors, then (optionally) model.safetensors.index.json.
func fuzzHuggingFace(_ data: UnsafeRawBufferPointer) {
    let names = ["config.json", "model.safetensors", "model.safetensors.index.json"]
    clearScratch(names)
    for (name, part) in zip(names, splitParts(data)) { writeFile(name, part) }
    loadAndUse(Fixture.scratch, vocabOnly: false, tokenizer: Fixture.tekkenPath)
}

/// params.json, then consolidated.safetensors.
func fuzzNative(_ data: UnsafeRawBufferPointer) {
    let names = ["params.json", "consolidated.safetensors"]
    clearScratch(names + ["config.json", "model.safetensors", "model.safetensors.index.json"])
    for (name, part) in zip(names, splitParts(data)) { writeFile(name, part) }
    loadAndUse(Fixture.scratch, vocabOnly: false, tokenizer: Fixture.tekkenPath)
}

func fuzzImage(_ data: UnsafeRawBufferPointer) {
    var image: OpaquePointer?
    guard let base = data.baseAddress, mistral_image_load_memory(base, data.count, &image) == MISTRAL_OK,
          let image else { return }
    _ = mistral_image_width(image) &+ mistral_image_height(image)
    mistral_image_free(image)
}

/// The first byte picks the flags; the rest is the text.
func fuzzTokenize(_ data: UnsafeRawBufferPointer, _ model: OpaquePointer?) {
    guard let model, let first = data.first else { return }
    let text = UnsafeRawBufferPointer(rebasing: data.dropFirst())
    var ids = [Int32](repeating: 0, count: text.count + 2)
    var n = 0
    let status = mistral_tokenize(model, text.baseAddress?.assumingMemoryBound(to: CChar.self), text.count,
                                  UInt32(first & 3), &ids, ids.count, &n)
    guard status == MISTRAL_OK else { return }
    var out = [CChar](repeating: 0, count: 4 * text.count + 16)
    var nBytes = 0
    _ = mistral_detokenize(model, ids, n, UInt32(first >> 2 & 1), &out, out.count, &nBytes)
    if n > 0 { _ = mistral_token_to_piece(model, ids[0], 1, &out, out.count, &nBytes) }
}

/// Parts are messages: the first byte of each picks the role, the rest is the content. The input's first byte
/// also picks the template (the model's own, mistral-v7 or chatml).
func fuzzChat(_ data: UnsafeRawBufferPointer) {
    guard let model = Fixture.tekkenModel, let first = data.first else { return }
    let roles = ["system", "user", "assistant", "tool"]
    let parts = splitParts(UnsafeRawBufferPointer(rebasing: data.dropFirst())).prefix(64)
    let strings: [(String, [CChar])] = parts.map { part in
        let role = roles[Int(part.first ?? 1) % roles.count]
        return (role, part.dropFirst().map { CChar(bitPattern: $0 == 0 ? 0x20 : $0) } + [0])
    }
    let template: String? = [nil, "mistral-v7", "chatml"][Int(first) % 3]
    var ids = [Int32](repeating: 0, count: 1 << 16)
    var n = 0
    withMessages(strings, 0, []) { messages in
        template.withOptionalCString { t in
            _ = mistral_chat_tokenize(model, t, messages, messages.count, UInt32(first >> 2 & 1), &ids, ids.count, &n)
        }
    }
}

/// The JSON request entry point and the tool-call parsers: the first byte picks the template and flags; the rest
/// is the request JSON, and also text and tokens to parse for calls.
func fuzzChatJSON(_ data: UnsafeRawBufferPointer) {
    guard let model = Fixture.tekkenModel, let first = data.first else { return }
    let rest = Array(data.dropFirst())
    let template: String? = [nil, "mistral-v7", "mistral-v3", "chatml"][Int(first) % 4]
    var ids = [Int32](repeating: 0, count: 1 << 16)
    var n = 0
    rest.withUnsafeBufferPointer { buf in
        buf.withMemoryRebound(to: CChar.self) { text in
            template.withOptionalCString { t in
                _ = mistral_chat_tokenize_json(model, t, text.baseAddress, text.count, nil, 0, UInt32(first >> 2 & 1),
                                               &ids, ids.count, &n)
            }
            var calls: OpaquePointer?
            if mistral_tool_calls_parse_text(text.baseAddress, text.count, &calls) == MISTRAL_OK {
                for i in 0..<mistral_tool_calls_count(calls) { _ = mistral_tool_calls_arguments(calls, i) }
                mistral_tool_calls_free(calls)
            }
            // the same bytes as tokens (control tokens parsed, so [TOOL_CALLS] is the marker token)
            if mistral_tokenize(model, text.baseAddress, text.count, UInt32(MISTRAL_TOKENIZE_PARSE_SPECIAL), &ids, ids.count, &n) == MISTRAL_OK,
               mistral_tool_calls_parse(model, ids, n, &calls) == MISTRAL_OK {
                mistral_tool_calls_free(calls)
            }
        }
    }
}

/// Builds C messages whose strings stay valid during `body`.
func withMessages(_ items: [(String, [CChar])], _ i: Int, _ done: [mistral_chat_message],
                  _ body: ([mistral_chat_message]) -> Void) {
    guard i < items.count else { return body(done) }
    items[i].0.withCString { role in
        items[i].1.withUnsafeBufferPointer { content in
            withMessages(items, i + 1, done + [mistral_chat_message(role: role, content: content.baseAddress,
                                                                    images: nil, n_images: 0)], body)
        }
    }
}

extension Optional where Wrapped == String {
    func withOptionalCString<R>(_ body: (UnsafePointer<CChar>?) -> R) -> R {
        switch self {
        case .some(let s): return s.withCString { body($0) }
        case .none: return body(nil)
        }
    }
}

/// The target named by $MISTRAL_FUZZ_TARGET (nil when unset or unknown).
let selectedTarget: (@Sendable (UnsafeRawBufferPointer) -> Void)? = {
    guard let name = getenv("MISTRAL_FUZZ_TARGET").map({ String(cString: $0) }) else { return nil }
    return fuzzTargets.first { $0.0 == name }?.1
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let target = selectedTarget else {
        let names = fuzzTargets.map { $0.0 }.joined(separator: " ")
        _ = "set MISTRAL_FUZZ_TARGET to one of: \(names)\n".withCString { write(2, $0, strlen($0)) }
        exit(2)
    }
    target(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
