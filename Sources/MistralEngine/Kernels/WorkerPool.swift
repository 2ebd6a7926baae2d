// A persistent pool of worker threads that spin briefly, then park, waiting for the next job. Dispatching a job
// costs well under a microsecond while workers spin, which matters at matrix-vector granularity (DispatchQueue's
// concurrentPerform was measured far too slow for that).
import Glibc
import Synchronization

public final class WorkerPool: @unchecked Sendable {
    // Safety of @unchecked Sendable: `job` is written only by the thread calling `run` while no job is in flight,
    // published by the release-increment of `generation`, and read by workers after an acquire-load of it.
    public let threadCount: Int
    private let generation = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private var job: ((Int) -> Void)?
    private var threads: [pthread_t] = []
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private static let spinIterations = 200_000

    /// `threadCount` includes the calling thread, which takes part in every job.
    public init(threadCount: Int) throws {
        self.threadCount = max(1, threadCount)
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
        for index in 1..<self.threadCount {
            let context = Unmanaged.passRetained(WorkerContext(pool: self, index: index)).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                guard let raw else { return nil }
                let context = Unmanaged<WorkerContext>.fromOpaque(raw).takeRetainedValue()
                context.pool.workerLoop(index: context.index)
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

    /// Runs `body(threadIndex)` on every thread of the pool (index 0 is the caller) and returns when all finished.
    public func run(_ body: (Int) -> Void) {
        if threads.isEmpty {
            body(0)
            return
        }
        withoutActuallyEscaping(body) { escapable in
            job = escapable
            pending.store(threads.count, ordering: .relaxed)
            generation.add(1, ordering: .releasing)
            pthread_mutex_lock(&mutex)
            pthread_cond_broadcast(&wake)
            pthread_mutex_unlock(&mutex)
            escapable(0)
            while pending.load(ordering: .acquiring) != 0 {}
            job = nil
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

    private func workerLoop(index: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                if stopping.load(ordering: .acquiring) { return }
                spins += 1
                if spins >= WorkerPool.spinIterations {
                    pthread_mutex_lock(&mutex)
                    while generation.load(ordering: .acquiring) == seen && !stopping.load(ordering: .acquiring) {
                        pthread_cond_wait(&wake, &mutex)
                    }
                    pthread_mutex_unlock(&mutex)
                    spins = 0
                }
            }
            if stopping.load(ordering: .acquiring) { return }
            seen = generation.load(ordering: .acquiring)
            job?(index)
            pending.subtract(1, ordering: .releasing)
        }
    }
}

private final class WorkerContext {
    // Unowned: the pool joins every worker in its deinit, so it outlives the loops that use this reference.
    unowned(unsafe) let pool: WorkerPool
    let index: Int
    init(pool: WorkerPool, index: Int) {
        self.pool = pool
        self.index = index
    }
}
