// A loaded model: the file it came from, its tokenizer and (unless loaded vocab-only) its decoder weights.
// Immutable after load, so one model can serve many sessions on many threads.

public struct ModelLoadOptions: Sendable {
    public var vocabOnly = false
    public init(vocabOnly: Bool = false) { self.vocabOnly = vocabOnly }
}

public final class Model: Sendable {
    public let path: String
    public let arch: String
    public let tokenizer: any Tokenizer
    public let weights: LlamaWeights?
    public let summary: String

    public init(path: String, options: ModelLoadOptions = ModelLoadOptions()) throws {
        self.path = path
        let file = try MappedFile(path: path)
        guard GGUFFile.isGGUF(file) else {
            throw MistralError.format("'\(path)' is not a GGUF file (no GGUF magic); supported formats: GGUF v2/v3")
        }
        let gguf = try GGUFFile(file: file)
        tokenizer = try BPETokenizer.fromGGUF(gguf)
        if options.vocabOnly {
            arch = try gguf.string("general.architecture") ?? "unknown"
            weights = nil
            summary = "\(arch) (vocab only), \(tokenizer.vocabSize) tokens"
        } else {
            let config = try LlamaConfig.fromGGUF(gguf)
            guard config.nVocab == tokenizer.vocabSize else {
                throw MistralError.format("vocab_size \(config.nVocab) differs from the tokenizer's \(tokenizer.vocabSize) tokens")
            }
            weights = try LlamaWeights(gguf: gguf, config: config)
            arch = config.arch
            summary = "\(arch): \(config.nLayer) layers, \(config.nEmbd) embd, \(config.nHead)/\(config.nKVHead) heads, "
                + "\(config.nFF) ffn, \(config.nVocab) vocab, \(config.nCtxTrain) ctx"
        }
        logInfo("loaded \(path): \(summary)")
    }

    public var config: LlamaConfig? { weights?.config }
    public var vocabSize: Int { tokenizer.vocabSize }
    public var contextLength: Int { weights?.config.nCtxTrain ?? 0 }
}
