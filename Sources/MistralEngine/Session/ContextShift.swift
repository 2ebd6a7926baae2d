// Context shift: when the context is full, keep the first n_keep positions (the system prompt), drop the n_discard
// oldest positions after them and move the rest down, as llama.cpp does — the moved keys are re-rotated rather
// than recomputed. RoPE turns each pair of a key by angle θ_i(p); a rotation composes, so the key of position p
// becomes the key of position p' by turning it by θ_i(p') - θ_i(p) (the angles computed exactly as the forward
// pass computes them). Values carry no position and move as they are.
//
// Numeric effect: with an f32 cache the moved keys equal the keys a fresh evaluation writes at the new positions up
// to float rounding (~1e-6 relative); an f16 or q8_0 cache dequantizes, turns and re-stores each moved key, one
// more rounding of that format (f16: 2^-11 relative; q8_0: 1/254 of the block's largest value). What a shift
// cannot give back is context: the kept positions' keys and values (past the first layer) were computed while the
// discarded tokens were still visible, so the model continues as llama.cpp's does, not as if the discarded text
// had never been there.
import Glibc

extension LlamaWeights {
    /// The angle the forward pass turns pair i of a query/key at position `pos` by (the same f32 products).
    func ropeAngle(position pos: Int, pair i: Int) -> Double {
        let c = config
        var invFreq = Float(1.0 / pow(c.ropeBase, Double(2 * i) / Double(c.rotDim)))
        if let f = ropeFreqFactors { invFreq /= f[i] }
        return Double(Float(pos) * invFreq)
    }

    /// cos / sin of the turn that takes a key from position `from` to `to`, for each of the rotDim / 2 pairs.
    func reRotation(from: Int, to: Int, cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        for i in 0..<config.rotDim / 2 {
            let delta = ropeAngle(position: to, pair: i) - ropeAngle(position: from, pair: i)
            cos[i] = Float(Glibc.cos(delta))
            sin[i] = Float(Glibc.sin(delta))
        }
    }

    /// Turns one position's keys (every KV head, kvDim floats) by the angles in cos / sin.
    func rotateKeys(_ row: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let c = config
        for h in 0..<c.nKVHead {
            Ops.rope(row + h * c.headDim, cos: cos, sin: sin, rotDim: c.rotDim, interleaved: c.ropeInterleaved)
        }
    }
}

extension Session {
    /// Drops positions nKeep..<nKeep+nDiscard and moves the later ones down (keys re-rotated). The next-token
    /// logits, when valid, stay those of the last position (computed before the shift, as llama.cpp samples).
    public func shift(keep nKeep: Int, discard nDiscard: Int) throws {
        try exclusive { try shiftContext(keep: nKeep, discard: nDiscard) }
    }

    func shiftContext(keep nKeep: Int, discard nDiscard: Int) throws {
        guard nKeep >= 0, nDiscard >= 0, nKeep <= history.count, nDiscard <= history.count - nKeep else {
            throw MistralError.invalid("cannot keep \(nKeep) and discard \(nDiscard) positions: the session holds \(history.count)")
        }
        guard nDiscard > 0 else { return }
        let from = nKeep + nDiscard, moved = history.count - from
        let half = weights.config.rotDim / 2
        let cos = try allocateZeroed(Float.self, count: max(1, moved * half), what: "context shift rotations")
        defer { free(cos) }
        let sin = try allocateZeroed(Float.self, count: max(1, moved * half), what: "context shift rotations")
        defer { free(sin) }
        for j in 0..<moved {
            weights.reRotation(from: from + j, to: nKeep + j, cos: cos + j * half, sin: sin + j * half)
        }
        let w = weights
        try state.cache.shiftDown(layers: w.config.nLayer, from: from, to: history.count, delta: nDiscard) { row, p in
            let j = p - from
            w.rotateKeys(row, cos: cos + j * half, sin: sin + j * half)
        }
        history.removeSubrange(nKeep..<from)
        rowTags.removeSubrange(nKeep..<from)
    }

    /// Generation's policy for a full context: keep o.nKeep positions, discard o.nDiscard (0: half of the rest).
    /// False when there is nothing to discard (then the context is simply full).
    func shiftForGeneration(_ o: GenerateOptions) throws -> Bool {
        let keep = min(max(o.nKeep, 0), history.count)
        let rest = history.count - keep
        let discard = o.nDiscard > 0 ? min(o.nDiscard, rest) : rest / 2
        guard discard > 0 else { return false }
        try shiftContext(keep: keep, discard: discard)
        return true
    }

    /// Before a prompt of `count` tokens is appended with the policy on: shifts (at least the overflow, else as
    /// generation does) when it would not fit. A prompt longer than what the policy can free stays an error.
    func makeRoom(for count: Int, _ o: GenerateOptions) throws {
        let overflow = history.count + count - nCtx
        guard overflow > 0 else { return }
        let keep = min(max(o.nKeep, 0), history.count)
        let rest = history.count - keep
        guard overflow <= rest else { return }  // append reports the full context
        let usual = o.nDiscard > 0 ? o.nDiscard : rest / 2
        try shiftContext(keep: keep, discard: min(rest, max(overflow, usual)))
    }
}
