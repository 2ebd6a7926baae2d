// Continuous batching of one model's sessions. Every forward step of every session goes through the model's
// scheduler, which owns the shared worker pool (one thread budget for all sessions) and the activation scratch.
// Sessions called concurrently from different threads have their pending positions evaluated together, one step
// for all of them, so each weight matrix is read once per step instead of once per session: decode is bound by
// memory bandwidth on a CPU, so several streams cost little more than one.
//
// No thread of its own: the first submitter that finds no step running becomes the leader and runs steps with
// everything pending until its own request is done, then hands leadership to a waiting submitter. A lone session
// thus runs its steps on its own thread with no handoff. A long prompt is cut into pieces of at most
// `prefillRows` rows while other sessions wait, so it does not stall their decoding.
import Glibc

/// Counters of the steps a model's scheduler ran (how much batching happened).
public struct BatchStats: Sendable, Equatable {
    /// Forward steps run, and those that evaluated more than one session.
    public var steps = 0
    public var batchedSteps = 0
    /// The most sessions and rows one step evaluated.
    public var maxSequences = 0
    public var maxRows = 0
    /// Rows (positions) evaluated, in all steps.
    public var rows = 0
    /// Nanoseconds spent in forward steps (the rest of the time the model's pool was idle).
    public var busyNanoseconds = 0
    public init() {}
}

/// One session's pending positions; owned by the session and reused for each of its calls.
final class StepRequest {
    let state: LlamaState
    var tokens: UnsafePointer<Int32>?
    var embeddings: UnsafePointer<Float>?
    var count = 0
    var startPos = 0
    var logits = LogitsRequest.none
    /// At most this many rows per step (the session's n_batch), and this many threads (its n_threads).
    var maxRows = 1
    var threads = 1
    /// The session will submit again right after this request (its generate loop): the next step waits briefly
    /// for it instead of starting without it.
    var continues = false
    /// Positions evaluated so far, and the rows the running step takes.
    var done = 0
    var inStep = 0
    /// Its thread is inside complete() (waiting or leading), not between submit() and complete(): leadership is
    /// handed only to such a thread, never to one still running a callback.
    var waiting = false
    /// Signalled (with the scheduler's mutex) when this request is done or its thread should lead: waking only the
    /// threads concerned keeps a step from being preempted by every waiter at each submit.
    let wake: UnsafeMutablePointer<pthread_cond_t>

    init(state: LlamaState) {
        self.state = state
        wake = .allocate(capacity: 1)
        pthread_cond_init(wake, nil)
    }

    deinit {
        pthread_cond_destroy(wake)
        wake.deallocate()
    }
}

public final class BatchScheduler: @unchecked Sendable {
    // Safety of @unchecked Sendable: every mutable member is read and written with `mutex` held, except the scratch
    // and pool, which only the leader uses while it runs a step (one leader at a time).
    let weights: LlamaWeights
    let pool: WorkerPool
    /// Sessions one step evaluates together at most (1: no batching; concurrent sessions take turns).
    public let maxSequences: Int
    /// Rows one session contributes to a step while others are waiting (a multiple of 64).
    static let prefillRows = 128
    private var scratch: ForwardScratch?
    private var queue: [StepRequest] = []
    private var step: [ForwardSequence] = []
    private var members: [StepRequest] = []
    /// Sessions of the last step that said they continue and have not resubmitted (or left) yet.
    private var awaited: [ObjectIdentifier] = []
    private var leading = false
    private var lastStepNanoseconds = 0
    private var counters = BatchStats()
    private var mutex = pthread_mutex_t()
    /// The leader waits on this for the sessions it expects (awaited) to resubmit.
    private var changed = pthread_cond_t()
    private var leaderWaiting = false

    init(weights: LlamaWeights, threads: Int, maxSequences: Int) throws {
        self.weights = weights
        self.maxSequences = max(1, maxSequences)
        pool = try WorkerPool(threadCount: threads)
        pthread_mutex_init(&mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(&changed, &attr)
        pthread_condattr_destroy(&attr)
        queue.reserveCapacity(64)
        step.reserveCapacity(self.maxSequences)
        members.reserveCapacity(self.maxSequences)
        awaited.reserveCapacity(64)
    }

    deinit {
        pthread_cond_destroy(&changed)
        pthread_mutex_destroy(&mutex)
    }

    /// Threads of the shared pool.
    public var threadCount: Int { pool.capacity }

    public var stats: BatchStats { locked { counters } }

    public func resetStats() { locked { counters = BatchStats() } }

    /// Bytes `reserve(rows:)` would allocate now (0 when the scratch is already that large).
    func reserveBytes(rows: Int) -> Double {
        locked {
            if let s = scratch, s.rows >= rows { return 0 }
            return ForwardScratch.bytes(weights.config, rows: rows, sequences: maxSequences, threads: pool.capacity)
        }
    }

    /// Makes the scratch hold steps of `rows` rows (a new session's n_batch), before any of its steps runs. A step
    /// already running keeps its own reference to the old scratch, so the swap never waits for it.
    func reserve(rows: Int) throws {
        let current = locked { scratch?.rows ?? 0 }
        guard current < rows else { return }
        let bigger = try ForwardScratch(config: weights.config, rows: rows, sequences: min(maxSequences, rows),
                                        threads: pool.capacity)
        locked {
            if (scratch?.rows ?? 0) < rows { scratch = bigger }
        }
    }

    /// The session whose state this is will not submit again soon (its generate call ended).
    func leave(_ state: LlamaState) {
        locked {
            if let i = awaited.firstIndex(of: ObjectIdentifier(state)) {
                awaited.remove(at: i)
                if leaderWaiting { pthread_cond_signal(&changed) }
            }
        }
    }

    /// Queues the request's positions, to be evaluated in steps shared with whatever other sessions have pending
    /// (none: nothing to queue, and complete(r) returns at once). Steps led by other sessions' threads may evaluate
    /// them before this thread calls complete(r), which it must do next: a session that queues its next token and
    /// then runs its token callback lets a batched step start without waiting for every session's callback.
    func submit(_ r: StepRequest) {
        r.done = 0
        r.inStep = 0
        guard r.count > 0 else { return }
        pthread_mutex_lock(&mutex)
        queue.append(r)
        if let i = awaited.firstIndex(of: ObjectIdentifier(r.state)) { awaited.remove(at: i) }
        if leaderWaiting { pthread_cond_signal(&changed) }
        pthread_mutex_unlock(&mutex)
    }

    /// Returns when every position of the submitted request is evaluated, leading steps while no other thread
    /// does.
    func complete(_ r: StepRequest) throws {
        var stuck = false
        pthread_mutex_lock(&mutex)
        r.waiting = true
        while r.done < r.count {
            if leading {
                pthread_cond_wait(r.wake, &mutex)
                continue
            }
            leading = true
            while r.done < r.count && !stuck { stuck = !runStep() }
            leading = false
            // hand leadership to a thread waiting in complete(), if any (one still in its callback leads when
            // it gets here: it finds no leader)
            if let next = queue.first(where: { $0 !== r && $0.waiting }) { pthread_cond_signal(next.wake) }
            if stuck {
                if let i = queue.firstIndex(where: { $0 === r }) { queue.remove(at: i) }
                break
            }
        }
        r.waiting = false
        pthread_mutex_unlock(&mutex)
        if stuck { throw MistralError(.internal, "the batch scheduler has no activation scratch for this session") }
    }

    /// Called by the leader with the mutex held; releases it while the step runs. False when no step could be
    /// composed (no scratch: no session reserved one).
    private func runStep() -> Bool {
        waitForContinuingSessions()
        guard let s = scratch, compose(rows: s.rows, sequences: s.sequences) else { return false }
        var width = 1
        for m in members { width = max(width, m.threads) }
        pthread_mutex_unlock(&mutex)
        let t0 = BatchScheduler.now()
        pool.setWidth(width)
        weights.forward(step, scratch: s, pool: pool)  // `step` and `members` change only in the leader
        let elapsed = BatchScheduler.now() - t0
        pthread_mutex_lock(&mutex)
        lastStepNanoseconds = elapsed
        var rows = 0
        for m in members {
            m.done += m.inStep
            rows += m.inStep
            m.inStep = 0
            if m.done == m.count {
                if let i = queue.firstIndex(where: { $0 === m }) { queue.remove(at: i) }
                if m.continues { awaited.append(ObjectIdentifier(m.state)) }
                pthread_cond_signal(m.wake)
            }
        }
        counters.steps += 1
        if members.count > 1 { counters.batchedSteps += 1 }
        counters.maxSequences = max(counters.maxSequences, members.count)
        counters.maxRows = max(counters.maxRows, rows)
        counters.rows += rows
        counters.busyNanoseconds += elapsed
        members.removeAll(keepingCapacity: true)
        step.removeAll(keepingCapacity: true)
        return true
    }

    /// Sessions that just got their token back are sampling the next one: give them a moment (a fraction of a
    /// step, at most 2 ms) to resubmit, so the next step carries them instead of running without them.
    private func waitForContinuingSessions() {
        guard !awaited.isEmpty else { return }
        let budget = min(2_000_000, max(100_000, lastStepNanoseconds / 4))
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let ns = deadline.tv_nsec + budget
        deadline.tv_sec += ns / 1_000_000_000
        deadline.tv_nsec = ns % 1_000_000_000
        leaderWaiting = true
        defer { leaderWaiting = false }
        while !awaited.isEmpty && queue.count < maxSequences {
            if pthread_cond_timedwait(&changed, &mutex, &deadline) == ETIMEDOUT {
                awaited.removeAll(keepingCapacity: true)  // late ones join the step after
                break
            }
        }
    }

    /// Picks the next step from the queue (in order): each request's next rows, at most `prefillRows` of a
    /// request while others wait, within the scratch's rows and sequences. A request that wants every row's
    /// logits runs in a step of its own. Returns false when nothing is pending.
    private func compose(rows capacity: Int, sequences: Int) -> Bool {
        let d = weights.config.nEmbd, vocab = weights.config.nVocab
        let limit = min(sequences, maxSequences)
        var rows = 0
        for r in queue where members.count < limit && rows < capacity {
            let wantsAll: Bool
            if case .all = r.logits { wantsAll = true } else { wantsAll = false }
            if wantsAll && !members.isEmpty { continue }
            // Stay within the n_batch piece the session would run alone, and cut it only at a multiple of 64
            // rows from that piece's start: the matmuls then group its tokens as a step of its own would.
            let left = r.count - r.done, pieceLeft = r.maxRows - r.done % r.maxRows
            var take = min(left, pieceLeft, capacity - rows)
            if queue.count > 1 && limit > 1 { take = min(take, BatchScheduler.prefillRows) }
            if take < pieceLeft && take < left { take -= take % 64 }
            guard take > 0 else { continue }
            let last = r.done + take == r.count
            let logits: LogitsRequest
            switch r.logits {
            case .none: logits = .none
            case .last: logits = last ? .last : .none
            case .all(let out): logits = .all(out + r.done * vocab)
            }
            step.append(ForwardSequence(state: r.state, tokens: r.tokens.map { $0 + r.done },
                                        embeddings: r.embeddings.map { $0 + r.done * d }, n: take,
                                        startPos: r.startPos + r.done, logits: logits, decode: r.count == 1, row: rows))
            members.append(r)
            r.inStep = take
            rows += take
            if wantsAll { break }
        }
        return !members.isEmpty
    }

    private func locked<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }

    private static func now() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    }
}
