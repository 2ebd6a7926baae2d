// Files llama.cpp's llama-quantize made (Tests/Fixtures/kquant-model, see make.py there): a random Llama with
// every matrix a multiple of 256 wide, so Q2_K, Q3_K, Q4_K, Q5_K and Q6_K are really used. Teacher-forced along
// llama.cpp's own greedy path: every position's logits against llama.cpp's, on every kernel path the CPU has.
import XCTest
import MistralEngine
import MistralKernels

final class KQuantModelTests: XCTestCase {
    static let files = ["Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K"]

    func relL2(_ a: ArraySlice<Float>, _ ref: ArraySlice<Float>) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, ref) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
        return (num / den).squareRoot()
    }

    func testTeacherForcedAgainstLlamaCpp() throws {
        for name in Self.files {
            let ref = try loadNpy("kquant-model/ref_\(name).npy")
            let meta = try loadJSON("kquant-model/ref_\(name).json")
            let tokens = int32s(meta["tokens"])
            // how far quantization itself moves llama.cpp's logits from its f32 run: the scale our error is held to
            let quantError = (meta["rel_l2_vs_f32_prompt"] as? NSNumber)?.doubleValue ?? .nan
            XCTAssertGreaterThan(quantError, 0.05, "\(name): the reference should show real quantization error")
            let model = try Model(path: TestPaths.fixtures + "/kquant-model/kquant-\(name).gguf")
            let vocab = model.vocabSize
            XCTAssertEqual(ref.shape, [tokens.count, vocab], name)
            for path in KernelPath.available {
                KernelDispatch.use(path)
                defer { KernelDispatch.use(KernelPath.selected) }
                let session = try Session(model: model, options: {
                    var o = SessionOptions(); o.nCtx = 128; o.threads = 2; return o
                }())
                var logits = [Float](repeating: .nan, count: tokens.count * vocab)
                try logits.withUnsafeMutableBufferPointer { try session.eval(tokens, logitsOut: $0.baseAddress) }
                // Position 0 attends only to itself (output = its f16-stored value): it isolates the matrix kernels,
                // which equal llama.cpp's to float rounding.
                var first: Float = 0
                for v in 0..<vocab { first = max(first, abs(logits[v] - ref.values[v])) }
                XCTAssertLessThan(first, 1e-4, "\(name) \(path): position 0 vs llama.cpp")
                // Later positions add attention, where llama.cpp rounds queries and probabilities to f16 and we keep
                // f32: measured rel L2 ~0.022 on every file, well below the 0.07-0.72 that quantization moves these logits.
                let err = relL2(logits[...], ref.values[...])
                XCTAssertLessThan(err, 0.05, "\(name) \(path): rel L2 vs llama.cpp")
                var disagreements = 0, checked = 0
                for i in 0..<tokens.count {
                    let ours = logits[(i * vocab)..<((i + 1) * vocab)], theirs = ref.values[(i * vocab)..<((i + 1) * vocab)]
                    let sorted = theirs.sorted(by: >)
                    guard sorted[0] - sorted[1] >= 0.1 else { continue }  // llama.cpp's near-ties may go either way
                    checked += 1
                    if ours.indices.max(by: { ours[$0] < ours[$1] }) != theirs.indices.max(by: { theirs[$0] < theirs[$1] }) {
                        disagreements += 1
                    }
                }
                XCTAssertGreaterThan(checked, tokens.count / 2, name)
                XCTAssertEqual(disagreements, 0, "\(name) \(path): argmax differs where llama.cpp's margin >= 0.1")
                print("kquant-model \(name) \(path): rel L2 vs llama.cpp \(err) (quantization moves logits by \(quantError))")
            }
        }
    }
}
