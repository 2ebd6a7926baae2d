// mistral_model_estimate: the engine's MemoryEstimate for a path and the caller's load and session params.
import CMistralABI
import Glibc
import MistralEngine

@_cdecl("mistral_model_estimate")
public func mistral_model_estimate(_ path: UnsafePointer<CChar>?, _ modelParams: UnsafePointer<mistral_model_params>?,
                                   _ sessionParams: UnsafePointer<mistral_session_params>?,
                                   _ out: UnsafeMutablePointer<mistral_memory_estimate>?) -> mistral_status {
    guarded {
        let path = String(cString: try require(path, "path"))
        let out = try require(out, "out")
        let declared = UnsafeRawPointer(out).loadUnaligned(as: Int.self)
        guard declared >= MemoryLayout<Int>.size, declared <= 1 << 16 else {
            throw invalid("mistral_memory_estimate.struct_size is \(declared); set it to sizeof(mistral_memory_estimate)")
        }
        var load = try loadOptions(modelParams)
        load.progress = nil
        let e = try MemoryEstimate(path: path, load: load, session: try estimateSessionOptions(sessionParams))
        func bytes(_ x: Double) -> UInt64 { x.isFinite && x > 0 ? UInt64(min(x.rounded(.up), 1.8e19)) : 0 }
        var result = mistral_memory_estimate(
            struct_size: min(declared, MemoryLayout<mistral_memory_estimate>.size),
            weights_bytes: bytes(e.weightsBytes), kv_bytes_per_position: bytes(e.kvBytesPerPosition),
            n_ctx: UInt64(max(e.nCtx, 0)), kv_bytes: bytes(e.kvBytes), scratch_bytes: bytes(e.scratchBytes),
            other_bytes: bytes(e.tokenizerBytes + e.visionBytes), total_bytes: bytes(e.totalBytes))
        withUnsafeBytes(of: &result) { src in
            if let base = src.baseAddress { UnsafeMutableRawPointer(out).copyMemory(from: base, byteCount: min(declared, src.count)) }
        }
    }
}

/// The session params as SessionOptions, defaults for NULL or an older struct.
func estimateSessionOptions(_ params: UnsafePointer<mistral_session_params>?) throws -> SessionOptions {
    var defaults = mistral_session_params()
    mistral_session_params_init(&defaults)
    let p = try readParams(params, defaults: defaults, name: "mistral_session_params")
    var o = SessionOptions()
    o.nCtx = Int(p.n_ctx)
    o.threads = Int(p.n_threads)
    o.nBatch = Int(p.n_batch)
    guard let kv = KVCacheType(rawValue: p.kv_type) else {
        throw invalid("mistral_session_params.kv_type is \(p.kv_type); use MISTRAL_KV_F16 or MISTRAL_KV_F32")
    }
    o.kvType = kv
    return o
}
