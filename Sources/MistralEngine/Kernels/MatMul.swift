// Y = X · Wᵀ for n activation rows. Quantized weights go through their kernel (KernelDispatch): the input rows
// are quantized once to the kernel's int8 format and every weight row is multiplied against them in place, up
// to 4 tokens per unpacked row (prompt batches), one token for decode. Float weights use SIMD16 FMA loops.
// Rows of W are split across the worker pool; each worker walks its rows in tiles of 16 that stay in L1/L2
// while chunks of tokens pass over them.
import MistralKernels

/// Quantized activations for a batch of up to `rows` tokens, allocated once per session.
public final class ActivationBatch: @unchecked Sendable {  // each row is written by one worker, then only read
    let q8_0: QuantizedActivations
    let q8_K: QuantizedActivations

    public init(rows count: Int, cols: Int) throws {
        guard let a = QuantizedActivations(format: .q8_0, tokens: count, cols: cols),
              let b = QuantizedActivations(format: .q8_K, tokens: count, cols: cols) else {
            throw MistralError(.outOfMemory, "cannot allocate quantized activations for \(count) x \(cols)")
        }
        q8_0 = a
        q8_K = b
    }

    func buffer(_ f: ActivationFormat) -> QuantizedActivations { f == .q8_0 ? q8_0 : q8_K }
}

/// One product of a matmul job: y[t * yStride + r] = (X · Wᵀ)[t, r].
public struct MatMulTarget: @unchecked Sendable {  // y points into run state that only this job writes
    let w: WeightMatrix
    let y: UnsafeMutablePointer<Float>
    let yStride: Int

    public init(_ w: WeightMatrix, y: UnsafeMutablePointer<Float>, yStride: Int) {
        self.w = w
        self.y = y
        self.yStride = yStride
    }
}

/// The input rows cut into segments (segment i = rows starts[i]..<starts[i + 1]), one per sequence of a batched
/// step. Some file-layout quantized kernels group tokens into register tiles counted from the start of their call,
/// and their tiles and their one-token path round differently; run per segment, every sequence's tokens are
/// grouped exactly as in a step of its own, so batching changes no bit of its results. Kernels that compute each
/// token alike in any grouping (KernelDispatch.groupsTokensAlike) take the whole batch at once.
public struct MatMulSegments: @unchecked Sendable {  // points into the step's scratch, read-only during the product
    let starts: UnsafePointer<Int>
    let count: Int

    public init(starts: UnsafePointer<Int>, count: Int) {
        self.starts = starts
        self.count = count
    }
}

/// Sendable view of the raw pointers one matmul hands to its workers; every worker writes disjoint rows of `y`.
struct MatMulArgs: @unchecked Sendable {
    let w: WeightMatrix
    let x: UnsafePointer<Float>
    let n: Int
    let y: UnsafeMutablePointer<Float>
    let yStride: Int
}

public enum MatMul {
    /// About the least weight bytes a thread claims at once in a product of several tokens: a small model's
    /// matrices (SmolLM2's gate/up are 1.1 MB) in 32 chunks per thread cost a claim and a restarted prefetch stream
    /// every 17 KB, which left a batched decode step's matmuls ~25 % slower than in 128 KB chunks.
    public static let minChunkBytes = 128 << 10

    /// Groups of 16 rows per claimed chunk of a product of several tokens: chunks of at least minChunkBytes, at
    /// most 32 per thread (the threads then finish within a thirty-second of a share of each other: the last chunk
    /// of a batched step's output projection is tens of microseconds), in a multiple of the thread count, all but
    /// the last of one size, so that threads running at the same pace finish together (SmolLM2's 576-row matrices
    /// are 1.6-4.3 chunks of 128 KB: cut by size alone, one thread got 23 groups of 36 and the other waited).
    public static func chunkGroups(_ groups: Int, groupBytes: Int, threads: Int) -> Int {
        let threads = max(1, threads)
        let bySize = groups * max(1, groupBytes) / minChunkBytes / threads * threads
        let chunks = min(threads * 32, max(threads, bySize))
        return max(1, (groups + chunks - 1) / chunks)
    }

    /// y[t * yStride + r] = Σ_c W[r, c] · x[t * W.cols + c], for t in 0..<n and every row r of W.
    public static func multiply(_ w: WeightMatrix, x: UnsafePointer<Float>, n: Int,
                                y: UnsafeMutablePointer<Float>, yStride: Int,
                                acts: ActivationBatch, pool: WorkerPool, segments: MatMulSegments? = nil) {
        multiply(MatMulTarget(w, y: y, yStride: yStride), nil, nil, x: x, n: n, acts: acts, pool: pool,
                 segments: segments)
    }

    /// Up to three products of the same input (q/k/v, gate/up) in one dispatch: the input is quantized once and
    /// the rows of all targets are split across the pool as one range.
    public static func multiply(_ t0: MatMulTarget, _ t1: MatMulTarget?, _ t2: MatMulTarget?,
                                x: UnsafePointer<Float>, n: Int, acts: ActivationBatch, pool: WorkerPool,
                                segments: MatMulSegments? = nil) {
        // interleaved matrices are split between threads in whole groups of 16 rows: keep every target's start
        // in the concatenated rows on a group boundary
        let anyInterleaved = t0.w.interleaved || t1?.w.interleaved == true || t2?.w.interleaved == true
        if anyInterleaved, t1 != nil, t0.w.rows % 16 != 0 || (t2 != nil && (t1?.w.rows ?? 0) % 16 != 0) {
            for t in [t0, t1, t2].compactMap({ $0 }) {
                multiply(t, nil, nil, x: x, n: n, acts: acts, pool: pool, segments: segments)
            }
            return
        }
        let cols = t0.w.cols
        let k0 = KernelDispatch.kernel(t0.w.type, interleaved: t0.w.interleaved)
        let k1 = t1.flatMap { KernelDispatch.kernel($0.w.type, interleaved: $0.w.interleaved) }
        let k2 = t2.flatMap { KernelDispatch.kernel($0.w.type, interleaved: $0.w.interleaved) }
        let needsQ8_0 = [k0, k1, k2].contains { $0?.format == .q8_0 }
        let needsQ8_K = [k0, k1, k2].contains { $0?.format == .q8_K }
        if needsQ8_0 { acts.q8_0.setColumns(cols) }
        if needsQ8_K { acts.q8_K.setColumns(cols) }
        if needsQ8_0 || needsQ8_K {
            @inline(__always) func prepare(_ t: Int) {
                if needsQ8_0 { acts.q8_0.quantize(row: t, from: x + t * cols) }
                if needsQ8_K { acts.q8_K.quantize(row: t, from: x + t * cols) }
            }
            if n == 1 {
                prepare(0)
            } else {
                pool.share(n, chunk: 1) { _, rows in for t in rows { prepare(t) } }
            }
        }
        let rows0 = t0.w.rows, rows1 = t1?.w.rows ?? 0, rows2 = t2?.w.rows ?? 0
        // whole groups of 16 rows (a row tile; an interleaved group): one contiguous range per thread for a single
        // token (a memory-bound stream, best read in long runs), else chunks that the threads claim as they go
        let groups = (rows0 + rows1 + rows2 + 15) / 16
        let threads = pool.threadCount
        let chunk = n == 1 ? (groups + threads - 1) / threads
            : chunkGroups(groups, groupBytes: 16 * t0.w.rowBytes, threads: threads)
        pool.share(groups, chunk: chunk) { _, chunk in
            let all = chunk.lowerBound * 16..<min(rows0 + rows1 + rows2, chunk.upperBound * 16)
            // map this chunk of the concatenated rows back onto each target
            run(t0, k0, base: 0, slice: all, x: x, n: n, acts: acts, segments: segments)
            if let t1 { run(t1, k1, base: rows0, slice: all, x: x, n: n, acts: acts, segments: segments) }
            if let t2 { run(t2, k2, base: rows0 + rows1, slice: all, x: x, n: n, acts: acts, segments: segments) }
        }
    }

    /// Computes the rows of `target` that fall in `slice` of the concatenated rows (target starts at `base`).
    @inline(__always)
    static func run(_ target: MatMulTarget, _ kernel: QuantKernel?, base: Int, slice: Range<Int>,
                    x: UnsafePointer<Float>, n: Int, acts: ActivationBatch, segments: MatMulSegments?) {
        let lo = max(slice.lowerBound, base) - base, hi = min(slice.upperBound, base + target.w.rows) - base
        guard lo < hi else { return }
        if let kernel {
            let view = acts.buffer(kernel.format).view
            if let segments, segments.count > 1,
               !KernelDispatch.groupsTokensAlike(target.w.type, interleaved: target.w.interleaved) {
                rowsKernel(target, kernel, lo..<hi, view: view, segments: segments)
            } else {
                rowsKernel(target, kernel, lo..<hi, view: view, n: n)
            }
            return
        }
        let args = MatMulArgs(w: target.w, x: x, n: n, y: target.y, yStride: target.yStride)
        switch target.w.type {  // every quantized type has a kernel (GenericKernels covers all of them)
        case .f32: rowsF32(args, lo..<hi)
        case .f16: rowsF16(args, lo..<hi)
        case .bf16: rowsBF16(args, lo..<hi)
        default: break
        }
    }

    /// Token chunks of up to 64 pass over row tiles of 16: the tile's weights stay in L1/L2 while the chunk's
    /// activations (64 x cols bytes) stay in L2.
    static func rowsKernel(_ t: MatMulTarget, _ k: QuantKernel, _ rows: Range<Int>, view: ActivationView, n: Int) {
        let w = t.w
        if n <= 4 {
            k.dot(w.data, w.rowBytes, rows, view, 0..<n, t.y, t.yStride)
            return
        }
        var t0 = 0
        while t0 < n {
            let tokens = t0..<min(t0 + 64, n)
            var r0 = rows.lowerBound
            while r0 < rows.upperBound {
                let tile = r0..<min(r0 + 16, rows.upperBound)
                k.dot(w.data, w.rowBytes, tile, view, tokens, t.y, t.yStride)
                r0 = tile.upperBound
            }
            t0 = tokens.upperBound
        }
    }

    /// The same per segment: each row tile against every segment's tokens in turn (the tile stays in L1/L2, so
    /// the weights are still read once for all segments), each segment grouped as rowsKernel groups a call of its own.
    static func rowsKernel(_ t: MatMulTarget, _ k: QuantKernel, _ rows: Range<Int>, view: ActivationView,
                           segments: MatMulSegments) {
        let w = t.w
        var r0 = rows.lowerBound
        while r0 < rows.upperBound {
            let tile = r0..<min(r0 + 16, rows.upperBound)
            for i in 0..<segments.count {
                let lo = segments.starts[i], hi = segments.starts[i + 1]
                if hi - lo <= 4 {
                    if lo < hi { k.dot(w.data, w.rowBytes, tile, view, lo..<hi, t.y, t.yStride) }
                    continue
                }
                var t0 = lo
                while t0 < hi {
                    let tokens = t0..<min(t0 + 64, hi)
                    k.dot(w.data, w.rowBytes, tile, view, tokens, t.y, t.yStride)
                    t0 = tokens.upperBound
                }
            }
            r0 = tile.upperBound
        }
    }

    // MARK: float weights x float activations

    static func rowsF32(_ a: MatMulArgs, _ rows: Range<Int>) {
        let n = a.w.cols
        for r in rows {
            let wr = a.w.row(r).assumingMemoryBound(to: Float.self)
            for t in 0..<a.n {
                a.y[t * a.yStride + r] = dot(wr, a.x + t * n, n)
            }
        }
    }

    static func rowsF16(_ a: MatMulArgs, _ rows: Range<Int>) {
        let n = a.w.cols
        for r in rows {
            let wr = a.w.row(r).assumingMemoryBound(to: UInt16.self)
            for t in 0..<a.n {
                let x = a.x + t * n
                var acc = SIMD16<Float>()
                var i = 0
                while i + 16 <= n {
                    var wv = SIMD16<Float>()
                    for l in 0..<16 { wv[l] = halfToFloat(wr[i + l]) }
                    acc.addProduct(wv, UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self))
                    i += 16
                }
                var tail: Float = 0
                while i < n { tail += halfToFloat(wr[i]) * x[i]; i += 1 }
                a.y[t * a.yStride + r] = acc.sum() + tail
            }
        }
    }

    static func rowsBF16(_ a: MatMulArgs, _ rows: Range<Int>) {
        let n = a.w.cols
        for r in rows {
            let wr = a.w.row(r).assumingMemoryBound(to: UInt16.self)
            for t in 0..<a.n {
                let x = a.x + t * n
                var acc = SIMD16<Float>()
                var i = 0
                while i + 16 <= n {
                    var bits = SIMD16<UInt32>()
                    for l in 0..<16 { bits[l] = UInt32(wr[i + l]) << 16 }
                    acc.addProduct(unsafeBitCast(bits, to: SIMD16<Float>.self),
                                   UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self))
                    i += 16
                }
                var tail: Float = 0
                while i < n { tail += bf16ToFloat(wr[i]) * x[i]; i += 1 }
                a.y[t * a.yStride + r] = acc.sum() + tail
            }
        }
    }
}

/// Σ a[i]·b[i] with two SIMD16 accumulators.
@inline(__always)
public func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var (lanes, i) = dotLanes(a, b, n)
    var tail: Float = 0
    while i < n { tail += a[i] * b[i]; i += 1 }
    return lanes.sum() + tail
}

/// dot's 16 lane sums over the first n - n % 16 values (two accumulators, added), and that count: a caller that
/// wants another reduction of the lanes than SIMD16.sum()'s one-after-another adds.
@inline(__always)
public func dotLanes(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> (SIMD16<Float>, Int) {
    var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
    var i = 0
    while i + 32 <= n {
        acc0.addProduct(UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self),
                        UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self))
        acc1.addProduct(UnsafeRawPointer(a + i + 16).loadUnaligned(as: SIMD16<Float>.self),
                        UnsafeRawPointer(b + i + 16).loadUnaligned(as: SIMD16<Float>.self))
        i += 32
    }
    while i + 16 <= n {
        acc0.addProduct(UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self),
                        UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self))
        i += 16
    }
    return (acc0 + acc1, i)
}

/// y[i] += s · x[i]
@inline(__always)
public func axpy(_ s: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    // 16 at a time without the aliasing checks LLVM adds to the plain loop (attention calls this per position)
    let s16 = SIMD16<Float>(repeating: s)
    var i = 0
    while i + 16 <= n {
        let yp = UnsafeMutableRawPointer(y + i)
        var v = yp.loadUnaligned(as: SIMD16<Float>.self)
        v.addProduct(s16, UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self))
        yp.storeBytes(of: v, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { y[i] += s * x[i]; i += 1 }
}
