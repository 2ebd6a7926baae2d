// The Llama-family decoder (GGUF arch `llama`, and Mistral's variants of it): RMSNorm, RoPE, grouped-query
// attention, SwiGLU feed-forward. Config, weights and run state are kept apart; the forward pass reads top to
// bottom and allocates nothing.
import Glibc
import MistralKernels

// MARK: - Config

public struct LlamaConfig: Sendable {
    public var arch: String
    public var nLayer: Int
    public var nEmbd: Int
    public var nFF: Int
    public var nHead: Int
    public var nKVHead: Int
    public var headDim: Int
    public var rotDim: Int
    public var ropeBase: Double
    public var rmsEps: Float
    public var nVocab: Int
    public var nCtxTrain: Int
    /// true: rotate pairs (2i, 2i+1) — GGUF llama weights are permuted for this; false: halves (HF/NeoX layout).
    public var ropeInterleaved: Bool

    public var qDim: Int { nHead * headDim }
    public var kvDim: Int { nKVHead * headDim }

    static let supportedArchitectures: Set<String> = ["llama", "mistral", "mistral3"]

    public static func fromGGUF(_ g: GGUFFile) throws -> LlamaConfig {
        guard let arch = try g.string("general.architecture") else {
            throw MistralError.format("metadata 'general.architecture' is missing")
        }
        guard supportedArchitectures.contains(arch) else {
            throw MistralError.unsupported("architecture '\(arch)' is not supported (supported: llama, mistral, mistral3)")
        }
        func required(_ key: String) throws -> Int {
            guard let v = try g.int("\(arch).\(key)") else {
                throw MistralError.format("metadata '\(arch).\(key)' is missing")
            }
            guard v > 0, v <= 1 << 24 else { throw MistralError.format("metadata '\(arch).\(key)' = \(v) is out of range") }
            return v
        }
        let nEmbd = try required("embedding_length")
        let nHead = try required("attention.head_count")
        let nKV = try g.int("\(arch).attention.head_count_kv") ?? nHead
        let headDim = try g.int("\(arch).attention.key_length") ?? (nEmbd / nHead)
        let rotDim = try g.int("\(arch).rope.dimension_count") ?? headDim
        let nVocab = try g.int("\(arch).vocab_size") ?? (try g.stringArray("tokenizer.ggml.tokens")?.count ?? 0)
        let config = LlamaConfig(
            arch: arch,
            nLayer: try required("block_count"),
            nEmbd: nEmbd,
            nFF: try required("feed_forward_length"),
            nHead: nHead,
            nKVHead: nKV,
            headDim: headDim,
            rotDim: rotDim,
            ropeBase: try g.double("\(arch).rope.freq_base") ?? 10000,
            rmsEps: Float(try g.double("\(arch).attention.layer_norm_rms_epsilon") ?? 1e-5),
            nVocab: nVocab,
            nCtxTrain: try g.int("\(arch).context_length") ?? 4096,
            ropeInterleaved: true)
        try config.validate()
        return config
    }

    func validate() throws {
        guard nKVHead > 0, nHead % nKVHead == 0 else {
            throw MistralError.format("head_count \(nHead) is not a multiple of head_count_kv \(nKVHead)")
        }
        guard headDim > 0, headDim % 2 == 0, headDim <= 1024 else { throw MistralError.format("bad head dimension \(headDim)") }
        guard rotDim > 0, rotDim % 2 == 0, rotDim <= headDim else { throw MistralError.format("bad rope dimension \(rotDim)") }
        // Token ids and positions are int32 in the C API.
        guard nVocab > 0, nVocab <= Int(Int32.max) else { throw MistralError.format("vocabulary size \(nVocab) is out of range") }
        guard nCtxTrain > 0, nCtxTrain <= Int(Int32.max) else {
            throw MistralError.format("trained context length \(nCtxTrain) is out of range (1...\(Int32.max))")
        }
        guard ropeBase.isFinite, ropeBase > 0 else { throw MistralError.format("rope theta \(ropeBase) must be a finite positive number") }
        guard rmsEps.isFinite, rmsEps > 0, rmsEps < 1 else { throw MistralError.format("rms epsilon \(rmsEps) must be in (0, 1)") }
    }
}

// MARK: - Weights

/// Checkpoint keys of the decoder's tensors in each layout this engine reads.
public struct LlamaTensorNames: Sendable {
    public enum Role: Sendable { case attnNorm, wq, wk, wv, wo, ffnNorm, gate, up, down }
    let tokenEmbedding: String
    let outputNorm: String
    let output: [String]  // the first present wins; none present means tied to the embedding
    let layer: @Sendable (Int, Role) -> String

    /// llama.cpp's GGUF names.
    public static let gguf = LlamaTensorNames(
        tokenEmbedding: "token_embd.weight", outputNorm: "output_norm.weight", output: ["output.weight"]
    ) { l, role in
        let n: String
        switch role {
        case .attnNorm: n = "attn_norm"
        case .wq: n = "attn_q"
        case .wk: n = "attn_k"
        case .wv: n = "attn_v"
        case .wo: n = "attn_output"
        case .ffnNorm: n = "ffn_norm"
        case .gate: n = "ffn_gate"
        case .up: n = "ffn_up"
        case .down: n = "ffn_down"
        }
        return "blk.\(l).\(n).weight"
    }

    /// Hugging Face transformers names under `prefix` ("model.", "language_model.model.", "model.language_model.").
    public static func huggingFace(prefix: String, lmHead: [String]) -> LlamaTensorNames {
        LlamaTensorNames(tokenEmbedding: prefix + "embed_tokens.weight", outputNorm: prefix + "norm.weight",
                         output: lmHead) { l, role in
            let n: String
            switch role {
            case .attnNorm: n = "input_layernorm"
            case .wq: n = "self_attn.q_proj"
            case .wk: n = "self_attn.k_proj"
            case .wv: n = "self_attn.v_proj"
            case .wo: n = "self_attn.o_proj"
            case .ffnNorm: n = "post_attention_layernorm"
            case .gate: n = "mlp.gate_proj"
            case .up: n = "mlp.up_proj"
            case .down: n = "mlp.down_proj"
            }
            return "\(prefix)layers.\(l).\(n).weight"
        }
    }

    /// Mistral's native consolidated.safetensors names.
    public static let native = LlamaTensorNames(
        tokenEmbedding: "tok_embeddings.weight", outputNorm: "norm.weight", output: ["output.weight"]
    ) { l, role in
        let n: String
        switch role {
        case .attnNorm: n = "attention_norm"
        case .wq: n = "attention.wq"
        case .wk: n = "attention.wk"
        case .wv: n = "attention.wv"
        case .wo: n = "attention.wo"
        case .ffnNorm: n = "ffn_norm"
        case .gate: n = "feed_forward.w1"
        case .up: n = "feed_forward.w3"
        case .down: n = "feed_forward.w2"
        }
        return "layers.\(l).\(n).weight"
    }
}

public struct LlamaLayerWeights: @unchecked Sendable {  // pointers into memory owned by LlamaWeights
    let attnNorm: UnsafePointer<Float>
    let wq, wk, wv, wo: WeightMatrix
    let ffnNorm: UnsafePointer<Float>
    let wGate, wUp, wDown: WeightMatrix
}

public final class LlamaWeights: @unchecked Sendable {  // immutable after init
    public let config: LlamaConfig
    let tokenEmbedding: WeightMatrix
    let layers: [LlamaLayerWeights]
    let outputNorm: UnsafePointer<Float>
    let output: WeightMatrix
    let ropeFreqFactors: UnsafePointer<Float>?
    /// RoPE's inverse frequencies, as HF computes them (f32, divided by rope_freqs when the file has them): fixed by
    /// the config, so computed once here instead of in every step for every row.
    let ropeInvFreq: [Float]
    /// Bytes of weights converted at load time (held in `owned`), 0 when used in place.
    public let convertedBytes: Int
    /// Bytes of weights repacked at load into the row-interleaved layout (Interleave.swift).
    public let interleavedBytes: Int
    private var owned: [UnsafeMutableRawPointer] = []
    private let keepAlive: [AnyObject]

    /// Binds the tensors, checking every shape against the config. `convertTo` (.q8_0 or .q4_0) re-quantizes
    /// float matrices into owned memory so a bf16 checkpoint fits in less; quantized ones are used as they are.
    public convenience init(tensors: [String: TensorRef], names: LlamaTensorNames, config c: LlamaConfig,
                            keepAlive: [AnyObject], convertTo: GGMLType? = nil) throws {
        try self.init(tensors: tensors, names: names, config: c, keepAlive: keepAlive, convertTo: convertTo,
                      progress: LoadProgress(nil))
    }

    /// The decoder's matrices as (checkpoint key, cols, rows): the token embedding, the output projection when it
    /// is not tied, then each layer's seven. Keys missing from `tensors` are left out.
    static func matrices(_ tensors: [String: TensorRef], names: LlamaTensorNames,
                         config c: LlamaConfig) -> [(name: String, cols: Int, rows: Int)] {
        var list = [(names.tokenEmbedding, c.nEmbd, c.nVocab)]
        if let out = names.output.first(where: { tensors[$0] != nil }) { list.append((out, c.nEmbd, c.nVocab)) }
        for l in 0..<c.nLayer {
            list += [(names.layer(l, .wq), c.nEmbd, c.qDim), (names.layer(l, .wk), c.nEmbd, c.kvDim),
                     (names.layer(l, .wv), c.nEmbd, c.kvDim), (names.layer(l, .wo), c.qDim, c.nEmbd),
                     (names.layer(l, .gate), c.nEmbd, c.nFF), (names.layer(l, .up), c.nEmbd, c.nFF),
                     (names.layer(l, .down), c.nFF, c.nEmbd)]
        }
        return list.filter { tensors[$0.0] != nil }.map { (name: $0.0, cols: $0.1, rows: $0.2) }
    }

    /// Whether a matrix of this type and width is re-quantized to `target` at load time.
    static func converts(_ type: GGMLType, cols: Int, to target: GGMLType?) -> Bool {
        guard let target else { return false }
        return [.f32, .f16, .bf16].contains(type) && cols % 32 == 0 && target.rowBytes(cols) != nil
    }

    /// The type a matrix has once loaded (after any re-quantization).
    static func loadedType(_ type: GGMLType, cols: Int, convertTo: GGMLType?) -> GGMLType {
        if let target = convertTo, converts(type, cols: cols, to: target) { return target }
        return type
    }

    /// Whether init repacks this matrix into the row-interleaved layout (into owned memory, its file pages given
    /// back), when the CPU path prefers it: every matrix, the output projection included, but the embedding
    /// unless it is also the (tied) output — as init's matrix(_:cols:rows:repack:) calls go.
    static func repacks(_ name: String, names: LlamaTensorNames, tensors: [String: TensorRef], type: GGMLType,
                        rows: Int, cols: Int) -> Bool {
        let tied = !names.output.contains(where: { tensors[$0] != nil })
        guard name != names.tokenEmbedding || tied, type.rowBytes(cols) != nil,
              let q = QuantType(rawValue: type.rawValue) else { return false }
        return rows % Interleave.rows == 0 && KernelDispatch.prefersInterleaved(q)  // as WeightMatrix.shouldInterleave
    }

    init(tensors: [String: TensorRef], names: LlamaTensorNames, config c: LlamaConfig,
         keepAlive: [AnyObject], convertTo: GGMLType?, progress: LoadProgress) throws {
        self.keepAlive = keepAlive
        if progress.isActive {
            for m in LlamaWeights.matrices(tensors, names: names, config: c) {
                guard let t = tensors[m.name] else { continue }
                let final = LlamaWeights.loadedType(t.type, cols: m.cols, convertTo: convertTo)
                if final != t.type { progress.expect(t.byteCount) }
                if LlamaWeights.repacks(m.name, names: names, tensors: tensors, type: final, rows: m.rows, cols: m.cols),
                   let rowBytes = final.rowBytes(m.cols) {
                    progress.expect(m.rows * rowBytes)
                }
            }
        }
        var owned: [UnsafeMutableRawPointer] = []
        var converted = 0, interleaved = 0
        func release() { for p in owned { free(p) } }
        // the mappings tensors may point into, whose pages a repacked tensor gives back
        let files: [MappedFile] = keepAlive.compactMap {
            ($0 as? GGUFFile)?.file ?? ($0 as? SafetensorsFile)?.file ?? ($0 as? MappedFile)
        }
        func tensor(_ name: String) throws -> TensorRef {
            guard let t = tensors[name] else { throw MistralError.format("tensor '\(name)' is missing") }
            return t
        }
        // The embedding (row lookups) and the output projection (one token per forward pass, also in prefill,
        // where the file-layout kernels decode faster) stay in the file's layout.
        func matrix(_ name: String, cols: Int, rows: Int, repack: Bool = true) throws -> WeightMatrix {
            let t = try tensor(name)
            guard t.shape.count == 2, t.shape[0] == cols, t.shape[1] == rows else {
                throw MistralError.format("tensor '\(name)' has shape \(t.shape), expected [\(cols), \(rows)]")
            }
            let m = try WeightMatrix(data: t.data, type: t.type, rows: rows, cols: cols)
            guard let target = convertTo, LlamaWeights.converts(t.type, cols: cols, to: target),
                  let rowBytes = target.rowBytes(cols) else { return repack ? try interleave(m, mapped: true) : m }
            let dst = try allocateZeroed(UInt8.self, count: rows * rowBytes, what: "converted '\(name)'")
            owned.append(UnsafeMutableRawPointer(dst))
            let row = try allocateZeroed(Float.self, count: cols, what: "conversion row")
            defer { free(row) }
            let sourceRowBytes = t.byteCount / max(rows, 1)
            for r in 0..<rows {
                m.dequantizeRow(r, into: row)
                if target == .q8_0 { Quantize.rowQ8_0(row, cols, dst + r * rowBytes) }
                else { Quantize.rowQ4_0(row, cols, dst + r * rowBytes) }
                try progress.advance(sourceRowBytes)
            }
            converted += rows * rowBytes
            // The float source is not read again: its pages go, so a 47 GB bf16 folder never has the source and
            // the converted copy resident at once.
            files.forEach { $0.dropPages(t.data, t.byteCount) }
            let requantized = try WeightMatrix(data: UnsafeRawPointer(dst), type: target, rows: rows, cols: cols)
            return repack ? try interleave(requantized, mapped: false) : requantized
        }
        /// The matrix in the row-interleaved layout when the CPU's kernels want it (into owned memory, giving back
        /// the pages of the file's copy), else as it is.
        func interleave(_ m: WeightMatrix, mapped: Bool) throws -> WeightMatrix {
            guard m.shouldInterleave else { return m }
            let bytes = m.rows * m.rowBytes
            let dst = try allocateWeights(bytes, what: "interleaved weights")
            owned.append(dst)
            let r = try m.interleavedCopy(into: dst)
            interleaved += bytes
            try progress.advance(bytes)
            if mapped {
                files.forEach { $0.dropPages(m.data, bytes) }
            } else if let i = owned.firstIndex(where: { UnsafeRawPointer($0) == m.data }) {
                free(owned.remove(at: i))  // the converted copy
            }
            return r
        }
        func vector(_ name: String, _ n: Int) throws -> UnsafePointer<Float> {
            let out = try tensor(name).floatVector(n)
            owned.append(UnsafeMutableRawPointer(out))
            return UnsafePointer(out)
        }
        do {
            if let convertTo, convertTo != .q8_0, convertTo != .q4_0 {
                throw MistralError.unsupported("load-time conversion to \(convertTo.name) (supported: Q8_0, Q4_0)")
            }
            outputNorm = try vector(names.outputNorm, c.nEmbd)
            let factors = tensors["rope_freqs.weight"] != nil ? try vector("rope_freqs.weight", c.rotDim / 2) : nil
            ropeFreqFactors = factors
            ropeInvFreq = (0..<c.rotDim / 2).map { i in
                let invFreq = Float(1.0 / pow(c.ropeBase, Double(2 * i) / Double(c.rotDim)))
                return factors.map { invFreq / $0[i] } ?? invFreq
            }
            // The output projection is a GEMM over every row of a batched step: repacked like the layers. The
            // embedding is only looked up by row, so it stays as it is unless it is also the (tied) output.
            let outName = names.output.first(where: { tensors[$0] != nil })
            tokenEmbedding = try matrix(names.tokenEmbedding, cols: c.nEmbd, rows: c.nVocab, repack: outName == nil)
            if let outName {
                output = try matrix(outName, cols: c.nEmbd, rows: c.nVocab)
            } else {
                output = tokenEmbedding
            }
            var layers: [LlamaLayerWeights] = []
            for l in 0..<c.nLayer {
                let key = { (role: LlamaTensorNames.Role) in names.layer(l, role) }
                layers.append(LlamaLayerWeights(
                    attnNorm: try vector(key(.attnNorm), c.nEmbd),
                    wq: try matrix(key(.wq), cols: c.nEmbd, rows: c.qDim),
                    wk: try matrix(key(.wk), cols: c.nEmbd, rows: c.kvDim),
                    wv: try matrix(key(.wv), cols: c.nEmbd, rows: c.kvDim),
                    wo: try matrix(key(.wo), cols: c.qDim, rows: c.nEmbd),
                    ffnNorm: try vector(key(.ffnNorm), c.nEmbd),
                    wGate: try matrix(key(.gate), cols: c.nEmbd, rows: c.nFF),
                    wUp: try matrix(key(.up), cols: c.nEmbd, rows: c.nFF),
                    wDown: try matrix(key(.down), cols: c.nFF, rows: c.nEmbd)))
            }
            self.layers = layers
        } catch {
            release()
            throw error
        }
        self.owned = owned
        convertedBytes = converted
        interleavedBytes = interleaved
        config = c
    }

    /// Binds a GGUF file's tensors (llama.cpp names).
    public convenience init(gguf g: GGUFFile, config: LlamaConfig, convertTo: GGMLType? = nil) throws {
        try self.init(gguf: g, config: config, convertTo: convertTo, progress: LoadProgress(nil))
    }

    convenience init(gguf g: GGUFFile, config: LlamaConfig, convertTo: GGMLType?, progress: LoadProgress) throws {
        try self.init(tensors: g.tensorRefs, names: .gguf, config: config, keepAlive: [g], convertTo: convertTo,
                      progress: progress)
    }

    /// The matrices used in place in the file's memory (not repacked or converted): what a load reads ahead.
    var inPlaceRanges: [(UnsafeRawPointer, Int)] {
        var all = [tokenEmbedding, output]
        for l in layers { all += [l.wq, l.wk, l.wv, l.wo, l.wGate, l.wUp, l.wDown] }
        return all.filter { !$0.interleaved }.map { ($0.data, $0.rows * $0.rowBytes) }
    }

    deinit { for p in owned { free(p) } }
}

// MARK: - Run state

/// How the KV cache stores keys and values: f16 by default (half the memory and bandwidth of f32 at no
/// measurable cost in accuracy), q8_0 (blocks of 32 int8 with an f16 scale, 34 bytes per 32 values: 47 % less
/// than f16, for long contexts) as an option, f32 for tests that compare against float references.
public enum KVCacheType: Int32, Sendable {
    case f16 = 0, f32 = 1, q8_0 = 2

    /// Bytes of `n` values (n a multiple of 32 for q8_0).
    public func bytes(values n: Int) -> Int {
        switch self {
        case .f16: n &* 2
        case .f32: n &* 4
        case .q8_0: n / 32 &* 34
        }
    }
}

/// The keys and values of every layer for nCtx positions: layer l, position p, KV head h at
/// base + (l * nCtx + p) * rowBytes + h * headBytes.
final class KVCache: @unchecked Sendable {  // written by one session's forward pass, read by its workers
    let type: KVCacheType
    let nCtx: Int
    let kvDim: Int
    let rowBytes: Int
    let k, v: UnsafeMutableRawPointer

    /// Bytes of keys and values for `nCtx` positions of a model with this config.
    static func bytes(_ c: LlamaConfig, nCtx: Int, type: KVCacheType) -> Int? {
        let (a, o1) = c.nLayer.multipliedReportingOverflow(by: nCtx)
        let (b, o2) = a.multipliedReportingOverflow(by: 2 &* type.bytes(values: c.kvDim))
        return o1 || o2 ? nil : b
    }

    init(config c: LlamaConfig, nCtx: Int, type: KVCacheType) throws {
        if type == .q8_0, c.headDim % 32 != 0 {
            throw MistralError(.invalidArgument, "a q8_0 KV cache needs a head size that is a multiple of 32 (this model's is \(c.headDim))")
        }
        guard let total = KVCache.bytes(c, nCtx: nCtx, type: type) else {
            throw MistralError(.outOfMemory, "KV cache size overflows")
        }
        let half = total / 2
        self.type = type
        self.nCtx = nCtx
        kvDim = c.kvDim
        rowBytes = type.bytes(values: c.kvDim)
        k = UnsafeMutableRawPointer(try allocateZeroed(UInt8.self, count: half, what: "KV cache (\(total / 1_048_576) MiB)"))
        do {
            v = UnsafeMutableRawPointer(try allocateZeroed(UInt8.self, count: half, what: "KV cache (\(total / 1_048_576) MiB)"))
        } catch {
            free(k)
            throw error
        }
    }

    deinit {
        free(k)
        free(v)
    }

    @inline(__always) func offset(layer: Int, pos: Int) -> Int { (layer * nCtx + pos) * rowBytes }

    /// Stores n rows of kvDim floats (keys or values of positions pos..<pos+n) into layer `layer`.
    func store(_ src: UnsafePointer<Float>, into base: UnsafeMutableRawPointer, layer: Int, pos: Int, n: Int) {
        let dst = base + offset(layer: layer, pos: pos)
        switch type {
        case .f32: dst.assumingMemoryBound(to: Float.self).update(from: src, count: n * kvDim)
        case .f16: HalfConvert.toHalf(src, dst.assumingMemoryBound(to: UInt16.self), n * kvDim)
        case .q8_0: Quantize.rowQ8_0(src, n * kvDim, dst)  // rows are whole blocks: kvDim is a multiple of 32
        }
    }

    /// One KV head's halves at position `pos` of an f16 cache (the next position's are rowBytes / 2 further).
    @inline(__always)
    func halfRow(_ base: UnsafeMutableRawPointer, layer: Int, pos: Int, head: Int, headDim: Int) -> UnsafePointer<UInt16> {
        UnsafePointer((base + offset(layer: layer, pos: pos)).assumingMemoryBound(to: UInt16.self) + head &* headDim)
    }

    /// Reads `count` positions from `pos` of one KV head (headDim values each) as floats into dst (row-major).
    @inline(__always)
    func load(_ base: UnsafeMutableRawPointer, layer: Int, pos: Int, count: Int, head: Int, headDim: Int,
              into dst: UnsafeMutablePointer<Float>) {
        let src = base + offset(layer: layer, pos: pos) + type.bytes(values: head * headDim)
        for i in 0..<count {
            let row = src + i * rowBytes
            let out = dst + i * headDim
            switch type {
            case .f32: out.update(from: row.assumingMemoryBound(to: Float.self), count: headDim)
            case .f16: HalfConvert.toFloat(row.assumingMemoryBound(to: UInt16.self), out, headDim)
            case .q8_0:
                for b in 0..<headDim / 32 {
                    let blk = row + b * 34
                    let d = SIMD16<Float>(repeating: halfToFloat(blk.loadUnaligned(as: UInt16.self)))
                    for h in 0..<2 {
                        let q = (blk + 2 + 16 * h).loadUnaligned(as: SIMD16<Int8>.self)
                        var f = SIMD16<Float>()
                        for l in 0..<16 { f[l] = Float(q[l]) }
                        UnsafeMutableRawPointer(out + b * 32 + 16 * h).storeBytes(of: f * d, as: SIMD16<Float>.self)
                    }
                }
            }
        }
    }
}

/// One session's run state: its KV cache and next-token logits. The activations a forward step writes live in the
/// model's batch scheduler (ForwardScratch), shared by the sessions it batches. Allocated once per session.
final class LlamaState: @unchecked Sendable {  // used by one session at a time; workers write disjoint slices
    let nBatch: Int
    let nCtx: Int
    let logits: UnsafeMutablePointer<Float>
    let cache: KVCache

    /// Positions per attention block, and query tokens per attention task.
    static let kvBlock = 64
    static let queryTokens = 8
    /// Decode attention splits its positions into at most this many ranges of at least minSplitPositions.
    static let maxSplits = 16
    static let minSplitPositions = 256

    init(config c: LlamaConfig, nCtx: Int, nBatch: Int, kvType: KVCacheType = .f16) throws {
        self.nBatch = nBatch
        self.nCtx = nCtx
        logits = try allocateZeroed(Float.self, count: c.nVocab, what: "logits")
        do {
            cache = try KVCache(config: c, nCtx: nCtx, type: kvType)
        } catch {
            free(logits)
            throw error
        }
    }

    deinit { free(logits) }
}

/// Where a forward pass puts logits.
enum LogitsRequest {
    case none
    case last                                  // state.logits gets the last row
    case all(UnsafeMutablePointer<Float>)      // n x vocab rows into the caller's buffer
}

/// What one sequence's attention tasks read and write: its queries and outputs (its rows of the step) and its cache.
private struct AttentionArgs {
    let cache: KVCache
    let q: UnsafeMutablePointer<Float>    // the sequence's first query row
    let out: UnsafeMutablePointer<Float>  // its first attention-output row
    let layer: Int
    let n, startPos: Int
}

// MARK: - Forward

extension LlamaWeights {
    /// One step: the rows of every sequence (ForwardSequence.row..<row+n of the scratch) through the decoder
    /// together. Matrix products run over all rows at once, so each weight is read once per step; norms, RoPE,
    /// the KV store and attention run per row against its own sequence's position and cache. Each sequence's
    /// keys/values are appended to its cache. The caller has checked ids, that the positions fit, and that the
    /// rows and sequences fit the scratch. A single session is a step of one sequence.
    func forward(_ seqs: [ForwardSequence], scratch s: ForwardScratch, pool: WorkerPool) {
        let c = config
        let d = c.nEmbd, kvDim = c.kvDim, qDim = c.qDim
        var n = 0
        for (i, q) in seqs.enumerated() {
            n = max(n, q.row + q.n)
            s.rowStarts[i] = q.row
        }
        s.rowStarts[seqs.count] = n
        let segments = MatMulSegments(starts: s.rowStarts, count: seqs.count)
        queueKVPrefetch(seqs, layer: 0, pool: pool)

        // Input embeddings.
        for q in seqs {
            for t in 0..<q.n {
                let dst = s.x + (q.row + t) * d
                if let tokens = q.tokens {
                    tokenEmbedding.dequantizeRow(Int(tokens[t]), into: dst)
                } else if let embeddings = q.embeddings {
                    dst.update(from: embeddings + t * d, count: d)
                }
            }
        }

        // Rotation angles for each row's position, as HF computes them (f32 inverse frequencies).
        let half = c.rotDim / 2
        for q in seqs {
            for t in 0..<q.n {
                let pos = Float(q.startPos + t), row = q.row + t
                for i in 0..<half {
                    let angle = Double(pos * ropeInvFreq[i])
                    s.ropeCos[row * half + i] = Float(cos(angle))
                    s.ropeSin[row * half + i] = Float(sin(angle))
                }
            }
        }

        for (l, layer) in layers.enumerated() {
            // Attention block.
            for t in 0..<n { Ops.rmsNorm(s.x + t * d, layer.attnNorm, s.xb + t * d, d, eps: c.rmsEps) }
            MatMul.multiply(MatMulTarget(layer.wq, y: s.q, yStride: qDim),
                            MatMulTarget(layer.wk, y: s.k, yStride: kvDim),
                            MatMulTarget(layer.wv, y: s.v, yStride: kvDim),
                            x: s.xb, n: n, acts: s.acts, pool: pool, segments: segments)
            for t in 0..<n {
                let cosT = UnsafePointer(s.ropeCos + t * half), sinT = UnsafePointer(s.ropeSin + t * half)
                for h in 0..<c.nHead {
                    Ops.rope(s.q + t * qDim + h * c.headDim, cos: cosT, sin: sinT, rotDim: c.rotDim, interleaved: c.ropeInterleaved)
                }
                for h in 0..<c.nKVHead {
                    Ops.rope(s.k + t * kvDim + h * c.headDim, cos: cosT, sin: sinT,
                             rotDim: c.rotDim, interleaved: c.ropeInterleaved)
                }
            }
            for q in seqs {
                let cache = q.state.cache
                cache.store(s.k + q.row * kvDim, into: cache.k, layer: l, pos: q.startPos, n: q.n)
                cache.store(s.v + q.row * kvDim, into: cache.v, layer: l, pos: q.startPos, n: q.n)
            }
            attention(seqs, layer: l, scratch: s, pool: pool)
            queueKVPrefetch(seqs, layer: l + 1, pool: pool)  // past the last layer: clears the queue
            MatMul.multiply(layer.wo, x: s.attn, n: n, y: s.xb, yStride: d, acts: s.acts, pool: pool, segments: segments)
            Ops.add(s.x, s.xb, n * d)

            // Feed-forward block.
            for t in 0..<n { Ops.rmsNorm(s.x + t * d, layer.ffnNorm, s.xb + t * d, d, eps: c.rmsEps) }
            MatMul.multiply(MatMulTarget(layer.wGate, y: s.hb, yStride: c.nFF),
                            MatMulTarget(layer.wUp, y: s.hb2, yStride: c.nFF), nil,
                            x: s.xb, n: n, acts: s.acts, pool: pool, segments: segments)
            Ops.swiGLU(s.hb, s.hb2, rows: n, n: c.nFF, pool: pool)
            MatMul.multiply(layer.wDown, x: s.hb, n: n, y: s.xb, yStride: d, acts: s.acts, pool: pool, segments: segments)
            Ops.add(s.x, s.xb, n * d)
        }
        outputLogits(seqs, scratch: s, pool: pool)
    }

    /// Queues every sequence's cached keys and values of `layer` (up to and including this step's rows) for the pool's
    /// waiting threads to prefetch while the layer before it runs (IdlePrefetch); past the last layer, empties the
    /// queue. Measured on SmolLM2, 8 streams, 2 threads: attention 1.15-1.5 -> 0.7-0.8 ms per step.
    private func queueKVPrefetch(_ seqs: [ForwardSequence], layer: Int, pool: WorkerPool) {
        guard pool.threadCount > 1 else { return }
        let queue = pool.idlePrefetch
        queue.begin()
        if layer < layers.count {
            for q in seqs {
                let cache = q.state.cache
                // with this step's own rows, which its KV store writes
                let bytes = (q.startPos + q.n) * cache.rowBytes, at = cache.offset(layer: layer, pos: 0)
                queue.add(cache.k + at, bytes: bytes)
                queue.add(cache.v + at, bytes: bytes)
            }
        }
        queue.commit()
    }

    /// Final norm and output projection: every row of the `.all` sequences into the caller's buffer, and the last
    /// row of the `.last` ones into their session's logits, those in one product for the whole step.
    private func outputLogits(_ seqs: [ForwardSequence], scratch s: ForwardScratch, pool: WorkerPool) {
        let c = config
        let d = c.nEmbd, vocab = c.nVocab
        var wanted = 0
        for q in seqs {
            switch q.logits {
            case .none: break
            case .last: wanted += 1
            case .all(let out):
                for t in 0..<q.n { Ops.rmsNorm(s.x + (q.row + t) * d, outputNorm, s.xb + t * d, d, eps: c.rmsEps) }
                MatMul.multiply(output, x: s.xb, n: q.n, y: out, yStride: vocab, acts: s.acts, pool: pool)
                q.state.logits.update(from: out + (q.n - 1) * vocab, count: vocab)
            }
        }
        guard wanted > 0 else { return }
        var i = 0
        for q in seqs {
            guard case .last = q.logits else { continue }
            Ops.rmsNorm(s.x + (q.row + q.n - 1) * d, outputNorm, s.xb + i * d, d, eps: c.rmsEps)
            i += 1
        }
        if wanted == 1, let q = seqs.first(where: { if case .last = $0.logits { true } else { false } }) {
            MatMul.multiply(output, x: s.xb, n: 1, y: q.state.logits, yStride: vocab, acts: s.acts, pool: pool)
            return
        }
        MatMul.multiply(output, x: s.xb, n: wanted, y: s.logitRows, yStride: vocab, acts: s.acts, pool: pool,
                        segments: MatMulSegments(starts: s.unitStarts, count: wanted))
        // each row to its session, over the pool (8 Tekken rows are 4 MB: one thread alone kept the others idle)
        pool.share(wanted, chunk: 1) { _, rows in
            var i = 0
            for q in seqs {
                guard case .last = q.logits else { continue }
                if rows.contains(i) { q.state.logits.update(from: s.logitRows + i * vocab, count: vocab) }
                i += 1
            }
        }
    }

    /// How many position ranges a sequence's decode attention is split into (0: not split). A decode step deep in
    /// the context has few (KV head, query block) tasks but many positions: splitting the positions too keeps
    /// every thread working. Depends on the sequence and the pool's size only, never on the step's other rows.
    private func decodeSplits(_ q: ForwardSequence, pool: WorkerPool) -> Int {
        guard q.decode else { return 0 }
        let splits = min(LlamaState.maxSplits, (q.startPos + 1) / LlamaState.minSplitPositions)
        return splits > 1 && config.nKVHead < 4 * pool.capacity ? splits : 0
    }

    /// Causal grouped-query attention of every sequence's queries over its own cache, as tiled ("flash")
    /// attention: each task takes one KV head and up to 8 query tokens of one sequence, i.e. every query head of
    /// that group for those tokens, and walks the cache in blocks of 64 positions, converting each block of keys
    /// and values to f32 once for all its queries and keeping a running max and sum per query (online softmax),
    /// so no score row of n_ctx is ever stored. A decode step at depth is split over its positions instead
    /// (decodeSplits) and merged after. The tasks of all sequences form one list split over the pool.
    private func attention(_ seqs: [ForwardSequence], layer: Int, scratch s: ForwardScratch, pool: WorkerPool) {
        let c = config
        let hd = c.headDim, qDim = c.qDim
        let group = c.nHead / c.nKVHead
        let qt = LlamaState.queryTokens
        // With enough sequences for every thread, a decode sequence is one task over all its KV heads: its keys
        // and values are read as whole rows by one thread, instead of each head's slice of them by whichever thread
        // claims it (the same arithmetic per head either way)
        let wholeRows = seqs.count >= 2 * pool.threadCount
        @inline(__always) func oneTask(_ q: ForwardSequence) -> Bool { wholeRows && q.n == 1 }
        var tasks = 0
        for (i, q) in seqs.enumerated() {
            s.taskStart[i] = tasks
            let splits = decodeSplits(q, pool: pool)
            tasks += splits > 1 ? c.nKVHead * splits : oneTask(q) ? 1 : (q.n + qt - 1) / qt * c.nKVHead
        }
        s.taskStart[seqs.count] = tasks
        // tasks are claimed one at a time: their cost varies with each sequence's depth and query count
        pool.share(tasks, chunk: 1) { tid, claimed in
            let scratch = s.attnScratch + tid * s.attnScratchStride
            let maxQ = qt * group
            let runMax = scratch + 2 * LlamaState.kvBlock * hd + maxQ * LlamaState.kvBlock, runSum = runMax + maxQ
            var i = 0
            for task in claimed {
                while task >= s.taskStart[i + 1] { i += 1 }
                let q = seqs[i], local = task - s.taskStart[i]
                let a = AttentionArgs(cache: q.state.cache, q: s.q + q.row * qDim, out: s.attn + q.row * qDim,
                                      layer: layer, n: q.n, startPos: q.startPos)
                let splits = decodeSplits(q, pool: pool)
                if splits > 1 {
                    splitTask(a, local, splits: splits, partials: s.attnPartials + i * s.attnPartialsStride,
                              scratch: scratch, scratchStride: s.attnScratchStride)
                    continue
                }
                let heads = oneTask(q) ? 0..<c.nKVHead : local % c.nKVHead..<local % c.nKVHead + 1
                let t0 = (local / c.nKVHead) * qt, t1 = min(a.n, t0 + qt)
                let nq = (t1 - t0) * group
                for kvh in heads {
                    @inline(__always) func out(_ j: Int) -> UnsafeMutablePointer<Float> {
                        a.out + (t0 + j / group) * qDim + (kvh * group + j % group) * hd
                    }
                    attend(a, kvh: kvh, t0: t0, nq: nq, positions: 0..<(a.startPos + t1), scratch: scratch,
                           out: out, runMax: runMax, runSum: runSum)
                    for j in 0..<nq {
                        let o = out(j)
                        let inv = runSum[j] > 0 ? 1 / runSum[j] : 0
                        for e in 0..<hd { o[e] *= inv }
                    }
                }
            }
        }
        for (i, q) in seqs.enumerated() {
            let splits = decodeSplits(q, pool: pool)
            if splits > 1 { mergeSplits(out: s.attn + q.row * qDim, partials: s.attnPartials + i * s.attnPartialsStride, splits: splits) }
        }
    }

    /// Split decode task (KV head, range): writes its queries' unnormalized output, running max and sum to the
    /// partials, which mergeSplits combines as flash-decoding does.
    private func splitTask(_ a: AttentionArgs, _ task: Int, splits: Int, partials: UnsafeMutablePointer<Float>,
                           scratch: UnsafeMutablePointer<Float>, scratchStride: Int) {
        let c = config
        let hd = c.headDim, group = c.nHead / c.nKVHead
        let total = a.startPos + 1, stride = hd + 2
        let kvh = task % c.nKVHead, sp = task / c.nKVHead
        // partial (sp, head h): out[hd], max, sum
        @inline(__always) func out(_ i: Int) -> UnsafeMutablePointer<Float> {
            partials + (sp * c.nHead + kvh * group + i) * stride
        }
        let lo = sp * total / splits, hi = (sp + 1) * total / splits
        let maxs = scratch + scratchStride - 2 * group, sums = maxs + group
        attend(a, kvh: kvh, t0: 0, nq: group, positions: lo..<hi, scratch: scratch, out: out,
               runMax: maxs, runSum: sums)
        for i in 0..<group {
            out(i)[hd] = maxs[i]
            out(i)[hd + 1] = sums[i]
        }
    }

    /// out = Σ_s e^(m_s - m) out_s / Σ_s e^(m_s - m) sum_s over the ranges of each head.
    private func mergeSplits(out: UnsafeMutablePointer<Float>, partials: UnsafeMutablePointer<Float>, splits: Int) {
        let c = config
        let hd = c.headDim, stride = hd + 2
        for h in 0..<c.nHead {
            let dst = out + h * hd
            var m = -Float.infinity
            for sp in 0..<splits { m = max(m, partials[(sp * c.nHead + h) * stride + hd]) }
            dst.update(repeating: 0, count: hd)
            var sum: Float = 0
            for sp in 0..<splits {
                let part = partials + (sp * c.nHead + h) * stride
                guard part[hd] > -.infinity else { continue }
                let w = expf(part[hd] - m)
                sum += w * part[hd + 1]
                axpy(w, part, dst, hd)
            }
            let inv = sum > 0 ? 1 / sum : 0
            for j in 0..<hd { dst[j] *= inv }
        }
    }

    /// Online-softmax attention of `nq` queries — query i is token t0 + i / group of query head
    /// kvh * group + i % group — over `positions` of KV head kvh (causal: a token sees positions up to its own),
    /// accumulating unnormalized outputs into out(i) with running max and sum. The per-thread scratch holds one
    /// 64-position block of keys and values as floats and the block's scores.
    @inline(__always)
    private func attend(_ a: AttentionArgs, kvh: Int, t0: Int, nq: Int, positions: Range<Int>,
                        scratch: UnsafeMutablePointer<Float>, out: (Int) -> UnsafeMutablePointer<Float>,
                        runMax: UnsafeMutablePointer<Float>, runSum: UnsafeMutablePointer<Float>) {
        let c = config
        let hd = c.headDim, group = c.nHead / c.nKVHead, qDim = c.qDim
        let scale = 1 / Float(hd).squareRoot()
        let block = LlamaState.kvBlock
        let kBuf = scratch, vBuf = scratch + block * hd
        let scores = vBuf + block * hd
        for i in 0..<nq {
            runMax[i] = -.infinity
            runSum[i] = 0
            out(i).update(repeating: 0, count: hd)
        }
        // Decode (a token's few query heads) reads an f16 cache where it lies, converting in registers: the
        // block's conversion into kBuf / vBuf was a third of a decode step at depth 1024. Many queries (prefill)
        // convert each block once. f16 -> f32 is exact and the FMAs are the same, so both give the same bits.
        let direct = a.cache.type == .f16 && hd % 16 == 0 && nq <= 4
        let halfStride = a.cache.rowBytes / 2
        var p0 = positions.lowerBound
        while p0 < positions.upperBound {
            let p1 = min(p0 + block, positions.upperBound)
            let kHalf = a.cache.halfRow(a.cache.k, layer: a.layer, pos: p0, head: kvh, headDim: hd)
            let vHalf = a.cache.halfRow(a.cache.v, layer: a.layer, pos: p0, head: kvh, headDim: hd)
            if !direct {
                a.cache.load(a.cache.k, layer: a.layer, pos: p0, count: p1 - p0, head: kvh, headDim: hd, into: kBuf)
                a.cache.load(a.cache.v, layer: a.layer, pos: p0, count: p1 - p0, head: kvh, headDim: hd, into: vBuf)
            }
            // every query sees the whole block (decode, and prefill blocks before the diagonal): the values are
            // then accumulated for 4 queries at once with the outputs in registers (accumulateValues)
            let wholeBlock = hd % 16 == 0 && a.startPos + t0 + 1 >= p1
            for i in 0..<nq {
                let t = t0 + i / group, h = kvh * group + i % group
                let visible = min(p1, a.startPos + t + 1)  // causal: positions <= this token's
                guard visible > p0 else { continue }
                let q = UnsafePointer(a.q + t * qDim + h * hd)
                let sc = scores + i * block
                var blockMax = -Float.infinity
                for p in p0..<visible {
                    // lanes summed as a tree (SIMD16.sum()'s 15 dependent adds per score were the largest part
                    // of decode attention at short contexts)
                    let v: Float
                    if direct {
                        v = lanesSum(dotLanesHalf(q, kHalf + (p - p0) &* halfStride, hd)) * scale
                    } else {
                        let k = kBuf + (p - p0) * hd
                        v = (hd % 16 == 0 ? lanesSum(dotLanes(q, k, hd).0) : dot(q, k, hd)) * scale
                    }
                    sc[p - p0] = v
                    blockMax = max(blockMax, v)
                }
                let newMax = max(runMax[i], blockMax)
                let o = out(i)
                if runMax[i] > -.infinity && runMax[i] < newMax {
                    let correction = expf(runMax[i] - newMax)
                    runSum[i] *= correction
                    for j in 0..<hd { o[j] *= correction }
                }
                runMax[i] = newMax
                // exp of the block's scores 16 at a time; tail lanes are never stored or summed
                let count = visible - p0
                var sum16 = SIMD16<Float>()
                var j = 0
                while j + 16 <= count {
                    let e = VisionAttention.exp16(UnsafeRawPointer(sc + j).loadUnaligned(as: SIMD16<Float>.self) - newMax)
                    UnsafeMutableRawPointer(sc + j).storeBytes(of: e, as: SIMD16<Float>.self)
                    sum16 += e
                    j += 16
                }
                var tail: Float = 0
                while j < count {
                    sc[j] = expf(sc[j] - newMax)
                    tail += sc[j]
                    j += 1
                }
                if !wholeBlock && direct {
                    for p in 0..<count {
                        accumulateValues(1, HalfRows(vHalf + p &* halfStride, stride: halfStride), count: 1, hd: hd,
                                         scores: sc + p, scoreStride: block, out: (o, o, o, o))
                    }
                } else if !wholeBlock {
                    for p in 0..<count { axpy(sc[p], vBuf + p * hd, o, hd) }
                }
                runSum[i] += sum16.sum() + tail
            }
            if wholeBlock {
                // 4 queries at a time, then the 1-3 left (a group of 3 query heads per KV head, as SmolLM2 has)
                var i = 0
                while i < nq {
                    let outs = (out(i), out(min(i + 1, nq - 1)), out(min(i + 2, nq - 1)), out(min(i + 3, nq - 1)))
                    let sc = scores + i * block, count = p1 - p0
                    if direct {
                        accumulateQueries(nq - i, HalfRows(vHalf, stride: halfStride), count: count, hd: hd, scores: sc,
                                          scoreStride: block, out: outs)
                    } else {
                        accumulateQueries(nq - i, FloatRows(vBuf, stride: hd), count: count, hd: hd, scores: sc,
                                          scoreStride: block, out: outs)
                    }
                    i += 4
                }
            }
            p0 = p1
        }
    }

    /// accumulateValues for the first min(left, 4) queries, with that count a constant at each call.
    @inline(__always)
    private func accumulateQueries<R: ValueRows>(_ left: Int, _ v: R, count: Int, hd: Int, scores: UnsafePointer<Float>,
                                                 scoreStride: Int,
                                                 out: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                                       UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)) {
        switch left {
        case 1: accumulateValues(1, v, count: count, hd: hd, scores: scores, scoreStride: scoreStride, out: out)
        case 2: accumulateValues(2, v, count: count, hd: hd, scores: scores, scoreStride: scoreStride, out: out)
        case 3: accumulateValues(3, v, count: count, hd: hd, scores: scores, scoreStride: scoreStride, out: out)
        default: accumulateValues(4, v, count: count, hd: hd, scores: scores, scoreStride: scoreStride, out: out)
        }
    }

    /// out_j += Σ_p scores[j * scoreStride + p] · v[p] for the first n (1...4, a constant at each call) queries j
    /// over `count` value rows of hd floats, 16 dimensions at a time with the outputs' lanes in registers: each
    /// value row is read once for the n queries, and every output lane takes the same fused multiply-adds in the
    /// same order as axpy gives it. Outputs past n are neither read nor written.
    @inline(__always)
    private func accumulateValues<R: ValueRows>(_ n: Int, _ v: R, count: Int, hd: Int,
                                                scores: UnsafePointer<Float>, scoreStride: Int,
                                                out: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                                      UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)) {
        let s0 = scores, s1 = scores + scoreStride, s2 = s1 + scoreStride, s3 = s2 + scoreStride
        var d = 0
        while d < hd {
            @inline(__always) func lanes(_ p: UnsafeMutablePointer<Float>) -> SIMD16<Float> {
                UnsafeRawPointer(p + d).loadUnaligned(as: SIMD16<Float>.self)
            }
            @inline(__always) func store(_ p: UnsafeMutablePointer<Float>, _ o: SIMD16<Float>) {
                UnsafeMutableRawPointer(p + d).storeBytes(of: o, as: SIMD16<Float>.self)
            }
            var o0 = lanes(out.0)
            var o1 = n > 1 ? lanes(out.1) : SIMD16(), o2 = n > 2 ? lanes(out.2) : SIMD16()
            var o3 = n > 3 ? lanes(out.3) : SIMD16()
            for p in 0..<count {
                let x = v.lanes(p, d)
                o0.addProduct(SIMD16(repeating: s0[p]), x)
                if n > 1 { o1.addProduct(SIMD16(repeating: s1[p]), x) }
                if n > 2 { o2.addProduct(SIMD16(repeating: s2[p]), x) }
                if n > 3 { o3.addProduct(SIMD16(repeating: s3[p]), x) }
            }
            store(out.0, o0)
            if n > 1 { store(out.1, o1) }
            if n > 2 { store(out.2, o2) }
            if n > 3 { store(out.3, o3) }
            d += 16
        }
    }
}

/// Value rows as accumulateValues reads them: 16 floats of row p from dimension d.
protocol ValueRows {
    func lanes(_ p: Int, _ d: Int) -> SIMD16<Float>
}

/// Rows of floats (a block converted into the attention scratch).
struct FloatRows: ValueRows {
    let base: UnsafePointer<Float>
    let stride: Int
    init(_ base: UnsafePointer<Float>, stride: Int) { self.base = base; self.stride = stride }
    @inline(__always) func lanes(_ p: Int, _ d: Int) -> SIMD16<Float> {
        UnsafeRawPointer(base + (p &* stride &+ d)).loadUnaligned(as: SIMD16<Float>.self)
    }
}

/// Rows of halves read in place from an f16 KV cache (stride: halves between positions), converted exactly.
struct HalfRows: ValueRows {
    let base: UnsafePointer<UInt16>
    let stride: Int
    init(_ base: UnsafePointer<UInt16>, stride: Int) { self.base = base; self.stride = stride }
    @inline(__always) func lanes(_ p: Int, _ d: Int) -> SIMD16<Float> { HalfConvert.toFloat16(base + (p &* stride &+ d)) }
}

/// dotLanes(q, k, n).0 with k as halves converted exactly (the same FMAs in the same order); n % 16 == 0.
@inline(__always)
func dotLanesHalf(_ a: UnsafePointer<Float>, _ b: UnsafePointer<UInt16>, _ n: Int) -> SIMD16<Float> {
    var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
    var i = 0
    while i + 32 <= n {
        acc0.addProduct(UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self), HalfConvert.toFloat16(b + i))
        acc1.addProduct(UnsafeRawPointer(a + i + 16).loadUnaligned(as: SIMD16<Float>.self), HalfConvert.toFloat16(b + i + 16))
        i += 32
    }
    while i + 16 <= n {
        acc0.addProduct(UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self), HalfConvert.toFloat16(b + i))
        i += 16
    }
    return acc0 + acc1
}
