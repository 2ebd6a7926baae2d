// The worker pool's claimed chunks (share) and its rest/prepare hints: every unit runs exactly once, on a valid
// thread index, whatever the chunk size and however the workers were left parked or polling.
import XCTest
import Glibc
import MistralEngine

final class WorkerPoolTests: XCTestCase {
    func testShareRunsEveryUnitOnceForEveryChunkSize() throws {
        for threads in [1, 2, 3, 4] {
            let pool = try WorkerPool(threadCount: threads)
            for count in [0, 1, 2, 7, 16, 33, 1000] {
                for chunk in [1, 2, 5, 64, 5000, MatMul.chunkGroups(count, groupBytes: 16 * 360, threads: threads)] {
                    let hits = UnsafeMutablePointer<Int>.allocate(capacity: max(1, count))
                    hits.initialize(repeating: 0, count: max(1, count))
                    defer { hits.deallocate() }
                    var badThread = false
                    let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
                    pthread_mutex_init(lock, nil)
                    pool.share(count, chunk: chunk) { tid, units in
                        pthread_mutex_lock(lock)
                        if tid < 0 || tid >= threads { badThread = true }
                        for u in units { hits[u] += 1 }
                        pthread_mutex_unlock(lock)
                    }
                    pthread_mutex_destroy(lock)
                    lock.deallocate()
                    XCTAssertFalse(badThread, "threads \(threads) count \(count) chunk \(chunk)")
                    for u in 0..<count where hits[u] != 1 {
                        XCTFail("threads \(threads) count \(count) chunk \(chunk): unit \(u) ran \(hits[u]) times")
                        break
                    }
                }
            }
        }
    }

    func testJobsAfterRestAndPrepareStillRunOnEveryThread() throws {
        let pool = try WorkerPool(threadCount: 3)
        for round in 0..<200 {
            switch round % 4 {
            case 0: pool.rest()
            case 1: pool.prepare()
            case 2: pool.rest(); pool.prepare()
            default: usleep(200)  // past the spin: the workers park
            }
            let seen = UnsafeMutablePointer<Int>.allocate(capacity: 3)
            seen.initialize(repeating: 0, count: 3)
            pool.run { tid in seen[tid] = 1 }  // each thread writes its own slot
            XCTAssertEqual(seen[0] + seen[1] + seen[2], 3, "round \(round)")
            seen.deallocate()
        }
    }

    /// A batched product's chunks: whole groups, at most 32 per thread; of at least MatMul.minChunkBytes when the
    /// matrix has that much for every thread; and a matrix smaller than that (SmolLM2's 576-row ones) is split
    /// evenly, so no thread claims more than its share (by size alone, one of 2 threads got 23 groups of 36).
    func testMatMulChunksAreLargeEnoughAndEven() {
        for threads in [1, 2, 3, 4, 16] {
            for groupBytes in [16 * 360, 16 * 960, 16 * 612, 16 * 2880, 16 * 20_480] {
                for groups in [1, 2, 12, 36, 60, 192, 1024, 3072, 8192] {
                    let chunk = MatMul.chunkGroups(groups, groupBytes: groupBytes, threads: threads)
                    let chunks = (groups + chunk - 1) / chunk
                    let label = "threads \(threads), \(groups) groups of \(groupBytes) bytes: chunk \(chunk)"
                    XCTAssertGreaterThanOrEqual(chunk, 1, label)
                    XCTAssertLessThanOrEqual(chunks, threads * 32, label)
                    if groups * groupBytes >= threads * MatMul.minChunkBytes {
                        XCTAssertGreaterThanOrEqual(chunk * groupBytes, MatMul.minChunkBytes, label)
                    } else {
                        XCTAssertLessThanOrEqual(chunk, (groups + threads - 1) / threads, label)
                    }
                }
            }
        }
        XCTAssertEqual(MatMul.chunkGroups(36, groupBytes: 16 * 360, threads: 2), 18)
    }
}
