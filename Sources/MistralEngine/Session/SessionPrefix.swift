// Prompt cache primitives: how much of a token list a session already holds, and starting a session from another
// session's first positions (tokens, row tags and the KV rows of every layer) instead of recomputing them.
import Glibc

extension Session {
    /// How many leading positions of `tokens` the session holds (token positions only: image rows never match).
    public func commonPrefix(_ tokens: UnsafeBufferPointer<Int32>) throws -> Int {
        try exclusive {
            var n = 0
            while n < history.count && n < tokens.count && history[n] == tokens[n] && rowTags[n] == 0 { n += 1 }
            return n
        }
    }

    /// The tokens of the context (image positions hold their placeholder id).
    public func tokens() throws -> [Int32] { try exclusive { history } }

    /// Replaces this session's context with the first `n` positions of `src` (same weights: the model's
    /// fingerprint must match; the KV cache types may differ and are converted). The next-token logits come along
    /// only when n is all of src's positions and src has them; otherwise the next generate must evaluate at least
    /// one token (reuse_prefix does so by itself). This session keeps its own RNG and seed.
    public func copyPrefix(from src: Session, count n: Int) throws {
        guard src !== self else { throw MistralError.invalid("cannot copy a session's prefix into itself") }
        try exclusive {
            try src.exclusive {
                guard n >= 0, n <= src.history.count else {
                    throw MistralError.invalid("cannot copy \(n) positions: the source session holds \(src.history.count)")
                }
                guard n <= nCtx else {
                    throw MistralError(.contextFull, "cannot copy \(n) positions into a session with n_ctx \(nCtx)")
                }
                guard src.model === model || sameWeights(src.model.fingerprint, model.fingerprint) else {
                    throw MistralError.invalid("the sessions belong to different models (fingerprints differ)")
                }
                try state.cache.copyPrefix(from: src.state.cache, layers: weights.config.nLayer, count: n)
                history = Array(src.history[..<n])
                rowTags = Array(src.rowTags[..<n])
                logitsValid = n > 0 && n == src.history.count && src.logitsValid
                if logitsValid { state.logits.update(from: src.state.logits, count: vocabSize) }
            }
        }
    }

    private func sameWeights(_ a: (UInt64, UInt64)?, _ b: (UInt64, UInt64)?) -> Bool {
        guard let a, let b else { return false }
        return a == b
    }

    /// The cached keys (or values) of one position of one layer, as floats (for tests and inspection).
    public func cachedRow(layer: Int, position: Int, keys: Bool) throws -> [Float] {
        try exclusive {
            let c = weights.config
            guard layer >= 0, layer < c.nLayer, position >= 0, position < history.count else {
                throw MistralError.invalid("no cached row for layer \(layer), position \(position)")
            }
            var out = [Float](repeating: 0, count: c.kvDim)
            out.withUnsafeMutableBufferPointer { buf in
                guard let p = buf.baseAddress else { return }
                let cache = state.cache
                cache.loadRow(keys ? cache.k : cache.v, layer: layer, pos: position, into: p)
            }
            return out
        }
    }
}
