// Continuous batching of one model's sessions. Every forward step of every session goes through the model's
// scheduler, which owns the shared worker pool (one thread budget for all sessions) and the activation scratch.
// Sessions called concurrently from different threads have their pending positions evaluated together, one step
// for all of them, so each weight matrix is read once per step instead of once per session: decode is bound by
// memory bandwidth on a CPU, so several streams cost little more than one.
//
// The first submitter that finds no step running becomes the leader and runs steps with everything pending until
// its own request is done, then hands leadership to a waiting submitter. A lone session thus runs its steps on its
// own thread with no handoff. When the leader leaves while other sessions are still coming back (sampling, or in
// their token callbacks, which for Python wait for the GIL one after another), the scheduler's relay thread takes
// over, so the next step starts as soon as they have queued their tokens instead of when the first of them is
// through its callback. A long prompt is cut into pieces of at most `prefillRows` rows while other sessions wait,
// so it does not stall their decoding.
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
    /// Counts this request's submissions: the one a "done" is posted for.
    var ticket = 0
    /// Posted when this request is done or its thread should lead: waking only the threads concerned keeps a step
    /// from being preempted by every waiter at each submit.
    let wakeup = Wakeup()

    init(state: LlamaState) {
        self.state = state
    }
}

/// A request's own wake-up, with its own mutex instead of the scheduler's: the threads a step has finished return
/// without taking the scheduler's mutex again. Waiting on one condition variable with that mutex, they queued on it
/// as they woke, one after another, each handoff a thread wake-up (on a 2-vCPU VM, 8 sessions were back 360 µs
/// after their step instead of about 100). "Done" is posted after the scheduler's mutex is released, so it names
/// the submission it is for (StepRequest.ticket): a late post for an earlier one is ignored.
final class Wakeup {
    enum Reason { case lead, done }
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>
    /// The latest submission posted done, and whether the thread was asked to lead (posted with the scheduler's
    /// mutex held, cleared at each complete()).
    private var doneTicket = 0
    private var leadPosted = false

    init() {
        lock = .allocate(capacity: 1)
        cond = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(lock)
        cond.deallocate()
        lock.deallocate()
    }

    /// Each post signals after unlocking, so the woken thread does not at once block again on the lock still held
    /// here. The caller holds a reference to this object: a thread woken early may return and drop its own first.
    func postDone(ticket: Int) {
        pthread_mutex_lock(lock)
        doneTicket = max(doneTicket, ticket)
        pthread_mutex_unlock(lock)
        pthread_cond_signal(cond)
    }

    func postLead() {
        pthread_mutex_lock(lock)
        leadPosted = true
        pthread_mutex_unlock(lock)
        pthread_cond_signal(cond)
    }

    /// Blocks until submission `ticket` is done or the thread is asked to lead, and consumes the request to lead.
    func wait(ticket: Int) -> Reason {
        pthread_mutex_lock(lock)
        while doneTicket < ticket && !leadPosted { pthread_cond_wait(cond, lock) }
        let r: Reason = doneTicket >= ticket ? .done : .lead
        leadPosted = false
        pthread_mutex_unlock(lock)
        return r
    }

    /// Forgets a request to lead left from an earlier call (posted just before that request finished anyway).
    func reset() {
        pthread_mutex_lock(lock)
        leadPosted = false
        pthread_mutex_unlock(lock)
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
    /// Wake-ups of the requests the running step finished, posted once the mutex is released.
    private var finished: [(Wakeup, Int)] = []
    /// Sessions of the last step that said they continue and have not resubmitted (or left) yet.
    private var awaited: [ObjectIdentifier] = []
    private var leading = false
    private var lastStepNanoseconds = 0
    private var counters = BatchStats()
    private var mutex = pthread_mutex_t()
    /// The leader waits on this for the sessions it expects (awaited) to resubmit.
    private var changed = pthread_cond_t()
    private var leaderWaiting = false
    /// The relay thread (started the first time a leader leaves others behind) waits on `relayWake` for
    /// `relayWanted`; `stopping` ends it.
    private var relay: pthread_t?
    private var relayWanted = false
    private var stopping = false
    private var relayWake = pthread_cond_t()

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
        pthread_cond_init(&relayWake, nil)
        queue.reserveCapacity(64)
        step.reserveCapacity(self.maxSequences)
        members.reserveCapacity(self.maxSequences)
        finished.reserveCapacity(self.maxSequences)
        awaited.reserveCapacity(64)
    }

    deinit {
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_cond_signal(&relayWake)
        let thread = relay
        pthread_mutex_unlock(&mutex)
        if let thread { pthread_join(thread, nil) }
        pthread_cond_destroy(&relayWake)
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
                signalIfWaitIsOver()
            }
        }
    }

    /// Queues the request's positions, to be evaluated in steps shared with whatever other sessions have pending
    /// (none: nothing to queue, and complete(r) returns at once). Steps led by other sessions' threads may evaluate
    /// them before this thread calls complete(r), which it must do next: a session that queues its next token and
    /// then runs its token callback lets a batched step start without waiting for every session's callback.
    ///
    /// Returns true when other sessions of the last step are still to come back: the caller should let them queue
    /// their tokens before it runs its callback (see Session.append).
    func submit(_ r: StepRequest) -> Bool {
        r.done = 0
        r.inStep = 0
        guard r.count > 0 else { return false }
        pthread_mutex_lock(&mutex)
        r.ticket &+= 1
        queue.append(r)
        if let i = awaited.firstIndex(of: ObjectIdentifier(r.state)) { awaited.remove(at: i) }
        let othersDue = !awaited.isEmpty
        signalIfWaitIsOver()
        pthread_mutex_unlock(&mutex)
        return othersDue
    }

    /// With the mutex held: wakes the leader waiting for continuing sessions once its wait is over (every one is
    /// back, or the step is full), not at each arrival: each wake-up would only find it must wait on.
    private func signalIfWaitIsOver() {
        if leaderWaiting && (awaited.isEmpty || queue.count >= maxSequences) { pthread_cond_signal(&changed) }
    }

    /// Returns when every position of the submitted request is evaluated, leading steps while no other thread
    /// does.
    func complete(_ r: StepRequest) throws {
        var stuck = false
        pthread_mutex_lock(&mutex)
        // requests to lead are posted only while r.waiting, with the mutex held: none can be pending for this call
        r.wakeup.reset()
        r.waiting = true
        let ticket = r.ticket
        while r.done < r.count {
            if leading {
                pthread_mutex_unlock(&mutex)
                // done: the leader has cleared r.waiting, and this thread needs the scheduler's mutex no more
                if r.wakeup.wait(ticket: ticket) == .done { return }
                pthread_mutex_lock(&mutex)
                continue
            }
            leading = true
            while r.done < r.count && !stuck { stuck = !runStep() }
            leading = false
            // hand leadership to a thread waiting in complete(), if any; else, while other sessions are queued
            // or coming back, to the relay (without it, one still in its callback leads when it gets here)
            if let next = queue.first(where: { $0 !== r && $0.waiting }) {
                next.wakeup.postLead()
            } else if !stuck, queue.contains(where: { $0 !== r })
                        || awaited.contains(where: { $0 != ObjectIdentifier(r.state) }) {
                wakeRelay()
            }
            if stuck {
                if let i = queue.firstIndex(where: { $0 === r }) { queue.remove(at: i) }
                break
            }
        }
        r.waiting = false
        pthread_mutex_unlock(&mutex)
        if stuck { throw MistralError(.internal, "the batch scheduler has no activation scratch for this session") }
    }

    /// With the mutex held: lets the relay thread lead (starting it the first time). Without a thread (none could
    /// be started) sessions lead themselves, as they always can.
    private func wakeRelay() {
        if relay == nil {
            // unretained (deinit joins the relay first), and the loop runs through _withUnsafeGuaranteedRef: a
            // method called through a strong reference retains it for the call, so a running relay would keep the
            // scheduler, and with it the model's weights, alive
            let context = Unmanaged.passUnretained(self).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                guard let raw else { return nil }
                Unmanaged<BatchScheduler>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.relayLoop() }
                return nil
            }, context)
            guard rc == 0 else { return }
            relay = thread
        }
        relayWanted = true
        pthread_cond_signal(&relayWake)
    }

    /// The relay: when woken, leads steps while requests are queued or sessions of the last step are expected
    /// back, then hands leadership to a waiting submitter, if any, and sleeps.
    private func relayLoop() {
        pthread_mutex_lock(&mutex)
        while true {
            while !relayWanted && !stopping { pthread_cond_wait(&relayWake, &mutex) }
            if stopping { break }
            relayWanted = false
            if leading { continue }  // a submitter got there first
            leading = true
            while true {
                if queue.isEmpty {
                    guard !awaited.isEmpty else { break }
                    waitForContinuingSessions()
                    if queue.isEmpty { break }
                }
                if !runStep() { break }  // no scratch: the submitters find out when they lead
            }
            leading = false
            if let next = queue.first(where: { $0.waiting }) { next.wakeup.postLead() }
        }
        pthread_mutex_unlock(&mutex)
    }

    /// Called by the leader with the mutex held; releases it while the step runs. False when no step could be
    /// composed (no scratch: no session reserved one).
    private func runStep() -> Bool {
        waitForContinuingSessions()
        guard let s = scratch, compose(rows: s.rows, sequences: s.sequences) else { return false }
        var width = 1
        for m in members { width = max(width, m.threads) }
        pthread_mutex_unlock(&mutex)
        if width > 1 { pool.prepare() }  // its workers wake while this thread starts the step alone
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
                // a thread still in its callback finds its request done when it calls complete()
                if m.waiting {
                    m.waiting = false
                    finished.append((m.wakeup, m.ticket))
                }
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
        // woken with the mutex held, each finished session would block on it at once in its next submit
        if !finished.isEmpty {
            pthread_mutex_unlock(&mutex)
            for (w, ticket) in finished { w.postDone(ticket: ticket) }
            pthread_mutex_lock(&mutex)
            finished.removeAll(keepingCapacity: true)
        }
        return true
    }

    /// Sessions that just got their token back are sampling the next one: give them a moment (a fraction of a
    /// step, at most 2 ms) to resubmit, so the next step carries them instead of running without them.
    private func waitForContinuingSessions() {
        guard !awaited.isEmpty else { return }
        pool.rest()  // the pool is the leader's alone: no step runs now
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
