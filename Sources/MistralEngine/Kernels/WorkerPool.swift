// A persistent pool of worker threads that spin for a few tens of microseconds after a job, then park on a
// condition variable until the next. Dispatching a job costs well under a microsecond while workers spin, which
// matters at matrix-vector granularity (DispatchQueue's concurrentPerform was measured far too slow for that); the
// spin is bounded in time, not iterations, so an idle or oversubscribed process costs nothing.
import Glibc
import Synchronization

public final class WorkerPool: @unchecked Sendable {
    // Safety of @unchecked Sendable: `job` is written only by the thread calling `run` while no job is in flight,
    // published by the release-store of `generation`, and read by workers after an acquire-load of it. `run` and
    // `setWidth` are called by one thread at a time (the session, or the model's batch scheduler, serializes them).
    /// Threads the pool owns, the caller included.
    public let capacity: Int
    /// Threads that take part in the next jobs (1...capacity): how a caller asks for "at most n threads".
    public private(set) var threadCount: Int
    /// (job counter << 16) | width of that job: one atomic word, so a worker never pairs a job with another's width.
    private let generation = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let parked = Atomic<Int>(0)
    /// Set by `rest()` until the next job: spinning workers park at once.
    private let resting = Atomic<Bool>(false)
    /// Counts prepare() calls: a parked worker wakes when it changes.
    private let kicks = Atomic<Int>(0)
    /// The next unclaimed unit of a `share` job.
    private let nextUnit = Atomic<Int>(0)
    private var job: ((Int) -> Void)?
    /// Cache lines the threads prefetch while they wait for a job or for the job's other threads (IdlePrefetch).
    public let idlePrefetch = IdlePrefetch(capacity: 256)
    private var threads: [pthread_t] = []
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    /// How long a worker keeps polling for the next job before it parks.
    static let spinNanoseconds = 50_000

    /// `threadCount` includes the calling thread, which takes part in every job.
    public init(threadCount: Int) throws {
        capacity = max(1, threadCount)
        self.threadCount = capacity
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
        for index in 1..<capacity {
            let context = Unmanaged.passRetained(WorkerContext(pool: self, index: index)).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                guard let raw else { return nil }
                let context = Unmanaged<WorkerContext>.fromOpaque(raw).takeRetainedValue()
                let index = context.index
                context.pool._withUnsafeGuaranteedRef { $0.workerLoop(index: index) }
                return nil
            }, context)
            guard rc == 0 else {
                Unmanaged<WorkerContext>.fromOpaque(context).release()
                shutdown()
                throw MistralError(.outOfMemory, "cannot start worker thread: error \(rc)")
            }
            threads.append(thread)
        }
    }

    deinit { shutdown() }

    private func shutdown() {
        stopping.store(true, ordering: .releasing)
        pthread_mutex_lock(&mutex)
        pthread_cond_broadcast(&wake)
        pthread_mutex_unlock(&mutex)
        for t in threads { pthread_join(t, nil) }
        threads.removeAll()
    }

    /// No job is coming for a while (a batched step is over and its sessions are still sampling their next
    /// tokens): the workers park now instead of polling out their spin. The kernel here does not preempt a polling
    /// thread for a woken one before its time slice ends, so the sessions would wait for the spin to run out.
    public func rest() { resting.store(true, ordering: .relaxed) }

    /// A job is coming soon (a batched step is about to start): parked workers wake now and poll for it, so that
    /// their wake-up (tens of microseconds on a VM) overlaps the caller's own work before the job. A hint: a worker
    /// that parks just as it is given polls for the next job's own wake-up instead.
    public func prepare() {
        resting.store(false, ordering: .relaxed)
        // seq-cst add then load, against the parking worker's load of kicks after its seq-cst add to parked: either
        // this sees it parked and broadcasts, or it sees the new count and does not wait
        kicks.add(1, ordering: .sequentiallyConsistent)
        if parked.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(&mutex)
            pthread_cond_broadcast(&wake)
            pthread_mutex_unlock(&mutex)
        }
    }

    /// Uses only the first `n` threads (clamped to 1...capacity) for the following jobs; the others stay parked.
    public func setWidth(_ n: Int) { threadCount = min(capacity, max(1, n)) }

    /// Runs `body(threadIndex)` on threadCount threads (index 0 is the caller) and returns when all finished.
    public func run(_ body: (Int) -> Void) {
        let width = threadCount
        if width == 1 {
            body(0)
            return
        }
        withoutActuallyEscaping(body) { escapable in
            job = escapable
            resting.store(false, ordering: .relaxed)  // published with the job by the store of `generation`
            pending.store(width - 1, ordering: .relaxed)
            let next = ((generation.load(ordering: .relaxed) >> 16) &+ 1) << 16 | width
            generation.store(next, ordering: .sequentiallyConsistent)
            // seq-cst store then load, against the worker's seq-cst increment then load: one of them sees the other
            if parked.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(&mutex)
                pthread_cond_broadcast(&wake)
                pthread_mutex_unlock(&mutex)
            }
            escapable(0)
            var spins = 0
            while pending.load(ordering: .acquiring) != 0 {
                idlePrefetch.prefetchSome()
                spins &+= 1
                if spins & 1023 == 0 { sched_yield() }  // a worker may have been descheduled
            }
            job = nil
        }
    }

    /// Runs `body(threadIndex, units)` over `0..<count` in chunks of `chunk` units that the threads claim as they
    /// finish the previous one, instead of one fixed range each: a thread slowed by the caller's other threads (a
    /// session's token callback) or by the host leaves its share to the others instead of stalling the job. Each
    /// unit is computed alone, so results do not depend on which thread claims it.
    public func share(_ count: Int, chunk: Int, _ body: (Int, Range<Int>) -> Void) {
        let chunk = max(1, chunk)
        if threadCount == 1 || count <= chunk {
            if count > 0 { body(0, 0..<count) }
            return
        }
        nextUnit.store(0, ordering: .relaxed)  // published to the workers by run's store of `generation`
        run { tid in
            while true {
                let lo = nextUnit.wrappingAdd(chunk, ordering: .relaxed).oldValue
                guard lo < count else { return }
                body(tid, lo..<min(count, lo &+ chunk))
            }
        }
    }

    /// Splits `0..<count` into one contiguous range per thread, in multiples of `granularity`.
    @inline(__always)
    public static func range(of count: Int, thread: Int, threads: Int, granularity: Int = 1) -> Range<Int> {
        let units = (count + granularity - 1) / granularity
        let per = (units + threads - 1) / threads
        let lo = min(count, thread * per * granularity)
        let hi = min(count, (thread + 1) * per * granularity)
        return lo..<hi
    }

    @inline(__always) private static func now() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec &* 1_000_000_000 &+ ts.tv_nsec
    }

    private func workerLoop(index: Int) {
        var seen = 0
        var spinUntil = WorkerPool.now() &+ WorkerPool.spinNanoseconds
        while true {
            if stopping.load(ordering: .acquiring) { return }
            let g = generation.load(ordering: .acquiring)
            if g != seen {
                seen = g
                if index < g & 0xFFFF {
                    job?(index)
                    pending.subtract(1, ordering: .releasing)
                    spinUntil = WorkerPool.now() &+ WorkerPool.spinNanoseconds
                    continue
                }
                spinUntil = 0  // not in this job: park at once
            }
            var polls = 0
            while generation.load(ordering: .acquiring) == seen {
                idlePrefetch.prefetchSome()
                polls &+= 1
                guard polls & 63 == 0 else { continue }
                if resting.load(ordering: .relaxed) || WorkerPool.now() >= spinUntil { break }
            }
            if generation.load(ordering: .acquiring) != seen { continue }
            // park until a job this worker takes part in, a prepare() or shutdown
            pthread_mutex_lock(&mutex)
            let kick = kicks.load(ordering: .sequentiallyConsistent)  // before counting itself parked: see prepare()
            parked.add(1, ordering: .sequentiallyConsistent)
            while !stopping.load(ordering: .acquiring) {
                let g = generation.load(ordering: .sequentiallyConsistent)
                if g != seen && index < g & 0xFFFF { break }
                if kicks.load(ordering: .sequentiallyConsistent) != kick { break }
                seen = g
                pthread_cond_wait(&wake, &mutex)
            }
            parked.subtract(1, ordering: .relaxed)
            pthread_mutex_unlock(&mutex)
            spinUntil = WorkerPool.now() &+ WorkerPool.spinNanoseconds  // awake: poll for the job that woke it
        }
    }
}

private final class WorkerContext {
    // Unmanaged, unretained: the pool joins every worker in its deinit, so it outlives the loops that use it. The
    // loop runs through _withUnsafeGuaranteedRef: a method called through a strong (or unowned) reference kept the
    // pool retained for as long as the loop ran, so a pool was never freed and its workers never ended.
    let pool: Unmanaged<WorkerPool>
    let index: Int
    init(pool: WorkerPool, index: Int) {
        self.pool = Unmanaged.passUnretained(pool)
        self.index = index
    }
}
