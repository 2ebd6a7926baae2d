// The Pixtral vision tower and Mistral 3's multimodal projector, bound in place from a checkpoint's tensors:
// a Hugging Face folder (`vision_tower.*`, `multi_modal_projector.*`), Mistral's native folder
// (`vision_encoder.*`, `patch_merger.*`, `pre_mm_projector_norm`, `vision_language_adapter.*`) or llama.cpp's
// mmproj GGUF (`v.*`, `mm.*`).
import Glibc
import MistralKernels

/// Which checkpoint key layout the tensors use.
public enum PixtralLayout: Sendable, Equatable {
    /// transformers names under `prefix` ("" for the legacy layout, "model." for transformers 5).
    case huggingFace(prefix: String)
    case native
    case gguf

    /// true when q/k rows are in Mistral's original order (rotate pairs 2i, 2i+1); Hugging Face permutes them
    /// for rotate-half.
    var ropeInterleaved: Bool {
        if case .huggingFace = self { return false }
        return true
    }
}

/// One encoder matrix: the file's tensor, and its copy in the packed GEMM's layout made once at load (exact for
/// bf16 files; for f16/f32 files only when the bf16-compute mode is the default, else those keep the old path).
struct VisionMatrix: @unchecked Sendable {
    let matrix: WeightMatrix
    let packed: BF16Panels?

    init(_ m: WeightMatrix, compute: FloatGEMMCompute) {
        matrix = m
        let exact = m.type == .bf16
        guard exact || (compute == .bf16 && [.f32, .f16].contains(m.type)) else {
            packed = nil
            return
        }
        packed = BF16Panels(rows: m.rows, cols: m.cols, exact: exact) { r, row in m.dequantizeRow(r, into: row) }
    }

    /// The packed copy the kernels may use in `compute` mode (f32 mode needs an exact one).
    func panels(for compute: FloatGEMMCompute) -> BF16Panels? {
        guard let p = packed, p.exact || compute == .bf16 else { return nil }
        return p
    }
}

struct PixtralLayerWeights: @unchecked Sendable {  // pointers into memory owned by PixtralWeights / its files
    let attnNorm: UnsafePointer<Float>
    let wq, wk, wv, wo: VisionMatrix
    let ffnNorm: UnsafePointer<Float>
    let gate, up, down: VisionMatrix
}

public final class PixtralWeights: @unchecked Sendable {  // immutable after init
    public let config: VisionConfig
    public let layout: PixtralLayout
    /// The patch convolution as a matrix: hidden rows of channels x patch x patch inputs (c, y, x order).
    let patchConv: VisionMatrix
    let lnPre: UnsafePointer<Float>
    let layers: [PixtralLayerWeights]
    let projectorNorm: UnsafePointer<Float>
    let merger: VisionMatrix
    let linear1: VisionMatrix
    let linear2: VisionMatrix
    /// llama.cpp's mmproj carries the text model's [IMG_BREAK] embedding row (`v.token_embd.img_break`).
    public let imageBreakEmbedding: [Float]?
    private var owned: [UnsafeMutableRawPointer] = []
    private let keepAlive: [AnyObject]

    /// Binds `tensors` (ggml-order shapes) named as `layout` says, checking every shape against `config`.
    /// `compute`: the mode the encoders made from these weights will default to (decides which f16/f32 matrices
    /// get a packed bf16 copy).
    public init(tensors: [String: TensorRef], layout: PixtralLayout, config c: VisionConfig,
                keepAlive: [AnyObject] = [], compute: FloatGEMMCompute = .visionDefault) throws {
        try c.validate()
        self.keepAlive = keepAlive
        var owned: [UnsafeMutableRawPointer] = []
        let mapped: [MappedFile] = keepAlive.compactMap {
            ($0 as? SafetensorsFile)?.file ?? ($0 as? GGUFFile)?.file ?? ($0 as? MappedFile)
        }
        func tensor(_ name: String) throws -> TensorRef {
            guard let t = tensors[name] else { throw MistralError.format("vision tensor '\(name)' is missing") }
            return t
        }
        func matrix(_ name: String, cols: Int, rows: Int) throws -> VisionMatrix {
            let t = try tensor(name)
            guard t.shape == [cols, rows] || (t.shape.count == 4 && t.shape.reduce(1, *) == cols * rows) else {
                throw MistralError.format("vision tensor '\(name)' has shape \(t.shape), expected [\(cols), \(rows)]")
            }
            let m = try WeightMatrix(data: t.data, type: t.type, rows: rows, cols: cols)
            guard m.rowBytes * rows <= t.byteCount else {
                throw MistralError.format("vision tensor '\(name)' is smaller than its shape says")
            }
            let vm = VisionMatrix(m, compute: compute)
            // The packed copy is what the kernels read: the file's pages go (re-read from the file if touched).
            if vm.packed != nil { mapped.forEach { $0.dropPages(t.data, m.rowBytes * rows) } }
            return vm
        }
        func vector(_ name: String, _ n: Int) throws -> UnsafePointer<Float> {
            let out = try tensor(name).floatVector(n)
            owned.append(UnsafeMutableRawPointer(out))
            return UnsafePointer(out)
        }
        let d = c.hiddenSize, qd = c.nHead * c.headDim, ps = c.patchSize
        let patchCols = c.numChannels * ps * ps
        let mergeCols = d * c.mergeSize * c.mergeSize
        do {
            // [out, in, ky, kx] in torch = ggml [kx, ky, in, out]: rows of c*p*p in (channel, y, x) order.
            let convName: String, lnPreName: String, normName: String, mergerName: String, l1Name: String, l2Name: String
            switch layout {
            case .huggingFace(let p):
                convName = p + "vision_tower.patch_conv.weight"; lnPreName = p + "vision_tower.ln_pre.weight"
                normName = p + "multi_modal_projector.norm.weight"
                mergerName = p + "multi_modal_projector.patch_merger.merging_layer.weight"
                l1Name = p + "multi_modal_projector.linear_1.weight"; l2Name = p + "multi_modal_projector.linear_2.weight"
            case .native:
                convName = "vision_encoder.patch_conv.weight"; lnPreName = "vision_encoder.ln_pre.weight"
                normName = "pre_mm_projector_norm.weight"; mergerName = "patch_merger.merging_layer.weight"
                l1Name = "vision_language_adapter.w_in.weight"; l2Name = "vision_language_adapter.w_out.weight"
            case .gguf:
                convName = "v.patch_embd.weight"; lnPreName = "v.pre_ln.weight"; normName = "mm.input_norm.weight"
                mergerName = "mm.patch_merger.weight"; l1Name = "mm.1.weight"; l2Name = "mm.2.weight"
            }
            let conv = try tensor(convName)
            guard conv.shape == [ps, ps, c.numChannels, d] else {
                throw MistralError.format("vision tensor '\(convName)' has shape \(conv.shape), expected [\(ps), \(ps), \(c.numChannels), \(d)]")
            }
            if layout == .gguf, tensors["v.patch_embd.bias"] != nil || tensors["mm.1.bias"] != nil {
                throw MistralError.unsupported("mmproj with biases is not a Pixtral/Mistral 3 projector")
            }
            patchConv = try matrix(convName, cols: patchCols, rows: d)
            lnPre = try vector(lnPreName, d)
            var layers: [PixtralLayerWeights] = []
            for l in 0..<c.nLayer {
                func key(_ hf: String, _ native: String, _ gguf: String) -> String {
                    switch layout {
                    case .huggingFace(let p): return "\(p)vision_tower.transformer.layers.\(l).\(hf).weight"
                    case .native: return "vision_encoder.transformer.layers.\(l).\(native).weight"
                    case .gguf: return "v.blk.\(l).\(gguf).weight"
                    }
                }
                layers.append(PixtralLayerWeights(
                    attnNorm: try vector(key("attention_norm", "attention_norm", "ln1"), d),
                    wq: try matrix(key("attention.q_proj", "attention.wq", "attn_q"), cols: d, rows: qd),
                    wk: try matrix(key("attention.k_proj", "attention.wk", "attn_k"), cols: d, rows: qd),
                    wv: try matrix(key("attention.v_proj", "attention.wv", "attn_v"), cols: d, rows: qd),
                    wo: try matrix(key("attention.o_proj", "attention.wo", "attn_out"), cols: qd, rows: d),
                    ffnNorm: try vector(key("ffn_norm", "ffn_norm", "ln2"), d),
                    gate: try matrix(key("feed_forward.gate_proj", "feed_forward.w1", "ffn_gate"), cols: d, rows: c.ffnSize),
                    up: try matrix(key("feed_forward.up_proj", "feed_forward.w3", "ffn_up"), cols: d, rows: c.ffnSize),
                    down: try matrix(key("feed_forward.down_proj", "feed_forward.w2", "ffn_down"), cols: c.ffnSize, rows: d)))
            }
            self.layers = layers
            projectorNorm = try vector(normName, d)
            merger = try matrix(mergerName, cols: mergeCols, rows: d)
            linear1 = try matrix(l1Name, cols: d, rows: c.projectionDim)
            linear2 = try matrix(l2Name, cols: c.projectionDim, rows: c.projectionDim)
            if layout == .gguf, let t = tensors["v.token_embd.img_break"] {
                guard t.shape == [c.projectionDim], [.f32, .f16, .bf16].contains(t.type) else {
                    throw MistralError.format("vision tensor 'v.token_embd.img_break' has shape \(t.shape), expected [\(c.projectionDim)]")
                }
                var row = [Float](repeating: 0, count: c.projectionDim)
                let m = try WeightMatrix(data: t.data, type: t.type, rows: 1, cols: c.projectionDim)
                row.withUnsafeMutableBufferPointer { m.dequantizeRow(0, into: $0.baseAddress!) }
                imageBreakEmbedding = row
            } else {
                imageBreakEmbedding = nil
            }
        } catch {
            for p in owned { free(p) }
            throw error
        }
        self.owned = owned
        self.layout = layout
        config = c
    }

    deinit { for p in owned { free(p) } }

    /// Loads the vision part of a model: a Hugging Face folder (config.json + safetensors), a Mistral native
    /// folder (params.json + consolidated.safetensors) or an mmproj GGUF file.
    public convenience init(path: String) throws {
        switch try ModelFormat.detect(path) {
        case .gguf(let p):
            try self.init(gguf: GGUFFile(path: p))
        case .huggingFace(let folder):
            let config = try VisionConfig.fromHuggingFace(readJSONFile(folder + "/config.json"))
            let (tensors, owners) = try loadHuggingFaceTensors(folder)
            try self.init(tensors: tensors, layout: PixtralWeights.huggingFaceLayout(tensors), config: config,
                          keepAlive: owners)
        case .native(let folder):
            let config = try VisionConfig.fromNative(readJSONFile(folder + "/params.json"))
            let st = try SafetensorsFile(path: folder + "/consolidated.safetensors")
            try self.init(tensors: st.tensors, layout: .native, config: config, keepAlive: [st])
        case .tekkenJSON:
            throw MistralError.format("'\(path)' is a tokenizer file, not a vision model")
        }
    }

    /// Binds an mmproj GGUF file (llama.cpp's clip layout, projector type pixtral).
    public convenience init(gguf g: GGUFFile, compute: FloatGEMMCompute = .visionDefault) throws {
        let config = try VisionConfig.fromGGUF(g)
        var refs: [String: TensorRef] = [:]
        for (name, t) in g.tensors {
            refs[name] = TensorRef(name: name, shape: t.shape, type: t.type, data: g.data(t), byteCount: t.byteCount)
        }
        try self.init(tensors: refs, layout: .gguf, config: config, keepAlive: [g], compute: compute)
    }

    /// The Hugging Face key prefix in use: legacy (`vision_tower.*`) or transformers 5 (`model.vision_tower.*`).
    public static func huggingFaceLayout(_ tensors: [String: TensorRef]) throws -> PixtralLayout {
        for p in ["", "model."] where tensors[p + "vision_tower.patch_conv.weight"] != nil {
            return .huggingFace(prefix: p)
        }
        throw MistralError.format("the checkpoint has no vision tower (vision_tower.patch_conv.weight)")
    }
}
