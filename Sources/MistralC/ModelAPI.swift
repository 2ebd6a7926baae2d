// mistral_model_* and the tokenizer calls.
import CMistralABI
import Glibc
import MistralEngine

@_cdecl("mistral_model_params_init")
public func mistral_model_params_init(_ params: UnsafeMutablePointer<mistral_model_params>?) {
    guard let params else { return }
    params.pointee = mistral_model_params(struct_size: MemoryLayout<mistral_model_params>.size, vocab_only: 0,
                                          weight_type: MISTRAL_WEIGHTS_AS_STORED, tokenizer_path: nil, mmproj_path: nil,
                                          progress_callback: nil, progress_user_data: nil, n_threads: 0,
                                          max_batch_sessions: Int32(ModelLoadOptions().maxBatchSessions),
                                          vision_compute: MISTRAL_VISION_COMPUTE_DEFAULT)
}

@_cdecl("mistral_model_load")
public func mistral_model_load(_ path: UnsafePointer<CChar>?, _ params: UnsafePointer<mistral_model_params>?,
                               _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mistral_status {
    out?.pointee = nil
    return guarded {
        let path = String(cString: try require(path, "path"))
        let out = try require(out, "out_model")
        let model = try Model(path: path, options: try loadOptions(params))
        out.pointee = OpaquePointer(Unmanaged.passRetained(ModelHandle(model)).toOpaque())
    }
}

/// The caller's load options; defaults for NULL or an older (shorter) struct.
func loadOptions(_ params: UnsafePointer<mistral_model_params>?) throws -> ModelLoadOptions {
    var defaults = mistral_model_params()
    mistral_model_params_init(&defaults)
    let p = try readParams(params, defaults: defaults, name: "mistral_model_params")
    var options = ModelLoadOptions(vocabOnly: p.vocab_only != 0)
    options.tokenizerPath = p.tokenizer_path.map { String(cString: $0) }
    options.mmprojPath = p.mmproj_path.map { String(cString: $0) }
    switch p.weight_type {
    case MISTRAL_WEIGHTS_AS_STORED: break
    case MISTRAL_WEIGHTS_Q8_0: options.convertTo = .q8_0
    case MISTRAL_WEIGHTS_Q4_0: options.convertTo = .q4_0
    default: throw invalid("weight_type \(p.weight_type) is not one of MISTRAL_WEIGHTS_*")
    }
    options.threads = Int(p.n_threads)
    options.maxBatchSessions = Int(p.max_batch_sessions)
    switch p.vision_compute {
    case MISTRAL_VISION_COMPUTE_DEFAULT: break
    case MISTRAL_VISION_COMPUTE_F32: options.visionCompute = .f32
    case MISTRAL_VISION_COMPUTE_BF16: options.visionCompute = .bf16
    default: throw invalid("vision_compute \(p.vision_compute) is not one of MISTRAL_VISION_COMPUTE_*")
    }
    if let callback = p.progress_callback {
        let target = ProgressTarget(callback: callback, userData: p.progress_user_data)
        options.progress = { fraction in target.callback(Float(fraction), target.userData) == 0 }
    }
    return options
}

/// The caller's progress function and its pointer, used only during the mistral_model_load call that got them.
struct ProgressTarget: @unchecked Sendable {
    let callback: mistral_progress_callback
    let userData: UnsafeMutableRawPointer?
}

@_cdecl("mistral_model_free")
public func mistral_model_free(_ model: OpaquePointer?) {
    guard let model else { return }
    Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(model)).release()
}

@_cdecl("mistral_model_n_threads")
public func mistral_model_n_threads(_ model: OpaquePointer?) -> Int32 {
    Int32(clamping: modelHandle(model)?.model.scheduler?.threadCount ?? 0)
}

@_cdecl("mistral_model_batch_stats")
public func mistral_model_batch_stats(_ model: OpaquePointer?, _ out: UnsafeMutablePointer<mistral_batch_stats>?,
                                      _ reset: Int32) -> mistral_status {
    guarded {
        guard let scheduler = try require(modelHandle(model), "model").model.scheduler else {
            throw invalid("the model was loaded vocab-only; it runs no forward steps")
        }
        let out = try require(out, "out")
        let declared = UnsafeRawPointer(out).loadUnaligned(as: Int.self)
        guard declared >= MemoryLayout<Int>.size, declared <= 1 << 16 else {
            throw invalid("mistral_batch_stats.struct_size is \(declared); set it to sizeof(mistral_batch_stats)")
        }
        let st = scheduler.stats
        if reset != 0 { scheduler.resetStats() }
        var result = mistral_batch_stats(
            struct_size: min(declared, MemoryLayout<mistral_batch_stats>.size), steps: UInt64(st.steps),
            batched_steps: UInt64(st.batchedSteps), max_sessions: UInt64(st.maxSequences), max_rows: UInt64(st.maxRows),
            rows: UInt64(st.rows), busy_ns: UInt64(st.busyNanoseconds))
        withUnsafeBytes(of: &result) { src in
            if let base = src.baseAddress { UnsafeMutableRawPointer(out).copyMemory(from: base, byteCount: min(declared, src.count)) }
        }
    }
}

@_cdecl("mistral_model_n_vocab")
public func mistral_model_n_vocab(_ model: OpaquePointer?) -> Int32 {
    Int32(clamping: modelHandle(model)?.model.vocabSize ?? 0)
}

@_cdecl("mistral_model_n_ctx_train")
public func mistral_model_n_ctx_train(_ model: OpaquePointer?) -> Int32 {
    Int32(clamping: modelHandle(model)?.model.contextLength ?? 0)
}

@_cdecl("mistral_model_n_embd")
public func mistral_model_n_embd(_ model: OpaquePointer?) -> Int32 {
    Int32(clamping: modelHandle(model)?.model.config?.nEmbd ?? 0)
}

@_cdecl("mistral_model_n_layer")
public func mistral_model_n_layer(_ model: OpaquePointer?) -> Int32 {
    Int32(clamping: modelHandle(model)?.model.config?.nLayer ?? 0)
}

@_cdecl("mistral_model_token_bos")
public func mistral_model_token_bos(_ model: OpaquePointer?) -> Int32 {
    modelHandle(model)?.model.tokenizer.bosId ?? -1
}

@_cdecl("mistral_model_token_eos")
public func mistral_model_token_eos(_ model: OpaquePointer?) -> Int32 {
    modelHandle(model)?.model.tokenizer.eosId ?? -1
}

@_cdecl("mistral_model_add_bos")
public func mistral_model_add_bos(_ model: OpaquePointer?) -> Int32 {
    (modelHandle(model)?.model.tokenizer.addBosByDefault ?? false) ? 1 : 0
}

@_cdecl("mistral_model_token_is_eog")
public func mistral_model_token_is_eog(_ model: OpaquePointer?, _ token: Int32) -> Int32 {
    (modelHandle(model)?.model.tokenizer.isEndOfGeneration(token) ?? false) ? 1 : 0
}

@_cdecl("mistral_model_arch")
public func mistral_model_arch(_ model: OpaquePointer?) -> UnsafePointer<CChar>? {
    modelHandle(model).map { UnsafePointer($0.arch) }
}

@_cdecl("mistral_model_desc")
public func mistral_model_desc(_ model: OpaquePointer?) -> UnsafePointer<CChar>? {
    modelHandle(model).map { UnsafePointer($0.desc) }
}

// MARK: tokenizer

/// Copies `items` into a caller buffer, reporting the needed count either way.
func deliver<T>(_ items: [T], to buffer: UnsafeMutablePointer<T>?, capacity: Int,
                count: UnsafeMutablePointer<Int>, what: String) throws {
    count.pointee = items.count
    guard items.count <= capacity else {
        throw MistralError(.bufferTooSmall, "\(what) needs room for \(items.count), capacity is \(capacity)")
    }
    if !items.isEmpty {
        let buffer = try require(buffer, what)
        items.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: items.count) }
    }
}

@_cdecl("mistral_tokenize")
public func mistral_tokenize(_ model: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ len: Int, _ flags: UInt32,
                             _ tokens: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                             _ nTokens: UnsafeMutablePointer<Int>?) -> mistral_status {
    guarded {
        let m = try require(modelHandle(model), "model").model
        let nTokens = try require(nTokens, "n_tokens")
        nTokens.pointee = 0
        guard len >= 0, len <= maxTextBytes else { throw invalid("len \(len) is out of range (at most \(maxTextBytes) bytes)") }
        if len > 0 { _ = try require(text, "text") }
        let ids = try m.tokenizer.tokenize(utf8: UnsafeRawBufferPointer(start: text, count: len),
                                           addBos: flags & MISTRAL_TOKENIZE_ADD_BOS != 0,
                                           parseSpecial: flags & MISTRAL_TOKENIZE_PARSE_SPECIAL != 0)
        try deliver(ids, to: tokens, capacity: capacity, count: nTokens, what: "tokens")
    }
}

/// Writes bytes plus a NUL when it fits.
func deliverText(_ bytes: [UInt8], to text: UnsafeMutablePointer<CChar>?, capacity: Int,
                 count: UnsafeMutablePointer<Int>) throws {
    count.pointee = bytes.count
    guard bytes.count <= capacity else {
        throw MistralError(.bufferTooSmall, "text needs \(bytes.count) bytes, capacity is \(capacity)")
    }
    guard capacity > 0 else { return }
    let text = try require(text, "text")
    if !bytes.isEmpty {
        bytes.withUnsafeBytes { UnsafeMutableRawPointer(text).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
    }
    if bytes.count < capacity { text[bytes.count] = 0 }
}

@_cdecl("mistral_detokenize")
public func mistral_detokenize(_ model: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int, _ flags: UInt32,
                               _ text: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                               _ nBytes: UnsafeMutablePointer<Int>?) -> mistral_status {
    guarded {
        let m = try require(modelHandle(model), "model").model
        let nBytes = try require(nBytes, "n_bytes")
        nBytes.pointee = 0
        guard nTokens >= 0, nTokens <= maxTokenCount else { throw invalid("n_tokens \(nTokens) is out of range (at most \(maxTokenCount))") }
        let ids = nTokens == 0 ? [] : Array(UnsafeBufferPointer(start: try require(tokens, "tokens"), count: nTokens))
        let bytes = try m.tokenizer.detokenize(ids, special: flags & MISTRAL_DETOKENIZE_SPECIAL != 0)
        try deliverText(bytes, to: text, capacity: capacity, count: nBytes)
    }
}

@_cdecl("mistral_token_to_piece")
public func mistral_token_to_piece(_ model: OpaquePointer?, _ token: Int32, _ flags: UInt32,
                                   _ text: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                   _ nBytes: UnsafeMutablePointer<Int>?) -> mistral_status {
    guarded {
        let m = try require(modelHandle(model), "model").model
        let nBytes = try require(nBytes, "n_bytes")
        nBytes.pointee = 0
        guard token >= 0, Int(token) < m.vocabSize else {
            throw invalid("token \(token) is outside the vocabulary (0..<\(m.vocabSize))")
        }
        let bytes = m.tokenizer.piece(token, special: flags & MISTRAL_DETOKENIZE_SPECIAL != 0)
        try deliverText(bytes, to: text, capacity: capacity, count: nBytes)
    }
}
