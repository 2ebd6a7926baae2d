// Settings of the Pixtral vision encoder and Mistral 3's multimodal projector, read from a Hugging Face
// config.json (`vision_config`), Mistral's params.json (`vision_encoder`) or llama.cpp's mmproj GGUF (`clip.*`).

public struct VisionConfig: Sendable, Equatable {
    /// Vision transformer width, depth, heads, head dimension and feed-forward width.
    public var hiddenSize: Int
    public var nLayer: Int
    public var nHead: Int
    public var headDim: Int
    public var ffnSize: Int
    public var numChannels: Int
    public var patchSize: Int
    /// Longest side (pixels) an image is scaled down to before patching.
    public var imageSize: Int
    public var ropeTheta: Double
    /// Epsilon of the encoder's RMSNorms (ln_pre, attention_norm, ffn_norm).
    public var normEps: Float
    /// Epsilon of the projector's RMSNorm (the text model's rms_norm_eps).
    public var projectorNormEps: Float
    /// Patches merged per side into one image token (2: 2x2 patches -> one [IMG]).
    public var mergeSize: Int
    /// Width of the projector output = the text model's hidden size.
    public var projectionDim: Int
    public var imageMean: [Float]
    public var imageStd: [Float]
    /// Token ids of [IMG], [IMG_BREAK], [IMG_END] when the checkpoint names them.
    public var imageTokenId: Int?
    public var imageBreakTokenId: Int?
    public var imageEndTokenId: Int?

    public static let clipMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public static let clipStd: [Float] = [0.26862954, 0.26130258, 0.27577711]

    public init(hiddenSize: Int, nLayer: Int, nHead: Int, headDim: Int? = nil, ffnSize: Int, numChannels: Int = 3,
                patchSize: Int, imageSize: Int, ropeTheta: Double = 10000, normEps: Float = 1e-5,
                projectorNormEps: Float = 1e-5, mergeSize: Int = 2, projectionDim: Int,
                imageMean: [Float] = VisionConfig.clipMean, imageStd: [Float] = VisionConfig.clipStd,
                imageTokenId: Int? = nil, imageBreakTokenId: Int? = nil, imageEndTokenId: Int? = nil) {
        self.hiddenSize = hiddenSize
        self.nLayer = nLayer
        self.nHead = nHead
        self.headDim = headDim ?? (nHead > 0 ? hiddenSize / nHead : 0)
        self.ffnSize = ffnSize
        self.numChannels = numChannels
        self.patchSize = patchSize
        self.imageSize = imageSize
        self.ropeTheta = ropeTheta
        self.normEps = normEps
        self.projectorNormEps = projectorNormEps
        self.mergeSize = mergeSize
        self.projectionDim = projectionDim
        self.imageMean = imageMean
        self.imageStd = imageStd
        self.imageTokenId = imageTokenId
        self.imageBreakTokenId = imageBreakTokenId
        self.imageEndTokenId = imageEndTokenId
    }

    /// Pixels per side of one image token (patch * merge).
    public var tokenPixels: Int { patchSize * mergeSize }
    /// Patches of the largest image this config accepts (imageSize rounded up to whole tokens, squared).
    public var maxPatchesPerImage: Int {
        let side = (imageSize + tokenPixels - 1) / tokenPixels * mergeSize
        return side * side
    }

    public func validate() throws {
        func check(_ ok: Bool, _ what: String) throws {
            if !ok { throw MistralError.format("vision config: \(what)") }
        }
        try check(hiddenSize > 0 && hiddenSize <= 1 << 16, "hidden size \(hiddenSize) out of range")
        try check(nLayer >= 0 && nLayer <= 1024, "layer count \(nLayer) out of range")
        try check(nHead > 0 && nHead <= 1024, "head count \(nHead) out of range")
        try check(headDim > 0 && headDim % 4 == 0 && headDim <= 1024, "head dimension \(headDim) must be a positive multiple of 4 (2-D rope)")
        try check(nHead * headDim <= 1 << 16, "heads x head_dim too large")
        try check(ffnSize > 0 && ffnSize <= 1 << 18, "feed-forward size \(ffnSize) out of range")
        try check(numChannels == 3, "only 3-channel (RGB) encoders are supported, got \(numChannels)")
        try check(patchSize > 0 && patchSize <= 64, "patch size \(patchSize) out of range")
        try check(mergeSize > 0 && mergeSize <= 8, "spatial merge size \(mergeSize) out of range")
        try check(imageSize >= tokenPixels && imageSize <= 8192, "image size \(imageSize) out of range")
        try check(projectionDim > 0 && projectionDim <= 1 << 17, "projection dimension \(projectionDim) out of range")
        try check(ropeTheta > 0 && ropeTheta.isFinite, "rope theta must be positive")
        try check(normEps > 0 && normEps < 1 && projectorNormEps > 0 && projectorNormEps < 1, "bad norm epsilon")
        try check(imageMean.count == 3 && imageStd.count == 3 && imageMean.allSatisfy { $0.isFinite }
                  && imageStd.allSatisfy { $0.isFinite && $0 > 0 }, "bad image mean/std")
        // Token ids are int32 in the C API.
        for (name, id) in [("image_token_id", imageTokenId), ("image_break_token_id", imageBreakTokenId),
                           ("image_end_token_id", imageEndTokenId)] {
            if let id { try check(id >= 0 && id <= Int(Int32.max), "\(name) \(id) out of range") }
        }
    }

    /// From a Hugging Face config.json of Mistral3ForConditionalGeneration (or a bare PixtralVisionConfig).
    public static func fromHuggingFace(_ root: JSON) throws -> VisionConfig {
        guard let v = root["vision_config"] ?? (root["model_type"]?.string == "pixtral" ? root : nil) else {
            throw MistralError.format("config.json has no vision_config")
        }
        let text = root["text_config"] ?? root
        func int(_ j: JSON, _ key: String) throws -> Int {
            guard let x = j[key]?.int else { throw MistralError.format("config.json: vision '\(key)' is missing or not an integer") }
            return x
        }
        if let act = v["hidden_act"]?.string, act != "silu" {
            throw MistralError.unsupported("vision hidden_act '\(act)' (only silu is supported)")
        }
        if let act = root["projector_hidden_act"]?.string, act != "gelu" {
            throw MistralError.unsupported("projector_hidden_act '\(act)' (only gelu is supported)")
        }
        if root["multimodal_projector_bias"]?.bool == true {
            throw MistralError.unsupported("multimodal projector biases are not supported")
        }
        if let layer = root["vision_feature_layer"], layer.int != -1 {
            throw MistralError.unsupported("vision_feature_layer other than -1 is not supported")
        }
        let hidden = try int(v, "hidden_size"), heads = try int(v, "num_attention_heads")
        guard let projection = text["hidden_size"]?.int else {
            throw MistralError.format("config.json: text_config.hidden_size is missing")
        }
        let c = VisionConfig(
            hiddenSize: hidden, nLayer: try int(v, "num_hidden_layers"), nHead: heads,
            headDim: v["head_dim"]?.int ?? hidden / max(heads, 1), ffnSize: try int(v, "intermediate_size"),
            numChannels: v["num_channels"]?.int ?? 3, patchSize: try int(v, "patch_size"),
            imageSize: try int(v, "image_size"),
            ropeTheta: v["rope_theta"]?.double ?? v["rope_parameters"]?["rope_theta"]?.double ?? 10000,
            normEps: 1e-5, projectorNormEps: Float(text["rms_norm_eps"]?.double ?? 1e-5),
            mergeSize: root["spatial_merge_size"]?.int ?? 2, projectionDim: projection,
            imageTokenId: root["image_token_index"]?.int ?? root["image_token_id"]?.int)
        try c.validate()
        return c
    }

    /// From Mistral's native params.json (`vision_encoder` section).
    public static func fromNative(_ p: JSON) throws -> VisionConfig {
        guard let v = p["vision_encoder"] else { throw MistralError.format("params.json has no vision_encoder") }
        func int(_ key: String) throws -> Int {
            guard let x = v[key]?.int else { throw MistralError.format("params.json: vision_encoder '\(key)' is missing or not an integer") }
            return x
        }
        if v["adapter_bias"]?.bool == true { throw MistralError.unsupported("vision adapter biases are not supported") }
        if let id = v["mm_projector_id"]?.string, id != "patch_merge" {
            throw MistralError.unsupported("mm_projector_id '\(id)' (only patch_merge is supported)")
        }
        if v["add_pre_mm_projector_layer_norm"]?.bool == false {
            throw MistralError.unsupported("checkpoints without the pre-projector norm are not supported")
        }
        guard let projection = p["dim"]?.int else { throw MistralError.format("params.json: 'dim' is missing") }
        let hidden = try int("hidden_size"), heads = try int("num_attention_heads")
        let c = VisionConfig(
            hiddenSize: hidden, nLayer: try int("num_hidden_layers"), nHead: heads,
            headDim: v["head_dim"]?.int ?? hidden / max(heads, 1), ffnSize: try int("intermediate_size"),
            numChannels: v["num_channels"]?.int ?? 3, patchSize: try int("patch_size"),
            imageSize: try v["max_image_size"]?.int ?? int("image_size"),
            ropeTheta: v["rope_theta"]?.double ?? 10000, normEps: 1e-5,
            projectorNormEps: Float(p["norm_eps"]?.double ?? 1e-5),
            mergeSize: v["spatial_merge_size"]?.int ?? 1, projectionDim: projection,
            imageTokenId: v["image_token_id"]?.int, imageBreakTokenId: v["image_break_token_id"]?.int,
            imageEndTokenId: v["image_end_token_id"]?.int)
        try c.validate()
        return c
    }

    /// From llama.cpp's mmproj GGUF (general.architecture clip, clip.projector_type pixtral).
    public static func fromGGUF(_ g: GGUFFile) throws -> VisionConfig {
        guard try g.string("general.architecture") == "clip" else {
            throw MistralError.format("'\(g.file.path)' is not an mmproj file (general.architecture is not clip)")
        }
        let projector = try g.string("clip.projector_type") ?? g.string("clip.vision.projector_type")
        guard projector == "pixtral" else {
            throw MistralError.unsupported("mmproj projector type '\(projector ?? "none")' (only pixtral is supported)")
        }
        if try g.bool("clip.use_gelu") == true { throw MistralError.unsupported("mmproj with GELU encoder FFN (pixtral uses SiLU)") }
        func int(_ key: String) throws -> Int {
            guard let x = try g.int(key) else { throw MistralError.format("mmproj metadata '\(key)' is missing") }
            return x
        }
        func floats(_ key: String) throws -> [Float]? {
            guard let a = g.metadata[key]?.array else { return nil }
            return try a.map {
                guard let d = $0.double else { throw MistralError.format("mmproj metadata '\(key)' holds a non-number") }
                return Float(d)
            }
        }
        let hidden = try int("clip.vision.embedding_length"), heads = try int("clip.vision.attention.head_count")
        let eps = Float(try g.double("clip.vision.attention.layer_norm_epsilon") ?? 1e-5)
        let c = VisionConfig(
            hiddenSize: hidden, nLayer: try int("clip.vision.block_count"), nHead: heads,
            headDim: try g.int("clip.vision.attention.key_length") ?? hidden / max(heads, 1),
            ffnSize: try int("clip.vision.feed_forward_length"), numChannels: 3,
            patchSize: try int("clip.vision.patch_size"), imageSize: try int("clip.vision.image_size"),
            ropeTheta: try g.double("clip.vision.rope.freq_base") ?? 10000, normEps: eps, projectorNormEps: eps,
            mergeSize: try g.int("clip.vision.spatial_merge_size") ?? 2, projectionDim: try int("clip.vision.projection_dim"),
            imageMean: try floats("clip.vision.image_mean") ?? VisionConfig.clipMean,
            imageStd: try floats("clip.vision.image_std") ?? VisionConfig.clipStd)
        try c.validate()
        return c
    }
}
