// The KV cache's f32 <-> f16 rows (HalfConvert, F16C 8 at a time) against Swift's own Float16 conversions.
import XCTest
import MistralKernels

final class HalfConvertTests: XCTestCase {
    func testToHalfRoundsAsFloat16DoesForEdgeAndRandomValues() {
        var values: [Float] = [0, -0, 1, -1, 65504, 65519, 65520, -65520, 1e-8, -1e-8, 5.96e-8, 2.98e-8, 2.99e-8,
                               6.1035e-5, 6.1e-5, .infinity, -.infinity, .nan, .leastNonzeroMagnitude,
                               .greatestFiniteMagnitude, 1.00048828125, 1.000732421875, 2049, 2051]
        var s: UInt32 = 0x1234_5678
        for _ in 0..<100_003 {  // not a multiple of 8: the scalar tail runs too
            s ^= s << 13; s ^= s >> 17; s ^= s << 5
            values.append(Float(bitPattern: s))
        }
        var out = [UInt16](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { HalfConvert.toHalf(src.baseAddress!, $0.baseAddress!, src.count) }
        }
        for (x, h) in zip(values, out) {
            if x.isNaN {
                XCTAssertTrue(Float16(bitPattern: h).isNaN, "\(x.bitPattern)")
            } else {
                XCTAssertEqual(h, Float16(x).bitPattern, "f32 bits \(String(x.bitPattern, radix: 16))")
            }
        }
    }

    func testToFloatIsExactForEveryHalf() {
        let halves = (0...UInt16.max).map { $0 }
        var out = [Float](repeating: 0, count: halves.count)
        halves.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { HalfConvert.toFloat(src.baseAddress!, $0.baseAddress!, src.count) }
        }
        for (h, f) in zip(halves, out) {
            let want = Float(Float16(bitPattern: h))
            if want.isNaN { XCTAssertTrue(f.isNaN) } else { XCTAssertEqual(f.bitPattern, want.bitPattern, "\(h)") }
        }
    }

    /// toFloat16 (two vcvtph2ps, the f16 KV cache read in place by decode attention) gives every half's
    /// float exactly as Swift's Float16 conversion does (NaNs: both NaN).
    func testToFloat16ConvertsEveryHalfExactly() {
        let halves = (0..<65536).map { UInt16($0) }
        halves.withUnsafeBufferPointer { src in
            for base in stride(from: 0, to: 65536, by: 16) {
                let got = HalfConvert.toFloat16(src.baseAddress! + base)
                for l in 0..<16 {
                    let want = Float(Float16(bitPattern: src[base + l]))
                    if want.isNaN {
                        XCTAssertTrue(got[l].isNaN, "half \(base + l)")
                    } else {
                        XCTAssertEqual(got[l].bitPattern, want.bitPattern, "half \(base + l)")
                    }
                }
            }
        }
    }
}
