// What one forward step evaluates: the rows of one or more sequences (sessions) stacked into one batch, so every
// weight matrix is read once per step for all of them, and the activation scratch the step writes. Each sequence
// keeps its own KV cache and logits (LlamaState); the scratch belongs to the model's batch scheduler.
import Glibc

/// One sequence's part of a forward step: positions startPos..<startPos+n, given as token ids or embedding rows,
/// occupying rows row..<row+n of the step's activations.
struct ForwardSequence {
    let state: LlamaState
    let tokens: UnsafePointer<Int32>?
    let embeddings: UnsafePointer<Float>?
    let n: Int
    let startPos: Int
    let logits: LogitsRequest
    /// The session asked for exactly one position (a decode step): attention may split it over its cached
    /// positions. Set from the request, never from how a step was cut, so a sequence computes the same bits in a
    /// batch as alone.
    let decode: Bool
    let row: Int
}

/// Activations for a step of up to `rows` rows from up to `sequences` sequences, with per-thread attention scratch
/// for `threads` threads. Allocated before any step runs; the forward pass allocates nothing.
final class ForwardScratch: @unchecked Sendable {  // used by one step at a time; workers write disjoint slices
    let rows, sequences, threads: Int
    let x, xb, q, k, v, attn, hb, hb2: UnsafeMutablePointer<Float>
    let ropeCos, ropeSin: UnsafeMutablePointer<Float>
    /// Per thread: a block of keys and values as floats, and the scores and running max / sum of its queries.
    let attnScratch: UnsafeMutablePointer<Float>
    let attnScratchStride: Int
    /// Per sequence, split decode attention's partials: maxSplits x nHead x (headDim outputs, max, sum).
    let attnPartials: UnsafeMutablePointer<Float>
    let attnPartialsStride: Int
    /// Per sequence, where its attention tasks start in the step's task list (sequences + 1 entries).
    let taskStart: UnsafeMutablePointer<Int>
    /// Each sequence's first row, then the step's row count (sequences + 1 entries), and 0, 1, 2, ...: the
    /// matmul segments (MatMulSegments) of the step's rows and of its one-row-per-sequence logits product.
    let rowStarts: UnsafeMutablePointer<Int>
    let unitStarts: UnsafeMutablePointer<Int>
    /// Next-token logits of the sequences of a multi-sequence step, before they are copied to each session.
    let logitRows: UnsafeMutablePointer<Float>
    let acts: ActivationBatch
    private var allocations: [UnsafeMutableRawPointer] = []

    init(config c: LlamaConfig, rows: Int, sequences: Int, threads: Int) throws {
        self.rows = rows
        self.sequences = sequences
        self.threads = threads
        var list: [UnsafeMutableRawPointer] = []
        func buffer(_ n: Int, _ what: String) throws -> UnsafeMutablePointer<Float> {
            let p = try allocateZeroed(Float.self, count: n, what: what)
            list.append(UnsafeMutableRawPointer(p))
            return p
        }
        let group = c.nHead / max(1, c.nKVHead)
        attnScratchStride = 2 * LlamaState.kvBlock * c.headDim + LlamaState.queryTokens * group * (LlamaState.kvBlock + 2)
            + 2 * group  // the split decode's running max / sum
        attnPartialsStride = LlamaState.maxSplits * c.nHead * (c.headDim + 2)
        do {
            let wide = max(c.nEmbd, c.qDim)
            x = try buffer(rows * c.nEmbd, "activations")
            xb = try buffer(rows * wide, "activations")
            q = try buffer(rows * c.qDim, "queries")
            k = try buffer(rows * c.kvDim, "keys")
            v = try buffer(rows * c.kvDim, "values")
            attn = try buffer(rows * c.qDim, "attention output")
            hb = try buffer(rows * c.nFF, "feed-forward activations")
            hb2 = try buffer(rows * c.nFF, "feed-forward activations")
            ropeCos = try buffer(rows * c.rotDim / 2, "rope table")
            ropeSin = try buffer(rows * c.rotDim / 2, "rope table")
            attnScratch = try buffer(threads * attnScratchStride, "attention scratch")
            attnPartials = try buffer(sequences * attnPartialsStride, "attention partials")
            logitRows = try buffer(sequences > 1 ? sequences * c.nVocab : 1, "batch logits")
            func ints(_ what: String) throws -> UnsafeMutablePointer<Int> {
                let p = try allocateZeroed(Int.self, count: sequences + 1, what: what)
                list.append(UnsafeMutableRawPointer(p))
                return p
            }
            taskStart = try ints("attention task list")
            rowStarts = try ints("batch segments")
            unitStarts = try ints("batch segments")
            for i in 0...sequences { unitStarts[i] = i }
            acts = try ActivationBatch(rows: rows, cols: max(c.nEmbd, c.nFF, c.qDim))
        } catch {
            for p in list { free(p) }
            throw error
        }
        allocations = list
    }

    /// Bytes a scratch of this size allocates (the quantized inputs counted at one byte a value and a bit more).
    static func bytes(_ c: LlamaConfig, rows: Int, sequences: Int, threads: Int) -> Double {
        let perRow = Double(c.nEmbd + max(c.nEmbd, c.qDim) + 2 * c.qDim + 2 * c.kvDim + 2 * c.nFF + c.rotDim)
        let group = c.nHead / max(1, c.nKVHead)
        let scratch = Double(threads) * Double(2 * LlamaState.kvBlock * c.headDim
                                               + LlamaState.queryTokens * group * (LlamaState.kvBlock + 2))
        let partials = Double(sequences) * Double(LlamaState.maxSplits * c.nHead * (c.headDim + 2))
        let logits = sequences > 1 ? Double(sequences) * Double(c.nVocab) : 0
        let quantized = Double(rows) * Double(max(c.nEmbd, c.nFF, c.qDim)) * 2.3
        return 4 * (Double(rows) * perRow + scratch + partials + logits) + quantized
    }

    deinit {
        for p in allocations { free(p) }
    }
}
