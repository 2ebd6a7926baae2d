// The idle-prefetch queue a worker pool's waiting threads drain: every cache line of the committed runs is handed
// out once, in order, within the caps; a new list replaces the old one; the pool's own waits drain it.
import XCTest
import Glibc
import MistralEngine

final class IdlePrefetchTests: XCTestCase {
    /// The line addresses a list of (offset, bytes) runs over `base` should give, in order.
    private func expectedLines(_ base: UnsafeRawPointer, _ runs: [(Int, Int)], maxLines: Int = IdlePrefetch.maxLines) -> [UInt] {
        var out: [UInt] = []
        for (offset, bytes) in runs where bytes > 0 {
            let start = UInt(bitPattern: base + offset) & ~63
            var line = start
            while line < UInt(bitPattern: base + offset + bytes) && out.count < maxLines {
                out.append(line)
                line += 64
            }
        }
        return out
    }

    private func drain(_ q: IdlePrefetch, by lines: Int) -> [UInt] {
        var got: [UInt] = []
        while q.claim(lines, { got.append(UInt(bitPattern: $0)) }) {}
        return got
    }

    func testEveryLineOfTheRunsOnceInOrder() throws {
        let buffer = try XCTUnwrap(malloc(1 << 20))
        defer { free(buffer) }
        let base = UnsafeRawPointer(buffer)
        let q = IdlePrefetch(capacity: 16)
        XCTAssertFalse(q.claim(4) { _ in XCTFail("an empty queue handed out a line") })
        let runs = [(0, 64), (100, 1), (130, 200), (4096, 0), (5000, 3000), (70_000, 64 * 9)]
        for k in [1, 3, 4, 7, 1000] {
            q.begin()
            for (offset, bytes) in runs { q.add(base + offset, bytes: bytes) }
            q.commit()
            XCTAssertEqual(drain(q, by: k), expectedLines(base, runs), "claiming \(k) at a time")
            XCTAssertFalse(q.claim(4) { _ in XCTFail("a drained queue handed out a line") })
        }
    }

    func testCapsAndReplacement() throws {
        let buffer = try XCTUnwrap(malloc(2 << 20))
        defer { free(buffer) }
        let base = UnsafeRawPointer(buffer)
        let q = IdlePrefetch(capacity: 2)
        // runs past the capacity are dropped
        q.begin()
        q.add(base, bytes: 640)
        q.add(base + 4096, bytes: 128)
        q.add(base + 8192, bytes: 128)
        q.commit()
        XCTAssertEqual(drain(q, by: 4), expectedLines(base, [(0, 640), (4096, 128)]))
        // one run of 2 MB stops at maxLines
        let big = IdlePrefetch(capacity: 4)
        big.begin()
        big.add(base, bytes: 2 << 20)
        big.add(base, bytes: 64)  // nothing left of the budget
        big.commit()
        let lines = drain(big, by: 5)
        XCTAssertEqual(lines.count, IdlePrefetch.maxLines)
        XCTAssertEqual(lines, expectedLines(base, [(0, 2 << 20)]))
        // begin() withdraws a list at once; the next commit hands out only the new one
        q.begin()
        q.add(base, bytes: 640)
        q.commit()
        XCTAssertTrue(q.claim(1) { _ in })
        q.begin()
        XCTAssertFalse(q.claim(1) { _ in XCTFail("a withdrawn list handed out a line") })
        q.add(base + 65_536, bytes: 256)
        q.commit()
        XCTAssertEqual(drain(q, by: 3), expectedLines(base, [(65_536, 256)]))
        q.begin()
        q.commit()
        XCTAssertFalse(q.claim(1) { _ in XCTFail("an empty list handed out a line") })
    }

    func testThreadsClaimingTogetherGetEachLineOnce() throws {
        let buffer = try XCTUnwrap(malloc(1 << 20))
        defer { free(buffer) }
        let base = UnsafeRawPointer(buffer)
        let pool = try WorkerPool(threadCount: 4)
        let q = IdlePrefetch(capacity: 64)
        let runs = (0..<40).map { ($0 * 20_000 + $0 * 3, 1000 + $0 * 97) }
        q.begin()
        for (offset, bytes) in runs { q.add(base + offset, bytes: bytes) }
        q.commit()
        let perThread = UnsafeMutablePointer<[UInt]>.allocate(capacity: 4)
        perThread.initialize(repeating: [], count: 4)
        defer { perThread.deinitialize(count: 4); perThread.deallocate() }
        pool.run { tid in
            var mine: [UInt] = []
            while q.claim(3, { mine.append(UInt(bitPattern: $0)) }) {}
            perThread[tid] = mine
        }
        let all = (0..<4).flatMap { perThread[$0] }
        XCTAssertEqual(all.sorted(), expectedLines(base, runs).sorted())
    }

    func testThePoolsWaitingThreadsDrainItsQueue() throws {
        let buffer = try XCTUnwrap(malloc(1 << 20))
        defer { free(buffer) }
        let pool = try WorkerPool(threadCount: 2)
        let q = pool.idlePrefetch
        q.begin()
        q.add(UnsafeRawPointer(buffer), bytes: 256 << 10)
        q.commit()
        // a worker polls for the next job for tens of microseconds after each one, prefetching as it polls
        var drained = false
        for _ in 0..<500 where !drained {
            pool.run { _ in }
            usleep(1000)
            drained = !q.claim(1) { _ in }
        }
        XCTAssertTrue(drained, "the pool's waiting worker never took the queued lines")
    }
}
