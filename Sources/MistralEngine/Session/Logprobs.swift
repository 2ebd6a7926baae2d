// Log-probabilities of one decode step: log_softmax of the model's raw logits (before logit bias, penalties, the
// grammar mask and temperature), as OpenAI's `logprobs` report them. Sums in Double so the result matches a
// float64 log_softmax of the same logits to ~1e-6.
import Glibc

struct LogprobStep {
    /// log(sum(exp(logits)))
    let logSumExp: Double
    let top: [TokenLogprob]

    static let off = LogprobStep(logSumExp: .nan, top: [])

    init(logSumExp: Double, top: [TokenLogprob]) {
        self.logSumExp = logSumExp
        self.top = top
    }

    init(raw: UnsafeBufferPointer<Float>, top k: Int) {
        var maxLogit = -Float.infinity
        for v in raw where v > maxLogit { maxLogit = v }
        var sum = 0.0
        if maxLogit.isFinite {
            for v in raw { sum += exp(Double(v - maxLogit)) }
        }
        let lse = maxLogit.isFinite ? Double(maxLogit) + log(sum) : .nan
        logSumExp = lse
        guard k > 0 else { top = []; return }
        // the k largest, kept sorted descending (ties: lower id first); k is small, so insertion is cheap
        var best: [(id: Int32, logit: Float)] = []
        best.reserveCapacity(k + 1)
        for (i, v) in raw.enumerated() {
            if best.count == k, let last = best.last, !(v > last.logit) { continue }
            var pos = best.count
            while pos > 0 && best[pos - 1].logit < v { pos -= 1 }
            best.insert((Int32(i), v), at: pos)
            if best.count > k { best.removeLast() }
        }
        top = best.map { TokenLogprob(token: $0.id, logprob: Float(Double($0.logit) - lse)) }
    }

    func logprob(of token: Int32, raw: [Float]) -> Float {
        guard token >= 0, Int(token) < raw.count else { return .nan }
        return Float(Double(raw[Int(token)]) - logSumExp)
    }
}
