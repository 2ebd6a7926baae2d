// Reading a model from the forms people download: a GGUF file, a Hugging Face folder (config.json + safetensors
// shards), Mistral's native folder (params.json + consolidated.safetensors + tekken.json), or a lone tekken.json
// (tokenizer only).
import Glibc

enum ModelFormat {
    case gguf(String)
    case huggingFace(String)
    case native(String)
    case tekkenJSON(String)

    static func detect(_ path: String) throws -> ModelFormat {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw MistralError(.io, "cannot open '\(path)': \(String(cString: strerror(errno)))")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            if fileExists(path + "/params.json") && fileExists(path + "/consolidated.safetensors") { return .native(path) }
            if fileExists(path + "/config.json") { return .huggingFace(path) }
            throw MistralError.format("'\(path)' is a folder without config.json (Hugging Face) or params.json + consolidated.safetensors (Mistral native)")
        }
        let file = try MappedFile(path: path)
        if GGUFFile.isGGUF(file) { return .gguf(path) }
        if file.base.load(as: UInt8.self) == UInt8(ascii: "{") { return .tekkenJSON(path) }
        throw MistralError.format("'\(path)' is not a model: expected a GGUF file, a tekken.json, or a model folder")
    }
}

func fileExists(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
}

func readJSONFile(_ path: String) throws -> JSON {
    let f = try MappedFile(path: path)
    return try JSON.parse(UnsafeRawBufferPointer(start: f.base, count: f.size), what: path)
}

extension LlamaConfig {
    /// From a Hugging Face config.json (MistralForCausalLM, or the text_config of Mistral3ForConditionalGeneration).
    static func fromHuggingFace(_ root: JSON) throws -> LlamaConfig {
        let t = root["text_config"] ?? root
        func int(_ key: String) throws -> Int {
            guard let v = t[key]?.int, v > 0, v <= 1 << 24 else { throw MistralError.format("config.json: '\(key)' is missing or out of range") }
            return v
        }
        let nEmbd = try int("hidden_size"), nHead = try int("num_attention_heads")
        let headDim = t["head_dim"]?.int ?? nEmbd / nHead
        let theta = t["rope_theta"]?.double ?? t["rope_parameters"]?["rope_theta"]?.double ?? 10000
        let config = LlamaConfig(
            arch: root["model_type"]?.string ?? "mistral", nLayer: try int("num_hidden_layers"), nEmbd: nEmbd,
            nFF: try int("intermediate_size"), nHead: nHead, nKVHead: t["num_key_value_heads"]?.int ?? nHead,
            headDim: headDim, rotDim: headDim, ropeBase: theta, rmsEps: Float(t["rms_norm_eps"]?.double ?? 1e-5),
            nVocab: try int("vocab_size"), nCtxTrain: t["max_position_embeddings"]?.int ?? 32768,
            ropeInterleaved: false)  // HF permutes q/k rows for rotate-half
        try config.validate()
        return config
    }

    /// From Mistral's native params.json.
    static func fromNative(_ p: JSON) throws -> LlamaConfig {
        func int(_ key: String) throws -> Int {
            guard let v = p[key]?.int, v > 0, v <= 1 << 24 else { throw MistralError.format("params.json: '\(key)' is missing or out of range") }
            return v
        }
        let nEmbd = try int("dim"), nHead = try int("n_heads")
        let headDim = p["head_dim"]?.int ?? nEmbd / nHead
        let config = LlamaConfig(
            arch: "mistral", nLayer: try int("n_layers"), nEmbd: nEmbd, nFF: try int("hidden_dim"), nHead: nHead,
            nKVHead: p["n_kv_heads"]?.int ?? nHead, headDim: headDim, rotDim: headDim,
            ropeBase: p["rope_theta"]?.double ?? 1_000_000, rmsEps: Float(p["norm_eps"]?.double ?? 1e-5),
            nVocab: try int("vocab_size"), nCtxTrain: p["max_seq_len"]?.int ?? p["max_position_embeddings"]?.int ?? 131072,
            ropeInterleaved: true)  // native weights are not permuted: pairs (2i, 2i+1)
        try config.validate()
        return config
    }
}

/// The tensors of a Hugging Face folder: one model.safetensors, or the shards named by model.safetensors.index.json.
func loadHuggingFaceTensors(_ folder: String) throws -> ([String: TensorRef], [AnyObject]) {
    var files: [String] = []
    let index = folder + "/model.safetensors.index.json"
    if fileExists(index) {
        guard let map = try readJSONFile(index)["weight_map"]?.object else {
            throw MistralError.format("\(index): 'weight_map' is missing")
        }
        var seen = Set<String>()
        for (_, v) in map {
            guard let name = v.string, !name.contains("/"), !name.hasPrefix(".") else {
                throw MistralError.format("\(index): a shard name is not a plain file name")
            }
            if seen.insert(name).inserted { files.append(name) }
        }
        files.sort()
    } else if fileExists(folder + "/model.safetensors") {
        files = ["model.safetensors"]
    } else {
        throw MistralError.format("'\(folder)' has neither model.safetensors nor model.safetensors.index.json")
    }
    var tensors: [String: TensorRef] = [:]
    var owners: [AnyObject] = []
    for f in files {
        let st = try SafetensorsFile(path: folder + "/" + f)
        owners.append(st)
        tensors.merge(st.tensors) { a, _ in a }
    }
    return (tensors, owners)
}

/// Which Hugging Face key layout a checkpoint uses (legacy `language_model.model.*`, transformers 5
/// `model.language_model.*`, or a plain causal LM `model.*`).
func huggingFaceNames(_ tensors: [String: TensorRef]) throws -> LlamaTensorNames {
    for prefix in ["language_model.model.", "model.language_model.", "model."]
    where tensors[prefix + "embed_tokens.weight"] != nil {
        return .huggingFace(prefix: prefix, lmHead: ["language_model.lm_head.weight", "lm_head.weight"])
    }
    throw MistralError.format("no embed_tokens.weight under language_model.model., model.language_model. or model.")
}
