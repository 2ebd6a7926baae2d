// Element-wise and normalisation operations of the decoder, on raw float buffers.
import Glibc

public enum Ops {
    /// out = x / sqrt(mean(x²) + eps) * weight, for one row of n values.
    @inline(__always)
    public static func rmsNorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                               _ n: Int, eps: Float) {
        let ss = dot(x, x, n)
        let scale = 1 / (ss / Float(n) + eps).squareRoot()
        for i in 0..<n { out[i] = x[i] * scale * weight[i] }
    }

    /// In-place softmax over n values.
    @inline(__always)
    public static func softmax(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        var m = -Float.infinity
        for i in 0..<n { m = max(m, x[i]) }
        var sum: Float = 0
        for i in 0..<n {
            let e = expf(x[i] - m)
            x[i] = e
            sum += e
        }
        let inv = 1 / sum
        for i in 0..<n { x[i] *= inv }
    }

    /// gate = silu(gate) * up, element-wise (16 lanes at a time with the polynomial exp).
    @inline(__always)
    public static func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        var i = 0
        while i + 16 <= n {
            let g = UnsafeRawPointer(gate + i).loadUnaligned(as: SIMD16<Float>.self)
            let u = UnsafeRawPointer(up + i).loadUnaligned(as: SIMD16<Float>.self)
            let e = VisionAttention.exp16(-g)
            UnsafeMutableRawPointer(gate + i).storeBytes(of: g / (1 + e) * u, as: SIMD16<Float>.self)
            i += 16
        }
        while i < n {
            let g = gate[i]
            gate[i] = g / (1 + expf(-g)) * up[i]
            i += 1
        }
    }

    /// swiGLU over `rows` rows of `n` values, in chunks of 2048 values the pool's threads claim (a batched decode
    /// step of 8 small-model rows, 12288 values, is worth splitting: one thread alone kept the other waiting).
    public static func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, rows: Int, n: Int,
                              pool: WorkerPool) {
        let total = rows * n, chunk = 2048
        if total < 2 * chunk || pool.threadCount == 1 {
            swiGLU(gate, up, total)
            return
        }
        let args = (UInt(bitPattern: gate), UInt(bitPattern: up))  // Sendable: each chunk is written by one thread
        pool.share((total + chunk - 1) / chunk, chunk: 1) { _, chunks in
            guard let g = UnsafeMutablePointer<Float>(bitPattern: args.0), let u = UnsafePointer<Float>(bitPattern: args.1)
            else { return }
            let lo = chunks.lowerBound * chunk, hi = min(total, chunks.upperBound * chunk)
            swiGLU(g + lo, u + lo, hi - lo)
        }
    }

    /// y += x
    @inline(__always)
    public static func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += x[i] }
    }

    /// Rotates one head of `headDim` values at a position whose angles' cos/sin are given (rotDim/2 each).
    /// `interleaved`: pairs (2i, 2i+1), as ggml's "normal" rope on GGUF llama weights; else (i, i + rotDim/2).
    @inline(__always)
    public static func rope(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
                            rotDim: Int, interleaved: Bool) {
        let half = rotDim / 2
        if interleaved {
            for i in 0..<half {
                let a = x[2 * i], b = x[2 * i + 1]
                x[2 * i] = a * cos[i] - b * sin[i]
                x[2 * i + 1] = a * sin[i] + b * cos[i]
            }
        } else {
            for i in 0..<half {
                let a = x[i], b = x[i + half]
                x[i] = a * cos[i] - b * sin[i]
                x[i + half] = a * sin[i] + b * cos[i]
            }
        }
    }
}

/// Zeroed heap memory that reports failure instead of aborting (Swift's allocate traps on out-of-memory).
public func allocateZeroed<T>(_ type: T.Type, count: Int, what: String) throws -> UnsafeMutablePointer<T> {
    let (bytes, overflow) = max(count, 1).multipliedReportingOverflow(by: MemoryLayout<T>.stride)
    guard !overflow, let raw = calloc(1, bytes) else {
        throw MistralError(.outOfMemory, "cannot allocate \(what) (\(count) x \(MemoryLayout<T>.stride) bytes)")
    }
    return raw.bindMemory(to: T.self, capacity: max(count, 1))
}

/// Memory for `bytes` of weights written once at load (not zeroed; free() releases it), in transparent huge pages
/// where the kernel allows: with 4 KiB pages, faulting in gigabytes of repacked weights cost seconds per GB.
public func allocateWeights(_ bytes: Int, what: String) throws -> UnsafeMutableRawPointer {
    let huge = 2 << 20
    var p: UnsafeMutableRawPointer?
    guard bytes > 0, posix_memalign(&p, bytes >= huge ? huge : 64, bytes) == 0, let p else {
        throw MistralError(.outOfMemory, "cannot allocate \(what) (\(bytes) bytes)")
    }
    if bytes >= huge { _ = madvise(p, (bytes + huge - 1) / huge * huge, MADV_HUGEPAGE) }
    return p
}
