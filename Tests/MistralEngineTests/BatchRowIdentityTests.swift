// Batched decoding stacks the rows of several sessions into one matmul, so a row's result must not depend on how
// many rows share the call or where it sits among them: every kernel (each path this CPU runs, file layout and
// row-interleaved) must give bit-identical outputs for a token computed alone (n = 1, the decode path) and as
// token t of a batch of n (the tiled prompt path).
import XCTest
import MistralEngine
import MistralKernels
import MistralKernelsAVX512

final class BatchRowIdentityTests: XCTestCase {
    func kernels(_ type: QuantType) -> [(String, QuantKernel, Bool)] {
        var list: [(String, QuantKernel, Bool)] = []
        if let k = GenericKernels.table[type] { list.append(("generic", k, false)) }
        if let k = GenericKernels.interleaved[type] { list.append(("generic interleaved", k, true)) }
        let paths = KernelPath.available
        if paths.contains(.avx2), let k = AVX2Kernels.table[type] { list.append(("avx2", k, false)) }
        if paths.contains(.avx512), let k = AVX512Kernels.table[type] { list.append(("avx512", k, false)) }
        if paths.contains(.avx512), let k = AVX512Kernels.interleaved[type] { list.append(("avx512 interleaved", k, true)) }
        return list
    }

    func testEveryKernelGivesEachTokenTheSameBitsAloneAndInABatch() throws {
        var seed: UInt64 = 900
        for type in QuantType.allCases {
            for (name, kernel, interleaved) in kernels(type) {
                for tokens in [2, 5, 13] {
                    seed &+= 1
                    let cols = type.blockSize == 32 ? 96 : 512
                    let c = try QuantKernelTests.Case(type, rows: 32, cols: cols, tokens: tokens, seed: seed)
                    let packed = interleaved ? InterleaveTests.repacked(c) : c.weights
                    let all = InterleaveTests.run(kernel, packed, c, rows: 0..<32, tokens: 0..<tokens, yStride: 32)
                    for t in 0..<tokens {
                        let one = InterleaveTests.run(kernel, packed, c, rows: 0..<32, tokens: t..<t + 1, yStride: 32)
                        for r in 0..<32 where one[t * 32 + r].bitPattern != all[t * 32 + r].bitPattern {
                            XCTFail("\(type) \(name): token \(t) of \(tokens), row \(r): alone \(one[t * 32 + r]), in the batch \(all[t * 32 + r])")
                            break
                        }
                    }
                }
            }
        }
    }

    /// The same through MatMul.multiply (row tiles, token chunks, threads) for float weights and a quantized type.
    func testMatMulRowsAreIndependentOfTheBatch() throws {
        let pool = try WorkerPool(threadCount: 2)
        let rows = 48, cols = 96, n = 70
        var rng = QuantKernelTests.Rng(state: 77)
        let xf = (0..<n * cols).map { _ in Float(rng.uniform() * 2 - 1) }
        let acts = try ActivationBatch(rows: n, cols: 256)
        for type in [GGMLType.f32, .f16, .bf16, .q4_1, .q8_0, .q4_K] {
            let cols = type == .q4_K ? 256 : cols
            let bytes: [UInt8]
            if let q = QuantType(rawValue: type.rawValue) {
                bytes = QuantKernelTests.randomBlocks(q, count: rows * cols / q.blockSize, &rng)
            } else {
                let size = type == .f32 ? 4 : 2
                bytes = (0..<rows * cols).flatMap { _ -> [UInt8] in
                    let v = Float(rng.uniform() - 0.5)
                    if type == .f32 { return withUnsafeBytes(of: v.bitPattern) { Array($0) } }
                    let h: UInt16 = type == .f16 ? Float16(v).bitPattern : UInt16(v.bitPattern >> 16)
                    return withUnsafeBytes(of: h) { Array($0) }.prefix(size).map { $0 }
                }
            }
            let x = (0..<n * cols).map { xf[$0 % xf.count] }
            try bytes.withUnsafeBytes { raw in
                let m = try WeightMatrix(data: raw.baseAddress!, type: type, rows: rows, cols: cols)
                var all = [Float](repeating: 0, count: n * rows), one = [Float](repeating: 0, count: rows)
                x.withUnsafeBufferPointer { xp in
                    MatMul.multiply(m, x: xp.baseAddress!, n: n, y: &all, yStride: rows, acts: acts, pool: pool)
                    for t in [0, 3, 17, 64, 69] {
                        MatMul.multiply(m, x: xp.baseAddress! + t * cols, n: 1, y: &one, yStride: rows, acts: acts, pool: pool)
                        XCTAssertEqual(one.map(\.bitPattern), all[t * rows..<(t + 1) * rows].map(\.bitPattern),
                                       "\(type.name) token \(t) of \(n)")
                    }
                }
            }
        }
    }
}
