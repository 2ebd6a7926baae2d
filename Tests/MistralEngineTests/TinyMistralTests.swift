// Mistral Small 3.1's text decoder in miniature (tiny-s): every format against the transformers f32 reference.
import Foundation
import XCTest
import MistralEngine

/// Reads a little-endian float32 C-order .npy file.
func loadNpy(_ relativePath: String) throws -> (shape: [Int], values: [Float]) {
    let data = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixtures + "/" + relativePath))
    guard data.count > 10, data.prefix(6) == Data([0x93]) + "NUMPY".data(using: .ascii)! else {
        throw MistralError(.format, "\(relativePath) is not .npy")
    }
    let major = data[6]
    let headerLen = major == 1 ? Int(data[8]) | Int(data[9]) << 8
        : Int(data[8]) | Int(data[9]) << 8 | Int(data[10]) << 16 | Int(data[11]) << 24
    let start = major == 1 ? 10 : 12
    let header = String(decoding: data[start..<start + headerLen], as: UTF8.self)
    guard header.contains("'<f4'"), header.contains("'fortran_order': False") else {
        throw MistralError(.format, "\(relativePath): only little-endian float32 C-order is supported")
    }
    let shapeText = header.split(separator: "(")[1].split(separator: ")")[0]
    let shape = shapeText.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    let body = data[(start + headerLen)...]
    let values = body.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    XCTAssertEqual(values.count, shape.reduce(1, *))
    return (shape, values)
}

final class TinyMistralTests: XCTestCase {
    static let tiny = "tiny-s"
    var tinyPath: String { TestPaths.fixtures + "/tiny-s" }

    func load(_ rel: String, convertTo: GGMLType? = nil) throws -> Model {
        let tokenizer = rel.hasSuffix(".gguf") ? nil : tinyPath + "/tokenizer/tekken.json"
        return try Model(path: tinyPath + "/" + rel, options: ModelLoadOptions(tokenizerPath: tokenizer, convertTo: convertTo))
    }

    func logits(_ model: Model, _ ids: [Int32], kv: KVCacheType = .f32, nBatch: Int = 512, nCtx: Int = 128) throws -> [Float] {
        let session = try Session(model: model, options: {
            var o = SessionOptions(); o.nCtx = nCtx; o.threads = 2; o.kvType = kv; o.nBatch = nBatch; return o
        }())
        var out = [Float](repeating: 0, count: ids.count * model.vocabSize)
        try out.withUnsafeMutableBufferPointer { try session.eval(ids, logitsOut: $0.baseAddress) }
        return out
    }

    func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    func relL2(_ a: [Float], _ ref: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, ref) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
        return (num / den).squareRoot()
    }

    static let formats = ["hf", "native", "gguf/tiny-s-f32.gguf", "gguf/tiny-s-bf16.gguf"]

    /// The default f16 KV cache against transformers' f32 logits: f16 rounding of keys and values (relative
    /// 2^-11) moves the logits of this random model by a few 1e-3, so the bound is 1e-2 instead of 1e-3.
    func testF16KVCacheWithinBound() throws {
        let ref = try loadNpy("tiny-s/reference/text_logits.npy")
        let ids = int32s(try loadJSON("tiny-s/reference/text_greedy.json")["input_ids"])
        let got = try logits(try load("gguf/tiny-s-f32.gguf"), ids, kv: .f16)
        let d = maxAbsDiff(got, ref.values)
        XCTAssertLessThan(d, 1e-2)
        XCTAssertGreaterThan(d, 0, "f16 rounding should be visible; is the cache still f32?")
    }

    /// The q8_0 cache: int8 keys and values move logits more than f16 does, but less than Q8_0 weights do
    /// (relative L2 vs transformers: Q8_0 weights 0.033, llama.cpp's 0.033).
    func testQ8KVCacheWithinBound() throws {
        let ref = try loadNpy("tiny-s/reference/text_logits.npy")
        let ids = int32s(try loadJSON("tiny-s/reference/text_greedy.json")["input_ids"])
        let model = try load("gguf/tiny-s-f32.gguf")
        func relL2(_ a: [Float]) -> Double {
            var num = 0.0, den = 0.0
            for (x, y) in zip(a, ref.values) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
            return (num / den).squareRoot()
        }
        let q8 = relL2(try logits(model, ids, kv: .q8_0)), f16 = relL2(try logits(model, ids, kv: .f16))
        print("tiny-s KV cache: rel L2 vs transformers f16 \(f16), q8_0 \(q8)")
        XCTAssertLessThan(q8, 0.02)
        XCTAssertGreaterThan(q8, f16, "q8_0 rounding should be visible; is the cache still f16?")
    }

    /// Tiled attention: a 600-token prompt spans ten 64-position KV blocks and many 8-token query blocks;
    /// evaluated in chunks of 512, of 7 and token by token (decode, split over position ranges from 512 on),
    /// every position's logits agree (f32 cache).
    func testTiledAttentionIndependentOfChunking() throws {
        let model = try load("gguf/tiny-s-f32.gguf")
        // 600 tokens: one at a time, positions from 512 on run the split decode (2 ranges of >= 256 positions)
        let ids = (0..<600).map { Int32(($0 * 7919 + 11) % 4000 + 20) }
        let whole = try logits(model, ids, nBatch: 512, nCtx: 640)
        for nBatch in [7, 1] {
            let chunked = try logits(model, ids, nBatch: nBatch, nCtx: 640)
            XCTAssertLessThan(maxAbsDiff(whole, chunked), 1e-4, "n_batch \(nBatch)")
        }
    }

    /// The same with the default f16 cache, whose decode (n_batch 1: one token's query heads) reads keys and
    /// values in place from the cache while prefill chunks convert each 64-position block first: both convert
    /// exactly, so every position agrees as closely as with the f32 cache.
    func testF16CacheDecodeReadsInPlaceAsPrefillConverts() throws {
        let model = try load("gguf/tiny-s-f32.gguf")
        let ids = (0..<600).map { Int32(($0 * 7919 + 11) % 4000 + 20) }
        let whole = try logits(model, ids, kv: .f16, nBatch: 512, nCtx: 640)
        for nBatch in [7, 1] {
            let chunked = try logits(model, ids, kv: .f16, nBatch: nBatch, nCtx: 640)
            XCTAssertLessThan(maxAbsDiff(whole, chunked), 1e-4, "n_batch \(nBatch)")
        }
        // and the f16 rounding is there (the cache is not f32)
        XCTAssertGreaterThan(maxAbsDiff(whole, try logits(model, ids, kv: .f32, nBatch: 512, nCtx: 640)), 0)
    }

    func testTextLogitsEveryFormat() throws {
        let ref = try loadNpy("tiny-s/reference/text_logits.npy")
        let ids = int32s(try loadJSON("tiny-s/reference/text_greedy.json")["input_ids"])
        XCTAssertEqual(ref.shape, [ids.count, 4096])
        for f in Self.formats {
            let m = try load(f)
            let d = maxAbsDiff(try logits(m, ids), ref.values)
            print("tiny-s \(f): text logits max |diff| = \(d)")
            XCTAssertLessThan(d, 1e-3, f)
        }
    }

    func testChatLogitsEveryFormat() throws {
        let ref = try loadNpy("tiny-s/reference/chat/logits.npy")
        let ids = int32s(try loadJSON("tiny-s/reference/chat/meta.json")["prompt_ids"])
        XCTAssertEqual(ref.shape, [ids.count, 4096])
        for f in Self.formats {
            let d = maxAbsDiff(try logits(try load(f), ids), ref.values)
            print("tiny-s \(f): chat logits max |diff| = \(d)")
            XCTAssertLessThan(d, 1e-3, f)
        }
    }

    func testGreedyContinuationEveryFormat() throws {
        let j = try loadJSON("tiny-s/reference/text_greedy.json")
        let ids = int32s(j["input_ids"]), expected = int32s(j["greedy_new_tokens"])
        XCTAssertEqual(expected.count, 24)
        for f in Self.formats {
            let session = try Session(model: try load(f), options: { var o = SessionOptions(); o.nCtx = 64; o.threads = 2; o.kvType = .f32; return o }())
            var o = GenerateOptions()
            o.maxTokens = 24
            o.sampling.temperature = 0
            o.ignoreEOS = true
            try session.generate(prompt: ids, options: o) { _, _ in true }
            XCTAssertEqual(Array(session.history[ids.count...]), expected, f)
        }
    }

    /// Quantized GGUFs: no further from transformers than llama.cpp itself is (+10%).
    func testQuantizedGGUFsAsCloseAsLlamaCpp() throws {
        let ref = try loadNpy("tiny-s/reference/text_logits.npy")
        let ids = int32s(try loadJSON("tiny-s/reference/text_greedy.json")["input_ids"])
        let cross = try loadJSON("tiny-s/reference/llamacpp_crosscheck.json")["logits_vs_transformers"] as? [String: Any]
        for q in ["Q8_0", "Q4_0"] {
            let llama = ((cross?[q] as? [String: Any])?["rel_l2"] as? NSNumber)?.doubleValue ?? 0
            XCTAssertGreaterThan(llama, 0)
            let ours = relL2(try logits(try load("gguf/tiny-s-\(q).gguf"), ids), ref.values)
            print("tiny-s \(q): rel L2 vs transformers = \(ours) (llama.cpp \(llama))")
            XCTAssertLessThanOrEqual(ours, llama * 1.1, q)
        }
    }

    /// Load-time conversion of the bf16 checkpoint: Q8_0 stays close, Q4_0 is within its weights' own error.
    func testLoadTimeConversion() throws {
        let ref = try loadNpy("tiny-s/reference/text_logits.npy")
        let ids = int32s(try loadJSON("tiny-s/reference/text_greedy.json")["input_ids"])
        let cross = try loadJSON("tiny-s/reference/llamacpp_crosscheck.json")["logits_vs_transformers"] as? [String: Any]
        for (q, type) in [("Q8_0", GGMLType.q8_0), ("Q4_0", GGMLType.q4_0)] {
            let m = try load("hf", convertTo: type)
            XCTAssertGreaterThan(m.weights?.convertedBytes ?? 0, 0)
            let ours = relL2(try logits(m, ids), ref.values)
            let llama = ((cross?[q] as? [String: Any])?["rel_l2"] as? NSNumber)?.doubleValue ?? 0
            print("tiny-s hf -> \(q) at load: rel L2 = \(ours) (llama.cpp's \(q) file: \(llama))")
            XCTAssertLessThanOrEqual(ours, llama * 1.1, q)
        }
    }
}
