// The quantized matrix kernels (MistralKernels, MistralKernelsAVX512) on random valid blocks of every weight
// type: the plain-Swift kernel against a float64 product of the decoded weights and the dequantized
// activations, and every fast path this CPU runs against the plain-Swift kernel.
//
// Tolerances are relative to B = Σ_c (|W[r,c]| + O_c)·|x[t,c]|, where O_c is the size of the offset or min
// term a kernel may add separately for weight c (|m| or |dmin·m|; offset·|d| for Q4_0/Q5_0/Q8_0's ±128 trick;
// 4·|d·s| Q3_K, 32·|d·s| Q6_K). Integer sums are exact; float rounding of per-block products and their sum is
// at most a few dozen ulp of B, so 1e-4·B (reference) and 1e-5·B (fast vs plain) hold with wide margin while
// a wrong value, order or scale in any block is far outside them.
import XCTest
import MistralEngine
import MistralKernels
import MistralKernelsAVX512

final class QuantKernelTests: XCTestCase {
    /// SplitMix64: the same blocks on every run.
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
        /// ±(0.001...0.05) as f16 bits.
        mutating func scale() -> UInt16 {
            let v = Float16((0.001 + 0.049 * uniform()) * (next() & 1 == 0 ? 1 : -1))
            return v.bitPattern
        }
    }

    /// Byte offsets of each type's f16 scale fields.
    static func halfFields(_ type: QuantType) -> [Int] {
        switch type {
        case .q4_0, .q5_0, .q8_0: [0]
        case .q4_1, .q5_1, .q4_K, .q5_K: [0, 2]
        case .q2_K: [80, 82]
        case .q3_K: [108]
        case .q6_K: [208]
        }
    }

    static func randomBlocks(_ type: QuantType, count: Int, _ rng: inout Rng) -> [UInt8] {
        var bytes = (0..<count * type.blockBytes).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for b in 0..<count {
            for f in halfFields(type) {
                let h = rng.scale()
                bytes[b * type.blockBytes + f] = UInt8(h & 0xFF)
                bytes[b * type.blockBytes + f + 1] = UInt8(h >> 8)
            }
        }
        return bytes
    }

    static func half(_ p: UnsafeRawPointer) -> Double { Double(Float16(bitPattern: p.loadUnaligned(as: UInt16.self))) }

    /// One block's values and offset sizes in float64, read straight from the layouts (ggml's loops).
    static func decode(_ type: QuantType, _ blk: UnsafeRawPointer, _ v: inout [Double], _ o: inout [Double]) {
        let u = blk.assumingMemoryBound(to: UInt8.self)
        switch type {
        case .q4_0, .q4_1, .q5_0, .q5_1:
            let one = type == .q4_1 || type == .q5_1, five = type == .q5_0 || type == .q5_1
            let d = half(blk), m = one ? half(blk + 2) : 0
            let qh: UInt32 = five ? blk.loadUnaligned(fromByteOffset: one ? 4 : 2, as: UInt32.self) : 0
            let qs = (one ? 4 : 2) + (five ? 4 : 0)
            let offset: Double = one ? 0 : (five ? 16 : 8)
            for j in 0..<32 {
                let nib = j < 16 ? u[qs + j] & 15 : u[qs + j - 16] >> 4
                let q = Double(UInt32(nib) | ((qh >> UInt32(j)) & 1) << 4)
                v[j] = (q - offset) * d + m
                o[j] = one ? abs(m) : offset * abs(d)
            }
        case .q8_0:
            let d = half(blk)
            for j in 0..<32 {
                v[j] = Double(Int8(bitPattern: u[2 + j])) * d
                o[j] = 128 * abs(d)  // the AVX-512 kernel's w + 128
            }
        case .q2_K:
            let d = half(blk + 80), dmin = half(blk + 82)
            var i = 0, k = 0, q = 16
            for _ in 0..<2 {
                for shift in stride(from: 0, to: 8, by: 2) {
                    for h in 0..<2 {
                        let sc = Double(u[k] & 15), m = Double(u[k] >> 4)
                        k += 1
                        for l in 0..<16 {
                            v[i] = d * sc * Double((u[q + 16 * h + l] >> UInt8(shift)) & 3) - dmin * m
                            o[i] = abs(dmin * m)
                            i += 1
                        }
                    }
                }
                q += 32
            }
        case .q3_K:
            let d = half(blk + 108)
            let sc = (blk + 96).assumingMemoryBound(to: UInt8.self)
            // the 6-bit scale k, as ggml's CUDA dequantize_block_q3_K reads it
            func scale(_ k: Int) -> Double {
                let us: UInt8 = k < 4 ? (sc[k] & 0xF) | ((sc[k + 8] & 3) << 4)
                    : k < 8 ? (sc[k] & 0xF) | (((sc[k + 4] >> 2) & 3) << 4)
                    : k < 12 ? (sc[k - 8] >> 4) | (((sc[k] >> 4) & 3) << 4)
                    : (sc[k - 8] >> 4) | (((sc[k - 4] >> 6) & 3) << 4)
                return Double(Int(us) - 32)
            }
            var i = 0, k = 0, q = 32, mask: UInt8 = 1
            for _ in 0..<2 {
                for shift in stride(from: 0, to: 8, by: 2) {
                    for h in 0..<2 {
                        let dl = d * scale(k)
                        k += 1
                        for l in 0..<16 {
                            let low = Int((u[q + 16 * h + l] >> UInt8(shift)) & 3)
                            v[i] = dl * Double(low - (u[16 * h + l] & mask != 0 ? 0 : 4))
                            o[i] = 4 * abs(dl)
                            i += 1
                        }
                    }
                    mask <<= 1
                }
                q += 32
            }
        case .q4_K, .q5_K, .q6_K:
            // values from the engine's decoder (checked against the gguf package in KQuantTests); offsets here
            var f = [Float](repeating: 0, count: 256)
            if let m = try? WeightMatrix(data: blk, type: GGMLType(rawValue: type.rawValue), rows: 1, cols: 256) {
                f.withUnsafeMutableBufferPointer { m.dequantizeRow(0, into: $0.baseAddress!) }
            }
            for i in 0..<256 { v[i] = Double(f[i]) }
            if type == .q6_K {
                let d = half(blk + 208)
                for i in 0..<256 { o[i] = 32 * abs(d * Double(Int8(bitPattern: u[192 + i / 16]))) }
            } else {
                let dmin = half(blk + 2)
                for i in 0..<256 { o[i] = abs(dmin * Double(kScaleMin(i / 32, u + 4).1)) }
            }
        }
    }

    /// Random weights (rows x cols) and activations (tokens x cols), with float64 values decoded from both.
    struct Case {
        let type: QuantType
        let rows: Int, cols: Int, tokens: Int
        let weights: [UInt8]
        let acts: QuantizedActivations
        let w: [Double], wo: [Double], x: [Double]

        init(_ type: QuantType, rows: Int, cols: Int, tokens: Int, seed: UInt64) throws {
            self.type = type
            self.rows = rows
            self.cols = cols
            self.tokens = tokens
            var rng = Rng(state: seed)
            let nb = cols / type.blockSize
            let bytes = QuantKernelTests.randomBlocks(type, count: rows * nb, &rng)
            var w = [Double](repeating: 0, count: rows * cols), wo = w
            var v = [Double](repeating: 0, count: type.blockSize), o = v
            bytes.withUnsafeBytes { raw in
                for b in 0..<rows * nb {
                    QuantKernelTests.decode(type, raw.baseAddress! + b * type.blockBytes, &v, &o)
                    for i in 0..<type.blockSize {
                        w[b * type.blockSize + i] = v[i]
                        wo[b * type.blockSize + i] = o[i]
                    }
                }
            }
            weights = bytes
            self.w = w
            self.wo = wo
            let format = type.activationFormat
            let acts = try XCTUnwrap(QuantizedActivations(format: format, tokens: tokens, cols: cols))
            acts.setColumns(cols)
            self.acts = acts
            let xf = (0..<tokens * cols).map { _ in Float(rng.uniform() * 2 - 1) }
            xf.withUnsafeBufferPointer { p in
                for t in 0..<tokens { acts.quantize(row: t, from: p.baseAddress! + t * cols) }
            }
            let view = acts.view
            var x = [Double](repeating: 0, count: tokens * cols)
            for t in 0..<tokens {
                for c in 0..<cols { x[t * cols + c] = Double(view.values(t)[c]) * Double(view.scales(t)[c / format.blockSize]) }
            }
            self.x = x
        }

        /// (Σ_c W·x, B) for row r, token t.
        func reference(_ r: Int, _ t: Int) -> (Double, Double) {
            var s = 0.0, b = 0.0
            for c in 0..<cols {
                s += w[r * cols + c] * x[t * cols + c]
                b += (abs(w[r * cols + c]) + wo[r * cols + c]) * abs(x[t * cols + c])
            }
            return (s, b)
        }

        /// y (tokens x yStride, NaN where the kernel must not write) from kernel k over rows and tokens.
        func run(_ k: QuantKernel, rows: Range<Int>, tokens: Range<Int>, yStride: Int) -> [Float] {
            var y = [Float](repeating: .nan, count: self.tokens * yStride)
            weights.withUnsafeBytes { raw in
                y.withUnsafeMutableBufferPointer { out in
                    k.dot(raw.baseAddress!, cols / type.blockSize * type.blockBytes, rows, acts.view, tokens,
                          out.baseAddress!, yStride)
                }
            }
            return y
        }
    }

    /// 9216: wider than 8192, where decode of Q4_K/Q5_K switches to the two-row kernel.
    /// 4096: rows padded apart (QuantizedActivations.rowStride), so a kernel that assumed stride = cols fails.
    static func columns(_ type: QuantType) -> [Int] { type.blockSize == 32 ? [96, 512, 4096] : [512, 4096, 9216] }

    func testActivationRowsOfFourKBMultiplesArePaddedApart() throws {
        for format in [ActivationFormat.q8_0, .q8_K] {
            let acts = try XCTUnwrap(QuantizedActivations(format: format, tokens: 3, cols: 8192))
            acts.setColumns(8192)
            XCTAssertEqual(acts.view.rowStride, 8192 + 256)
            XCTAssertEqual(acts.view.scalesPerRow, (8192 + 256) / format.blockSize)
            acts.setColumns(5120)
            XCTAssertEqual(acts.view.rowStride, 5120)
            // the last row, at its padded offset, quantizes into the buffers and reads back
            let x = [Float](repeating: 0.5, count: 8192)
            acts.setColumns(8192)
            x.withUnsafeBufferPointer { acts.quantize(row: 2, from: $0.baseAddress!) }
            XCTAssertEqual(acts.view.values(2)[8191], 127)
        }
    }

    /// The fast tables this CPU runs, and a note naming those it does not.
    static func fastPaths() -> ([(String, [QuantType: QuantKernel])], String) {
        var paths: [(String, [QuantType: QuantKernel])] = []
        var skipped: [String] = []
        if KernelPath.available.contains(.avx2) { paths.append(("avx2", AVX2Kernels.table)) } else { skipped.append("avx2") }
        if KernelPath.available.contains(.avx512) { paths.append(("avx512", AVX512Kernels.table)) } else { skipped.append("avx512") }
        return (paths, skipped.isEmpty ? "all fast paths checked" : "not on this CPU, not checked: " + skipped.joined(separator: ", "))
    }

    func testQuantKernelsMatchReference() throws {
        let (paths, note) = QuantKernelTests.fastPaths()
        print("QuantKernelTests: \(note)")
        var seed: UInt64 = 1
        for type in QuantType.allCases {
            let generic = try XCTUnwrap(GenericKernels.table[type], "\(type): no generic kernel")
            XCTAssertTrue(generic.format == type.activationFormat, "\(type)")
            for (name, table) in paths {
                XCTAssertNotNil(table[type], "\(type): no \(name) kernel")
                if let k = table[type] { XCTAssertTrue(k.format == type.activationFormat, "\(type) \(name)") }
            }
            for cols in QuantKernelTests.columns(type) {
                for tokens in [1, 3, 4, 5, 9] {
                    seed &+= 1
                    let c = try Case(type, rows: 7, cols: cols, tokens: tokens, seed: seed)
                    let g = c.run(generic, rows: 0..<7, tokens: 0..<tokens, yStride: 7)
                    var worst = 0.0
                    for t in 0..<tokens {
                        for r in 0..<7 {
                            let (ref, bound) = c.reference(r, t)
                            let e = abs(Double(g[t * 7 + r]) - ref) / bound
                            worst = max(worst, e.isNaN ? .infinity : e)
                        }
                    }
                    XCTAssertLessThanOrEqual(worst, 1e-4, "\(type) generic vs float64, cols \(cols), tokens \(tokens)")
                    for (name, table) in paths {
                        guard let k = table[type] else { continue }
                        let f = c.run(k, rows: 0..<7, tokens: 0..<tokens, yStride: 7)
                        var worstFast = 0.0
                        for t in 0..<tokens {
                            for r in 0..<7 {
                                let (_, bound) = c.reference(r, t)
                                let e = abs(Double(f[t * 7 + r]) - Double(g[t * 7 + r])) / bound
                                worstFast = max(worstFast, e.isNaN ? .infinity : e)
                            }
                        }
                        XCTAssertLessThanOrEqual(worstFast, 1e-5, "\(type) \(name) vs generic, cols \(cols), tokens \(tokens) (\(note))")
                    }
                }
            }
        }
    }

    /// Rows and tokens that do not start at 0, and a y stride wider than the rows: only y[t * yStride + r] is written.
    func testQuantKernelsWriteOnlyTheirRowsAndTokens() throws {
        let (paths, note) = QuantKernelTests.fastPaths()
        var seed: UInt64 = 1000
        for type in QuantType.allCases {
            seed &+= 1
            let c = try Case(type, rows: 7, cols: 512, tokens: 9, seed: seed)
            let rows = 2..<6, tokens = 1..<8, stride = 10
            var kernels = [("generic", try XCTUnwrap(GenericKernels.table[type]))]
            for (name, table) in paths { if let k = table[type] { kernels.append((name, k)) } }
            for (name, k) in kernels {
                let y = c.run(k, rows: rows, tokens: tokens, yStride: stride)
                for t in 0..<9 {
                    for i in 0..<stride {
                        let v = y[t * stride + i]
                        if tokens.contains(t) && rows.contains(i) {
                            let (ref, bound) = c.reference(i, t)
                            XCTAssertLessThanOrEqual(abs(Double(v) - ref), 1e-4 * bound, "\(type) \(name) t \(t) r \(i)")
                        } else {
                            XCTAssertTrue(v.isNaN, "\(type) \(name) wrote y[\(t) * \(stride) + \(i)] (\(note))")
                        }
                    }
                }
            }
        }
    }

    /// KBlockDecode and WeightMatrix.dequantizeRow against the float64 reading of every layout above.
    func testBlockDecodeMatchesLayouts() throws {
        var rng = Rng(state: 77)
        for type in QuantType.allCases {
            let blocks = 8
            let bytes = QuantKernelTests.randomBlocks(type, count: blocks, &rng)
            let cols = blocks * type.blockSize
            var v = [Double](repeating: 0, count: type.blockSize), o = v
            var out = [Float](repeating: .nan, count: cols), direct = [Float](repeating: .nan, count: type.blockSize)
            try bytes.withUnsafeBytes { raw in
                let m = try WeightMatrix(data: raw.baseAddress!, type: GGMLType(rawValue: type.rawValue), rows: 1, cols: cols)
                out.withUnsafeMutableBufferPointer { m.dequantizeRow(0, into: $0.baseAddress!) }
                for b in 0..<blocks {
                    let blk = raw.baseAddress! + b * type.blockBytes
                    QuantKernelTests.decode(type, blk, &v, &o)
                    direct.withUnsafeMutableBufferPointer { p in
                        if type == .q2_K { KBlockDecode.q2_K(blk, p.baseAddress!) }
                        if type == .q3_K { KBlockDecode.q3_K(blk, p.baseAddress!) }
                    }
                    for i in 0..<type.blockSize {
                        // float decoding rounds d·sc·q and the min once or twice each
                        let tol = 1e-6 * (abs(v[i]) + o[i]) + 1e-12
                        XCTAssertEqual(Double(out[b * type.blockSize + i]), v[i], accuracy: tol, "\(type) dequantizeRow \(b) \(i)")
                        if type == .q2_K || type == .q3_K {
                            XCTAssertEqual(Double(direct[i]), v[i], accuracy: tol, "\(type) KBlockDecode \(b) \(i)")
                        }
                    }
                }
            }
        }
    }
}
