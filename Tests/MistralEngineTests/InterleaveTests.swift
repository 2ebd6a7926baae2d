// The row-interleaved layout (Interleave.swift) and its kernels: repacking is a permutation of the file's bytes
// (fileBlock reads every block back), the plain-Swift interleaved kernel equals the file-layout reference within
// float rounding, and the AVX-512 and AVX2 interleaved kernels equal the plain-Swift one bit for bit (same integer
// sums, same FMA order) on every tile width (8, 4, 1 tokens), row range and output stride.
import XCTest
import MistralEngine
import MistralKernels
import MistralKernelsAVX512

final class InterleaveTests: XCTestCase {
    static let types = QuantType.allCases.filter { Interleave.supports($0) }

    /// The case's weights repacked (rows a multiple of 16).
    static func repacked(_ c: QuantKernelTests.Case) -> [UInt8] {
        let rowBytes = c.cols / c.type.blockSize * c.type.blockBytes
        var out = [UInt8](repeating: 0, count: c.weights.count)
        c.weights.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                XCTAssertTrue(Interleave.repack(c.type, src.baseAddress!, rowBytes: rowBytes, rows: c.rows,
                                                into: dst.baseAddress!))
            }
        }
        return out
    }

    static func run(_ k: QuantKernel, _ w: [UInt8], _ c: QuantKernelTests.Case, rows: Range<Int>, tokens: Range<Int>,
                    yStride: Int) -> [Float] {
        var y = [Float](repeating: .nan, count: c.tokens * yStride)
        w.withUnsafeBytes { raw in
            y.withUnsafeMutableBufferPointer { out in
                k.dot(raw.baseAddress!, c.cols / c.type.blockSize * c.type.blockBytes, rows, c.acts.view, tokens, out.baseAddress!, yStride)
            }
        }
        return y
    }

    func testRepackIsAPermutationThatFileBlockInverts() throws {
        for type in InterleaveTests.types {
            let cols = 3 * type.blockSize
            let c = try QuantKernelTests.Case(type, rows: 32, cols: cols, tokens: 1, seed: 5)
            let packed = InterleaveTests.repacked(c)
            if [.q4_0, .q4_1, .q4_K, .q5_K, .q6_K].contains(type) {  // Q5's fifth bits are transposed and Q8_0's bytes offset
                XCTAssertTrue(packed.sorted(by: <) == c.weights.sorted(by: <), "\(type): repack is not a permutation")
            }
            XCTAssertNotEqual(packed, c.weights, "\(type): repack changed nothing")
            let rowBytes = 3 * type.blockBytes
            var block = [UInt8](repeating: 0, count: type.blockBytes)
            packed.withUnsafeBytes { p in
                for r in 0..<32 {
                    for b in 0..<3 {
                        block.withUnsafeMutableBytes {
                            Interleave.fileBlock(type, p.baseAddress!, rowBytes: rowBytes, row: r, block: b, into: $0.baseAddress!)
                        }
                        let o = r * rowBytes + b * type.blockBytes
                        XCTAssertEqual(block, Array(c.weights[o..<o + type.blockBytes]), "\(type) row \(r) block \(b)")
                    }
                }
            }
            // a row lookup (embeddings) reads an interleaved matrix as the file's
            let gt = GGMLType(rawValue: type.rawValue)
            try c.weights.withUnsafeBytes { f in
                try packed.withUnsafeBytes { p in
                    let a = try WeightMatrix(data: f.baseAddress!, type: gt, rows: 32, cols: cols)
                    let b = try WeightMatrix(data: p.baseAddress!, type: gt, rows: 32, cols: cols, interleaved: true)
                    var ra = [Float](repeating: 0, count: cols), rb = ra
                    for r in [0, 17, 31] {
                        ra.withUnsafeMutableBufferPointer { a.dequantizeRow(r, into: $0.baseAddress!) }
                        rb.withUnsafeMutableBufferPointer { b.dequantizeRow(r, into: $0.baseAddress!) }
                        XCTAssertEqual(ra, rb, "\(type) row \(r)")
                    }
                }
            }
            XCTAssertFalse(Interleave.repack(type, [UInt8](repeating: 0, count: 8 * rowBytes), rowBytes: rowBytes,
                                             rows: 8, into: UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)),
                           "8 rows is not a whole group")
        }
    }

    /// The fast interleaved kernels of `type` on the paths this CPU runs.
    static func fastKernels(_ type: QuantType) -> [(String, QuantKernel)] {
        var list: [(String, QuantKernel)] = []
        if KernelPath.available.contains(.avx2), let k = AVX2Kernels.interleaved[type] { list.append(("avx2", k)) }
        if KernelPath.available.contains(.avx512), let k = AVX512Kernels.interleaved[type] { list.append(("avx512", k)) }
        return list
    }

    func testInterleavedKernelsMatchReferences() throws {
        let skipped = KernelPath.allCases.filter { $0 != .generic && !KernelPath.available.contains($0) }
        if !skipped.isEmpty { print("InterleaveTests: not on this CPU, not checked: \(skipped) interleaved kernels") }
        var seed: UInt64 = 300
        for type in InterleaveTests.types {
            let generic = try XCTUnwrap(GenericKernels.interleaved[type])
            let fileRef = try XCTUnwrap(GenericKernels.table[type])
            let fast = InterleaveTests.fastKernels(type)
            for cols in type.blockSize == 32 ? [32, 96, 4096] : [256, 512, 4096] {  // 4096: padded rows
                for tokens in [1, 3, 4, 8, 13, 19] {
                    seed &+= 1
                    let c = try QuantKernelTests.Case(type, rows: 48, cols: cols, tokens: tokens, seed: seed)
                    let packed = InterleaveTests.repacked(c)
                    let g = InterleaveTests.run(generic, packed, c, rows: 0..<48, tokens: 0..<tokens, yStride: 48)
                    let f = c.run(fileRef, rows: 0..<48, tokens: 0..<tokens, yStride: 48)
                    var worst = 0.0
                    for t in 0..<tokens {
                        for r in 0..<48 {
                            let (_, bound) = c.reference(r, t)
                            let e = abs(Double(g[t * 48 + r]) - Double(f[t * 48 + r])) / bound
                            worst = max(worst, e.isNaN ? .infinity : e)
                        }
                    }
                    XCTAssertLessThanOrEqual(worst, 1e-5, "\(type) interleaved generic vs file layout, cols \(cols) tokens \(tokens)")
                    // rows 16..<48 and tokens from 1, into a wider stride: only those outputs are written
                    let stride = 50
                    let gs = InterleaveTests.run(generic, packed, c, rows: 16..<48, tokens: 1..<tokens, yStride: stride)
                    for (name, k) in fast {
                        let a = InterleaveTests.run(k, packed, c, rows: 16..<48, tokens: 1..<tokens, yStride: stride)
                        for i in 0..<a.count {
                            XCTAssertTrue(a[i] == gs[i] || (a[i].isNaN && gs[i].isNaN),
                                          "\(type) \(name) interleaved vs generic at \(i): \(a[i]) vs \(gs[i]), cols \(cols) tokens \(tokens)")
                        }
                    }
                }
            }
        }
    }

    /// Every token count 1...17 (each mix of 8-, 4- and 1-token tiles), one group of 16 rows, against the
    /// plain-Swift kernel bit for bit; the output bits compared, so a -0 for +0 counts too.
    func testFastInterleavedKernelsMatchGenericForEveryTokenCount() throws {
        var seed: UInt64 = 700
        var checked = 0
        for type in InterleaveTests.types {
            let generic = try XCTUnwrap(GenericKernels.interleaved[type])
            let fast = InterleaveTests.fastKernels(type)
            for tokens in 1...17 {
                seed &+= 1
                let cols = 2 * type.blockSize
                let c = try QuantKernelTests.Case(type, rows: 16, cols: cols, tokens: tokens, seed: seed)
                let packed = InterleaveTests.repacked(c)
                let g = InterleaveTests.run(generic, packed, c, rows: 0..<16, tokens: 0..<tokens, yStride: 16).map(\.bitPattern)
                for (name, k) in fast {
                    let a = InterleaveTests.run(k, packed, c, rows: 0..<16, tokens: 0..<tokens, yStride: 16).map(\.bitPattern)
                    XCTAssertEqual(a, g, "\(type) \(name) interleaved vs generic, tokens \(tokens)")
                    checked += 1
                }
            }
        }
        if KernelPath.available.contains(.avx2) { XCTAssertGreaterThanOrEqual(checked, 8 * 17, "every type on avx2") }
    }
}
