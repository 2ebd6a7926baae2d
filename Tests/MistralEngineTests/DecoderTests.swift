// The decoder against llama.cpp on the real SmolLM2 Q4_1 model: teacher-forced logits along llama.cpp's greedy
// path, and free-running greedy generation.
import Foundation
import XCTest
import MistralEngine

final class DecoderTests: XCTestCase {
    struct Step { let top: [(Int32, Float)] }

    func loadGreedy(_ name: String) throws -> (prompt: [Int32], generated: [Int32], steps: [Step]) {
        let j = try loadJSON("smollm2-llamacpp/\(name)")
        let steps = (j["top5_per_step"] as? [[[Any]]] ?? []).map { step in
            Step(top: step.map { (Int32(($0[0] as? NSNumber)?.intValue ?? -1), ($0[1] as? NSNumber)?.floatValue ?? .nan) })
        }
        return (int32s(j["prompt_token_ids"]), int32s(j["generated_token_ids"]), steps)
    }

    /// Feeds prompt + llama.cpp's greedy tokens in one eval; checks each step's logits against llama.cpp's top-5.
    func checkTeacherForced(_ name: String) throws {
        let model = try SharedModel.shared.get()
        let (prompt, generated, steps) = try loadGreedy(name)
        XCTAssertEqual(steps.count, generated.count)
        let session = try Session(model: model, options: { var o = SessionOptions(); o.nCtx = 512; o.threads = 2; return o }())
        let all = prompt + generated.dropLast()
        let vocab = session.vocabSize
        var logits = [Float](repeating: 0, count: all.count * vocab)
        try logits.withUnsafeMutableBufferPointer { buf in try session.eval(all, logitsOut: buf.baseAddress) }
        var maxDiff: Float = 0
        for (i, step) in steps.enumerated() {
            let row = (prompt.count - 1 + i) * vocab
            let expected = step.top[0].0
            XCTAssertEqual(expected, generated[i])
            let ours = logits[row + Int(expected)]
            let diff = abs(ours - step.top[0].1)
            maxDiff = max(maxDiff, diff)
            XCTAssertLessThan(diff, 1.0, "\(name) step \(i): logit of llama.cpp's token \(expected) is \(ours), llama.cpp \(step.top[0].1)")
            let margin = step.top[0].1 - step.top[1].1
            if margin >= 0.5 {
                var best = 0
                for v in 0..<vocab where logits[row + v] > logits[row + best] { best = v }
                XCTAssertEqual(Int32(best), expected, "\(name) step \(i): argmax differs (llama.cpp margin \(margin))")
            }
        }
        print("\(name): max |logit diff| on llama.cpp's greedy token = \(maxDiff)")
    }

    func testTeacherForcedChat() throws { try checkTeacherForced("greedy_chat_Q4_1_ignore_eos.json") }
    func testTeacherForcedOnce() throws { try checkTeacherForced("greedy_once_Q4_1_ignore_eos.json") }

    /// Free-running greedy generation follows llama.cpp's tokens; where they first part, llama.cpp itself had a
    /// near-tie (top-1/top-2 margin < 0.5) and our token is its runner-up.
    func checkFreeRunning(_ name: String) throws {
        let model = try SharedModel.shared.get()
        let (prompt, generated, steps) = try loadGreedy(name)
        let session = try Session(model: model, options: { var o = SessionOptions(); o.nCtx = 512; o.threads = 2; return o }())
        var options = GenerateOptions()
        options.maxTokens = generated.count
        options.sampling.temperature = 0
        options.ignoreEOS = true
        try session.generate(prompt: prompt, options: options) { _, _ in true }
        let ours = Array(session.history[prompt.count...])
        XCTAssertEqual(ours.count, generated.count)
        if let split = ours.indices.first(where: { ours[$0] != generated[$0] }) {
            let top = steps[split].top
            XCTAssertLessThan(top[0].1 - top[1].1, 0.5, "\(name): parted from llama.cpp at step \(split), which is no near-tie")
            XCTAssertEqual(ours[split], top[1].0, "\(name): at the near-tie step \(split) our token is not llama.cpp's runner-up")
            print("\(name): identical for \(split) tokens, parted at a near-tie")
        } else {
            print("\(name): all \(generated.count) tokens identical")
        }
    }

    func testFreeRunningChat() throws { try checkFreeRunning("greedy_chat_Q4_1_ignore_eos.json") }
    func testFreeRunningOnce() throws { try checkFreeRunning("greedy_once_Q4_1_ignore_eos.json") }
}
