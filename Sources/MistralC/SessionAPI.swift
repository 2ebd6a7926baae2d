// mistral_session_*, mistral_eval and mistral_generate.
import CMistralABI
import Glibc
import MistralEngine

@_cdecl("mistral_session_params_init")
public func mistral_session_params_init(_ params: UnsafeMutablePointer<mistral_session_params>?) {
    guard let params else { return }
    let d = SessionOptions()
    params.pointee = mistral_session_params(struct_size: MemoryLayout<mistral_session_params>.size,
                                            n_ctx: UInt32(d.nCtx), n_threads: Int32(d.threads),
                                            seed: d.seed, n_batch: UInt32(d.nBatch), kv_type: d.kvType.rawValue)
}

@_cdecl("mistral_session_create")
public func mistral_session_create(_ model: OpaquePointer?, _ params: UnsafePointer<mistral_session_params>?,
                                   _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mistral_status {
    out?.pointee = nil
    return guarded {
        let m = try require(modelHandle(model), "model").model
        let out = try require(out, "out_session")
        var defaults = mistral_session_params()
        mistral_session_params_init(&defaults)
        let p = try readParams(params, defaults: defaults, name: "mistral_session_params")
        var o = SessionOptions()
        o.nCtx = Int(p.n_ctx)
        o.threads = Int(p.n_threads)
        o.seed = p.seed
        o.nBatch = Int(p.n_batch)
        guard let kv = KVCacheType(rawValue: p.kv_type) else {
            throw invalid("mistral_session_params.kv_type is \(p.kv_type); use MISTRAL_KV_F16, MISTRAL_KV_F32 or MISTRAL_KV_Q8_0")
        }
        o.kvType = kv
        let session = try Session(model: m, options: o)
        out.pointee = OpaquePointer(Unmanaged.passRetained(SessionHandle(session)).toOpaque())
    }
}

@_cdecl("mistral_session_free")
public func mistral_session_free(_ session: OpaquePointer?) {
    guard let session else { return }
    Unmanaged<SessionHandle>.fromOpaque(UnsafeRawPointer(session)).release()
}

@_cdecl("mistral_session_reset")
public func mistral_session_reset(_ session: OpaquePointer?) -> mistral_status {
    guarded { try require(sessionHandle(session), "session").session.reset() }
}

@_cdecl("mistral_session_truncate")
public func mistral_session_truncate(_ session: OpaquePointer?, _ nKeep: UInt32) -> mistral_status {
    guarded { try require(sessionHandle(session), "session").session.truncate(to: Int(nKeep)) }
}

@_cdecl("mistral_session_n_past")
public func mistral_session_n_past(_ session: OpaquePointer?) -> UInt32 {
    UInt32(clamping: sessionHandle(session)?.session.nPast ?? 0)
}

@_cdecl("mistral_session_n_ctx")
public func mistral_session_n_ctx(_ session: OpaquePointer?) -> UInt32 {
    UInt32(clamping: sessionHandle(session)?.session.nCtx ?? 0)
}

@_cdecl("mistral_eval")
public func mistral_eval(_ session: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int,
                         _ logitsOut: UnsafeMutablePointer<Float>?) -> mistral_status {
    guarded {
        let s = try require(sessionHandle(session), "session").session
        guard nTokens >= 0, nTokens <= maxTokenCount else { throw invalid("n_tokens \(nTokens) is out of range (at most \(maxTokenCount))") }
        guard nTokens > 0 else { return }
        try s.eval(UnsafeBufferPointer(start: try require(tokens, "tokens"), count: nTokens), logitsOut: logitsOut)
    }
}

@_cdecl("mistral_eval_embd")
public func mistral_eval_embd(_ session: OpaquePointer?, _ embd: UnsafePointer<Float>?, _ nRows: Int,
                              _ logitsOut: UnsafeMutablePointer<Float>?) -> mistral_status {
    guarded {
        let s = try require(sessionHandle(session), "session").session
        guard nRows >= 0, nRows <= maxTokenCount else { throw invalid("n_rows \(nRows) is out of range") }
        guard nRows > 0 else { return }
        try s.evalEmbeddings(try require(embd, "embd"), count: nRows, logitsOut: logitsOut)
    }
}

@_cdecl("mistral_generate_params_init")
public func mistral_generate_params_init(_ params: UnsafeMutablePointer<mistral_generate_params>?) {
    guard let params else { return }
    let d = GenerateOptions()
    params.pointee = mistral_generate_params(
        struct_size: MemoryLayout<mistral_generate_params>.size, max_tokens: Int32(d.maxTokens),
        temperature: d.sampling.temperature, top_k: Int32(d.sampling.topK), top_p: d.sampling.topP,
        min_p: d.sampling.minP, repeat_penalty: d.sampling.repeatPenalty, repeat_last_n: Int32(d.sampling.repeatLastN),
        seed: d.seed, stop: nil, n_stop: 0, flags: 0, grammar: nil, json_schema: nil, logit_bias_tokens: nil,
        logit_bias_values: nil, n_logit_bias: 0, n_logprobs: 0,
        n_keep: Int32(d.nKeep), n_discard: Int32(d.nDiscard))
}

/// A NUL-terminated UTF-8 parameter.
private func cText(_ p: UnsafePointer<CChar>, _ name: String) throws -> String {
    guard let s = String(validatingCString: p) else { throw invalid("\(name) is not valid UTF-8") }
    return s
}

func generateOptions(_ p: mistral_generate_params) throws -> GenerateOptions {
    var o = GenerateOptions()
    o.maxTokens = Int(p.max_tokens)
    guard p.temperature.isFinite, p.temperature >= 0 else { throw invalid("temperature must be >= 0") }
    guard p.top_p.isFinite, p.top_p > 0, p.top_p <= 1 else { throw invalid("top_p must be in (0, 1]") }
    guard p.min_p.isFinite, p.min_p >= 0, p.min_p <= 1 else { throw invalid("min_p must be in [0, 1]") }
    guard p.repeat_penalty.isFinite, p.repeat_penalty > 0 else { throw invalid("repeat_penalty must be > 0") }
    guard p.top_k >= 0 else { throw invalid("top_k must be >= 0") }
    o.sampling.temperature = p.temperature
    o.sampling.topK = Int(p.top_k)
    o.sampling.topP = p.top_p
    o.sampling.minP = p.min_p
    o.sampling.repeatPenalty = p.repeat_penalty
    o.sampling.repeatLastN = Int(p.repeat_last_n)
    o.seed = p.seed
    o.ignoreEOS = p.flags & MISTRAL_GENERATE_IGNORE_EOS != 0
    o.emitSpecial = p.flags & MISTRAL_GENERATE_SPECIAL != 0
    o.reusePrefix = p.flags & MISTRAL_GENERATE_REUSE_PREFIX != 0
    guard p.n_stop <= 64 else { throw invalid("at most 64 stop strings, got \(p.n_stop)") }
    if p.n_stop > 0 {
        let stops = try require(p.stop, "stop")
        for i in 0..<p.n_stop {
            let cstr = try require(stops[i], "stop[\(i)]")
            guard let s = String(validatingCString: cstr) else { throw invalid("stop[\(i)] is not valid UTF-8") }
            o.stopStrings.append(s)
        }
    }
    if p.grammar != nil && p.json_schema != nil { throw invalid("set grammar or json_schema, not both") }
    if let g = p.grammar { o.grammar = try GBNF.parse(try cText(g, "grammar")) }
    if let j = p.json_schema { o.grammar = try GBNF.parse(try JSONSchemaGrammar.convert(try cText(j, "json_schema"))) }
    guard p.n_logit_bias <= maxTokenCount else { throw invalid("n_logit_bias \(p.n_logit_bias) is out of range") }
    if p.n_logit_bias > 0 {
        guard let tokens = p.logit_bias_tokens, let values = p.logit_bias_values else {
            throw invalid("logit_bias_tokens and logit_bias_values must both hold n_logit_bias = \(p.n_logit_bias) entries (one is NULL)")
        }
        o.logitBias = (0..<p.n_logit_bias).map { LogitBias(token: tokens[$0], bias: values[$0]) }
    } else if p.logit_bias_tokens != nil || p.logit_bias_values != nil {
        if (p.logit_bias_tokens == nil) != (p.logit_bias_values == nil) {
            throw invalid("logit_bias_tokens and logit_bias_values must be set together (n_logit_bias is 0)")
        }
    }
    guard p.n_logprobs >= 0, p.n_logprobs <= 256 else { throw invalid("n_logprobs must be in 0...256, got \(p.n_logprobs)") }
    o.topLogprobs = Int(p.n_logprobs)
    o.logprobs = p.flags & MISTRAL_GENERATE_LOGPROBS != 0 || p.n_logprobs > 0
    o.contextShift = p.flags & MISTRAL_GENERATE_CONTEXT_SHIFT != 0
    guard p.n_keep >= 0, p.n_discard >= 0 else {
        throw invalid("n_keep and n_discard must be >= 0, got \(p.n_keep) and \(p.n_discard)")
    }
    o.nKeep = Int(p.n_keep)
    o.nDiscard = Int(p.n_discard)
    return o
}

/// The session and prompt of a mistral_generate / mistral_generate_ex call, checked.
private func generateInputs(_ session: OpaquePointer?, _ prompt: UnsafePointer<Int32>?,
                            _ nPrompt: Int) throws -> (Session, [Int32]) {
    let s = try require(sessionHandle(session), "session").session
    guard nPrompt >= 0, nPrompt <= maxTokenCount else { throw invalid("n_prompt \(nPrompt) is out of range (at most \(maxTokenCount))") }
    let ids = nPrompt == 0 ? [] : Array(UnsafeBufferPointer(start: try require(prompt, "prompt"), count: nPrompt))
    return (s, ids)
}

/// The caller's generate params (defaults for NULL or an older, shorter struct) as options.
private func generateOptions(_ params: UnsafePointer<mistral_generate_params>?) throws -> GenerateOptions {
    var defaults = mistral_generate_params()
    mistral_generate_params_init(&defaults)
    return try generateOptions(try readParams(params, defaults: defaults, name: "mistral_generate_params"))
}

@_cdecl("mistral_generate")
public func mistral_generate(_ session: OpaquePointer?, _ prompt: UnsafePointer<Int32>?, _ nPrompt: Int,
                             _ params: UnsafePointer<mistral_generate_params>?,
                             _ callback: mistral_token_callback?, _ userData: UnsafeMutableRawPointer?) -> mistral_status {
    guarded {
        let (s, ids) = try generateInputs(session, prompt, nPrompt)
        try s.generate(prompt: ids, makeOptions: { try generateOptions(params) }) { text, token in
            guard let callback else { return true }
            return text.withUnsafeBufferPointer { buf in
                buf.withMemoryRebound(to: CChar.self) { callback($0.baseAddress, $0.count, token, userData) == 0 }
            }
        }
    }
}

@_cdecl("mistral_generate_ex")
public func mistral_generate_ex(_ session: OpaquePointer?, _ prompt: UnsafePointer<Int32>?, _ nPrompt: Int,
                                _ params: UnsafePointer<mistral_generate_params>?,
                                _ callback: mistral_token_info_callback?,
                                _ userData: UnsafeMutableRawPointer?) -> mistral_status {
    guarded {
        let (s, ids) = try generateInputs(session, prompt, nPrompt)
        try s.generate(prompt: ids, makeOptions: { try generateOptions(params) }, onToken: { event in
            guard let callback else { return true }
            return event.text.withUnsafeBufferPointer { text in
                event.top.map { mistral_token_logprob(token: $0.token, logprob: $0.logprob) }.withUnsafeBufferPointer { top in
                    var info = mistral_token_info(
                        struct_size: MemoryLayout<mistral_token_info>.size, token: event.token, logprob: event.logprob,
                        text: UnsafeRawPointer(text.baseAddress)?.assumingMemoryBound(to: CChar.self), text_len: text.count,
                        top: top.baseAddress, n_top: top.count)
                    return callback(&info, userData) == 0
                }
            }
        })
    }
}

@_cdecl("mistral_json_schema_to_grammar")
public func mistral_json_schema_to_grammar(_ schema: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<CChar>?,
                                           _ capacity: Int, _ nBytes: UnsafeMutablePointer<Int>?) -> mistral_status {
    guarded {
        nBytes?.pointee = 0
        let text = try cText(try require(schema, "json_schema"), "json_schema")
        let grammar = Array(try JSONSchemaGrammar.convert(text).utf8)
        try deliverText(grammar, to: out, capacity: capacity, count: try require(nBytes, "n_bytes"))
    }
}

@_cdecl("mistral_session_last_stop_reason")
public func mistral_session_last_stop_reason(_ session: OpaquePointer?) -> Int32 {
    sessionHandle(session)?.session.lastStopReason.rawValue ?? 0
}

@_cdecl("mistral_session_last_n_generated")
public func mistral_session_last_n_generated(_ session: OpaquePointer?) -> UInt32 {
    UInt32(clamping: sessionHandle(session)?.session.lastGenerated ?? 0)
}
