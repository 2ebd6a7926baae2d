// A loaded model: its tokenizer and (unless loaded vocab-only) its decoder weights, from any supported format.
// Immutable after load, so one model can serve many sessions on many threads.

public struct ModelLoadOptions: Sendable {
    /// Load only the tokenizer: enough to tokenize, detokenize and render chats.
    public var vocabOnly = false
    /// A tekken.json to use instead of the one found next to the weights (folders) or inside the file (GGUF).
    public var tokenizerPath: String?
    /// Re-quantize float weights at load time (.q8_0 or .q4_0) to use less memory.
    public var convertTo: GGMLType?
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

    public init(path: String, options o: ModelLoadOptions = ModelLoadOptions()) throws {
        self.path = path
        let explicitTokenizer = try o.tokenizerPath.map { try TekkenTokenizer.load(path: $0) as any Tokenizer }
        switch try ModelFormat.detect(path) {
        case .gguf(let p):
            let gguf = try GGUFFile(file: MappedFile(path: p))
            format = "gguf"
            tokenizer = try explicitTokenizer ?? BPETokenizer.fromGGUF(gguf)
            chatTemplate = explicitTokenizer != nil ? .mistralV7
                : (try gguf.string("tokenizer.chat_template")).flatMap { ChatTemplate.detect(jinja: $0) }
            if o.vocabOnly {
                arch = try gguf.string("general.architecture") ?? "unknown"
                weights = nil
            } else {
                let config = try LlamaConfig.fromGGUF(gguf)
                weights = try LlamaWeights(gguf: gguf, config: config, convertTo: o.convertTo)
                arch = config.arch
            }
        case .huggingFace(let folder):
            format = "huggingface"
            tokenizer = try explicitTokenizer ?? Model.folderTokenizer(folder)
            chatTemplate = .mistralV7
            let config = try LlamaConfig.fromHuggingFace(readJSONFile(folder + "/config.json"))
            arch = config.arch
            if o.vocabOnly {
                weights = nil
            } else {
                let (tensors, owners) = try loadHuggingFaceTensors(folder)
                weights = try LlamaWeights(tensors: tensors, names: huggingFaceNames(tensors), config: config,
                                           keepAlive: owners, convertTo: o.convertTo)
            }
        case .native(let folder):
            format = "native"
            tokenizer = try explicitTokenizer ?? Model.folderTokenizer(folder)
            chatTemplate = .mistralV7
            let config = try LlamaConfig.fromNative(readJSONFile(folder + "/params.json"))
            arch = config.arch
            if o.vocabOnly {
                weights = nil
            } else {
                let st = try SafetensorsFile(path: folder + "/consolidated.safetensors")
                weights = try LlamaWeights(tensors: st.tensors, names: .native, config: config, keepAlive: [st],
                                           convertTo: o.convertTo)
            }
        case .tekkenJSON(let p):
            format = "tekken"
            tokenizer = try explicitTokenizer ?? TekkenTokenizer.load(path: p)
            chatTemplate = .mistralV7
            arch = "tokenizer"
            weights = nil
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
}
