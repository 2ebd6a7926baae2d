// Vision encoder timing: tiny-s per image, and a randomly initialised encoder of Mistral Small 3.1's real size
// (24 layers, hidden 1024, 16 heads x 64, FFN 4096, patch 14, image_size 1540, projector to 5120) on one
// image. Usage: vision-bench [threads=2] [side=1024] [fixtures=Tests/Fixtures | - to skip tiny-s] [repeat=1]
// [mmproj.gguf: time that file's encoder instead of the random bf16 checkpoint]. MISTRAL_VISION_COMPUTE=f32|bf16
// picks the matmul mode (f32 by default). Prints VmHWM (peak resident memory) at the end.
import Glibc
import MistralEngine
import MistralKernels

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

let args = CommandLine.arguments
let threads = args.count > 1 ? Int(args[1]) ?? 2 : 2
let side = args.count > 2 ? Int(args[2]) ?? 1024 : 1024
let fixtures = args.count > 3 ? args[3] : "Tests/Fixtures"
let repeats = args.count > 4 ? Int(args[4]) ?? 1 : 1
let mmproj = args.count > 5 ? args[5] : nil

func syntheticRGB(_ w: Int, _ h: Int) throws -> RGBImage {
    var px = [UInt8](repeating: 0, count: w * h * 3)
    for y in 0..<h {
        for x in 0..<w {
            px[(y * w + x) * 3] = UInt8(truncatingIfNeeded: x * 7 + y)
            px[(y * w + x) * 3 + 1] = UInt8(truncatingIfNeeded: x ^ y)
            px[(y * w + x) * 3 + 2] = UInt8(truncatingIfNeeded: y * 3)
        }
    }
    return try RGBImage(width: w, height: h, pixels: px)
}

// MARK: tiny-s

if fixtures != "-" { do {
    let w = try PixtralWeights(path: fixtures + "/tiny-s/hf")
    let enc = try PixtralEncoder(weights: w, threads: threads)
    let rgb = try ImageFile.load(path: fixtures + "/tiny-s/reference/img3_200x150.png")
    let t0 = now()
    let pre = try ImagePreprocessor.preprocess(rgb, config: w.config)
    let t1 = now()
    _ = try enc.encode([pre])
    let runs = 200
    let t2 = now()
    for _ in 0..<runs { _ = try enc.encode([pre]) }
    let t3 = now()
    print("tiny-s img3 (\(pre.width)x\(pre.height), \((pre.width / 14) * (pre.height / 14)) patches), \(threads) threads: preprocess \(String((t1 - t0) * 1e3)) ms, encode \(String((t3 - t2) / Double(runs) * 1e3)) ms/image")
} catch {
    print("tiny-s: \(error)")
} }

// MARK: real size, random weights (bf16, as in the Hugging Face checkpoint)

/// Writes a safetensors file of random bf16 tensors (HF names) unless it exists.
func writeRandomCheckpoint(_ path: String, _ tensors: [(String, [Int])]) throws {
    if access(path, F_OK) == 0 { return }
    var header = "{"
    var offset = 0
    for (i, (name, shape)) in tensors.enumerated() {
        let bytes = shape.reduce(1, *) * 2
        header += (i > 0 ? "," : "") + "\"\(name)\":{\"dtype\":\"BF16\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
        offset += bytes
    }
    header += "}"
    while header.utf8.count % 8 != 0 { header += " " }
    guard let f = fopen(path + ".tmp", "wb") else { throw MistralError(.io, "cannot write \(path)") }
    var len = UInt64(header.utf8.count)
    fwrite(&len, 8, 1, f)
    _ = header.withCString { fwrite($0, 1, header.utf8.count, f) }
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    var buf = [UInt16](repeating: 0, count: 1 << 20)
    for (name, shape) in tensors {
        var left = shape.reduce(1, *)
        let isNorm = shape.count == 1
        let fanIn = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
        let scale = Float(1 / Double(fanIn).squareRoot())
        _ = name
        while left > 0 {
            let n = min(left, buf.count)
            for i in 0..<n {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                let u = Float(state >> 40) / Float(1 << 24) * 2 - 1  // uniform [-1, 1)
                let v: Float = isNorm ? 1 + 0.1 * u : u * scale * 1.7
                buf[i] = UInt16(v.bitPattern >> 16)
            }
            _ = buf.withUnsafeBytes { fwrite($0.baseAddress, 2, n, f) }
            left -= n
        }
    }
    fclose(f)
    rename(path + ".tmp", path)
}

do {
    let d = 1024, layers = 24, heads = 16, ffn = 4096, text = 5120
    var list: [(String, [Int])] = [("vision_tower.patch_conv.weight", [d, 3, 14, 14]), ("vision_tower.ln_pre.weight", [d])]
    for l in 0..<layers {
        let p = "vision_tower.transformer.layers.\(l)."
        list += [(p + "attention_norm.weight", [d]), (p + "ffn_norm.weight", [d]),
                 (p + "attention.q_proj.weight", [d, d]), (p + "attention.k_proj.weight", [d, d]),
                 (p + "attention.v_proj.weight", [d, d]), (p + "attention.o_proj.weight", [d, d]),
                 (p + "feed_forward.gate_proj.weight", [ffn, d]), (p + "feed_forward.up_proj.weight", [ffn, d]),
                 (p + "feed_forward.down_proj.weight", [d, ffn])]
    }
    list += [("multi_modal_projector.norm.weight", [d]),
             ("multi_modal_projector.patch_merger.merging_layer.weight", [d, 4 * d]),
             ("multi_modal_projector.linear_1.weight", [text, d]),
             ("multi_modal_projector.linear_2.weight", [text, text])]
    let path = "/tmp/pixtral-random-mistral-small-3.1.safetensors"
    let tw = now()
    let weights: PixtralWeights
    if let mmproj {
        weights = try PixtralWeights(path: mmproj)
    } else {
        try writeRandomCheckpoint(path, list)
        let st = try SafetensorsFile(path: path)
        let config = VisionConfig(hiddenSize: d, nLayer: layers, nHead: heads, headDim: 64, ffnSize: ffn, patchSize: 14,
                                  imageSize: 1540, ropeTheta: 10000, mergeSize: 2, projectionDim: text)
        weights = try PixtralWeights(tensors: st.tensors, layout: .huggingFace(prefix: ""), config: config, keepAlive: [st])
    }
    let config = weights.config
    print("real-size weights (\(mmproj ?? "random bf16 checkpoint")) ready in \(String(now() - tw)) s")
    let rgb = try syntheticRGB(side, side)
    let t0 = now()
    let pre = try ImagePreprocessor.preprocess(rgb, config: config)
    let t1 = now()
    let patches = (pre.width / 14) * (pre.height / 14)
    let enc = try PixtralEncoder(weights: weights, threads: threads, maxPatches: patches)
    for r in 0..<repeats {
        let t2 = now()
        let out = try enc.encode([pre])
        let t3 = now()
        let n = Double(patches)
        let gemm = 2 * n * Double(layers) * Double(4 * d * d + 3 * d * ffn)
        let attn = 4 * n * n * Double(d) * Double(layers)
        let proj = 2 * n / 4 * Double(4 * d * d + d * text + text * text) + 2 * n * Double(588 * d)
        let flops = gemm + attn + proj
        if r == 0, getenv("VISION_BENCH_COMPARE") != nil {
            // bf16-compute mode against f32 mode on the same image (the f32 run's time is not reported).
            let other = try PixtralEncoder(weights: weights, threads: threads, maxPatches: patches,
                                           compute: enc.compute == .f32 ? .bf16 : .f32)
            let ref = try other.encode([pre])
            let (f32Out, bf16Out) = enc.compute == .f32 ? (out, ref) : (ref, out)
            var worst: Float = 0, scale: Float = 0, sq: Double = 0, sqRef: Double = 0
            for i in 0..<f32Out.count {
                worst = max(worst, abs(f32Out[i] - bf16Out[i])); scale = max(scale, abs(f32Out[i]))
                sq += Double((f32Out[i] - bf16Out[i]) * (f32Out[i] - bf16Out[i])); sqRef += Double(f32Out[i] * f32Out[i])
            }
            print("bf16 vs f32 projector output: max |diff| \(worst) (max |f32| \(scale)), relative L2 \((sq / sqRef).squareRoot())")
        }
        print("real-size encoder, \(side)x\(side) -> \(pre.width)x\(pre.height) (\(patches) patches, \(out.count / text) tokens), \(threads) threads, run \(r): preprocess \(String((t1 - t0) * 1e3)) ms, encode \(String(t3 - t2)) s, \(String(flops / (t3 - t2) / 1e9)) GFLOP/s (\(String(flops / 1e12)) TFLOP)")
    }
} catch {
    print("real-size: \(error)")
}

// Peak resident memory of the whole run (weights, packed copies, encoder buffers).
if let f = fopen("/proc/self/status", "r") {
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, 256, f) != nil {
        let s = String(cString: line)
        if s.hasPrefix("VmHWM") { print("peak RSS (VmHWM):" + s.dropFirst(6).filter { $0 != "\n" }) }
    }
    fclose(f)
}
