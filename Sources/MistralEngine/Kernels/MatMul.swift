// Y = X · Wᵀ for n activation rows. Quantized weights are multiplied against activations quantized to 8 bits in
// blocks of 32 (as llama.cpp does), so the inner loops are integer dot products LLVM vectorizes; float weights
// use SIMD16 FMA loops. Rows of W are split across the worker pool; each weight row is reused for all n
// activation rows while it is in L1.

/// Scratch for activations quantized to Q8 blocks: per block 32 int8 values, a scale d and s = d * Σq.
public struct Q8Activations: @unchecked Sendable {  // owned by one session; written before workers read it
    let qs: UnsafeMutablePointer<Int8>
    let d: UnsafeMutablePointer<Float>
    let s: UnsafeMutablePointer<Float>
    let capacity: Int  // values

    public init(capacity: Int) {
        let c = (capacity + 31) / 32 * 32
        qs = .allocate(capacity: c)
        d = .allocate(capacity: c / 32)
        s = .allocate(capacity: c / 32)
        self.capacity = c
    }

    public func deallocate() {
        qs.deallocate()
        d.deallocate()
        s.deallocate()
    }

    /// Quantizes n rows of `cols` floats (cols a multiple of 32).
    func quantize(_ x: UnsafePointer<Float>, rows n: Int, cols: Int) {
        let nb = n * cols / 32
        for b in 0..<nb {
            let src = x + b * 32
            var amax: Float = 0
            for j in 0..<32 { amax = max(amax, abs(src[j])) }
            let scale = amax / 127
            let inv: Float = scale > 0 ? 1 / scale : 0
            let dst = qs + b * 32
            var sum: Int32 = 0
            for j in 0..<32 {
                let q = Int32((src[j] * inv).rounded(.toNearestOrEven))
                dst[j] = Int8(truncatingIfNeeded: q)
                sum &+= q
            }
            d[b] = scale
            s[b] = scale * Float(sum)
        }
    }
}

/// Sendable view of the raw pointers one matmul hands to its workers; every worker writes disjoint rows of `y`.
struct MatMulArgs: @unchecked Sendable {
    let w: WeightMatrix
    let x: UnsafePointer<Float>
    let n: Int
    let y: UnsafeMutablePointer<Float>
    let yStride: Int
    let q8: Q8Activations
}

public enum MatMul {
    /// y[t * yStride + r] = Σ_c W[r, c] · x[t * W.cols + c], for t in 0..<n and every row r of W.
    public static func multiply(_ w: WeightMatrix, x: UnsafePointer<Float>, n: Int,
                                y: UnsafeMutablePointer<Float>, yStride: Int,
                                q8: Q8Activations, pool: WorkerPool) {
        let quantized = w.type == .q4_0 || w.type == .q4_1 || w.type == .q8_0
        if quantized { q8.quantize(x, rows: n, cols: w.cols) }
        let args = MatMulArgs(w: w, x: x, n: n, y: y, yStride: yStride, q8: q8)
        let threads = pool.threadCount
        pool.run { tid in
            let rows = WorkerPool.range(of: args.w.rows, thread: tid, threads: threads, granularity: 16)
            if rows.isEmpty { return }
            switch args.w.type {
            case .q4_0: rowsQ4_0(args, rows)
            case .q4_1: rowsQ4_1(args, rows)
            case .q8_0: rowsQ8_0(args, rows)
            case .f32: rowsF32(args, rows)
            case .f16: rowsF16(args, rows)
            case .bf16: rowsBF16(args, rows)
            default: break
            }
        }
    }

    // MARK: quantized weights x Q8 activations
    // Each block's integer products are kept as 8 lanes and scaled into a SIMD8 float accumulator, so the loop over
    // blocks has no scalar dependency chain; the horizontal sum happens once per row.

    /// Σ_j lo/hi nibbles of 16 bytes times 32 int8 activations, as 8 lanes (lane j covers bytes j and j+8).
    @inline(__always)
    static func nibbleDot(_ qs: UnsafePointer<UInt8>, _ q: UnsafePointer<Int8>) -> SIMD8<Float> {
        var v = SIMD8<Float>()
        for j in 0..<8 {
            let a = qs[j], b = qs[j + 8]
            let s = Int32(a & 15) &* Int32(q[j]) &+ Int32(b & 15) &* Int32(q[j + 8])
                &+ Int32(a >> 4) &* Int32(q[j + 16]) &+ Int32(b >> 4) &* Int32(q[j + 24])
            v[j] = Float(s)
        }
        return v
    }

    static func rowsQ4_0(_ a: MatMulArgs, _ rows: Range<Int>) {
        let nb = a.w.cols / 32
        for r in rows {
            let wr = a.w.row(r)
            for t in 0..<a.n {
                let qx = UnsafePointer(a.q8.qs + t * a.w.cols)
                let dx = UnsafePointer(a.q8.d + t * nb)
                let sx = UnsafePointer(a.q8.s + t * nb)
                var acc = SIMD8<Float>()
                var offset: Float = 0
                for b in 0..<nb {
                    let blk = wr + b * 18
                    let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
                    let qs = (blk + 2).assumingMemoryBound(to: UInt8.self)
                    acc.addProduct(nibbleDot(qs, qx + b * 32), SIMD8(repeating: d * dx[b]))
                    offset += d * sx[b]  // the -8 of every nibble: -8 · d · dx · Σq = -8 · d · sx
                }
                a.y[t * a.yStride + r] = acc.sum() - 8 * offset
            }
        }
    }

    static func rowsQ4_1(_ a: MatMulArgs, _ rows: Range<Int>) {
        let nb = a.w.cols / 32
        for r in rows {
            let wr = a.w.row(r)
            for t in 0..<a.n {
                let qx = UnsafePointer(a.q8.qs + t * a.w.cols)
                let dx = UnsafePointer(a.q8.d + t * nb)
                let sx = UnsafePointer(a.q8.s + t * nb)
                var acc = SIMD8<Float>()
                var offset: Float = 0
                for b in 0..<nb {
                    let blk = wr + b * 20
                    let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
                    let m = halfToFloat(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
                    let qs = (blk + 4).assumingMemoryBound(to: UInt8.self)
                    acc.addProduct(nibbleDot(qs, qx + b * 32), SIMD8(repeating: d * dx[b]))
                    offset += m * sx[b]
                }
                a.y[t * a.yStride + r] = acc.sum() + offset
            }
        }
    }

    static func rowsQ8_0(_ a: MatMulArgs, _ rows: Range<Int>) {
        let nb = a.w.cols / 32
        for r in rows {
            let wr = a.w.row(r)
            for t in 0..<a.n {
                let qx = UnsafePointer(a.q8.qs + t * a.w.cols)
                let dx = UnsafePointer(a.q8.d + t * nb)
                var acc = SIMD8<Float>()
                for b in 0..<nb {
                    let blk = wr + b * 34
                    let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
                    let qs = (blk + 2).assumingMemoryBound(to: Int8.self)
                    let q = qx + b * 32
                    var v = SIMD8<Float>()
                    for j in 0..<8 {
                        let s = Int32(qs[j]) &* Int32(q[j]) &+ Int32(qs[j + 8]) &* Int32(q[j + 8])
                            &+ Int32(qs[j + 16]) &* Int32(q[j + 16]) &+ Int32(qs[j + 24]) &* Int32(q[j + 24])
                        v[j] = Float(s)
                    }
                    acc.addProduct(v, SIMD8(repeating: d * dx[b]))
                }
                a.y[t * a.yStride + r] = acc.sum()
            }
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
    var tail: Float = 0
    while i < n { tail += a[i] * b[i]; i += 1 }
    return (acc0 + acc1).sum() + tail
}

/// y[i] += s · x[i]
@inline(__always)
public func axpy(_ s: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { y[i] += s * x[i] }
}
