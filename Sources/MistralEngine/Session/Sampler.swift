// Token sampling: repetition penalty, top-k, top-p, min-p, temperature, then a draw from a seeded RNG
// (llama.cpp's default order). Temperature 0 is greedy argmax. Same seed + same logits = same tokens.
import Glibc

public struct SamplingParams: Sendable {
    public var temperature: Float = 0.8
    public var topK: Int = 40
    public var topP: Float = 0.95
    public var minP: Float = 0.05
    public var repeatPenalty: Float = 1
    public var repeatLastN: Int = 64
    public init() {}
}

/// xoshiro256** seeded through splitmix64: small, fast and identical on every platform.
public struct RandomGenerator: Sendable {
    /// The generator's state (saved with a session, SessionState.swift).
    var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
}

public struct Sampler {
    private var candidates: [(id: Int32, logit: Float)] = []

    public init() {}

    /// Picks the next token from `logits` (n values, modified in place by penalties and bans).
    public mutating func sample(logits: UnsafeMutablePointer<Float>, n: Int, params p: SamplingParams,
                                recent: ArraySlice<Int32>, banned: [Int32], rng: inout RandomGenerator) -> Int32 {
        for id in banned where id >= 0 && Int(id) < n { logits[Int(id)] = -.infinity }
        if p.repeatPenalty != 1 && p.repeatLastN != 0 {
            var seen = Set<Int32>()
            for id in recent.suffix(p.repeatLastN < 0 ? recent.count : p.repeatLastN)
            where id >= 0 && Int(id) < n && seen.insert(id).inserted {
                let v = logits[Int(id)]
                logits[Int(id)] = v > 0 ? v / p.repeatPenalty : v * p.repeatPenalty
            }
        }
        if p.temperature <= 0 { return argmax(logits, n) }

        // top-k (keeps the candidates sorted by logit, descending)
        let k = p.topK > 0 ? min(p.topK, n) : n
        selectTop(k, logits: logits, n: n)

        // probabilities of the untempered logits, for top-p and min-p
        let maxLogit = candidates[0].logit
        var probs = candidates.map { expf($0.logit - maxLogit) }
        let total = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= total }
        var keep = candidates.count
        if p.topP < 1 {
            var cum: Float = 0
            for i in 0..<keep {
                cum += probs[i]
                if cum >= p.topP { keep = i + 1; break }
            }
        }
        if p.minP > 0 {
            let threshold = probs[0] * p.minP
            var i = 1
            while i < keep && probs[i] >= threshold { i += 1 }
            keep = i
        }

        // temperature, then draw
        var weights = [Double](repeating: 0, count: keep)
        var sum = 0.0
        for i in 0..<keep {
            let w = exp(Double(candidates[i].logit - maxLogit) / Double(p.temperature))
            weights[i] = w
            sum += w
        }
        let r = rng.nextUnit() * sum
        var acc = 0.0
        for i in 0..<keep {
            acc += weights[i]
            if r < acc { return candidates[i].id }
        }
        return candidates[keep - 1].id
    }

    /// The first index of the largest logit (NaN never wins; 0 when none exceeds -inf), as argmaxReference,
    /// in two passes of 16 lanes: the largest value, then its first index. Every batched session samples once per
    /// step between steps (131072 logits for Tekken), and the one-compare-per-logit loop made that gap longer.
    public func argmax(_ logits: UnsafePointer<Float>, _ n: Int) -> Int32 {
        var lanes = SIMD16<Float>(repeating: -.infinity)
        var i = 0
        while i &+ 16 <= n {
            let v = UnsafeRawPointer(logits + i).loadUnaligned(as: SIMD16<Float>.self)
            lanes.replace(with: v, where: v .> lanes)  // a NaN compares false: never taken
            i &+= 16
        }
        var bestValue = -Float.infinity
        for l in 0..<16 where lanes[l] > bestValue { bestValue = lanes[l] }
        while i < n {
            if logits[i] > bestValue { bestValue = logits[i] }
            i &+= 1
        }
        guard bestValue > -.infinity else { return 0 }
        // the first index holding it: the first block of 16 that does, then its lane
        let target = SIMD16<Float>(repeating: bestValue)
        var j = 0
        while j &+ 16 <= n {
            let v = UnsafeRawPointer(logits + j).loadUnaligned(as: SIMD16<Float>.self)
            if any(v .== target) { break }
            j &+= 16
        }
        while j < n && logits[j] != bestValue { j &+= 1 }
        return Int32(truncatingIfNeeded: j)  // j < n, a vocabulary size
    }

    /// The plain loop argmax must equal.
    public func argmaxReference(_ logits: UnsafePointer<Float>, _ n: Int) -> Int32 {
        var best = 0
        var bestValue = -Float.infinity
        for i in 0..<n where logits[i] > bestValue {
            bestValue = logits[i]
            best = i
        }
        return Int32(truncatingIfNeeded: best)
    }

    /// Fills `candidates` with the k largest logits, sorted descending (a bounded min-heap, O(n log k)).
    private mutating func selectTop(_ k: Int, logits: UnsafePointer<Float>, n: Int) {
        candidates.removeAll(keepingCapacity: true)
        if k >= n {
            for i in 0..<n { candidates.append((Int32(i), logits[i])) }
        } else {
            // heap ordered so that the smallest kept logit is at the root
            for i in 0..<n {
                let v = logits[i]
                if candidates.count < k {
                    candidates.append((Int32(i), v))
                    var c = candidates.count - 1
                    while c > 0 {
                        let parent = (c - 1) / 2
                        if candidates[parent].logit <= candidates[c].logit { break }
                        candidates.swapAt(parent, c)
                        c = parent
                    }
                } else if v > candidates[0].logit {
                    candidates[0] = (Int32(i), v)
                    var c = 0
                    while true {
                        let l = 2 * c + 1, r = l + 1
                        var m = c
                        if l < k && candidates[l].logit < candidates[m].logit { m = l }
                        if r < k && candidates[r].logit < candidates[m].logit { m = r }
                        if m == c { break }
                        candidates.swapAt(m, c)
                        c = m
                    }
                }
            }
        }
        candidates.sort { $0.logit > $1.logit || ($0.logit == $1.logit && $0.id < $1.id) }
    }
}
