import Glibc
import Synchronization
import MistralKernels

// A loaded model: its tokenizer and (unless loaded vocab-only) its decoder weights, from any supported format.
// Immutable after load, so one model can serve many sessions on many threads.

public struct ModelLoadOptions: Sendable {
    /// Load only the tokenizer: enough to tokenize, detokenize and render chats.
    public var vocabOnly = false
    /// A tekken.json to use instead of the one found next to the weights (folders) or inside the file (GGUF).
    public var tokenizerPath: String?
    /// Re-quantize float weights at load time (.q8_0 or .q4_0) to use less memory.
    public var convertTo: GGMLType?
    /// llama.cpp's mmproj GGUF holding the vision encoder of a GGUF text model.
    public var mmprojPath: String?
    /// Told the fraction of the load done (0 first, 1 last, increasing in between: re-quantizing matrices and
    /// reading a GGUF file into memory); returning false cancels the load with MistralError.cancelled.
    public var progress: LoadProgressCallback?
    /// Threads of the worker pool all sessions of the model share (0: the machine's physical cores). A session's
    /// own thread count is then at most this.
    public var threads = 0
    /// Sessions whose concurrent steps are evaluated together as one batch, at most (1: none; they take turns).
    public var maxBatchSessions = 16
    /// How the vision encoder's matmuls compute: f32 (the default: transformers' outputs to ~1e-5) or bf16
    /// (vdpbf16ps where the CPU has it, about twice as fast; see FloatGEMMCompute).
    public var visionCompute = FloatGEMMCompute.visionDefault
    public init(vocabOnly: Bool = false, tokenizerPath: String? = nil, convertTo: GGMLType? = nil) {
        self.vocabOnly = vocabOnly
        self.tokenizerPath = tokenizerPath
        self.convertTo = convertTo
    }
}

public final class Model: Sendable {
    public let path: String
    public let format: String
    public let arch: String
    public let tokenizer: any Tokenizer
    public let weights: LlamaWeights?
    public let summary: String
    /// The chat format this model was trained with, when recognised.
    public let chatTemplate: ChatTemplate?
    /// The Pixtral vision encoder and projector, when the checkpoint has one (not loaded vocab-only).
    public let vision: PixtralWeights?
    /// The vision encoder's compute mode (ModelLoadOptions.visionCompute).
    public let visionCompute: FloatGEMMCompute
    /// How images are cut into tokens (also known to vocab-only loads of multimodal checkpoints).
    public let visionConfig: VisionConfig?
    /// The worker pool and continuous-batching scheduler every session of this model runs its forward steps
    /// through (nil for vocab-only loads).
    public let scheduler: BatchScheduler?
    /// Every token's bytes in a trie for grammar masks, built on first use and then shared by all sessions.
    private let tokenTrieCache = Mutex<TokenTrie?>(nil)

    /// The decoder's fingerprint (ModelFingerprint.swift), computed on first use; nil for a vocab-only load.
    private let fingerprintCache = Mutex<(UInt64, UInt64)?>(nil)

    public var fingerprint: (UInt64, UInt64)? {
        guard let weights else { return nil }
        return fingerprintCache.withLock { cached in
            if let cached { return cached }
            let f = weights.computeFingerprint()
            cached = f
            return f
        }
    }

    public var tokenTrie: TokenTrie {
        tokenTrieCache.withLock { cached in
            if let cached { return cached }
            let trie = TokenTrie(tokenizer: tokenizer)
            cached = trie
            return trie
        }
    }

    /// A Tekken tokenizer's template follows its file's version (V3 or V7); other tokenizers in a Mistral folder
    /// get V7.
    static func tekkenTemplate(_ tokenizer: any Tokenizer) -> ChatTemplate {
        (tokenizer as? TekkenTokenizer).map { ChatTemplate.forTekken(version: $0.version) } ?? .mistralV7
    }

    public init(path: String, options o: ModelLoadOptions = ModelLoadOptions()) throws {
        guard o.threads >= 0, o.threads <= 512 else {
            throw MistralError.invalid("n_threads must be in 0...512, got \(o.threads)")
        }
        guard o.maxBatchSessions >= 1, o.maxBatchSessions <= 256 else {
            throw MistralError.invalid("max_batch_sessions must be in 1...256, got \(o.maxBatchSessions)")
        }
        self.path = path
        visionCompute = o.visionCompute
        let progress = LoadProgress(o.progress)
        try progress.start()
        let explicitTokenizer = try o.tokenizerPath.map { try TekkenTokenizer.load(path: $0) as any Tokenizer }
        switch try ModelFormat.detect(path) {
        case .gguf(let p):
            let gguf = try GGUFFile(file: MappedFile(path: p))
            format = "gguf"
            tokenizer = try explicitTokenizer ?? BPETokenizer.fromGGUF(gguf)
            chatTemplate = explicitTokenizer != nil ? Model.tekkenTemplate(tokenizer)
                : (try gguf.string("tokenizer.chat_template")).flatMap { ChatTemplate.detect(jinja: $0) }
            let mmproj = try o.mmprojPath.map { try GGUFFile(path: $0) }
            visionConfig = try mmproj.map { try VisionConfig.fromGGUF($0) }
            if o.vocabOnly {
                arch = try gguf.string("general.architecture") ?? "unknown"
                weights = nil
                vision = nil
            } else {
                let config = try LlamaConfig.fromGGUF(gguf)
                progress.expect(gguf.file.size)
                // Bind first (repacking and conversion read their tensors and give the file's pages back), then
                // read the tensors used in place: reading the whole file first would hold all of it resident
                // while the repacked copies are made, raising peak memory by the repacked bytes.
                let w = try LlamaWeights(gguf: gguf, config: config, convertTo: o.convertTo, progress: progress)
                try gguf.file.prefetch(ranges: w.inPlaceRanges, progress: progress)
                weights = w
                arch = config.arch
                vision = try mmproj.map { try PixtralWeights(gguf: $0, compute: o.visionCompute) }
            }
        case .huggingFace(let folder):
            format = "huggingface"
            tokenizer = try explicitTokenizer ?? Model.folderTokenizer(folder)
            chatTemplate = Model.tekkenTemplate(tokenizer)
            let json = try readJSONFile(folder + "/config.json")
            let config = try LlamaConfig.fromHuggingFace(json)
            arch = config.arch
            visionConfig = json["vision_config"] != nil ? try VisionConfig.fromHuggingFace(json) : nil
            if o.vocabOnly {
                weights = nil
                vision = nil
            } else {
                let (tensors, owners) = try loadHuggingFaceTensors(folder)
                weights = try LlamaWeights(tensors: tensors, names: huggingFaceNames(tensors), config: config,
                                           keepAlive: owners, convertTo: o.convertTo, progress: progress)
                vision = try visionConfig.map {
                    try PixtralWeights(tensors: tensors, layout: PixtralWeights.huggingFaceLayout(tensors), config: $0,
                                       keepAlive: owners, compute: o.visionCompute)
                }
            }
        case .native(let folder):
            format = "native"
            tokenizer = try explicitTokenizer ?? Model.folderTokenizer(folder)
            chatTemplate = Model.tekkenTemplate(tokenizer)
            let json = try readJSONFile(folder + "/params.json")
            let config = try LlamaConfig.fromNative(json)
            arch = config.arch
            visionConfig = json["vision_encoder"] != nil ? try VisionConfig.fromNative(json) : nil
            if o.vocabOnly {
                weights = nil
                vision = nil
            } else {
                let st = try SafetensorsFile(path: folder + "/consolidated.safetensors")
                weights = try LlamaWeights(tensors: st.tensors, names: .native, config: config, keepAlive: [st],
                                           convertTo: o.convertTo, progress: progress)
                vision = try visionConfig.map {
                    try PixtralWeights(tensors: st.tensors, layout: .native, config: $0, keepAlive: [st],
                                       compute: o.visionCompute)
                }
            }
        case .tekkenJSON(let p):
            format = "tekken"
            tokenizer = try explicitTokenizer ?? TekkenTokenizer.load(path: p)
            chatTemplate = Model.tekkenTemplate(tokenizer)
            arch = "tokenizer"
            weights = nil
            vision = nil
            visionConfig = nil
        }
        if let v = vision, let c = weights?.config, v.config.projectionDim != c.nEmbd {
            throw MistralError.format("the vision projector outputs \(v.config.projectionDim) values per row, the text model embeds \(c.nEmbd)")
        }
        if let id = visionConfig?.imageTokenId, id >= tokenizer.vocabSize {
            throw MistralError.format("image token id \(id) is outside the vocabulary (0..<\(tokenizer.vocabSize))")
        }
        if let c = weights?.config, c.nVocab != tokenizer.vocabSize {
            throw MistralError.format("the model has \(c.nVocab) vocabulary rows but its tokenizer has \(tokenizer.vocabSize) tokens")
        }
        if let c = weights?.config {
            summary = "\(arch) (\(format)): \(c.nLayer) layers, \(c.nEmbd) embd, \(c.nHead)/\(c.nKVHead) heads x \(c.headDim), "
                + "\(c.nFF) ffn, \(c.nVocab) vocab, \(c.nCtxTrain) ctx"
        } else {
            summary = "\(arch) (\(format), vocab only): \(tokenizer.vocabSize) tokens"
        }
        scheduler = try weights.map {
            try BatchScheduler(weights: $0, threads: o.threads > 0 ? o.threads : CPUTopology.physicalCores,
                               maxSequences: o.maxBatchSessions)
        }
        try progress.finish()
        logInfo("loaded \(path): \(summary)")
    }

    static func folderTokenizer(_ folder: String) throws -> any Tokenizer {
        let path = folder + "/tekken.json"
        guard fileExists(path) else {
            throw MistralError.format("'\(folder)' has no tekken.json; pass the tokenizer file explicitly (tokenizer_path)")
        }
        return try TekkenTokenizer.load(path: path)
    }

    public var config: LlamaConfig? { weights?.config }
    public var vocabSize: Int { tokenizer.vocabSize }
    public var contextLength: Int { weights?.config.nCtxTrain ?? 0 }

    /// The [IMG] placeholder id whose positions take image embedding rows.
    public var imageTokenId: Int32? {
        visionConfig?.imageTokenId.flatMap { Int32(exactly: $0) } ?? tokenizer.tokenId(forText: "[IMG]")
    }

    /// The token grid an image of this size becomes.
    public func imageGrid(width: Int, height: Int) throws -> ImageTokenGrid {
        guard let vc = visionConfig else { throw MistralError.unsupported("this model has no vision encoder") }
        return try ImagePreprocessor.targetSize(width: width, height: height, config: vc).grid
    }

    /// Embedding rows (one per [IMG] token, n_embd floats each) for packed RGB8 images, in order.
    public func embedImages(_ images: [RGBImage], threads: Int = 0) throws -> [Float] {
        guard let v = vision else { throw Model.noVision }
        return try embedPixels(try images.map { try ImagePreprocessor.preprocess($0, config: v.config) }, threads: threads)
    }

    static let noVision = MistralError.unsupported(
        "this model has no vision encoder (load a multimodal checkpoint, or pass an mmproj file for a GGUF)")

    /// The same for images already preprocessed (normalised, sized to whole tokens).
    public func embedPixels(_ pixels: [PixelImage], threads: Int = 0) throws -> [Float] {
        guard let v = vision else { throw Model.noVision }
        let n = threads > 0 ? threads : max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let encoder = try PixtralEncoder(weights: v, threads: n,
                                         maxPatches: pixels.map { $0.width * $0.height / (v.config.patchSize * v.config.patchSize) }.max(),
                                         compute: visionCompute)
        return try encoder.encode(pixels)
    }
}
