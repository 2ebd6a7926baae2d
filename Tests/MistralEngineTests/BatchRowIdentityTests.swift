// Batched decoding stacks the rows of several sessions into one matmul, so a session's results must not depend on
// the other rows of its step. Row-interleaved kernels (every path this CPU runs) must give each token the same bits
// in any grouping, since the batch hands them all rows at once; file-layout kernels group tokens into tiles that
// round differently from their one-token path, so a batch runs them per sequence segment (MatMulSegments), which
// must give each segment exactly the bits of a call of its own.
import XCTest
import MistralEngine
import MistralKernels
import MistralKernelsAVX512

final class BatchRowIdentityTests: XCTestCase {
    /// The kernels batched steps hand every row at once: interleaved ones (generic and, where the CPU has them,
    /// AVX2 and AVX-512) and the file-layout ones KernelDispatch.groupsTokensAlike claims on the current path.
    func alikeKernels(_ type: QuantType) -> [(String, QuantKernel, Bool)] {
        var list: [(String, QuantKernel, Bool)] = []
        if let k = GenericKernels.interleaved[type] { list.append(("generic interleaved", k, true)) }
        if KernelPath.available.contains(.avx2), let k = AVX2Kernels.interleaved[type] {
            list.append(("avx2 interleaved", k, true))
        }
        if KernelPath.available.contains(.avx512), let k = AVX512Kernels.interleaved[type] {
            list.append(("avx512 interleaved", k, true))
        }
        if KernelDispatch.groupsTokensAlike(GGMLType(rawValue: type.rawValue), interleaved: false),
           let k = KernelDispatch.kernel(GGMLType(rawValue: type.rawValue)) {
            list.append(("\(KernelDispatch.path) file layout", k, false))
        }
        return list
    }

    func testKernelsClaimedAlikeGiveEachTokenTheSameBitsAloneAndInABatch() throws {
        var seed: UInt64 = 900
        var checked = 0
        for type in QuantType.allCases {
            for (name, kernel, interleaved) in alikeKernels(type) {
                for cols in type.blockSize == 32 ? [96, 576] : [256, 1024] {
                    for tokens in [2, 5, 13] {
                        seed &+= 1
                        let c = try QuantKernelTests.Case(type, rows: 32, cols: cols, tokens: tokens, seed: seed)
                        let packed = interleaved ? InterleaveTests.repacked(c) : c.weights
                        let all = InterleaveTests.run(kernel, packed, c, rows: 0..<32, tokens: 0..<tokens, yStride: 32)
                        for t in 0..<tokens {
                            let one = InterleaveTests.run(kernel, packed, c, rows: 0..<32, tokens: t..<t + 1, yStride: 32)
                            let a = one[t * 32..<(t + 1) * 32].map(\.bitPattern), b = all[t * 32..<(t + 1) * 32].map(\.bitPattern)
                            XCTAssertEqual(a, b, "\(type) \(name) cols \(cols): token \(t) of \(tokens) alone vs in the batch")
                        }
                        checked += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(checked, 0)
    }

    /// Through MatMul.multiply (row tiles, token chunks, two threads): a batch of segments gives every segment the
    /// bits of a product of its own, for float, file-layout quantized and row-interleaved weights.
    func testMatMulSegmentsGiveEachSequenceItsOwnBits() throws {
        let pool = try WorkerPool(threadCount: 2)
        let rows = 48
        // sequences of 1 (decode), 5, 70 (more than a 64-token chunk) and 3 rows
        let lengths = [1, 5, 70, 3, 1]
        var starts = [0]
        for l in lengths { starts.append(starts[starts.count - 1] + l) }
        let n = starts[starts.count - 1]
        var rng = QuantKernelTests.Rng(state: 77)
        let acts = try ActivationBatch(rows: n, cols: 1024)
        var cases: [(GGMLType, Int, Bool)] = [(.f32, 96, false), (.f16, 96, false), (.bf16, 96, false)]
        for q in QuantType.allCases {
            let cols = q.blockSize == 32 ? 576 : 1024
            cases.append((GGMLType(rawValue: q.rawValue), cols, false))
            if Interleave.supports(q) { cases.append((GGMLType(rawValue: q.rawValue), cols, true)) }
        }
        for (type, cols, interleaved) in cases {
            var bytes: [UInt8]
            if let q = QuantType(rawValue: type.rawValue) {
                bytes = QuantKernelTests.randomBlocks(q, count: rows * cols / q.blockSize, &rng)
            } else {
                bytes = (0..<rows * cols).flatMap { _ -> [UInt8] in
                    let v = Float(rng.uniform() - 0.5)
                    if type == .f32 { return withUnsafeBytes(of: v.bitPattern) { Array($0) } }
                    let h: UInt16 = type == .f16 ? Float16(v).bitPattern : UInt16(v.bitPattern >> 16)
                    return withUnsafeBytes(of: h) { Array($0) }
                }
            }
            let x = (0..<n * cols).map { _ in Float(rng.uniform() * 2 - 1) }
            var packed = bytes
            try bytes.withUnsafeBytes { raw in
                try packed.withUnsafeMutableBytes { dst in
                    let file = try WeightMatrix(data: raw.baseAddress!, type: type, rows: rows, cols: cols)
                    let m = interleaved ? try file.interleavedCopy(into: dst.baseAddress!) : file
                    var all = [Float](repeating: 0, count: n * rows), one = all
                    x.withUnsafeBufferPointer { xp in
                        starts.withUnsafeBufferPointer { sp in
                            MatMul.multiply(m, x: xp.baseAddress!, n: n, y: &all, yStride: rows, acts: acts, pool: pool,
                                            segments: MatMulSegments(starts: sp.baseAddress!, count: lengths.count))
                        }
                        for (i, l) in lengths.enumerated() {
                            one.withUnsafeMutableBufferPointer { yp in
                                MatMul.multiply(m, x: xp.baseAddress! + starts[i] * cols, n: l, y: yp.baseAddress!,
                                                yStride: rows, acts: acts, pool: pool)
                            }
                            let lo = starts[i] * rows, hi = starts[i + 1] * rows
                            XCTAssertEqual(one[0..<l * rows].map(\.bitPattern), all[lo..<hi].map(\.bitPattern),
                                           "\(type.name)\(interleaved ? " interleaved" : "") cols \(cols): sequence \(i) (\(l) rows)")
                        }
                    }
                }
            }
        }
    }
}
