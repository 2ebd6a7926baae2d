// The vision encoder's fast kernels against their plain references: the packed float GEMM (every CPU path the
// machine has, f32 and bf16 compute) and the flash attention tile (AVX-512) against a softmax in double precision.
import Foundation
import XCTest
import MistralEngine
import MistralKernels
import MistralKernelsAVX512

final class VisionKernelTests: XCTestCase {
    struct Rand {
        var state: UInt64
        mutating func next() -> Float {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Float(state >> 40) / Float(1 << 24) * 2 - 1
        }
    }

    func testPackedGEMMMatchesReferenceOnEveryPath() throws {
        let pool = try WorkerPool(threadCount: 2)
        defer { KernelDispatch.use(KernelPath.selected) }
        let skipped = KernelPath.allCases.filter { !KernelPath.available.contains($0) }
        if !skipped.isEmpty { print("packed GEMM: paths this CPU lacks, skipped: \(skipped)") }
        if !KernelPath.hasAVX512BF16 { print("packed GEMM: no AVX-512 BF16, bf16 mode runs the f32 kernel") }
        // (weight rows, cols, activation rows): partial panels, partial row blocks, several K blocks, one row.
        for (rows, cols, n) in [(72, 588, 13), (32, 64, 8), (100, 1030, 37), (5, 6, 1), (64, 2048, 70)] {
            var rng = Rand(state: UInt64(rows * 7919 + cols))
            let w = (0..<(rows * cols)).map { _ in bf16ToFloat(bf16Bits(rng.next())) }
            let panels = try XCTUnwrap(BF16Panels(rows: rows, cols: cols, exact: true) { r, row in
                for k in 0..<cols { row[k] = w[r * cols + k] }
            })
            for r in 0..<rows { for k in 0..<cols { XCTAssertEqual(panels.weight(r, k), w[r * cols + k]) } }
            let ldx = cols + 3, ldy = rows + 5
            let x = (0..<(n * ldx)).map { _ in rng.next() * 3 }
            var refF32 = [Float](repeating: 0, count: n * ldy), refBF16 = refF32, scale = refF32
            x.withUnsafeBufferPointer { xp in
                panels.referenceMultiply(x: xp.baseAddress!, ldx: ldx, n: n, y: &refF32, ldy: ldy, roundActivations: false)
                panels.referenceMultiply(x: xp.baseAddress!, ldx: ldx, n: n, y: &refBF16, ldy: ldy, roundActivations: true)
            }
            for t in 0..<n { for r in 0..<rows {
                scale[t * ldy + r] = (0..<cols).reduce(Float(0)) { $0 + abs(x[t * ldx + $1] * w[r * cols + $1]) }
            } }
            let scratch = try PackedGEMMScratch(activationFloats: n * cols, maxCols: cols, threads: 2)
            for path in KernelPath.available {
                XCTAssertTrue(KernelDispatch.use(path))
                for mode in FloatGEMMCompute.allCases {
                    var y = [Float](repeating: .nan, count: n * ldy)
                    let ok = x.withUnsafeBufferPointer { xp in
                        PackedFloatGEMM.multiply(panels, x: xp.baseAddress!, ldx: ldx, n: n, y: &y, ldy: ldy,
                                                 compute: mode, pool: pool, scratch: scratch)
                    }
                    XCTAssertTrue(ok)
                    let what = "\(rows)x\(cols) n=\(n) \(path) \(mode)"
                    // Summation order differs from the reference: <= cols ulps of Σ|x·w|.
                    let sumTol = Float(cols) * 1.2e-7
                    var worst: Float = 0
                    for t in 0..<n {
                        for r in 0..<rows {
                            let i = t * ldy + r
                            if mode.effective == .bf16 {
                                XCTAssertLessThanOrEqual(abs(y[i] - refBF16[i]), sumTol * scale[i] + 1e-6, what)
                                // Activations rounded to 8 significant bits: <= 2^-8 of Σ|x·w| from the f32 result.
                                XCTAssertLessThanOrEqual(abs(y[i] - refF32[i]), (1.0 / 256 + sumTol) * scale[i] + 1e-6, what)
                            } else {
                                XCTAssertLessThanOrEqual(abs(y[i] - refF32[i]), sumTol * scale[i] + 1e-6, what)
                            }
                            worst = max(worst, abs(y[i] - refF32[i]) / max(scale[i], 1e-30))
                        }
                        for r in rows..<ldy { XCTAssertTrue(y[t * ldy + r].isNaN, "\(what): wrote past the row") }
                    }
                    print("packed GEMM \(what): max |y - f32 ref| / Σ|x·w| = \(worst)")
                }
            }
        }
    }

    func testFlashAttentionMatchesSoftmax() throws {
        guard KernelPath.available.contains(.avx512) else {
            print("flash attention: no AVX-512 on this CPU, skipped (the full-softmax path runs instead)")
            return
        }
        for (len, hd, nq) in [(1, 16, 1), (37, 64, 16), (130, 64, 5), (200, 16, 3), (64, 64, 8), (65, 32, 2), (300, 64, 15)] {
            var rng = Rand(state: UInt64(len * 31 + hd * 7 + nq))
            let ldq = hd * 3 + 16, ldv = hd * 2 + 16, ldo = hd + 16
            let q = (0..<(nq * ldq)).map { _ in rng.next() * 4 }
            // Blocked keys; the pad keys of the last block hold garbage: the kernel must mask them.
            let kT = (0..<(hd * FlashAttentionAVX512.paddedKeys(len))).map { _ in rng.next() * 4 }
            func key(_ j: Int, _ e: Int) -> Float { kT[FlashAttentionAVX512.keyIndex(j, e, headDim: hd)] }
            let v = (0..<(len * ldv)).map { _ in rng.next() }
            var out = [Float](repeating: .nan, count: nq * ldo)
            var scratch = [Float](repeating: 0, count: FlashAttentionAVX512.scratchFloats(headDim: hd))
            let scale = 1 / Float(hd).squareRoot()
            FlashAttentionAVX512.run(q: q, ldq: ldq, nq: nq, kT: kT, v: v, ldv: ldv, len: len, headDim: hd,
                                     scale: scale, out: &out, ldo: ldo, scratch: &scratch)
            for i in 0..<nq {
                var s = [Double](repeating: 0, count: len)
                for j in 0..<len {
                    for e in 0..<hd { s[j] += Double(q[i * ldq + e]) * Double(key(j, e)) }
                    s[j] *= Double(scale)
                }
                let m = s.max() ?? 0
                let p = s.map { Foundation.exp($0 - m) }
                let z = p.reduce(0, +)
                for e in 0..<hd {
                    var o = 0.0
                    for j in 0..<len { o += p[j] * Double(v[j * ldv + e]) }
                    XCTAssertEqual(Double(out[i * ldo + e]), o / z, accuracy: 2e-6, "len \(len) hd \(hd) query \(i) dim \(e)")
                }
                for e in hd..<ldo { XCTAssertTrue(out[i * ldo + e].isNaN, "wrote past the head") }
            }
        }
    }
}
