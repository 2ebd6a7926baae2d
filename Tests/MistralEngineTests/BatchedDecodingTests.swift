// Continuous batching: sessions of one model generating concurrently from several threads get exactly the tokens
// (and final logits, bit for bit) they get alone, greedy and seeded, on SmolLM2 Q4_1 and tiny-s in every weight
// type; the scheduler's counters show the steps really were shared, and max_batch_sessions 1 turns that off.
import Foundation
import Synchronization
import XCTest
import MistralEngine

final class BatchedDecodingTests: XCTestCase {
    /// Sessions handed to threads: each is used by one thread at a time (its own).
    final class Box: @unchecked Sendable {
        let sessions: [Session]
        let prompts: [[Int32]]
        init(_ sessions: [Session], _ prompts: [[Int32]]) {
            self.sessions = sessions
            self.prompts = prompts
        }
    }

    struct Run: Equatable {
        var tokens: [Int32]
        var logits: [UInt32]
    }

    /// Prompts of different lengths (one long enough to be cut into pieces while the others decode).
    static func prompts(vocab: Int, count: Int) -> [[Int32]] {
        (0..<count).map { i in
            let length = i == 1 ? 300 : 5 + 3 * i
            return (0..<length).map { j in Int32((j * 7919 + i * 104_729 + 11) % (vocab - 1) + 1) }
        }
    }

    static func generate(_ s: Session, _ prompt: [Int32], seeded: Bool, index: Int) throws -> Run {
        try s.reset()
        var o = GenerateOptions()
        o.maxTokens = 20
        o.ignoreEOS = true
        o.sampling.temperature = seeded ? 0.9 : 0
        o.seed = seeded ? UInt64(1000 + index) : 0
        var tokens: [Int32] = []
        try s.generate(prompt: prompt, makeOptions: { o }, onToken: { e in
            if e.token >= 0 { tokens.append(e.token) }
            return true
        })
        let logits = try s.withLastLogits { Array($0).map(\.bitPattern) } ?? []
        return Run(tokens: tokens, logits: logits)
    }

    /// Runs every session alone, then all at once from their own threads; returns the batch stats of the latter.
    func check(_ model: Model, name: String, sessions n: Int = 4, file: StaticString = #filePath,
               line: UInt = #line) throws -> BatchStats {
        let scheduler = try XCTUnwrap(model.scheduler)
        var options = SessionOptions()
        options.nCtx = 512
        let sessions = try (0..<n).map { _ in try Session(model: model, options: options) }
        let prompts = BatchedDecodingTests.prompts(vocab: model.vocabSize, count: n)
        var total = BatchStats()
        for seeded in [false, true] {
            let alone = try (0..<n).map { try BatchedDecodingTests.generate(sessions[$0], prompts[$0], seeded: seeded, index: $0) }
            scheduler.resetStats()
            let results = Mutex<[Int: Result<Run, Error>]>([:])
            let start = DispatchGroup(), done = DispatchGroup()
            let box = Box(sessions, prompts)
            start.enter()
            for i in 0..<n {
                done.enter()
                Thread {
                    start.wait()
                    let r = Result { try BatchedDecodingTests.generate(box.sessions[i], box.prompts[i], seeded: seeded, index: i) }
                    results.withLock { $0[i] = r }
                    done.leave()
                }.start()
            }
            start.leave()
            done.wait()
            let stats = scheduler.stats
            total.batchedSteps += stats.batchedSteps
            total.maxSequences = max(total.maxSequences, stats.maxSequences)
            for i in 0..<n {
                let together = try XCTUnwrap(results.withLock { $0[i] }, file: file, line: line).get()
                XCTAssertEqual(together.tokens, alone[i].tokens, "\(name) \(seeded ? "seeded" : "greedy") session \(i): tokens",
                               file: file, line: line)
                XCTAssertTrue(together.logits == alone[i].logits && !together.logits.isEmpty,
                              "\(name) \(seeded ? "seeded" : "greedy") session \(i): final logits differ", file: file, line: line)
            }
        }
        return total
    }

    func testConcurrentSessionsOnSmolLM2GetTheirSoloTokens() throws {
        let stats = try check(try SharedModel.shared.get(), name: "SmolLM2 Q4_1")
        XCTAssertGreaterThan(stats.batchedSteps, 0, "no step evaluated more than one session")
        XCTAssertGreaterThan(stats.maxSequences, 1)
    }

    /// 8 sessions on a 2-thread pool: steps of 4 or more decoding sessions run each one's attention as one task
    /// over all its KV heads (whole cache rows), fewer as one task per head; the tokens and logits are the same.
    func testEightSessionsOnTwoThreadsGetTheirSoloTokens() throws {
        var o = ModelLoadOptions()
        o.threads = 2
        let model = try Model(path: TestPaths.smolLM2, options: o)
        let stats = try check(model, name: "SmolLM2 Q4_1, 8 sessions", sessions: 8)
        XCTAssertGreaterThanOrEqual(stats.maxSequences, 4, "no step held the 4 sessions that make whole-row tasks")
    }

    func testConcurrentSessionsOnTinySGetTheirSoloTokensInEveryWeightType() throws {
        let tiny = TestPaths.fixtures + "/tiny-s"
        let cases: [(String, String, GGMLType?)] = [
            ("tiny-s f32", "gguf/tiny-s-f32.gguf", nil), ("tiny-s bf16", "gguf/tiny-s-bf16.gguf", nil),
            ("tiny-s Q4_0", "gguf/tiny-s-Q4_0.gguf", nil), ("tiny-s Q8_0", "gguf/tiny-s-Q8_0.gguf", nil),
            ("tiny-s hf", "hf", nil), ("tiny-s hf -> q4_0", "hf", .q4_0),
            ("kquant Q4_K_M", "../kquant-model/kquant-Q4_K_M.gguf", nil),
        ]
        for (name, rel, convert) in cases {
            let tokenizer = rel.hasSuffix(".gguf") ? nil : tiny + "/tokenizer/tekken.json"
            let model = try Model(path: tiny + "/" + rel, options: ModelLoadOptions(tokenizerPath: tokenizer, convertTo: convert))
            let stats = try check(model, name: name)
            XCTAssertGreaterThan(stats.batchedSteps, 0, "\(name): no step evaluated more than one session")
        }
    }

    func testMaxBatchSessionsOneNeverBatches() throws {
        var o = ModelLoadOptions()
        o.maxBatchSessions = 1
        let model = try Model(path: TestPaths.fixtures + "/tiny-s/gguf/tiny-s-Q8_0.gguf", options: o)
        let stats = try check(model, name: "tiny-s Q8_0 unbatched", sessions: 3)
        XCTAssertEqual(stats.batchedSteps, 0)
        XCTAssertEqual(stats.maxSequences, 1)
    }

    /// Threads of this process, from /proc.
    static func threadCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0
    }

    func testAModelFreedAfterBatchedStepsTakesItsSchedulerWeightsAndThreadsWithIt() throws {
        let before = BatchedDecodingTests.threadCount()
        weak var weakScheduler: BatchScheduler?
        weak var weakWeights: LlamaWeights?
        // in a function of its own, so that nothing of the model outlives the call
        func useAndDrop() throws {
            var o = ModelLoadOptions()
            o.threads = 2
            let model = try Model(path: TestPaths.fixtures + "/tiny-s/gguf/tiny-s-Q8_0.gguf", options: o)
            weakScheduler = model.scheduler
            weakWeights = model.weights
            // concurrent sessions: the scheduler's relay thread leads some of their steps
            let stats = try check(model, name: "tiny-s Q8_0 freed after", sessions: 3)
            XCTAssertGreaterThan(stats.batchedSteps, 0)
            XCTAssertGreaterThan(BatchedDecodingTests.threadCount(), before, "the pool's worker is running")
        }
        try useAndDrop()
        // the threads check() started may still be exiting (and releasing their sessions), and /proc may list an
        // exiting thread briefly: wait up to a second
        var after = BatchedDecodingTests.threadCount()
        for _ in 0..<200 where after > before || weakScheduler != nil || weakWeights != nil {
            usleep(5000)
            after = BatchedDecodingTests.threadCount()
        }
        XCTAssertNil(weakScheduler, "the scheduler outlived its model and sessions")
        XCTAssertNil(weakWeights, "the weights outlived their model")
        XCTAssertEqual(after, before, "threads left behind by a freed model")
    }

    func testSessionThreadsAreCappedByTheModelPool() throws {
        var o = ModelLoadOptions()
        o.threads = 2
        let model = try Model(path: TestPaths.fixtures + "/tiny-s/gguf/tiny-s-Q8_0.gguf", options: o)
        XCTAssertEqual(model.scheduler?.threadCount, 2)
        var s = SessionOptions()
        s.threads = 8
        XCTAssertEqual(try Session(model: model, options: s).threadCount, 2)
        s.threads = 1
        XCTAssertEqual(try Session(model: model, options: s).threadCount, 1)
        o.threads = 513
        XCTAssertThrowsError(try Model(path: TestPaths.fixtures + "/tiny-s/gguf/tiny-s-Q8_0.gguf", options: o))
    }
}
