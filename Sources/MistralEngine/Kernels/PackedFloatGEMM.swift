// The packed float GEMM (weights in BF16Panels, converted once at load) run over a worker pool: the one place its
// kernels meet the CPU path (KernelDispatch.path) and the compute mode. Used by the vision encoder; nothing in it is
// vision-specific.
import MistralKernels
import MistralKernelsAVX512
import Glibc

extension FloatGEMMCompute {
    /// MISTRAL_VISION_COMPUTE=f32|bf16 if set, else f32: the exact mode is the default, so every fidelity bound
    /// holds without a setting; bf16 trades <= 2^-8 relative error per product for twice the throughput.
    public static let visionDefault: FloatGEMMCompute = {
        guard let v = getenv("MISTRAL_VISION_COMPUTE"), let m = FloatGEMMCompute(rawValue: String(cString: v)) else {
            return .f32
        }
        return m
    }()

    /// The kernel this mode runs on the current path: bf16 needs AVX-512 BF16, else the f32 kernel runs.
    public var effective: FloatGEMMCompute {
        self == .bf16 && KernelDispatch.path == .avx512 && KernelPath.hasAVX512BF16 ? .bf16 : .f32
    }
}

/// Buffers one caller keeps for its packed GEMM calls (one call at a time).
public final class PackedGEMMScratch: @unchecked Sendable {
    let xb: UnsafeMutablePointer<UInt32>
    let xbWords: Int
    let pad: UnsafeMutablePointer<Float>
    let padStride: Int

    /// `activationFloats`: the most n x K of any call (bf16 activation pairs); `maxCols` the widest K.
    public init(activationFloats: Int, maxCols: Int, threads: Int) throws {
        xbWords = activationFloats / 2 + BF16Panels.rowBlock * maxCols
        padStride = BF16Panels.rowBlock * maxCols
        xb = try allocateZeroed(UInt32.self, count: xbWords, what: "bf16 activations")
        do {
            pad = try allocateZeroed(Float.self, count: threads * padStride, what: "GEMM pad rows")
        } catch {
            free(xb)
            throw error
        }
    }

    static func bytes(activationFloats: Int, maxCols: Int, threads: Int) -> Double {
        Double(activationFloats) * 2 + Double(BF16Panels.rowBlock * maxCols) * Double(4 + 4 * threads)
    }

    deinit {
        free(xb)
        free(pad)
    }
}

public enum PackedFloatGEMM {
    /// y[t * ldy + r] = Σ_k W[r, k] · x[t * ldx + k] for t in 0..<n; false (nothing written) when the scratch is
    /// too small for this call, so the caller can take its unpacked path.
    @discardableResult
    public static func multiply(_ w: BF16Panels, x: UnsafePointer<Float>, ldx: Int, n: Int, y: UnsafeMutablePointer<Float>,
                         ldy: Int, compute: FloatGEMMCompute, pool: WorkerPool, scratch: PackedGEMMScratch) -> Bool {
        guard n > 0 else { return true }
        let threads = pool.threadCount
        let mr = BF16Panels.rowBlock
        let rowsPadded = (n + mr - 1) / mr * mr
        guard scratch.padStride >= mr * w.cols,
              compute.effective == .f32 || rowsPadded * w.pairs <= scratch.xbWords else { return false }
        let path = KernelDispatch.path
        let mode = compute.effective
        let xb: UnsafePointer<UInt32>? = mode == .bf16 ? UnsafePointer(scratch.xb) : nil
        if mode == .bf16 {
            // Round the activations once per call (every panel reuses them); zero the padding rows.
            let sx = scratch.xb, pairs = w.pairs
            pool.run { tid in
                let rows = WorkerPool.range(of: n, thread: tid, threads: threads, granularity: mr)
                BF16Panels.packActivations(x, ldx: ldx, rows: rows, pairs: pairs, into: sx)
            }
            (scratch.xb + n * pairs).update(repeating: 0, count: (rowsPadded - n) * pairs)
        }
        let pads = scratch.pad, padStride = scratch.padStride
        let splitPanels = w.panelCount >= 2 * threads || n < threads * mr
        pool.run { tid in
            let a = BF16GEMMArgs(x: x, ldx: ldx, xb: xb, n: n, w: w, y: y, ldy: ldy, pad: pads + tid * padStride)
            let panels = splitPanels ? WorkerPool.range(of: w.panelCount, thread: tid, threads: threads) : 0..<w.panelCount
            let rows = splitPanels ? 0..<n : WorkerPool.range(of: n, thread: tid, threads: threads, granularity: mr)
            switch path {
            case .avx512:
                if mode == .bf16 { BF16GEMMAVX512.runBF16(a, panels: panels, rows: rows) } else {
                    BF16GEMMAVX512.runF32(a, panels: panels, rows: rows)
                }
            case .avx2:
                BF16GEMMAVX2.runF32(a, panels: panels, rows: rows)
            case .generic:
                reference(a, panels: panels, rows: rows)
            }
        }
        return true
    }

    /// The generic path: the plain-Swift reference over this worker's panels and rows.
    static func reference(_ a: BF16GEMMArgs, panels: Range<Int>, rows: Range<Int>) {
        let w = a.w
        let r0 = panels.lowerBound * BF16Panels.width, r1 = min(w.rows, panels.upperBound * BF16Panels.width)
        guard r0 < r1, !rows.isEmpty else { return }
        for t in rows {
            for r in r0..<r1 {
                var s: Float = 0
                for k in 0..<w.cols { s += a.x[t * a.ldx + k] * w.weight(r, k) }
                a.y[t * a.ldy + r] = s
            }
        }
    }
}
