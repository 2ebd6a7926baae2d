// Batched kernels of the vision encoder, where hundreds to thousands of rows go through each weight matrix at
// once: a register-tiled Y = X·Wᵀ (weights dequantized to f32 in small panels per thread) and non-causal
// attention within one image, vectorized over keys.
import Glibc
import MistralKernels

/// Sendable view of the raw pointers one vision job hands to its workers; each worker writes disjoint outputs.
struct VisionGEMMArgs: @unchecked Sendable {
    let w: WeightMatrix
    let x: UnsafePointer<Float>
    let ldx: Int
    let n: Int
    let y: UnsafeMutablePointer<Float>
    let ldy: Int
    let panels: UnsafeMutablePointer<Float>
    let panelStride: Int
}

enum VisionGEMM {
    /// Weight rows per panel (a multiple of the 3-row micro-tile).
    static let panelRows = 24

    /// y[t * ldy + r] = Σ_k W[r, k] · x[t * ldx + k] for t in 0..<n and every row r of W.
    /// `panels` holds `pool.threadCount * panelStride` floats, panelStride >= panelRows * W.cols.
    static func multiply(_ w: WeightMatrix, x: UnsafePointer<Float>, ldx: Int, n: Int,
                         y: UnsafeMutablePointer<Float>, ldy: Int, pool: WorkerPool,
                         panels: UnsafeMutablePointer<Float>, panelStride: Int) {
        guard n > 0, w.rows > 0 else { return }
        let a = VisionGEMMArgs(w: w, x: x, ldx: ldx, n: n, y: y, ldy: ldy, panels: panels, panelStride: panelStride)
        let threads = pool.threadCount
        // Split weight rows when there are enough of them, else activation rows.
        if w.rows >= threads * panelRows || n < threads * 4 {
            pool.run { tid in
                let rows = WorkerPool.range(of: w.rows, thread: tid, threads: threads, granularity: 3)
                run(a, rows: rows, acts: 0..<n, panel: a.panels + tid * a.panelStride)
            }
        } else {
            pool.run { tid in
                let acts = WorkerPool.range(of: n, thread: tid, threads: threads, granularity: 4)
                run(a, rows: 0..<w.rows, acts: acts, panel: a.panels + tid * a.panelStride)
            }
        }
    }

    static func run(_ a: VisionGEMMArgs, rows: Range<Int>, acts: Range<Int>, panel: UnsafeMutablePointer<Float>) {
        guard !rows.isEmpty, !acts.isEmpty else { return }
        let k = a.w.cols
        var r0 = rows.lowerBound
        while r0 < rows.upperBound {
            let r1 = min(r0 + panelRows, rows.upperBound)
            let wp: UnsafePointer<Float>
            if a.w.type == .f32 {
                wp = a.w.row(r0).assumingMemoryBound(to: Float.self)
            } else {
                for r in r0..<r1 { a.w.dequantizeRow(r, into: panel + (r - r0) * k) }
                wp = UnsafePointer(panel)
            }
            var t = acts.lowerBound
            while t + 4 <= acts.upperBound {
                var r = r0
                while r + 3 <= r1 {
                    tile4x3(x: a.x + t * a.ldx, ldx: a.ldx, w: wp + (r - r0) * k, k: k, y: a.y + t * a.ldy + r, ldy: a.ldy)
                    r += 3
                }
                while r < r1 {
                    for i in 0..<4 { a.y[(t + i) * a.ldy + r] = dot(wp + (r - r0) * k, a.x + (t + i) * a.ldx, k) }
                    r += 1
                }
                t += 4
            }
            while t < acts.upperBound {
                for r in r0..<r1 { a.y[t * a.ldy + r] = dot(wp + (r - r0) * k, a.x + t * a.ldx, k) }
                t += 1
            }
            r0 = r1
        }
    }

    /// 4 activation rows x 3 weight rows: 12 SIMD8 accumulators, one activation vector live at a time.
    @inline(__always)
    static func tile4x3(x: UnsafePointer<Float>, ldx: Int, w: UnsafePointer<Float>, k: Int,
                        y: UnsafeMutablePointer<Float>, ldy: Int) {
        var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c02 = SIMD8<Float>()
        var c10 = SIMD8<Float>(), c11 = SIMD8<Float>(), c12 = SIMD8<Float>()
        var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c22 = SIMD8<Float>()
        var c30 = SIMD8<Float>(), c31 = SIMD8<Float>(), c32 = SIMD8<Float>()
        let x0 = UnsafeRawPointer(x), x1 = UnsafeRawPointer(x + ldx), x2 = UnsafeRawPointer(x + 2 * ldx)
        let x3 = UnsafeRawPointer(x + 3 * ldx)
        let w0 = UnsafeRawPointer(w), w1 = UnsafeRawPointer(w + k), w2 = UnsafeRawPointer(w + 2 * k)
        var i = 0
        while i + 8 <= k {
            let off = i * 4
            let b0 = w0.loadUnaligned(fromByteOffset: off, as: SIMD8<Float>.self)
            let b1 = w1.loadUnaligned(fromByteOffset: off, as: SIMD8<Float>.self)
            let b2 = w2.loadUnaligned(fromByteOffset: off, as: SIMD8<Float>.self)
            var a = x0.loadUnaligned(fromByteOffset: off, as: SIMD8<Float>.self)
            c00.addProduct(a, b0); c01.addProduct(a, b1); c02.addProduct(a, b2)
            a = x1.loadUnaligned(fromByteOffset: off, as: SIMD8<Float>.self)
            c10.addProduct(a, b0); c11.addProduct(a, b1); c12.addProduct(a, b2)
            a = x2.loadUnaligned(fromByteOffset: off, as: SIMD8<Float>.self)
            c20.addProduct(a, b0); c21.addProduct(a, b1); c22.addProduct(a, b2)
            a = x3.loadUnaligned(fromByteOffset: off, as: SIMD8<Float>.self)
            c30.addProduct(a, b0); c31.addProduct(a, b1); c32.addProduct(a, b2)
            i += 8
        }
        var s = (c00.sum(), c01.sum(), c02.sum(), c10.sum(), c11.sum(), c12.sum(),
                 c20.sum(), c21.sum(), c22.sum(), c30.sum(), c31.sum(), c32.sum())
        while i < k {
            let b0 = w[i], b1 = w[k + i], b2 = w[2 * k + i]
            let a0 = x[i], a1 = x[ldx + i], a2 = x[2 * ldx + i], a3 = x[3 * ldx + i]
            s.0 += a0 * b0; s.1 += a0 * b1; s.2 += a0 * b2
            s.3 += a1 * b0; s.4 += a1 * b1; s.5 += a1 * b2
            s.6 += a2 * b0; s.7 += a2 * b1; s.8 += a2 * b2
            s.9 += a3 * b0; s.10 += a3 * b1; s.11 += a3 * b2
            i += 1
        }
        y[0] = s.0; y[1] = s.1; y[2] = s.2
        y[ldy] = s.3; y[ldy + 1] = s.4; y[ldy + 2] = s.5
        y[2 * ldy] = s.6; y[2 * ldy + 1] = s.7; y[2 * ldy + 2] = s.8
        y[3 * ldy] = s.9; y[3 * ldy + 1] = s.10; y[3 * ldy + 2] = s.11
    }
}

/// One non-causal attention job over the packed images of a chunk.
/// Keys and values are laid out per image and head so that both products run on VisionGEMM's register tile:
/// for the image starting at patch `start` with `len` patches, head h's keys are `len` contiguous rows of headDim at
/// kh + start * qDim + h * len * headDim, and its values transposed are headDim rows of `len` at the same offset
/// of vT.
struct VisionAttentionArgs: @unchecked Sendable {
    let q: UnsafePointer<Float>        // [n][qDim], roped
    let kh: UnsafePointer<Float>       // per image, per head: [len][headDim] roped keys
    let vT: UnsafePointer<Float>       // per image, per head: [headDim][len] values
    let out: UnsafeMutablePointer<Float>  // [n][qDim]
    let scores: UnsafeMutablePointer<Float>  // per thread 4 * scoreStride
    let scoreStride: Int
    let nTotal: Int
    let qDim: Int
    let headDim: Int
    let nHead: Int
    /// (start, count) of each image's patches in the chunk.
    let segments: UnsafePointer<(Int, Int)>
    let segmentCount: Int
}

enum VisionAttention {
    /// Every query attends to every key of its own image; split over (image, head, 4-query tile) tasks.
    static func run(_ a: VisionAttentionArgs, pool: WorkerPool) {
        var tasks = 0
        for s in 0..<a.segmentCount { tasks += (a.segments[s].1 + 3) / 4 * a.nHead }
        let threads = pool.threadCount
        let total = tasks
        pool.run { tid in
            let range = WorkerPool.range(of: total, thread: tid, threads: threads)
            guard !range.isEmpty else { return }
            let scores = a.scores + tid * 4 * a.scoreStride
            var base = 0
            for s in 0..<a.segmentCount {
                let (start, len) = a.segments[s]
                let tiles = (len + 3) / 4
                let count = tiles * a.nHead
                let lo = max(range.lowerBound, base), hi = min(range.upperBound, base + count)
                if lo < hi {
                    for task in lo..<hi {
                        let h = (task - base) / tiles, tile = (task - base) % tiles
                        let q0 = tile * 4
                        head(a, start: start, len: len, h: h, q0: q0, nq: min(4, len - q0), scores: scores)
                    }
                }
                base += count
            }
        }
    }

    /// Up to 4 queries of head h: scores = q·Kᵀ, softmax, out = P·V, the full tiles on VisionGEMM.tile4x3.
    @inline(__always)
    static func head(_ a: VisionAttentionArgs, start: Int, len: Int, h: Int, q0: Int, nq: Int,
                     scores: UnsafeMutablePointer<Float>) {
        let hd = a.headDim, ss = a.scoreStride
        let scale = 1 / Float(hd).squareRoot()
        let kh = a.kh + start * a.qDim + h * len * hd
        let vT = a.vT + start * a.qDim + h * len * hd
        let qp = a.q + (start + q0) * a.qDim + h * hd
        let op = a.out + (start + q0) * a.qDim + h * hd
        if nq == 4 {
            var j = 0
            while j + 3 <= len {
                VisionGEMM.tile4x3(x: qp, ldx: a.qDim, w: kh + j * hd, k: hd, y: scores + j, ldy: ss)
                j += 3
            }
            while j < len {
                for i in 0..<4 { scores[i * ss + j] = dot(qp + i * a.qDim, kh + j * hd, hd) }
                j += 1
            }
        } else {
            for i in 0..<nq { for j in 0..<len { scores[i * ss + j] = dot(qp + i * a.qDim, kh + j * hd, hd) } }
        }
        for i in 0..<nq {
            let row = scores + i * ss
            for j in 0..<len { row[j] *= scale }
            softmax(row, len)
        }
        if nq == 4 {
            var c = 0
            while c + 3 <= hd {
                VisionGEMM.tile4x3(x: scores, ldx: ss, w: vT + c * len, k: len, y: op + c, ldy: a.qDim)
                c += 3
            }
            while c < hd {
                for i in 0..<4 { op[i * a.qDim + c] = dot(scores + i * ss, vT + c * len, len) }
                c += 1
            }
        } else {
            for i in 0..<nq { for c in 0..<hd { op[i * a.qDim + c] = dot(scores + i * ss, vT + c * len, len) } }
        }
    }
}

extension VisionAttention {
    /// In-place softmax with a vectorized exp (attention rows have thousands of entries per query).
    @inline(__always)
    static func softmax(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        var m16 = SIMD16<Float>(repeating: -.infinity)
        var i = 0
        while i + 16 <= n {
            m16 = lanesMax(m16, UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self))
            i += 16
        }
        var m = m16.max()
        while i < n { m = max(m, x[i]); i += 1 }
        var sum16 = SIMD16<Float>()
        var sum: Float = 0
        i = 0
        while i + 16 <= n {
            let e = exp16(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - m)
            UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: SIMD16<Float>.self)
            sum16 += e
            i += 16
        }
        while i < n {
            let e = expf(x[i] - m)
            x[i] = e
            sum += e
            i += 1
        }
        let inv = 1 / (sum16.sum() + sum)
        i = 0
        while i + 16 <= n {
            let p = UnsafeMutableRawPointer(x + i)
            p.storeBytes(of: p.loadUnaligned(as: SIMD16<Float>.self) * inv, as: SIMD16<Float>.self)
            i += 16
        }
        while i < n { x[i] *= inv; i += 1 }
    }

    /// e^x (Cephes expf polynomial on x - n·ln 2, |x - n·ln 2| <= ln 2 / 2; ~1 ulp on [-87, 88]).
    @inline(__always)
    static func exp16(_ v: SIMD16<Float>) -> SIMD16<Float> {
        let x0 = lanesMin(lanesMax(v, SIMD16(repeating: -87.3)), SIMD16(repeating: 88.3))
        // n = round(x0 · log2 e) through the 1.5·2^23 trick (exact for |n| < 2^22): the stdlib's SIMD rounding and
        // Float→Int32 conversions are generic out-of-line calls, which made this loop 3x slower than the GEMMs.
        let t = x0 * 1.44269504088896341 + 12_582_912
        let fx = t - 12_582_912
        var x = x0 - fx * 0.693359375
        x = x + fx * 2.12194440e-4
        let z = x * x
        var y = SIMD16<Float>(repeating: 1.9875691500e-4)
        y = y * x + 1.3981999507e-3
        y = y * x + 8.3334519073e-3
        y = y * x + 4.1665795894e-2
        y = y * x + 1.6666665459e-1
        y = y * x + 5.0000001201e-1
        y = y * z + x + 1
        let e = (unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return y * unsafeBitCast(e, to: SIMD16<Float>.self)
    }
}
