// Forward pass of the Pixtral vision tower and Mistral 3's projector: patch convolution (as a matrix over
// flattened patches), ln_pre, transformer layers with 2-D RoPE and attention kept within each image, then the
// projector (RMSNorm -> 2x2 patch merger -> linear -> GELU -> linear). One row comes out per [IMG] token.
// All buffers are allocated when the encoder is made, sized for `maxPatches` patches per pass.
import Glibc
import MistralKernels
import MistralKernelsAVX512

public final class PixtralEncoder: @unchecked Sendable {  // one caller at a time; workers write disjoint slices
    public let weights: PixtralWeights
    /// Patches one pass can hold (the images of one encode call are packed into passes of at most this many).
    public let maxPatches: Int
    let pool: WorkerPool
    static let rowChunk = 256
    /// Key rows beyond maxPatches for flash attention's padding (up to 63 per image; 8 images of worst case).
    static let keyPadding = 8 * FlashAttentionAVX512.keyBlock
    var keyCapacity: Int { maxPatches + PixtralEncoder.keyPadding }

    // Activations: [maxPatches][width] rows.
    let x, xb, q, k, v, kh, vT: UnsafeMutablePointer<Float>
    let hb, hb2, projHidden, im2col: UnsafeMutablePointer<Float>
    let ropeCos, ropeSin: UnsafeMutablePointer<Float>
    let scores: UnsafeMutablePointer<Float>
    let flashScratch: UnsafeMutablePointer<Float>
    let flashScratchStride: Int
    let panels: UnsafeMutablePointer<Float>
    let panelStride: Int
    let segments: UnsafeMutablePointer<(Int, Int)>
    let segmentGrid: UnsafeMutablePointer<(Int, Int)>  // (patch rows, patch cols) of each packed image
    /// How the matmuls compute (f32 by default; see FloatGEMMCompute.visionDefault).
    public let compute: FloatGEMMCompute
    let gemmScratch: PackedGEMMScratch
    private var allocations: [UnsafeMutableRawPointer] = []

    /// `maxPatches` defaults to the largest image the config allows ((imageSize / patch)², rounded up to tokens).
    public init(weights: PixtralWeights, pool: WorkerPool, maxPatches: Int? = nil,
                compute: FloatGEMMCompute = .visionDefault) throws {
        let c = weights.config
        let limit = maxPatches ?? c.maxPatchesPerImage
        guard limit >= c.mergeSize * c.mergeSize, limit <= 1 << 22 else {
            throw MistralError.invalid("maxPatches \(limit) is out of range")
        }
        self.weights = weights
        self.maxPatches = limit
        self.pool = pool
        self.compute = compute
        let d = c.hiddenSize, qd = c.nHead * c.headDim, wide = max(d, qd)
        let chunk = PixtralEncoder.rowChunk
        let patchCols = c.numChannels * c.patchSize * c.patchSize
        let maxCols = max(patchCols, wide, c.ffnSize, d * c.mergeSize * c.mergeSize, c.projectionDim)
        // The config (a file) sizes these buffers: refuse up front what the machine cannot hold.
        // The most activations any one matmul reads: the attention block's rows, the merger's, a row chunk's.
        let gemmInput = max(limit * wide, chunk * max(c.ffnSize, c.projectionDim, patchCols))
        let floats = PackedGEMMScratch.bytes(activationFloats: gemmInput, maxCols: maxCols, threads: pool.threadCount) / 4
            + Double(limit + PixtralEncoder.keyPadding) * Double(2 * wide) + Double(limit) * Double(5 * wide + c.headDim + 4 * pool.threadCount)
            + Double(chunk) * Double(2 * c.ffnSize + c.projectionDim + patchCols)
            + Double(pool.threadCount) * Double(VisionGEMM.panelRows) * Double(maxCols)
        try MemoryBudget.ensure(bytes: 4 * floats, what: "the vision encoder's buffers for \(limit) patches")
        gemmScratch = try PackedGEMMScratch(activationFloats: gemmInput, maxCols: maxCols, threads: pool.threadCount)
        var list: [UnsafeMutableRawPointer] = []
        func buffer(_ n: Int, _ what: String) throws -> UnsafeMutablePointer<Float> {
            let p = try allocateZeroed(Float.self, count: n, what: "vision \(what)")
            list.append(UnsafeMutableRawPointer(p))
            return p
        }
        do {
            x = try buffer(limit * wide, "activations")
            xb = try buffer(limit * wide, "activations")
            q = try buffer(limit * wide, "queries")
            k = try buffer(limit * wide, "keys")
            v = try buffer(limit * wide, "values")
            // Flash attention pads each image's keys to whole 64-key blocks; a pass packs images while they fit.
            kh = try buffer((limit + PixtralEncoder.keyPadding) * wide, "per-head keys")
            vT = try buffer((limit + PixtralEncoder.keyPadding) * wide, "per-head values")
            hb = try buffer(chunk * c.ffnSize, "feed-forward activations")
            hb2 = try buffer(chunk * c.ffnSize, "feed-forward activations")
            projHidden = try buffer(chunk * c.projectionDim, "projector activations")
            im2col = try buffer(chunk * patchCols, "patches")
            ropeCos = try buffer(limit * c.headDim / 2, "rope table")
            ropeSin = try buffer(limit * c.headDim / 2, "rope table")
            scores = try buffer(pool.threadCount * 4 * limit, "attention scores")
            flashScratchStride = FlashAttentionAVX512.scratchFloats(headDim: c.headDim)
            flashScratch = try buffer(pool.threadCount * flashScratchStride, "attention tiles")
            panelStride = VisionGEMM.panelRows * maxCols
            panels = try buffer(pool.threadCount * panelStride, "weight panels")
            let segCount = limit / (c.mergeSize * c.mergeSize) + 1
            let s = try allocateZeroed((Int, Int).self, count: segCount, what: "image segments")
            list.append(UnsafeMutableRawPointer(s))
            segments = s
            let g = try allocateZeroed((Int, Int).self, count: segCount, what: "image segments")
            list.append(UnsafeMutableRawPointer(g))
            segmentGrid = g
        } catch {
            for p in list { free(p) }
            throw error
        }
        allocations = list
    }

    public convenience init(weights: PixtralWeights, threads: Int, maxPatches: Int? = nil,
                            compute: FloatGEMMCompute = .visionDefault) throws {
        try self.init(weights: weights, pool: WorkerPool(threadCount: threads), maxPatches: maxPatches, compute: compute)
    }

    deinit { for p in allocations { free(p) } }

    /// The [IMG] token grid (rows, cols) of a preprocessed image, checking that it fits this encoder.
    public func tokenGrid(_ image: PixelImage) throws -> ImageTokenGrid {
        let c = weights.config
        let tp = c.tokenPixels
        guard image.width > 0, image.height > 0, image.width % tp == 0, image.height % tp == 0 else {
            throw MistralError.invalid("image of \(image.width)x\(image.height) pixels: sides must be positive multiples of \(tp)")
        }
        guard image.pixels.count == c.numChannels * image.width * image.height else {
            throw MistralError.invalid("image has \(image.pixels.count) values, expected \(c.numChannels)x\(image.height)x\(image.width)")
        }
        let patches = (image.width / c.patchSize) * (image.height / c.patchSize)
        guard patches <= maxPatches else {
            throw MistralError.invalid("image of \(image.width)x\(image.height) has \(patches) patches; this encoder holds \(maxPatches)")
        }
        return ImageTokenGrid(rows: image.height / tp, cols: image.width / tp)
    }

    /// Output rows (one per [IMG] token) of `images` together.
    public func outputRows(_ images: [PixelImage]) throws -> Int {
        try images.reduce(0) { $0 + (try tokenGrid($1)).count }
    }

    /// Encodes `images` (each attending only within itself) into `out`: one row of `projectionDim` floats per
    /// [IMG] token, image after image, each row-major over its token grid. Returns the rows written.
    @discardableResult
    public func encode(_ images: [PixelImage], into out: UnsafeMutablePointer<Float>, capacityRows: Int) throws -> Int {
        try run(images, out: out, capacityRows: capacityRows, trace: nil)
    }

    /// Encodes `images` into a new array of rows (see `encode(_:into:capacityRows:)`).
    public func encode(_ images: [PixelImage]) throws -> [Float] {
        let rows = try outputRows(images)
        guard rows > 0 else { return [] }
        var out = [Float](repeating: 0, count: rows * weights.config.projectionDim)
        try out.withUnsafeMutableBufferPointer {
            _ = try run(images, out: $0.baseAddress!, capacityRows: rows, trace: nil)
        }
        return out
    }

    /// Intermediate results, for checking against a reference implementation.
    public struct Trace: Sendable {
        /// Vision tower output, one row of hiddenSize per patch (row-major per image).
        public var visionTower: [Float] = []
        /// Patch merger output, one row of hiddenSize per [IMG] token.
        public var patchMerger: [Float] = []
        /// Projector output, one row of projectionDim per [IMG] token.
        public var projector: [Float] = []
    }

    /// Like `encode`, also returning the vision tower and patch merger outputs (allocates; for tests/debugging).
    public func encodeWithTrace(_ images: [PixelImage]) throws -> Trace {
        let rows = try outputRows(images)
        var trace = Trace()
        guard rows > 0 else { return trace }
        var out = [Float](repeating: 0, count: rows * weights.config.projectionDim)
        try out.withUnsafeMutableBufferPointer {
            _ = try run(images, out: $0.baseAddress!, capacityRows: rows, trace: &trace)
        }
        trace.projector = out
        return trace
    }

    private func run(_ images: [PixelImage], out: UnsafeMutablePointer<Float>, capacityRows: Int,
                     trace: UnsafeMutablePointer<Trace>?) throws -> Int {
        let c = weights.config
        var needed = 0
        var patchCounts: [Int] = []
        patchCounts.reserveCapacity(images.count)
        for img in images {
            needed += try tokenGrid(img).count
            patchCounts.append((img.width / c.patchSize) * (img.height / c.patchSize))
        }
        guard needed <= capacityRows else {
            throw MistralError(.bufferTooSmall, "the images need \(needed) output rows; the buffer holds \(capacityRows)")
        }
        var written = 0
        var first = 0
        while first < images.count {
            // Pack consecutive images into one pass while they fit.
            var last = first + 1
            var total = patchCounts[first]
            var keys = FlashAttentionAVX512.paddedKeys(patchCounts[first])
            while last < images.count && total + patchCounts[last] <= maxPatches
                    && keys + FlashAttentionAVX512.paddedKeys(patchCounts[last]) <= keyCapacity {
                total += patchCounts[last]
                keys += FlashAttentionAVX512.paddedKeys(patchCounts[last])
                last += 1
            }
            written += forward(images[first..<last], out: out + written * c.projectionDim, trace: trace)
            first = last
        }
        return written
    }

    // MARK: - Forward of one pass

    /// Runs the packed images (already checked to fit) and writes their projector rows; returns the row count.
    private func forward(_ images: ArraySlice<PixelImage>, out: UnsafeMutablePointer<Float>,
                         trace: UnsafeMutablePointer<Trace>?) -> Int {
        let w = weights, c = w.config
        let d = c.hiddenSize, hd = c.headDim, nh = c.nHead, qd = nh * hd, ps = c.patchSize
        let chunk = PixtralEncoder.rowChunk
        let patchCols = c.numChannels * ps * ps
        let pool = self.pool
        let x = self.x, xb = self.xb, q = self.q, k = self.k, v = self.v, kh = self.kh, vT = self.vT
        let hb = self.hb, hb2 = self.hb2, im2col = self.im2col, ropeCos = self.ropeCos, ropeSin = self.ropeSin

        // Segments and patch embeddings (im2col in chunks, then the conv matrix).
        var n = 0
        var segCount = 0
        for img in images {
            let gh = img.height / ps, gw = img.width / ps
            segments[segCount] = (n, gh * gw)
            segmentGrid[segCount] = (gh, gw)
            segCount += 1
            img.pixels.withUnsafeBufferPointer { px in
                let plane = img.width * img.height
                var p0 = 0
                while p0 < gh * gw {
                    let cnt = min(chunk, gh * gw - p0)
                    parallelRows(cnt) { i in
                        let py = (p0 + i) / gw, pxl = (p0 + i) % gw
                        var dst = im2col + i * patchCols
                        for ch in 0..<c.numChannels {
                            for ky in 0..<ps {
                                let src = px.baseAddress! + ch * plane + (py * ps + ky) * img.width + pxl * ps
                                dst.update(from: src, count: ps)
                                dst += ps
                            }
                        }
                    }
                    gemm(w.patchConv, im2col, patchCols, cnt, x + (n + p0) * d, d)
                    p0 += cnt
                }
            }
            // 2-D rope angles: the first headDim/4 pairs turn with the patch row, the rest with the column.
            let quarter = hd / 4
            let first = n
            parallelRows(gh * gw) { p in
                let row = Double(p / gw), col = Double(p % gw)
                let cosP = ropeCos + (first + p) * (hd / 2), sinP = ropeSin + (first + p) * (hd / 2)
                for j in 0..<(hd / 2) {
                    let freqIndex = j < quarter ? 2 * j : 2 * (j - quarter) + 1
                    let invFreq = Float(1.0 / pow(c.ropeTheta, Double(2 * freqIndex) / Double(hd)))
                    let angle = Double((j < quarter ? Float(row) : Float(col)) * invFreq)
                    cosP[j] = Float(cos(angle))
                    sinP[j] = Float(sin(angle))
                }
            }
            n += gh * gw
        }
        let nTotal = n
        parallelRows(nTotal) { t in Ops.rmsNorm(x + t * d, w.lnPre, x + t * d, d, eps: c.normEps) }

        let interleaved = w.layout.ropeInterleaved
        let flash = KernelDispatch.path == .avx512 && hd % 16 == 0
        let segs = UnsafePointer(segments)
        for layer in w.layers {
            // Attention block.
            parallelRows(nTotal) { t in Ops.rmsNorm(x + t * d, layer.attnNorm, xb + t * d, d, eps: c.normEps) }
            gemm(layer.wq, xb, d, nTotal, q, qd)
            gemm(layer.wk, xb, d, nTotal, k, qd)
            gemm(layer.wv, xb, d, nTotal, v, qd)
            if flash {
                attentionFlash(nTotal: nTotal, segCount: segCount, interleaved: interleaved)
            } else {
                attentionFull(nTotal: nTotal, segCount: segCount, interleaved: interleaved)
            }
            gemm(layer.wo, xb, qd, nTotal, k, d)
            parallelRows(nTotal) { t in Ops.add(x + t * d, k + t * d, d) }

            // Feed-forward block, in row chunks.
            parallelRows(nTotal) { t in Ops.rmsNorm(x + t * d, layer.ffnNorm, xb + t * d, d, eps: c.normEps) }
            var r0 = 0
            while r0 < nTotal {
                let cnt = min(chunk, nTotal - r0)
                gemm(layer.gate, xb + r0 * d, d, cnt, hb, c.ffnSize)
                gemm(layer.up, xb + r0 * d, d, cnt, hb2, c.ffnSize)
                parallelRows(cnt) { t in Ops.swiGLU(hb + t * c.ffnSize, hb2 + t * c.ffnSize, c.ffnSize) }
                gemm(layer.down, hb, c.ffnSize, cnt, k + r0 * d, d)
                r0 += cnt
            }
            parallelRows(nTotal) { t in Ops.add(x + t * d, k + t * d, d) }
        }
        if let trace { trace.pointee.visionTower.append(contentsOf: UnsafeBufferPointer(start: x, count: nTotal * d)) }

        // Projector: RMSNorm, then gather each 2x2 (merge x merge) block into one row of merge²·d values in
        // torch unfold order (channel-major, then kernel row, kernel column).
        parallelRows(nTotal) { t in Ops.rmsNorm(x + t * d, w.projectorNorm, xb + t * d, d, eps: c.projectorNormEps) }
        let m = c.mergeSize, mm = m * m
        var tokens = 0
        for s in 0..<segCount {
            let (start, _) = segments[s]
            let (gh, gw) = segmentGrid[s]
            let th = gh / m, tw = gw / m
            let base = tokens
            parallelRows(th * tw) { tok in
                let bi = tok / tw, bj = tok % tw
                let dst = q + (base + tok) * mm * d
                for ki in 0..<m {
                    for kj in 0..<m {
                        let src = xb + (start + (bi * m + ki) * gw + bj * m + kj) * d
                        let off = ki * m + kj
                        for ch in 0..<d { dst[ch * mm + off] = src[ch] }
                    }
                }
            }
            tokens += th * tw
        }
        gemm(w.merger, q, mm * d, tokens, k, d)
        if let trace { trace.pointee.patchMerger.append(contentsOf: UnsafeBufferPointer(start: k, count: tokens * d)) }

        // linear_1 -> exact GELU -> linear_2, in row chunks.
        let pd = c.projectionDim
        var r0 = 0
        while r0 < tokens {
            let cnt = min(chunk, tokens - r0)
            gemm(w.linear1, k + r0 * d, d, cnt, projHidden, pd)
            let ph = projHidden
            parallelRows(cnt) { t in
                let row = ph + t * pd
                for i in 0..<pd {
                    let a = row[i]
                    row[i] = 0.5 * a * (1 + erff(a * 0.70710678118654752))
                }
            }
            gemm(w.linear2, projHidden, pd, cnt, out + r0 * pd, pd)
            r0 += cnt
        }
        return tokens
    }

    /// RoPE on q and k (once per position), keys transposed and values copied per image and head; then tiled
    /// flash attention over (image, head, 16-query tile) tasks: no score matrix beyond one 16 x 64 block per thread.
    private func attentionFlash(nTotal: Int, segCount: Int, interleaved: Bool) {
        let c = weights.config
        let hd = c.headDim, nh = c.nHead, qd = nh * hd
        let q = self.q, k = self.k, v = self.v, kT = self.kh, vRows = self.vT, xb = self.xb
        let ropeCos = self.ropeCos, ropeSin = self.ropeSin
        let segs = UnsafePointer(segments)
        // Keys of each image: padded to whole key blocks, image s at qd * padStart[s], head h of it hd * ldk later.
        var padStart = [Int](repeating: 0, count: segCount + 1)
        for s in 0..<segCount { padStart[s + 1] = padStart[s] + FlashAttentionAVX512.paddedKeys(segs[s].1) }
        padStart.withUnsafeBufferPointer { ps in
            let padStarts = ps.baseAddress!
            parallelRows(nTotal) { t in
                let cosT = UnsafePointer(ropeCos + t * (hd / 2)), sinT = UnsafePointer(ropeSin + t * (hd / 2))
                var seg = 0
                while seg + 1 < segCount && t >= segs[seg + 1].0 { seg += 1 }
                let start = segs[seg].0, ldk = padStarts[seg + 1] - padStarts[seg]
                for h in 0..<nh {
                    Ops.rope(q + t * qd + h * hd, cos: cosT, sin: sinT, rotDim: hd, interleaved: interleaved)
                    let key = k + t * qd + h * hd
                    Ops.rope(key, cos: cosT, sin: sinT, rotDim: hd, interleaved: interleaved)
                    let dst = kT + padStarts[seg] * qd + h * hd * ldk
                    for e in 0..<hd { dst[FlashAttentionAVX512.keyIndex(t - start, e, headDim: hd)] = key[e] }
                    // Values as contiguous rows per image and head: rows qd floats apart alias in L1.
                    (vRows + padStarts[seg] * qd + h * hd * ldk + (t - start) * hd).update(from: v + t * qd + h * hd, count: hd)
                }
            }
            let tile = FlashAttentionAVX512.queryTile
            var tasks = 0
            for s in 0..<segCount { tasks += (segs[s].1 + tile - 1) / tile * nh }
            let total = tasks, threads = pool.threadCount
            let scratch = flashScratch, stride = flashScratchStride
            let scale = 1 / Float(hd).squareRoot()
            pool.run { tid in
                let range = WorkerPool.range(of: total, thread: tid, threads: threads)
                guard !range.isEmpty else { return }
                var base = 0
                for s in 0..<segCount {
                    let (start, len) = segs[s]
                    let tiles = (len + tile - 1) / tile
                    let count = tiles * nh
                    let lo = max(range.lowerBound, base), hi = min(range.upperBound, base + count)
                    if lo < hi {
                        let ldk = padStarts[s + 1] - padStarts[s]
                        for task in lo..<hi {
                            let h = (task - base) / tiles, q0 = (task - base) % tiles * tile
                            FlashAttentionAVX512.run(
                                q: q + (start + q0) * qd + h * hd, ldq: qd, nq: min(tile, len - q0),
                                kT: kT + padStarts[s] * qd + h * hd * ldk,
                                v: vRows + padStarts[s] * qd + h * hd * ldk, ldv: hd, len: len, headDim: hd, scale: scale,
                                out: xb + (start + q0) * qd + h * hd, ldo: qd, scratch: scratch + tid * stride)
                        }
                    }
                    base += count
                }
            }
        }
    }

    /// The full-softmax path (AVX2 / generic, and the flash kernel's reference): RoPE, keys and transposed values
    /// per image and head, then VisionAttention.
    private func attentionFull(nTotal: Int, segCount: Int, interleaved: Bool) {
        let c = weights.config
        let hd = c.headDim, nh = c.nHead, qd = nh * hd
        let q = self.q, k = self.k, v = self.v, kh = self.kh, vT = self.vT
        let ropeCos = self.ropeCos, ropeSin = self.ropeSin
        let segs = UnsafePointer(segments)
        parallelRows(nTotal) { t in
            let cosT = UnsafePointer(ropeCos + t * (hd / 2)), sinT = UnsafePointer(ropeSin + t * (hd / 2))
            var seg = 0
            while seg + 1 < segCount && t >= segs[seg + 1].0 { seg += 1 }
            let (start, len) = segs[seg]
            for h in 0..<nh {
                Ops.rope(q + t * qd + h * hd, cos: cosT, sin: sinT, rotDim: hd, interleaved: interleaved)
                let key = k + t * qd + h * hd, value = v + t * qd + h * hd
                Ops.rope(key, cos: cosT, sin: sinT, rotDim: hd, interleaved: interleaved)
                // per image and head: keys as rows, values transposed (see VisionAttentionArgs)
                let block = start * qd + h * len * hd
                (kh + block + (t - start) * hd).update(from: key, count: hd)
                for e in 0..<hd { vT[block + e * len + (t - start)] = value[e] }
            }
        }
        VisionAttention.run(VisionAttentionArgs(
            q: q, kh: kh, vT: vT, out: xb, scores: scores, scoreStride: maxPatches, nTotal: nTotal, qDim: qd,
            headDim: hd, nHead: nh, segments: segs, segmentCount: segCount), pool: pool)
    }

    @inline(__always)
    private func gemm(_ wm: VisionMatrix, _ xin: UnsafePointer<Float>, _ ldx: Int, _ n: Int,
                      _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        if let p = wm.panels(for: compute),
           PackedFloatGEMM.multiply(p, x: xin, ldx: ldx, n: n, y: y, ldy: ldy, compute: compute, pool: pool,
                                    scratch: gemmScratch) { return }
        VisionGEMM.multiply(wm.matrix, x: xin, ldx: ldx, n: n, y: y, ldy: ldy, pool: pool, panels: panels,
                            panelStride: panelStride)
    }

    /// Runs body(t) for t in 0..<n, split across the pool.
    @inline(__always)
    private func parallelRows(_ n: Int, _ body: (Int) -> Void) {
        let threads = pool.threadCount
        if n < 64 || threads == 1 {
            for t in 0..<n { body(t) }
            return
        }
        pool.run { tid in
            for t in WorkerPool.range(of: n, thread: tid, threads: threads) { body(t) }
        }
    }
}
