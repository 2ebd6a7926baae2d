// Greedy sampling's 16-lane argmax against the plain loop it replaced: the first index of the largest logit, NaN
// never chosen, 0 when nothing exceeds -inf.
import XCTest
import MistralEngine

final class SamplerArgmaxTests: XCTestCase {
    private func check(_ logits: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let sampler = Sampler()
        logits.withUnsafeBufferPointer { p in
            let base = p.baseAddress ?? UnsafePointer(bitPattern: 16)!
            XCTAssertEqual(sampler.argmax(base, p.count), sampler.argmaxReference(base, p.count), what,
                           file: file, line: line)
        }
    }

    func testArgmaxEqualsThePlainLoopOnTiesNaNsInfinitiesAndEverySize() {
        var s: UInt32 = 0x9E37_79B9
        func next() -> UInt32 { s ^= s << 13; s ^= s >> 17; s ^= s << 5; return s }
        for n in [0, 1, 2, 15, 16, 17, 31, 33, 100, 49152, 131072, 131075] {
            // few distinct values: many ties, the first of which must win
            check((0..<n).map { _ in Float(next() % 7) }, "ties, n \(n)")
            check((0..<n).map { _ in Float(bitPattern: next()) }, "random bits (NaNs included), n \(n)")
            check([Float](repeating: -.infinity, count: n), "all -inf, n \(n)")
            check([Float](repeating: .nan, count: n), "all NaN, n \(n)")
            guard n > 0 else { continue }
            for at in Set([0, n / 2, n - 1]) {
                var v = [Float](repeating: -.infinity, count: n)
                v[at] = 3
                check(v, "one finite at \(at), n \(n)")
                v[at] = .infinity
                if at > 0 { v[at - 1] = .nan }
                check(v, "+inf at \(at) after a NaN, n \(n)")
                var z = [Float](repeating: -1, count: n)
                z[at] = -0.0
                if at + 1 < n { z[at + 1] = 0.0 }
                check(z, "-0 then +0 at \(at), n \(n)")
            }
        }
    }
}
