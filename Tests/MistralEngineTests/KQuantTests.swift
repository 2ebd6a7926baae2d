// GGUF K-quants (Q4_K, Q5_K, Q6_K) and Q5_0/Q5_1: decoding against the `gguf` package's dequantization (Tests/Fixtures/kquants,
// made by its make.py), and matrix products against f32 arithmetic on those values.
import Foundation
import XCTest
import MistralEngine
import MistralKernels

final class KQuantTests: XCTestCase {
    func fixture(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixtures + "/kquants/" + name))
    }

    func testDecodeAndMultiplyMatchReference() throws {
        let rows = 6, cols = 512
        for (name, type) in [("Q4_K", GGMLType.q4_K), ("Q5_K", .q5_K), ("Q6_K", .q6_K), ("Q5_0", .q5_0), ("Q5_1", .q5_1)] {
            let blocks = try fixture("\(name).blocks")
            let expected = try fixture("\(name).f32").withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            XCTAssertEqual(blocks.count, rows * cols / type.blockSize * type.blockBytes, name)
            XCTAssertEqual(expected.count, rows * cols)
            try blocks.withUnsafeBytes { raw in
                let m = try WeightMatrix(data: raw.baseAddress!, type: type, rows: rows, cols: cols)
                var row = [Float](repeating: .nan, count: cols)
                var maxDiff: Float = 0
                for r in 0..<rows {
                    row.withUnsafeMutableBufferPointer { m.dequantizeRow(r, into: $0.baseAddress!) }
                    for c in 0..<cols { maxDiff = max(maxDiff, abs(row[c] - expected[r * cols + c])) }
                }
                XCTAssertLessThan(maxDiff, 1e-6, "\(name) decode")

                // y = x · Wᵀ for 3 activation rows, through the engine's matmul (one worker thread and two). The
                // kernels see x quantized to int8 (per 256 for K-quants, per 32 otherwise): the reference uses
                // those values, so only summation order separates the two.
                let x = (0..<3 * cols).map { Float(($0 * 37) % 101 - 50) / 50 }
                let format = QuantType(rawValue: type.rawValue)!.activationFormat
                let q = QuantizedActivations(format: format, tokens: 3, cols: cols)!
                q.setColumns(cols)
                for t in 0..<3 { x.withUnsafeBufferPointer { q.quantize(row: t, from: $0.baseAddress! + t * cols) } }
                let v = q.view
                let quantized = KernelDispatch.kernel(type) != nil  // else a float path sees x itself
                let xq = (0..<3 * cols).map { i in
                    quantized ? Float(v.values(i / cols)[i % cols]) * v.scales(i / cols)[(i % cols) / format.blockSize] : x[i]
                }
                var reference = [Float](repeating: 0, count: 3 * rows)
                for t in 0..<3 {
                    for r in 0..<rows {
                        var s: Double = 0
                        for c in 0..<cols { s += Double(xq[t * cols + c]) * Double(expected[r * cols + c]) }
                        reference[t * rows + r] = Float(s)
                    }
                }
                for path in KernelPath.available { for threads in [1, 2] {
                    KernelDispatch.use(path)
                    defer { KernelDispatch.use(KernelPath.selected) }
                    let pool = try WorkerPool(threadCount: threads)
                    let acts = try ActivationBatch(rows: 3, cols: cols)
                    var y = [Float](repeating: .nan, count: 3 * rows)
                    MatMul.multiply(m, x: x, n: 3, y: &y, yStride: rows, acts: acts, pool: pool)
                    for i in 0..<y.count {
                        XCTAssertEqual(y[i], reference[i], accuracy: 1e-4 * max(1, abs(reference[i])), "\(name) matmul \(path)")
                    }
                } }
            }
        }
    }
}
