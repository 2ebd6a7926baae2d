// What a model and a session will need in memory, computed from the files' headers before anything is loaded:
// the decoder weights (mapped in place or converted), the KV cache per position, the session's scratch, and the
// tokenizer's tables and the vision encoder.
import Glibc
import MistralKernels

public struct MemoryEstimate: Sendable {
    /// Decoder weights resident once loaded: tensors used in place (a GGUF file is read whole) plus converted
    /// copies and the norms as f32.
    public var weightsBytes = 0.0
    /// The vision encoder's tensors (used in place).
    public var visionBytes = 0.0
    /// The tokenizer's tables.
    public var tokenizerBytes = 0.0
    /// Keys and values of one position (every layer) in the KV type asked for.
    public var kvBytesPerPosition = 0.0
    /// The context the session would get (n_ctx 0 resolved) and its whole KV cache.
    public var nCtx = 0
    public var kvBytes = 0.0
    /// Activations for one n_batch chunk, logits, rope tables, quantized inputs, per-thread attention scratch.
    public var scratchBytes = 0.0

    /// What the headers say: the file's form ("gguf", "huggingface", "native", "tekken") and the decoder's shape
    /// (nil for tokenizer-only and vocab-only estimates).
    public var format = ""
    public var config: LlamaConfig?

    public var totalBytes: Double { weightsBytes + visionBytes + tokenizerBytes + kvBytes + scratchBytes }

    /// Reads only headers and metadata (a GGUF's metadata, config.json / params.json, safetensors headers).
    public init(path: String, load o: ModelLoadOptions = ModelLoadOptions(),
                session s: SessionOptions = SessionOptions()) throws {
        var config: LlamaConfig?
        var types = Set<GGMLType>()  // of the decoder's matrices as the forward pass sees them
        switch try ModelFormat.detect(path) {
        case .gguf(let p):
            format = "gguf"
            let gguf = try GGUFFile(file: MappedFile(path: p))
            tokenizerBytes = MemoryEstimate.bpeTokenizerBytes(
                tokens: gguf.metadata["tokenizer.ggml.tokens"]?.array?.count ?? 0,
                merges: gguf.metadata["tokenizer.ggml.merges"]?.array?.count ?? 0)
            if let mmproj = o.mmprojPath, !o.vocabOnly {
                visionBytes = Double(try MappedFile(path: mmproj).size)
            }
            if !o.vocabOnly {
                let c = try LlamaConfig.fromGGUF(gguf)
                config = c
                // prefetch() reads the whole file; converted matrices come on top.
                weightsBytes = Double(gguf.file.size)
                    + MemoryEstimate.decoderBytes(gguf.tensorRefs, names: .gguf, config: c, convertTo: o.convertTo,
                                                  inPlace: false, types: &types)
            }
        case .huggingFace(let folder):
            format = "huggingface"
            let json = try readJSONFile(folder + "/config.json")
            let c = try LlamaConfig.fromHuggingFace(json)
            tokenizerBytes = MemoryEstimate.tekkenTokenizerBytes(vocab: c.nVocab)
            if !o.vocabOnly {
                config = c
                let (tensors, _) = try loadHuggingFaceTensors(folder)
                weightsBytes = MemoryEstimate.decoderBytes(tensors, names: try huggingFaceNames(tensors), config: c,
                                                           convertTo: o.convertTo, inPlace: true, types: &types)
                if json["vision_config"] != nil {
                    visionBytes = MemoryEstimate.otherTensorBytes(tensors, names: try huggingFaceNames(tensors), config: c)
                }
            }
        case .native(let folder):
            format = "native"
            let json = try readJSONFile(folder + "/params.json")
            let c = try LlamaConfig.fromNative(json)
            tokenizerBytes = MemoryEstimate.tekkenTokenizerBytes(vocab: c.nVocab)
            if !o.vocabOnly {
                config = c
                let st = try SafetensorsFile(path: folder + "/consolidated.safetensors")
                weightsBytes = MemoryEstimate.decoderBytes(st.tensors, names: .native, config: c,
                                                           convertTo: o.convertTo, inPlace: true, types: &types)
                if json["vision_encoder"] != nil {
                    visionBytes = MemoryEstimate.otherTensorBytes(st.tensors, names: .native, config: c)
                }
            }
        case .tekkenJSON(let p):
            format = "tekken"
            tokenizerBytes = MemoryEstimate.tekkenTokenizerBytes(vocab: try TekkenTokenizer.load(path: p).vocabSize)
        }
        if let t = o.tokenizerPath {
            tokenizerBytes = MemoryEstimate.tekkenTokenizerBytes(vocab: try TekkenTokenizer.load(path: t).vocabSize)
        }
        self.config = config
        guard let c = config else { return }
        guard s.nCtx >= 0, s.nCtx <= 1 << 22 else { throw MistralError.invalid("n_ctx \(s.nCtx) is too large") }
        guard s.nBatch > 0, s.nBatch <= 8192 else { throw MistralError.invalid("n_batch must be in 1...8192, got \(s.nBatch)") }
        guard s.threads >= 0, s.threads <= 512 else { throw MistralError.invalid("n_threads must be in 0...512, got \(s.threads)") }
        nCtx = s.nCtx > 0 ? s.nCtx : min(c.nCtxTrain, 4096)
        let threads = s.threads > 0 ? s.threads : max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let nBatch = min(s.nBatch, nCtx)
        kvBytesPerPosition = 2 * Double(c.nLayer) * Double(s.kvType.bytes(values: c.kvDim))
        kvBytes = kvBytesPerPosition * Double(nCtx)
        scratchBytes = MemoryEstimate.scratchBytes(c, nBatch: nBatch, threads: threads, types: types)
    }

    /// The part of a session's run state (LlamaState) a forward pass writes: the float activations of one chunk
    /// at the strides the pass uses, logits, rope tables, per-thread attention scratch, and the quantized matmul
    /// inputs in the formats the weights' kernels take (float weights take none).
    static func scratchBytes(_ c: LlamaConfig, nBatch: Int, threads: Int, types: Set<GGMLType>) -> Double {
        let perRow = 2 * c.nEmbd + 2 * c.qDim + 2 * c.kvDim + 2 * c.nFF + c.rotDim
        let queries = LlamaState.queryTokens * (c.nHead / max(1, c.nKVHead))
        let attention = threads * (2 * LlamaState.kvBlock * c.headDim + queries * (LlamaState.kvBlock + 2))
        let floats = Double(nBatch) * Double(perRow) + Double(c.nVocab) + Double(attention)
        let formats = Set(types.compactMap { KernelDispatch.kernel($0)?.format })
        let cols = max(c.nEmbd, c.nFF, c.qDim)
        var quantized = 0.0
        if formats.contains(.q8_0) { quantized += Double(nBatch) * Double(cols) * (1 + 4.0 / 32 + 2.0 / 32) }
        if formats.contains(.q8_K) { quantized += Double(nBatch) * Double(cols) * (1 + 4.0 / 256 + 2.0 / 16) }
        return 4 * floats + quantized
    }

    /// Decoder matrices as loaded plus the norms copied as f32: converted (`convertTo`) and repacked (the
    /// row-interleaved layout, LlamaWeights.repacks) matrices in owned memory, whose file pages are given back;
    /// the rest used in place. `inPlace` false: the whole file is counted already (a GGUF, read whole), so the
    /// pages given back are taken off it.
    static func decoderBytes(_ tensors: [String: TensorRef], names: LlamaTensorNames, config c: LlamaConfig,
                             convertTo: GGMLType?, inPlace: Bool, types: inout Set<GGMLType>) -> Double {
        var bytes = Double((2 * c.nLayer + 1) * c.nEmbd * 4)
        for m in LlamaWeights.matrices(tensors, names: names, config: c) {
            guard let t = tensors[m.name] else { continue }
            let final = LlamaWeights.loadedType(t.type, cols: m.cols, convertTo: convertTo)
            types.insert(final)
            let repacked = LlamaWeights.repacks(m.name, names: names, tensors: tensors, type: final, rows: m.rows,
                                                cols: m.cols)
            guard final != t.type || repacked else {
                if inPlace { bytes += Double(t.byteCount) }
                continue
            }
            let owned = Double(m.rows) * Double(final.rowBytes(m.cols) ?? 0)
            bytes += repacked ? hugePageRounded(owned) : owned
            if !inPlace { bytes -= Double(t.byteCount) }
        }
        return bytes
    }

    /// Repacked weights of 2 MiB or more sit in transparent huge pages (allocateWeights): whole 2 MiB pages.
    static func hugePageRounded(_ bytes: Double) -> Double {
        let huge = Double(2 << 20)
        return bytes >= huge ? (bytes / huge).rounded(.up) * huge : bytes
    }

    /// Tensors of a checkpoint that are not the decoder's (the vision encoder and projector).
    static func otherTensorBytes(_ tensors: [String: TensorRef], names: LlamaTensorNames, config c: LlamaConfig) -> Double {
        var decoder = Set(LlamaWeights.matrices(tensors, names: names, config: c).map(\.name))
        decoder.insert(names.outputNorm)
        for l in 0..<c.nLayer { decoder.insert(names.layer(l, .attnNorm)); decoder.insert(names.layer(l, .ffnNorm)) }
        return tensors.values.reduce(0.0) { decoder.contains($1.name) ? $0 : $0 + Double($1.byteCount) }
    }

    // Tokenizer tables, per entry: Swift arrays and dictionaries of token bytes, measured as the resident growth
    // of a vocab-only load (Tests/python/test_estimate.py checks the totals against peak RSS).
    static func bpeTokenizerBytes(tokens: Int, merges: Int) -> Double {
        Double(tokens) * bpeBytesPerToken + Double(merges) * bpeBytesPerMerge
    }

    static func tekkenTokenizerBytes(vocab: Int) -> Double { Double(vocab) * tekkenBytesPerToken }

    // SmolLM2's GGUF (49152 tokens, 48900 merges; the file's metadata stays parsed while the model lives): 10.5 MB.
    static let bpeBytesPerToken = 110.0
    static let bpeBytesPerMerge = 110.0
    // tekken_240911.json (131072 tokens): 38 MB.
    static let tekkenBytesPerToken = 290.0
}
