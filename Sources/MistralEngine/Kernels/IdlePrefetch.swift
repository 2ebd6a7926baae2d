// Cache lines that a worker pool's threads prefetch while they wait: a worker polling for the next job, and the
// caller waiting for a job's last worker. A batched decode step's attention reads every session's keys and values
// of a layer from memory (8 SmolLM2 sessions at 70 positions: 430 KB per layer, read once per step, evicted from
// the caches by the 96 MB of weights in between). Queued one layer ahead, those reads overlap the time the threads
// would spend polling, and attention finds them in cache. Hints only: a prefetch never faults, so a stale or
// half-written entry costs a useless prefetch, never a wrong result.
import CCPUFeatures
import Synchronization

public final class IdlePrefetch: @unchecked Sendable {
    // Safety of @unchecked Sendable: every field another thread reads is an atomic. The list is written only by the
    // thread that runs the pool's jobs (begin / add / commit; the pool's own contract keeps that to one thread at a
    // time), while readers may still be claiming lines of the previous list: they see either list's entries, or a
    // mix of both that names some other address; a prefetch of any address is only a hint.

    /// Most runs (contiguous byte ranges) one list holds; runs past it are dropped.
    public let capacity: Int
    /// Most lines one list holds (512 KB: half of this CPU's L2, so that the lines are still there when read).
    public static let maxLines = 8192

    /// Lines in the committed list (0: nothing to prefetch).
    private let total = Atomic<Int>(0)
    /// The next unclaimed line of the list.
    private let next = Atomic<Int>(0)
    /// Per run: its first line's address, and the list index of that line (runs in order, indices increasing).
    private let runAddress: UnsafeMutablePointer<Atomic<Int>>
    private let runFirst: UnsafeMutablePointer<Atomic<Int>>
    private let runCount = Atomic<Int>(0)
    /// The list being built (writer only).
    private var building = 0, buildingLines = 0

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        runAddress = .allocate(capacity: self.capacity)
        runFirst = .allocate(capacity: self.capacity)
        for i in 0..<self.capacity {
            (runAddress + i).initialize(to: Atomic(0))
            (runFirst + i).initialize(to: Atomic(0))
        }
    }

    deinit {
        runAddress.deinitialize(count: capacity)
        runAddress.deallocate()
        runFirst.deinitialize(count: capacity)
        runFirst.deallocate()
    }

    /// Starts a new list; the previous one stops being handed out.
    public func begin() {
        total.store(0, ordering: .releasing)
        building = 0
        buildingLines = 0
    }

    /// Adds the cache lines covering `bytes` bytes from p, as far as capacity and maxLines allow.
    public func add(_ p: UnsafeRawPointer, bytes: Int) {
        guard bytes > 0, building < capacity, buildingLines < IdlePrefetch.maxLines else { return }
        let start = UInt(bitPattern: p) & ~63, end = UInt(bitPattern: p) &+ UInt(bytes)
        let lines = min(Int((end &- start &+ 63) >> 6), IdlePrefetch.maxLines - buildingLines)
        runAddress[building].store(Int(bitPattern: start), ordering: .relaxed)
        runFirst[building].store(buildingLines, ordering: .relaxed)
        building += 1
        buildingLines += lines
    }

    /// Hands the list built since begin() to the waiting threads.
    public func commit() {
        runCount.store(building, ordering: .relaxed)
        next.store(0, ordering: .relaxed)
        total.store(buildingLines, ordering: .releasing)  // publishes the runs and the count
    }

    /// Claims up to `lines` lines of the list and calls body with each one's address; false once none are left.
    /// Each line of a committed list is claimed once, by whichever thread gets to it first.
    @inline(__always)
    public func claim(_ lines: Int, _ body: (UnsafeRawPointer) -> Void) -> Bool {
        let t = total.load(ordering: .acquiring)
        // a drained list is only read: the threads polling it then share its cache line instead of bouncing it
        guard t > 0, next.load(ordering: .relaxed) < t else { return false }
        let i = next.wrappingAdd(lines, ordering: .relaxed).oldValue
        guard i < t else { return false }
        let runs = min(capacity, runCount.load(ordering: .relaxed))
        guard runs > 0 else { return false }
        // the last run starting at or before line i (binary search: runs are in index order)
        var lo = 0, hi = runs - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if runFirst[mid].load(ordering: .relaxed) <= i { lo = mid } else { hi = mid - 1 }
        }
        var r = lo, line = i
        let end = min(t, i + lines)
        while line < end {
            while r + 1 < runs && runFirst[r + 1].load(ordering: .relaxed) <= line { r += 1 }
            let first = runFirst[r].load(ordering: .relaxed)
            if let base = UnsafeRawPointer(bitPattern: runAddress[r].load(ordering: .relaxed)), line >= first {
                body(base + (line - first) &* 64)
            }
            line += 1
        }
        return true
    }

    /// Prefetches a few lines of the list into this thread's caches: called from a wait loop, one poll at a time.
    @inline(__always)
    func prefetchSome() {
        _ = claim(4) { mistral_prefetch_read($0) }
    }
}
