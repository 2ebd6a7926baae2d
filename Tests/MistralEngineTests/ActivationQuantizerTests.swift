// The AVX2 activation quantizer against its plain-Swift reference: identical int8 values, scales and sums, for
// both formats, including blocks poisoned by NaN or infinity (zeros) and ties at .5 (round half to even).
import XCTest
import MistralKernels

final class ActivationQuantizerTests: XCTestCase {
    func testFastQuantizerEqualsReference() {
        let n = 1024
        var x = (0..<n).map { i in Float(((i * 7919) % 2001) - 1000) / 137 }
        x[5] = .nan            // block 0 of q8_0 and of q8_K poisoned
        x[300] = .infinity     // block 9 of q8_0, block 1 of q8_K
        for i in 512..<544 { x[i] = Float(i - 528) * 0.5 }  // many exact .5 quotients: -8 ... 7.5 scaled by 127/8
        for (bs, ss) in [(32, 32), (256, 16)] {
            var q1 = [Int8](repeating: 99, count: n), q2 = q1
            var d1 = [Float](repeating: -1, count: n / bs), d2 = d1
            var s1 = [Int16](repeating: 7, count: n / ss), s2 = s1
            ActivationQuantizer.quantize(x, n, blockSize: bs, sumSize: ss, q: &q1, d: &d1, sums: &s1)
            ActivationQuantizer.quantizeReference(x, n, blockSize: bs, sumSize: ss, q: &q2, d: &d2, sums: &s2)
            XCTAssertEqual(q1, q2, "values, block \(bs)")
            XCTAssertEqual(d1, d2, "scales, block \(bs)")
            XCTAssertEqual(s1, s2, "sums, block \(bs)")
            XCTAssertEqual(d1[0], 0, "a block with NaN quantizes to zeros")
            XCTAssertFalse(q1.contains(-128), "the AVX2 kernels' sign trick needs q >= -127")
            XCTAssertTrue(q1.contains(127) && q1.contains(-127))
        }
    }
}
