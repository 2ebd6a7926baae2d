// TEMPORARY (not to be committed): timing of the new Q4 kernels against the old ones.
import XCTest
import Glibc
import MistralEngine
import MistralKernels
import MistralKernelsAVX512

final class ZZScratchTiming: XCTestCase {
    func now() -> Double { var ts = timespec(); clock_gettime(CLOCK_MONOTONIC, &ts); return Double(ts.tv_sec) * 1e9 + Double(ts.tv_nsec) }

    func testZZTiming() throws {
        for (rows, cols) in [(1536, 576), (576, 1536)] {
            for (name, bb) in [("q4_1", 20), ("q4_0", 18)] {
                let nb = cols / 32
                var w = [UInt8](repeating: 0, count: rows * nb * bb)
                var s: UInt64 = 1
                for i in 0..<w.count { s = s &* 6364136223846793005 &+ 1442695040888963407; w[i] = UInt8(truncatingIfNeeded: s >> 33) }
                for b in 0..<rows * nb { w[b * bb] = 0x00; w[b * bb + 1] = 0x20; if bb == 20 { w[b * bb + 2] = 0x00; w[b * bb + 3] = 0xA0 } }
                let x = (0..<4 * cols).map { Float(($0 * 37) % 101 - 50) / 50 }
                let acts = QuantizedActivations(format: .q8_0, tokens: 4, cols: cols)!
                acts.setColumns(cols)
                x.withUnsafeBufferPointer { for t in 0..<4 { acts.quantize(row: t, from: $0.baseAddress! + t * cols) } }
                var olds = [PreparedActivations]()
                for t in 0..<4 { var p = PreparedActivations(capacity: cols); x.withUnsafeBufferPointer { p.prepare(x: $0.baseAddress! + t * cols, cols: cols) }; olds.append(p) }
                var y = [Float](repeating: 0, count: 4 * rows)
                let rowBytes = nb * bb
                func best(_ body: () -> Void) -> Double {
                    for _ in 0..<20 { body() }
                    var m = Double.infinity
                    for _ in 0..<15 {
                        let t0 = now()
                        for _ in 0..<20 { body() }
                        m = min(m, (now() - t0) / 20)
                    }
                    return m
                }
                let blocks = Double(rows * nb)
                w.withUnsafeBytes { wr in
                    y.withUnsafeMutableBufferPointer { yp in
                        let wp = wr.baseAddress!, yb = yp.baseAddress!
                        let old1 = best {
                            if name == "q4_1" { dotRowsQ4_1(w: wp, rowBytes: rowBytes, rows: 0..<rows, cols: cols, act: olds[0], y: yb) }
                            else { dotRowsQ4_0(w: wp, rowBytes: rowBytes, rows: 0..<rows, cols: cols, act: olds[0], y: yb) }
                        }
                        let old4 = best {
                            if name == "q4_1" {
                                dotRowsQ4_1Pair(w: wp, rowBytes: rowBytes, rows: 0..<rows, cols: cols, actA: olds[0], actB: olds[1], yA: yb, yB: yb + rows)
                                dotRowsQ4_1Pair(w: wp, rowBytes: rowBytes, rows: 0..<rows, cols: cols, actA: olds[2], actB: olds[3], yA: yb + 2 * rows, yB: yb + 3 * rows)
                            } else {
                                for t in 0..<4 { dotRowsQ4_0(w: wp, rowBytes: rowBytes, rows: 0..<rows, cols: cols, act: olds[t], y: yb + t * rows) }
                            }
                        }
                        var line = "TIMING \(name) \(rows)x\(cols): old 1tok \(String(format: "%.3f", old1 / blocks)) ns/blk, old 4tok \(String(format: "%.3f", old4 / blocks / 4)) ns/blk/tok"
                        for (path, k) in [("generic", GenericKernels.table), ("avx2", AVX2Kernels.table), ("avx512", AVX512Kernels.table)] {
                            let kern = k[name == "q4_1" ? .q4_1 : .q4_0]!
                            if path == "generic" { continue }
                            let n1 = best { kern.dot(wp, rowBytes, 0..<rows, acts.view, 0..<1, yb, rows) }
                            let n4 = best { kern.dot(wp, rowBytes, 0..<rows, acts.view, 0..<4, yb, rows) }
                            line += " | \(path) 1tok \(String(format: "%.3f", n1 / blocks)) 4tok \(String(format: "%.3f", n4 / blocks / 4))"
                        }
                        print(line)
                    }
                }
            }
        }
    }
}
