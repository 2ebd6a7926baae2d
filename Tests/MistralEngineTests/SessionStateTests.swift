// Prompt cache (prefix copy), session save/load and context shift, on SmolLM2 and tiny-s.
import Foundation
import XCTest
import MistralEngine

final class SessionStateTests: XCTestCase {
    func tinyS() throws -> Model {
        try Model(path: TestPaths.fixtures + "/tiny-s/gguf/tiny-s-Q8_0.gguf")
    }

    /// tiny-s in the HF layout: halves-rotated rope (ropeInterleaved false), unlike the GGUF files.
    func tinyHF() throws -> Model {
        let tiny = TestPaths.fixtures + "/tiny-s"
        return try Model(path: tiny + "/hf", options: ModelLoadOptions(tokenizerPath: tiny + "/tokenizer/tekken.json"))
    }

    func session(_ m: Model, nCtx: Int = 256, kv: KVCacheType = .f16, seed: UInt64 = 0xC0FFEE) throws -> Session {
        var o = SessionOptions()
        o.nCtx = nCtx
        o.threads = 2
        o.kvType = kv
        o.seed = seed
        return try Session(model: m, options: o)
    }

    func options(_ n: Int, temperature: Float, seed: UInt64 = 0) -> GenerateOptions {
        var o = GenerateOptions()
        o.maxTokens = n
        o.sampling.temperature = temperature
        o.seed = seed
        o.ignoreEOS = true
        return o
    }

    func sample(_ s: Session, _ prompt: [Int32], _ o: GenerateOptions) throws -> [Int32] {
        try s.generate(prompt: prompt, options: o) { _, _ in true }
        return try s.lastGeneratedTokens()
    }

    func prompt(_ m: Model) -> [Int32] {
        let ids = m.tokenizer.tokenize("Once upon a time, in a quiet village by the sea,", addBos: m.tokenizer.addBosByDefault,
                                       parseSpecial: false)
        return ids.isEmpty ? [1, 2, 3] : ids
    }

    func saved(_ s: Session) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: try s.stateSize())
        let n = try bytes.withUnsafeMutableBytes { try s.saveState(into: $0) }
        XCTAssertEqual(n, bytes.count)
        return bytes
    }

    /// Must show 4: greedy and seeded sampling continue with exactly the original's tokens after a restore into a
    /// fresh session (from memory and from a file, the second with another seed of its own).
    func testRestoredSessionContinuesIdentically() throws {
        for model in [try SharedModel.shared.get(), try tinyS()] {
            for temperature: Float in [0, 0.9] {
                let a = try session(model)
                let first = try sample(a, prompt(model), options(5, temperature: temperature, seed: 42))
                XCTAssertEqual(first.count, 5)
                let state = try saved(a)
                let path = NSTemporaryDirectory() + "/mistral-state-\(getpid()).bin"
                try a.saveState(path: path)
                defer { unlink(path) }
                let expected = try sample(a, [], options(16, temperature: temperature))

                let b = try session(model)
                try state.withUnsafeBytes { try b.loadState($0) }
                XCTAssertEqual(b.history, a.history.dropLast(expected.count).map { $0 })
                XCTAssertEqual(try sample(b, [], options(16, temperature: temperature)), expected)

                let c = try session(model, seed: 99)
                try c.loadState(path: path)
                XCTAssertEqual(try sample(c, [], options(16, temperature: temperature)), expected)
            }
        }
    }

    /// A refused load leaves the session as it was (context, logits, RNG), with the status of each failure.
    func testRefusedLoadsLeaveTheSessionUnchanged() throws {
        let model = try SharedModel.shared.get()
        let a = try session(model)
        _ = try sample(a, prompt(model), options(4, temperature: 0.9, seed: 5))
        let good = try saved(a)
        let other = try session(try tinyS())
        _ = try sample(other, [1, 2, 3], options(2, temperature: 0))
        let foreign = try saved(other)

        let b = try session(model)
        _ = try sample(b, [1, 2, 3, 4], options(3, temperature: 0.9, seed: 11))
        let before = b.history
        let beforeState = try saved(b)

        var flipped = good
        flipped[good.count / 2] ^= 0x40
        var badToken = good
        badToken[96] = 0xFF; badToken[97] = 0xFF; badToken[98] = 0xFF; badToken[99] = 0x7F
        SessionStateFile.reseal(&badToken)
        var newer = good
        newer[8] = 2
        let cases: [(String, [UInt8], MistralStatus)] = [
            ("empty", [], .format), ("header only", Array(good.prefix(96)), .format),
            ("truncated", Array(good.dropLast(1)), .format), ("half", Array(good.prefix(good.count / 2)), .format),
            ("trailing byte", good + [0], .format), ("flipped byte", flipped, .format),
            ("token outside the vocabulary", badToken, .format), ("newer version", newer, .unsupported),
            ("other model", foreign, .invalidArgument),
        ]
        for (what, bytes, status) in cases {
            XCTAssertThrowsError(try bytes.withUnsafeBytes { try b.loadState($0) }, what) { e in
                XCTAssertEqual((e as? MistralError)?.status, status, "\(what): \(e)")
            }
            XCTAssertEqual(b.history, before, what)
            XCTAssertEqual(try saved(b), beforeState, what)
        }
        let small = try session(model, nCtx: 8)
        XCTAssertThrowsError(try good.withUnsafeBytes { try small.loadState($0) }) { e in
            XCTAssertEqual((e as? MistralError)?.status, .contextFull)
        }
        XCTAssertThrowsError(try b.loadState(path: "/nonexistent/state.bin")) { e in
            XCTAssertEqual((e as? MistralError)?.status, .io)
        }
        // and it still works: the good file loads, into a q8_0 session too (rows converted)
        try good.withUnsafeBytes { try b.loadState($0) }
        XCTAssertEqual(b.history, a.history)
        let q8 = try session(model, kv: .q8_0)
        try good.withUnsafeBytes { try q8.loadState($0) }
        XCTAssertEqual(q8.history, a.history)
    }

    /// A session started from another's prefix generates what a session that evaluated the whole prompt does.
    func testCopiedPrefixContinuesLikeAFreshEvaluation() throws {
        let model = try SharedModel.shared.get()
        let ids = prompt(model)
        let src = try session(model)
        try src.eval(ids)
        let fresh = try session(model)
        let expected = try sample(fresh, ids, options(12, temperature: 0))
        for (n, kv) in [(ids.count, KVCacheType.f16), (ids.count - 3, .f16), (0, .f16), (ids.count, .f32)] {
            let dst = try session(model, kv: kv)
            try dst.copyPrefix(from: src, count: n)
            XCTAssertEqual(try ids.withUnsafeBufferPointer { try dst.commonPrefix($0) }, n)
            var o = options(12, temperature: 0)
            o.reusePrefix = true
            let got = try sample(dst, ids, o)
            if kv == .f16 { XCTAssertEqual(got, expected, "n \(n)") } else { XCTAssertEqual(got.count, 12) }
        }
        // the whole of src comes with its logits: generation can continue without a prompt
        let whole = try session(model)
        try whole.copyPrefix(from: src, count: ids.count)
        XCTAssertEqual(try sample(whole, [], options(12, temperature: 0)), expected)
        XCTAssertThrowsError(try whole.copyPrefix(from: whole, count: 1))
        XCTAssertThrowsError(try whole.copyPrefix(from: src, count: ids.count + 1))
        let other = try session(try tinyS())
        XCTAssertThrowsError(try other.copyPrefix(from: src, count: 1)) { e in
            XCTAssertEqual((e as? MistralError)?.status, .invalidArgument)
        }
        let small = try session(model, nCtx: 4)
        XCTAssertThrowsError(try small.copyPrefix(from: src, count: ids.count)) { e in
            XCTAssertEqual((e as? MistralError)?.status, .contextFull)
        }
    }

    /// The rotation, written from its definition in Double: pair i of a key at position p turned by
    /// (q - p) * base^(-2i / rotDim), pairs (2i, 2i+1) or (i, i + rotDim/2).
    func referenceMove(_ key: [Float], from p: Int, to q: Int, _ c: LlamaConfig) -> [Float] {
        var out = key
        let half = c.rotDim / 2
        for h in 0..<c.nKVHead {
            for i in 0..<half {
                let angle = Double(q - p) * pow(c.ropeBase, -Double(2 * i) / Double(c.rotDim))
                let (x, y) = c.ropeInterleaved ? (h * c.headDim + 2 * i, h * c.headDim + 2 * i + 1)
                    : (h * c.headDim + i, h * c.headDim + i + half)
                let a = Double(key[x]), b = Double(key[y])
                out[x] = Float(a * cos(angle) - b * sin(angle))
                out[y] = Float(a * sin(angle) + b * cos(angle))
            }
        }
        return out
    }

    /// After a shift, the first layer's cached keys (which depend on their token and position only) equal the
    /// keys a fresh evaluation of the kept tokens writes at the new positions, and the plain reference rotation of
    /// the old keys; values are moved unchanged. Interleaved (GGUF) and halves (HF) rope layouts.
    func testShiftReRotatesKeysToTheirNewPositions() throws {
        for model in [try SharedModel.shared.get(), try tinyS(), try tinyHF()] {
            guard let c = model.weights?.config else { return XCTFail("no weights") }
            var ids: [Int32] = []
            for i in 0..<40 { ids.append(Int32((i * 37 + 11) % min(c.nVocab, 1000))) }
            for (kv, tolerance) in [(KVCacheType.f32, Float(2e-5)), (.f16, 2e-3), (.q8_0, 2e-2)] {
                if kv == .q8_0 && c.headDim % 32 != 0 { continue }
                let keep = 5, discard = 12
                let a = try session(model, nCtx: 64, kv: kv)
                try a.eval(ids)
                let oldKeys = try (0..<ids.count).map { try a.cachedRow(layer: 0, position: $0, keys: true) }
                try a.shift(keep: keep, discard: discard)
                let kept = Array(ids[..<keep] + ids[(keep + discard)...])
                XCTAssertEqual(a.history, kept)
                let fresh = try session(model, nCtx: 64, kv: kv)
                try fresh.eval(kept)
                for p in 0..<kept.count {
                    let shifted = try a.cachedRow(layer: 0, position: p, keys: true)
                    let want = try fresh.cachedRow(layer: 0, position: p, keys: true)
                    let old = p < keep ? p : p + discard
                    let reference = referenceMove(oldKeys[old], from: old, to: p, c)
                    let scale = max(1, want.map { abs($0) }.max() ?? 1)
                    for j in want.indices {
                        XCTAssertEqual(shifted[j], want[j], accuracy: tolerance * scale, "\(kv) key p \(p) [\(j)]")
                        XCTAssertEqual(reference[j], want[j], accuracy: max(tolerance, 2e-5) * scale, "reference p \(p) [\(j)]")
                    }
                    XCTAssertEqual(try a.cachedRow(layer: 0, position: p, keys: false),
                                   try fresh.cachedRow(layer: 0, position: p, keys: false), "\(kv) values p \(p)")
                }
            }
        }
    }

    /// Generation with a context shift runs past n_ctx and keeps its first n_keep positions.
    func testGenerationShiftsInsteadOfStopping() throws {
        let model = try tinyS()
        let s = try session(model, nCtx: 32)
        let ids: [Int32] = Array(1...12)
        var o = options(70, temperature: 0.8, seed: 3)
        o.contextShift = true
        o.nKeep = 6
        XCTAssertEqual(try s.generate(prompt: ids, options: o) { _, _ in true }, .maxTokens)
        XCTAssertEqual(s.lastGenerated, 70)
        XCTAssertLessThanOrEqual(s.nPast, 32)
        XCTAssertEqual(Array(s.history.prefix(6)), Array(ids.prefix(6)))
        // without it the same call ends at the full context
        let t = try session(model, nCtx: 32)
        XCTAssertThrowsError(try t.generate(prompt: ids, options: options(70, temperature: 0.8, seed: 3)) { _, _ in true })
        XCTAssertEqual(t.lastStopReason, .contextFull)
    }
}
