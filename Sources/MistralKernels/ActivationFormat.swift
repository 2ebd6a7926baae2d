// The int8 form activations take before they meet quantized weights. Quantized once per matmul input (one
// activation row per token) and reused by every weight row, as ggml does:
//  * q8_0: blocks of 32, one f32 scale and the block's Σq each — for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights;
//  * q8_K: blocks of 256, one f32 scale, and Σq for every 16 values — for the K-quants, whose sub-block mins and
//    offsets need those partial sums.
// q = round(x / d) with d = max|x| / 127, so every q is in -127...127 (never -128: the AVX2 kernels rely on it).

public enum ActivationFormat: Sendable {
    case q8_0
    case q8_K

    /// Values per scale.
    @inline(__always) public var blockSize: Int { self == .q8_0 ? 32 : 256 }
    /// Values per partial sum.
    @inline(__always) public var sumSize: Int { self == .q8_0 ? 32 : 16 }
}

/// Read-only view of `tokens` quantized activation rows of `cols` values (cols a multiple of the block size).
/// Token t: values at qs + t * rowStride, scales at d + t * scalesPerRow, sums at sums + t * sumsPerRow. The
/// stride is cols, plus 256 where cols is a multiple of 4096: rows 4 KB apart put every token's activations (and
/// scales) of one block into the same L1 set, and the 8-way L1 thrashed — a batched step of 8 sessions over
/// 32768 columns (FFN down) ran at 0.64x the GB/s of 32512 on Zen 3, prompt tiles at 0.63x.
/// Two derived per-token fields, computed once per row so the tiles that serve 8 tokens per weight load take
/// them as memory operands instead of rebuilding them per weight row group (on CPUs with two 512-bit ports the
/// scalar converts, multiplies and register broadcasts competed with vpdpbusd for them):
///  * q8_0: scaledSums[b] = d[b] · Float(Σq of block b), the min term's factor of Q4_1 / Q5_1, and
///    floatSums[b] = Float(Σq of block b), which the AVX2 tiles subtract Q4_0 / Q5_0's offset with (one FMA on
///    integers below 2^24, so exactly the reference's Float(dot - offset · Σq));
///  * q8_K: sums32[j] = Σq over values 32j ..< 32j + 32, adjacent int16 so two of them load as the (sub-block
///    2i, 2i + 1) pair Q4_K / Q5_K's mins vpdpwssd takes.
public struct ActivationView: @unchecked Sendable {  // points into a QuantizedActivations buffer the caller keeps
    public let format: ActivationFormat
    public let cols: Int
    /// Values between token rows in qs: cols, or cols + 256 when cols is a multiple of 4096.
    public let rowStride: Int
    public let qs: UnsafePointer<Int8>
    public let d: UnsafePointer<Float>
    public let sums: UnsafePointer<Int16>
    public let scaledSums: UnsafePointer<Float>
    public let floatSums: UnsafePointer<Float>
    public let sums32: UnsafePointer<Int16>

    /// Scales (and scaledSums, floatSums) and partial sums between token rows (rowStride / blockSize, / sumSize;
    /// kept, not divided out per call: a run-time division per row showed); sums32 has sumsPerRow / 2.
    public let scalesPerRow: Int
    public let sumsPerRow: Int

    public init(format: ActivationFormat, cols: Int, rowStride: Int, qs: UnsafePointer<Int8>, d: UnsafePointer<Float>,
                sums: UnsafePointer<Int16>, scaledSums: UnsafePointer<Float>, floatSums: UnsafePointer<Float>,
                sums32: UnsafePointer<Int16>) {
        self.format = format
        self.cols = cols
        self.rowStride = rowStride
        self.qs = qs
        self.d = d
        self.sums = sums
        self.scaledSums = scaledSums
        self.floatSums = floatSums
        self.sums32 = sums32
        scalesPerRow = rowStride / format.blockSize
        sumsPerRow = rowStride / format.sumSize
    }

    @inline(__always) public func values(_ t: Int) -> UnsafePointer<Int8> { qs + t &* rowStride }
    @inline(__always) public func scales(_ t: Int) -> UnsafePointer<Float> { d + t &* scalesPerRow }
    @inline(__always) public func partialSums(_ t: Int) -> UnsafePointer<Int16> { sums + t &* sumsPerRow }
}

/// Storage for up to `capacityTokens` rows of up to `capacityCols` activations in one format.
public final class QuantizedActivations: @unchecked Sendable {  // each row is written by one thread, then only read
    public let format: ActivationFormat
    public let capacityTokens: Int
    public let capacityCols: Int
    private let qs: UnsafeMutablePointer<Int8>
    private let d: UnsafeMutablePointer<Float>
    private let sums: UnsafeMutablePointer<Int16>
    private let scaledSums: UnsafeMutablePointer<Float>
    private let floatSums: UnsafeMutablePointer<Float>
    private let sums32: UnsafeMutablePointer<Int16>
    public private(set) var cols = 0
    /// Values between token rows (ActivationView): cols, or cols + 256 when cols is a multiple of 4096.
    public var rowStride: Int { cols % 4096 == 0 ? cols &+ 256 : cols }

    /// nil when the sizes overflow or memory is short.
    public init?(format: ActivationFormat, tokens: Int, cols: Int) {
        let bs = format.blockSize
        let paddedCols = (cols + bs - 1) / bs * bs
        let (n, o) = tokens.multipliedReportingOverflow(by: paddedCols &+ 256)  // room for any rowStride
        guard tokens > 0, cols > 0, cols < Int.max / 2, !o,
              let q = malloc(n), let dd = malloc(n / bs * 4), let s = malloc(n / format.sumSize * 2) else { return nil }
        let ssOrNil = malloc(n / bs * 4), fsOrNil = malloc(n / bs * 4), s32OrNil = malloc(n / 32 * 2)
        guard let ss = ssOrNil, let fs = fsOrNil, let s32 = s32OrNil else {
            free(q); free(dd); free(s); free(ssOrNil); free(fsOrNil); free(s32OrNil)
            return nil
        }
        scaledSums = ss.assumingMemoryBound(to: Float.self)
        floatSums = fs.assumingMemoryBound(to: Float.self)
        sums32 = s32.assumingMemoryBound(to: Int16.self)
        self.format = format
        capacityTokens = tokens
        capacityCols = paddedCols
        qs = q.assumingMemoryBound(to: Int8.self)
        d = dd.assumingMemoryBound(to: Float.self)
        sums = s.assumingMemoryBound(to: Int16.self)
    }

    deinit {
        free(qs)
        free(d)
        free(sums)
        free(scaledSums)
        free(floatSums)
        free(sums32)
    }

    public var view: ActivationView {
        ActivationView(format: format, cols: cols, rowStride: rowStride, qs: qs, d: d, sums: sums,
                       scaledSums: scaledSums, floatSums: floatSums, sums32: sums32)
    }

    /// Sets the row length for the next `quantize` calls (a multiple of the block size, <= capacityCols).
    public func setColumns(_ cols: Int) { self.cols = cols }

    /// Quantizes token row t from x (cols floats). Rows may be written by different threads at once.
    public func quantize(row t: Int, from x: UnsafePointer<Float>) {
        let bs = format.blockSize, ss = format.sumSize
        let stride = rowStride
        let q = qs + t * stride, dq = d + t * (stride / bs), sq = sums + t * (stride / ss)
        ActivationQuantizer.quantize(x, cols, blockSize: bs, sumSize: ss, q: q, d: dq, sums: sq)
        switch format {
        case .q8_0:
            let out = scaledSums + t * (stride / bs), outF = floatSums + t * (stride / bs)
            for b in 0..<cols / bs {
                out[b] = dq[b] * Float(sq[b])
                outF[b] = Float(sq[b])
            }
        case .q8_K:
            let out = sums32 + t * (stride / 32)
            for j in 0..<cols / 32 { out[j] = sq[2 &* j] &+ sq[2 &* j &+ 1] }
        }
    }
}

public enum ActivationQuantizer {
    /// q[i] = round(x[i] / d[b]) for blocks of `blockSize`, d[b] = max|x| / 127; sums[j] = Σ q over each `sumSize`.
    /// A block with a non-finite value quantizes to zeros rather than trapping (a corrupt model can produce them).
    /// The AVX2 form (the library's baseline); quantizeReference is its plain-Swift oracle.
    @inline(__always)
    public static func quantize(_ x: UnsafePointer<Float>, _ n: Int, blockSize: Int, sumSize: Int,
                                q: UnsafeMutablePointer<Int8>, d: UnsafeMutablePointer<Float>,
                                sums: UnsafeMutablePointer<Int16>) {
        QuantizeAVX2.quantize(x, n, blockSize: blockSize, sumSize: sumSize, q: q, d: d, sums: sums)
    }

    public static func quantizeReference(_ x: UnsafePointer<Float>, _ n: Int, blockSize: Int, sumSize: Int,
                                q: UnsafeMutablePointer<Int8>, d: UnsafeMutablePointer<Float>,
                                sums: UnsafeMutablePointer<Int16>) {
        var b = 0
        while b < n / blockSize {
            let src = x + b * blockSize
            var amax = SIMD16<Float>()
            var i = 0
            while i < blockSize {
                let v = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<Float>.self)
                amax = lanesMax(amax, lanesMax(v, -v))
                i += 16
            }
            var total: Float = 0
            for j in 0..<blockSize { total += abs(src[j]) }
            let m = amax.max()
            let scale: Float = m.isFinite && total.isFinite ? m / 127 : 0
            let inv: Float = scale > 0 ? 1 / scale : 0
            d[b] = scale
            let dst = q + b * blockSize
            for j in 0..<blockSize {
                let r = (src[j] * inv).rounded(.toNearestOrEven)
                // |r| <= 127 by construction; NaN (r != r) becomes 0
                dst[j] = r == r ? Int8(max(-127, min(127, r))) : 0
            }
            b += 1
        }
        var s = 0
        while s < n / sumSize {
            var acc: Int16 = 0
            for j in 0..<sumSize { acc &+= Int16(q[s * sumSize + j]) }
            sums[s] = acc
            s += 1
        }
    }
}

import Glibc
