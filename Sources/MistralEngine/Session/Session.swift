// A session: one conversation's KV cache, logits and sampler. Used by one thread at a time: a second caller while
// a call is running (another thread, or the session's own callback) is refused as busy. Its forward steps run on
// the model's shared worker pool through the model's batch scheduler, batched with other sessions' concurrent steps.
import Glibc
import Synchronization

public struct SessionOptions: Sendable {
    public var nCtx = 0          // 0 = min(trained context, 4096)
    public var threads = 0       // at most this many of the model's pool threads; 0 = all of them
    public var seed: UInt64 = 0xC0FFEE
    public var nBatch = 512
    public var kvType = KVCacheType.f16
    public init() {}
}

public struct GenerateOptions: Sendable {
    public var maxTokens = 256
    public var sampling = SamplingParams()
    public var seed: UInt64 = 0   // 0 = continue the session's RNG
    public var stopStrings: [String] = []
    public var ignoreEOS = false
    public var emitSpecial = false
    /// The prompt is the whole context from position 0: keep the longest prefix the session already holds and
    /// evaluate only the rest (how a chat continues without recomputing earlier turns).
    public var reusePrefix = false
    /// Constrains the text to this grammar (GBNF or a converted JSON schema): a token mask every step.
    public var grammar: Grammar?
    /// Added to the raw logits of these tokens before sampling; -infinity bans a token.
    public var logitBias: [LogitBias] = []
    /// Report each sampled token's log-probability (log_softmax of the raw logits) ...
    public var logprobs = false
    /// ... and this many most likely alternatives.
    public var topLogprobs = 0
    /// A full context during generation drops positions instead of stopping (ContextShift.swift): the first
    /// `nKeep` are kept, then `nDiscard` (0 = half of the rest, as llama.cpp) are discarded.
    public var contextShift = false
    public var nKeep = 0
    public var nDiscard = 0
    public init() {}
}

public struct LogitBias: Sendable, Equatable {
    public var token: Int32
    public var bias: Float
    public init(token: Int32, bias: Float) {
        self.token = token
        self.bias = bias
    }
}

public struct TokenLogprob: Sendable, Equatable {
    public var token: Int32
    public var logprob: Float
}

/// What generation reports for each sampled token (and once more, token -1, for text flushed at the end).
public struct TokenEvent {
    public var token: Int32
    /// Complete UTF-8 released by this token (empty while a character or a possible stop string is held back).
    public var text: [UInt8]
    /// log_softmax of the model's raw logits at `token` (before bias, penalties, grammar and temperature); NaN
    /// when logprobs are off or for the final flush.
    public var logprob: Float
    /// The most likely tokens under the same distribution, most likely first.
    public var top: [TokenLogprob]
}

public enum StopReason: Int32, Sendable {
    case none = 0, endOfGeneration = 1, maxTokens = 2, stopString = 3, callback = 4, contextFull = 5
}

public final class Session {
    public let model: Model
    let weights: LlamaWeights
    let state: LlamaState
    let scheduler: BatchScheduler
    /// This session's steps, handed to the scheduler (one object reused for every call).
    private let request: StepRequest
    public let nCtx: Int
    public let seed: UInt64
    /// Every token in the context, in order (the KV cache holds their keys/values). Positions filled from image
    /// embeddings hold the [IMG] id; `rowTags` tells them apart.
    public internal(set) var history: [Int32] = []
    /// Per position: 0 for a token, else an identifier of the embedding row that filled it (content hash + row),
    /// so prefix reuse never mistakes one image for another with the same grid.
    var rowTags: [UInt64] = []
    /// True when state.logits holds the next-token logits after the last history token.
    var logitsValid = false
    var rng: RandomGenerator
    private var sampler = Sampler()
    /// The last grammar's matcher, kept so that its memo and mask cache serve the next call with the same grammar.
    private var grammarMatcher: GrammarMatcher?
    public private(set) var lastStopReason = StopReason.none
    public private(set) var lastGenerated = 0
    /// The tokens the last generate call sampled (its EOG token excluded), for parsing tool calls from them.
    private var generatedTokens: [Int32] = []
    /// Set while a call runs; a second call (another thread, or re-entrant from a callback) is refused.
    private let busy = Atomic<Bool>(false)

    public var nPast: Int { history.count }

    public init(model: Model, options: SessionOptions = SessionOptions()) throws {
        guard let weights = model.weights, let scheduler = model.scheduler else {
            throw MistralError.invalid("the model was loaded vocab-only; sessions need weights")
        }
        let c = weights.config
        let nCtx = options.nCtx > 0 ? options.nCtx : min(c.nCtxTrain, 4096)
        guard nCtx <= 1 << 22 else { throw MistralError.invalid("n_ctx \(nCtx) is too large") }
        guard options.nBatch > 0, options.nBatch <= 8192 else {
            throw MistralError.invalid("n_batch must be in 1...8192, got \(options.nBatch)")
        }
        guard options.threads >= 0, options.threads <= 512 else {
            throw MistralError.invalid("n_threads must be in 0...512, got \(options.threads)")
        }
        let threads = min(options.threads > 0 ? options.threads : scheduler.threadCount, scheduler.threadCount)
        let nBatch = min(options.nBatch, nCtx)
        try MemoryBudget.ensure(bytes: Session.runStateBytes(c, nCtx: nCtx, kvType: options.kvType)
                                    + scheduler.reserveBytes(rows: nBatch),
                                what: "a session with n_ctx \(nCtx) (KV cache and activations)")
        self.model = model
        self.weights = weights
        self.scheduler = scheduler
        self.nCtx = nCtx
        self.seed = options.seed
        self.rng = RandomGenerator(seed: options.seed)
        try scheduler.reserve(rows: nBatch)
        self.state = try LlamaState(config: c, nCtx: nCtx, nBatch: nBatch, kvType: options.kvType)
        request = StepRequest(state: state)
        request.maxRows = nBatch
        request.threads = threads
    }

    /// Bytes LlamaState allocates: the KV cache (keys and values of every layer and position) and the logits. The
    /// activations are the scheduler's, shared by the model's sessions. In Double so that no file-sized product
    /// overflows.
    static func runStateBytes(_ c: LlamaConfig, nCtx: Int, kvType: KVCacheType) -> Double {
        Double(c.nLayer) * Double(nCtx) * 2 * Double(kvType.bytes(values: c.kvDim)) + 4 * Double(c.nVocab)
    }

    /// Runs `body` as the session's only user. The flag is taken with one atomic exchange, so a second thread or a
    /// re-entrant call from a callback gets an error instead of corrupting the cache.
    func exclusive<R>(_ body: () throws -> R) throws -> R {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            throw MistralError.invalid("session is busy: a call on it is still running (another thread, or its own callback)")
        }
        defer { busy.store(false, ordering: .releasing) }
        return try body()
    }

    public var vocabSize: Int { weights.config.nVocab }
    public var threadCount: Int { request.threads }

    /// Forgets the whole context and reseeds the RNG.
    public func reset() throws { try exclusive { resetContext() } }

    private func resetContext() {
        history.removeAll()
        rowTags.removeAll()
        logitsValid = false
        rng = RandomGenerator(seed: seed)
    }

    /// Keeps only the first `n` positions.
    public func truncate(to n: Int) throws { try exclusive { try truncateContext(to: n) } }

    func truncateContext(to n: Int) throws {
        guard n >= 0, n <= history.count else {
            throw MistralError.invalid("cannot truncate to \(n): the session holds \(history.count) positions")
        }
        if n < history.count {
            rowTags.removeLast(history.count - n)
            history.removeLast(history.count - n)
            logitsValid = false
        }
    }

    /// Appends tokens to the context. With `logitsOut`, writes n x vocab logits (one row per token).
    public func eval(_ tokens: UnsafeBufferPointer<Int32>, logitsOut: UnsafeMutablePointer<Float>? = nil) throws {
        try exclusive { try eval(tokens, logitsOut: logitsOut, lastLogits: true) }
    }

    public func eval(_ tokens: [Int32], logitsOut: UnsafeMutablePointer<Float>? = nil) throws {
        try exclusive { try evalTokens(tokens, logitsOut: logitsOut) }
    }

    /// `during` as `append` takes it.
    func evalTokens(_ tokens: [Int32], logitsOut: UnsafeMutablePointer<Float>? = nil,
                    during: () -> Void = {}) throws {
        try tokens.withUnsafeBufferPointer { try eval($0, logitsOut: logitsOut, lastLogits: true, during: during) }
    }

    private func eval(_ tokens: UnsafeBufferPointer<Int32>, logitsOut: UnsafeMutablePointer<Float>?,
                      lastLogits: Bool, during: () -> Void = {}) throws {
        let vocab = vocabSize
        for (i, t) in tokens.enumerated() where t < 0 || Int(t) >= vocab {
            throw MistralError.invalid("token #\(i) = \(t) is outside the vocabulary (0..<\(vocab))")
        }
        guard let base = tokens.baseAddress, !tokens.isEmpty else { return }
        try append(count: tokens.count, tokens: base, embeddings: nil, id: { base[$0] }, tag: { _ in 0 },
                   logitsOut: logitsOut, lastLogits: lastLogits, during: during)
    }

    /// Appends positions given as embedding rows (n_embd floats each), e.g. an image's rows for its [IMG] tokens.
    /// `tags` identify the rows for prefix reuse (nil: never reused); `placeholder` is the id kept in `history`.
    public func evalEmbeddings(_ rows: UnsafePointer<Float>, count n: Int, placeholder: Int32 = -1,
                               tags: [UInt64]? = nil, logitsOut: UnsafeMutablePointer<Float>? = nil) throws {
        try exclusive { try appendEmbeddings(rows, count: n, placeholder: placeholder, tags: tags, logitsOut: logitsOut) }
    }

    private func appendEmbeddings(_ rows: UnsafePointer<Float>, count n: Int, placeholder: Int32,
                                  tags: [UInt64]?, logitsOut: UnsafeMutablePointer<Float>?) throws {
        guard n > 0 else { return }
        let start = history.count
        try append(count: n, tokens: nil, embeddings: rows, id: { _ in placeholder },
                   tag: { tags?[$0] ?? UInt64.max - UInt64(start + $0) }, logitsOut: logitsOut, lastLogits: true)
    }

    /// The one place positions enter the context: the forward pass (through the model's scheduler, in steps of at
    /// most n_batch rows), with `history`, `rowTags` and `logitsValid` kept in step. Position i is `id(i)` / `tag(i)`, from `tokens` or `embeddings` rows.
    /// `during` runs once the positions are queued and before their steps are awaited (generate's token callback:
    /// batched with other sessions, a step then starts while it runs instead of after every session's callback);
    /// `history` already holds the positions then, and a failed evaluation takes them out again.
    private func append(count n: Int, tokens: UnsafePointer<Int32>?, embeddings: UnsafePointer<Float>?,
                        id: (Int) -> Int32, tag: (Int) -> UInt64, logitsOut: UnsafeMutablePointer<Float>?,
                        lastLogits: Bool, during: () -> Void = {}) throws {
        guard history.count + n <= nCtx else {
            throw MistralError(.contextFull, "context full: \(history.count) positions used + \(n) new > n_ctx \(nCtx)")
        }
        request.tokens = tokens
        request.embeddings = embeddings
        request.count = n
        request.startPos = history.count
        request.logits = logitsOut.map { .all($0) } ?? (lastLogits ? .last : .none)
        logitsValid = false
        // evaluated in steps of at most n_batch rows, with other sessions' rows
        let othersDue = scheduler.submit(request)
        for i in 0..<n {
            history.append(id(i))
            rowTags.append(tag(i))
        }
        // The sessions a step has finished wake together, and the kernel may queue them all on one core: let the
        // others queue their tokens (the next step waits for them) before this callback runs ahead of them.
        if othersDue { sched_yield() }
        during()
        do {
            try scheduler.complete(request)
        } catch {
            history.removeLast(n)
            rowTags.removeLast(n)
            throw error
        }
        logitsValid = logitsOut != nil || lastLogits
    }

    /// Appends a prompt whose `imageToken` positions take, in order, the rows of `imageRows` (identified by
    /// `imageTags`). With `reusePrefix` the prompt is the whole context: positions already held (same token, or
    /// same image row) are kept and only the rest is evaluated.
    public func evalPrompt(_ ids: [Int32], imageToken: Int32?, imageRows: UnsafePointer<Float>?, imageTags: [UInt64],
                           reusePrefix: Bool) throws {
        try exclusive {
            try appendPrompt(ids, imageToken: imageToken, imageRows: imageRows, imageTags: imageTags, reusePrefix: reusePrefix)
        }
    }

    private func appendPrompt(_ ids: [Int32], imageToken: Int32?, imageRows: UnsafePointer<Float>?, imageTags: [UInt64],
                              reusePrefix: Bool) throws {
        let imageCount = imageToken.map { t in ids.reduce(0) { $0 + ($1 == t ? 1 : 0) } } ?? 0
        guard imageCount == imageTags.count, imageCount == 0 || imageRows != nil else {
            throw MistralError.invalid("the prompt has \(imageCount) [IMG] positions for \(imageTags.count) image rows")
        }
        var tags = [UInt64](repeating: 0, count: ids.count)
        var k = 0
        for (i, t) in ids.enumerated() where t == imageToken {
            tags[i] = imageTags[k]
            k += 1
        }
        var start = 0
        if reusePrefix {
            start = try keepCommonPrefix(ids, tags: tags)
        } else if history.count + ids.count > nCtx {
            throw MistralError(.contextFull, "context full: \(history.count) positions used + \(ids.count) new > n_ctx \(nCtx)")
        }
        // image rows before `start` were skipped
        var row = tags[..<start].reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
        var i = start
        while i < ids.count {
            var j = i
            if let imageToken, ids[i] == imageToken, let imageRows {
                while j < ids.count && ids[j] == imageToken { j += 1 }
                try appendEmbeddings(imageRows + row * weights.config.nEmbd, count: j - i, placeholder: imageToken,
                                     tags: Array(tags[i..<j]), logitsOut: nil)
                row += j - i
            } else {
                while j < ids.count && ids[j] != imageToken { j += 1 }
                try evalTokens(Array(ids[i..<j]))
            }
            i = j
        }
    }

    /// Truncates the context to its longest common prefix with `full` (same token, and for image positions the same
    /// row tag) and returns how many positions were kept; at least the last one is left to evaluate, so the
    /// next-token logits are fresh.
    func keepCommonPrefix(_ full: [Int32], tags: [UInt64]? = nil) throws -> Int {
        guard full.count <= nCtx else {
            throw MistralError(.contextFull, "prompt of \(full.count) tokens exceeds n_ctx \(nCtx)")
        }
        var common = 0
        while common < history.count && common < full.count && history[common] == full[common]
            && rowTags[common] == (tags?[common] ?? 0) { common += 1 }
        if common == full.count && common > 0 { common -= 1 }
        try truncateContext(to: common)
        return common
    }

    /// Logits after the last evaluated token (valid after eval/generate).
    public func withLastLogits<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R? {
        try exclusive {
            guard logitsValid else { return nil }
            return try body(UnsafeBufferPointer(start: state.logits, count: vocabSize))
        }
    }

    /// Evaluates `prompt`, then samples until a stop condition. `onText(bytes, token)` gets complete UTF-8 text
    /// and returns false to stop. Throws contextFull (after delivering the text so far) and cancelled.
    @discardableResult
    /// The tokens sampled by the last generate call (refused, like any call, while another one runs).
    public func lastGeneratedTokens() throws -> [Int32] { try exclusive { generatedTokens } }

    public func generate(prompt: [Int32], options o: GenerateOptions,
                         onText: ([UInt8], Int32) -> Bool) throws -> StopReason {
        try generate(prompt: prompt, makeOptions: { o }, onText: onText)
    }

    /// The same with options built (and validated) after the stop reason is cleared, so a call refused for its
    /// options never leaves the previous call's stop reason behind.
    @discardableResult
    public func generate(prompt: [Int32], makeOptions: () throws -> GenerateOptions,
                         onText: ([UInt8], Int32) -> Bool) throws -> StopReason {
        try generate(prompt: prompt, makeOptions: makeOptions, onToken: { e in e.text.isEmpty || onText(e.text, e.token) })
    }

    /// The per-token form: `onToken` sees every sampled token (with its log-probabilities when asked for), even
    /// one whose text is still held back, and the final flush as token -1 when it has text.
    @discardableResult
    public func generate(prompt: [Int32], makeOptions: () throws -> GenerateOptions,
                         onToken: (TokenEvent) -> Bool) throws -> StopReason {
        try exclusive {
            lastStopReason = .none
            lastGenerated = 0
            return try generateLocked(prompt: prompt, options: try makeOptions(), onToken: onToken)
        }
    }

    /// A matcher for `grammar` at its start (the previous one, with its caches, when the grammar is the same).
    private func matcher(for grammar: Grammar) throws -> GrammarMatcher {
        if let m = grammarMatcher, m.grammar.source == grammar.source {
            m.reset()
            return m
        }
        grammarMatcher = nil
        let m = try GrammarMatcher(grammar: grammar, trie: model.tokenTrie, logitCount: vocabSize)
        grammarMatcher = m
        return m
    }

    private func generateLocked(prompt: [Int32], options o: GenerateOptions,
                                onToken: (TokenEvent) -> Bool) throws -> StopReason {
        lastStopReason = .none
        lastGenerated = 0
        // steps of this loop come one after another: the scheduler waits a moment for them between batched steps
        request.continues = true
        defer {
            request.continues = false
            scheduler.leave(state)
        }
        let vocab = vocabSize
        for (i, b) in o.logitBias.enumerated() {
            guard b.token >= 0, Int(b.token) < vocab else {
                throw MistralError.invalid("logit_bias token #\(i) = \(b.token) is outside the vocabulary (0..<\(vocab))")
            }
            guard !b.bias.isNaN, b.bias != .infinity else {
                throw MistralError.invalid("logit_bias value #\(i) must be finite or -infinity, got \(b.bias)")
            }
        }
        guard o.topLogprobs >= 0, o.topLogprobs <= 256 else {
            throw MistralError.invalid("n_logprobs must be in 0...256, got \(o.topLogprobs)")
        }
        let matcher = try o.grammar.map { try self.matcher(for: $0) }
        generatedTokens.removeAll(keepingCapacity: true)
        var prompt = prompt
        if o.reusePrefix {
            prompt = Array(prompt[try keepCommonPrefix(prompt)...])
        }
        if !prompt.isEmpty {
            if o.contextShift { try makeRoom(for: prompt.count, o) }
            try evalTokens(prompt)
        } else if !logitsValid {
            throw MistralError.invalid("empty prompt and no previous tokens to continue from")
        }
        if o.seed != 0 { rng = RandomGenerator(seed: o.seed) }
        let tokenizer = model.tokenizer
        let banned = o.ignoreEOS ? tokenizer.endOfGenerationIds : []
        var stream = TextStream(stopStrings: o.stopStrings)
        var reason = StopReason.none
        let wantLogprobs = o.logprobs || o.topLogprobs > 0
        // the raw logits of the step, kept for log-probabilities (the sampler edits state.logits in place)
        var raw = [Float](repeating: 0, count: wantLogprobs ? vocab : 0)

        loop: while true {
            if o.maxTokens > 0 && lastGenerated >= o.maxTokens { reason = .maxTokens; break }
            if let matcher, matcher.mustFinish && o.ignoreEOS { reason = .endOfGeneration; break }
            var logprobs = LogprobStep.off
            if wantLogprobs {
                raw.withUnsafeMutableBufferPointer { r in
                    r.baseAddress?.update(from: state.logits, count: vocab)
                    logprobs = LogprobStep(raw: UnsafeBufferPointer(r), top: o.topLogprobs)
                }
            }
            for b in o.logitBias { state.logits[Int(b.token)] += b.bias }
            if let matcher, matcher.applyMask(to: state.logits, count: vocab) == 0 {
                throw MistralError.invalid("grammar: no token of the vocabulary can continue the text generated so far")
            }
            let token = sampler.sample(logits: state.logits, n: vocab, params: o.sampling,
                                       recent: history[...], banned: banned, rng: &rng)
            if state.logits[Int(token)] == -.infinity {
                if let matcher, matcher.canFinish { reason = .endOfGeneration; break }
                throw MistralError.invalid("no token can be sampled: logit_bias"
                                           + (matcher != nil ? " and the grammar" : "") + " banned every candidate")
            }
            if history.count >= nCtx {
                let shifted = o.contextShift ? try shiftForGeneration(o) : false
                if !shifted { reason = .contextFull; break }
            }
            if !o.ignoreEOS && tokenizer.isEndOfGeneration(token) {
                // Keep the end-of-turn token in the context so the next turn continues a well-formed chat.
                try [token].withUnsafeBufferPointer { try eval($0, logitsOut: nil, lastLogits: false) }
                reason = .endOfGeneration
                break
            }
            if let matcher, !matcher.accept(token: token) {
                throw MistralError(.internal, "grammar: sampled token \(token) is not allowed by the mask")
            }
            // the token goes into the next step, and the callback runs while that step may already compute
            var keepGoing = true
            try evalTokens([token]) {
                let text = stream.push(tokenizer.piece(token, special: o.emitSpecial))
                let event = TokenEvent(token: token, text: text,
                                       logprob: wantLogprobs ? logprobs.logprob(of: token, raw: raw) : .nan,
                                       top: logprobs.top)
                keepGoing = onToken(event)
            }
            lastGenerated += 1
            generatedTokens.append(token)
            if !keepGoing { reason = .callback; break loop }
            if stream.stopped { reason = .stopString; break }
        }
        if reason != .callback && reason != .stopString {
            let rest = stream.finish()
            if !rest.isEmpty && !onToken(TokenEvent(token: -1, text: rest, logprob: .nan, top: []))
                && reason != .contextFull { reason = .callback }
        }
        lastStopReason = reason
        switch reason {
        case .callback: throw MistralError(.cancelled, "generation stopped by the callback")
        case .contextFull:
            throw MistralError(.contextFull, "context full after \(lastGenerated) generated tokens (n_ctx \(nCtx))")
        default: return reason
        }
    }
}
