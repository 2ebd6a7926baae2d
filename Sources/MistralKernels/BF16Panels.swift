// Float weights of a GEMM Y = X·Wᵀ converted once at load to the layout the bf16 kernels read, and the plain-Swift
// reference those kernels are tested against.
//
// Layout: W (rows = N outputs, cols = K inputs, K even) as panels of 32 output columns. Panel p holds, for each
// k-pair kp in 0..<K/2, 32 UInt32 words: word jj = bf16(W[32p + jj][2kp]) | bf16(W[32p + jj][2kp + 1]) << 16.
// One k-pair of a panel is 128 bytes = two zmm registers, which is what `vdpbf16ps` multiplies against a
// broadcast activation pair; the FMA kernels widen each word to two f32 (a shift and a mask) instead.
// Columns past N in the last panel are zero. K blocks of a panel are contiguous, so cache blocking over K
// reads one contiguous run per panel.
import Glibc

/// Rounds to bf16 (round to nearest even; NaN stays NaN), as vcvtneps2bf16 does.
@inline(__always)
public func bf16Bits(_ f: Float) -> UInt16 {
    let b = f.bitPattern
    if f.isNaN { return UInt16(truncatingIfNeeded: (b >> 16) | 0x40) }
    return UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
}

@inline(__always)
public func bf16ToFloat(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

public final class BF16Panels: @unchecked Sendable {  // immutable after init
    /// Output columns per panel.
    public static let width = 32
    /// Activation rows the kernels compute at once: X must be readable for `n` rounded up to this many rows
    /// (the drivers pad the last block through a scratch copy).
    public static let rowBlock = 8

    public let rows: Int
    public let cols: Int
    public let pairs: Int
    public let panelCount: Int
    /// true when the source weights were bf16, so the panels hold them exactly.
    public let exact: Bool
    public let data: UnsafeMutablePointer<UInt32>

    /// Packs a rows x cols matrix whose row r `fill(r, buffer)` writes as `cols` floats. nil when cols is odd
    /// or the allocation fails (callers keep their unpacked path).
    public init?(rows: Int, cols: Int, exact: Bool, fill: (Int, UnsafeMutablePointer<Float>) -> Void) {
        guard rows > 0, cols > 0, cols % 2 == 0 else { return nil }
        let pairs = cols / 2
        let panels = (rows + BF16Panels.width - 1) / BF16Panels.width
        let (words, overflow) = (panels * pairs).multipliedReportingOverflow(by: BF16Panels.width)
        guard !overflow, let raw = calloc(words, 4) else { return nil }
        self.rows = rows
        self.cols = cols
        self.pairs = pairs
        self.panelCount = panels
        self.exact = exact
        data = raw.bindMemory(to: UInt32.self, capacity: words)
        let row = UnsafeMutablePointer<Float>.allocate(capacity: cols)
        defer { row.deallocate() }
        for r in 0..<rows {
            fill(r, row)
            let p = r / BF16Panels.width, jj = r % BF16Panels.width
            let dst = data + p * pairs * BF16Panels.width + jj
            for kp in 0..<pairs {
                dst[kp * BF16Panels.width] = UInt32(bf16Bits(row[2 * kp])) | UInt32(bf16Bits(row[2 * kp + 1])) << 16
            }
        }
    }

    deinit { free(data) }

    /// Weight (r, k) as the kernels see it.
    @inline(__always)
    public func weight(_ r: Int, _ k: Int) -> Float {
        let word = data[((r / BF16Panels.width) * pairs + k / 2) * BF16Panels.width + r % BF16Panels.width]
        return bf16ToFloat(UInt16(truncatingIfNeeded: k % 2 == 0 ? word : word >> 16))
    }

    /// Packs activation rows into bf16 pairs (the bf16-compute mode's rounding): xb[t * pairs + kp].
    public static func packActivations(_ x: UnsafePointer<Float>, ldx: Int, rows: Range<Int>, pairs: Int,
                                       into xb: UnsafeMutablePointer<UInt32>) {
        for t in rows {
            let src = x + t * ldx, dst = xb + t * pairs
            for kp in 0..<pairs {
                dst[kp] = UInt32(bf16Bits(src[2 * kp])) | UInt32(bf16Bits(src[2 * kp + 1])) << 16
            }
        }
    }

    /// Plain-Swift reference: y[t * ldy + r] = Σ_k W[r, k] · x[t * ldx + k], x rounded to bf16 first when
    /// `roundActivations` (what the vdpbf16ps kernel computes, up to summation order).
    public func referenceMultiply(x: UnsafePointer<Float>, ldx: Int, n: Int, y: UnsafeMutablePointer<Float>,
                                  ldy: Int, roundActivations: Bool) {
        for t in 0..<n {
            for r in 0..<rows {
                var s: Float = 0
                for k in 0..<cols {
                    let a = roundActivations ? bf16ToFloat(bf16Bits(x[t * ldx + k])) : x[t * ldx + k]
                    s += a * weight(r, k)
                }
                y[t * ldy + r] = s
            }
        }
    }
}

/// How the float GEMM of a caller computes: f32 activations against the bf16 weights (FMA, exact products), or
/// activations rounded to bf16 per row and multiplied with vdpbf16ps (twice the throughput; each product then
/// carries the activation's rounding error, |δ| <= 2^-8 relative: 8 significant bits).
public enum FloatGEMMCompute: String, Sendable, CaseIterable {
    case f32, bf16
}

/// Shapes of one packed GEMM call, handed to each ISA's kernel; every worker writes its own panels' columns.
public struct BF16GEMMArgs: @unchecked Sendable {
    public let x: UnsafePointer<Float>        // f32 rows (f32 mode)
    public let ldx: Int
    public let xb: UnsafePointer<UInt32>?     // bf16-pair rows, `pairs` words each, rows padded to rowBlock (bf16 mode)
    public let n: Int
    public let w: BF16Panels
    public let y: UnsafeMutablePointer<Float>
    public let ldy: Int
    /// Per worker: rowBlock * cols floats where the last partial block of f32 rows is copied and zero-padded.
    public let pad: UnsafeMutablePointer<Float>

    public init(x: UnsafePointer<Float>, ldx: Int, xb: UnsafePointer<UInt32>?, n: Int, w: BF16Panels,
                y: UnsafeMutablePointer<Float>, ldy: Int, pad: UnsafeMutablePointer<Float>) {
        self.x = x; self.ldx = ldx; self.xb = xb; self.n = n; self.w = w; self.y = y; self.ldy = ldy; self.pad = pad
    }

    /// Pairs per K block and panels per group, so a group's weight block (~384 KiB) stays in L2 while every
    /// row block passes over it, and one row block of activations stays in L1.
    public var kBlock: Int {
        let blocks = (w.pairs + 255) / 256
        return (w.pairs + blocks - 1) / blocks
    }
    public var panelGroup: Int { max(1, (384 * 1024) / (kBlock * BF16Panels.width * 4)) }
}

/// Runs `tile(x, ldx, w, kn, y, ldy, accumulate)` over rows `rowRange` and panels `panels` with K blocking,
/// routing the last partial panel through a scratch tile. `X` is the element type of the activation rows (Float or
/// UInt32 pairs); `xAt(t0, kp)` gives (address of row t0's pair kp, row stride) for a block of rowBlock rows
/// starting at t0 (a padded copy where fewer rows remain; rows past rowRange are computed and dropped).
@inlinable @inline(__always)
public func forEachBF16Tile<X>(_ a: BF16GEMMArgs, panels: Range<Int>, rowRange: Range<Int>,
                               rows xAt: (Int, Int) -> (UnsafePointer<X>, Int),
                               tile: (UnsafePointer<X>, Int, UnsafePointer<UInt32>, Int,
                                      UnsafeMutablePointer<Float>, Int, Bool) -> Void) {
    guard !panels.isEmpty, !rowRange.isEmpty else { return }
    let width = BF16Panels.width, mr = BF16Panels.rowBlock
    let kb = a.kBlock, group = a.panelGroup, pairs = a.w.pairs, nOut = a.w.rows
    withUnsafeTemporaryAllocation(of: Float.self, capacity: mr * width) { tmpBuf in
        guard let tmp = tmpBuf.baseAddress else { return }
        var k0 = 0
        while k0 < pairs {
            let kn = min(kb, pairs - k0)
            let acc = k0 > 0
            var g0 = panels.lowerBound
            while g0 < panels.upperBound {
                let g1 = min(g0 + group, panels.upperBound)
                var t0 = rowRange.lowerBound
                while t0 < rowRange.upperBound {
                    let (xp, lx) = xAt(t0, k0)
                    let full = t0 + mr <= rowRange.upperBound
                    let rowsHere = min(mr, rowRange.upperBound - t0)
                    for p in g0..<g1 {
                        let wp = UnsafePointer(a.w.data + (p * pairs + k0) * width)
                        let cols = min(width, nOut - p * width)
                        let yp = a.y + t0 * a.ldy + p * width
                        if full && cols == width {
                            tile(xp, lx, wp, kn, yp, a.ldy, acc)
                        } else {
                            if acc { for r in 0..<rowsHere { for c in 0..<cols { tmp[r * width + c] = yp[r * a.ldy + c] } } }
                            tile(xp, lx, wp, kn, tmp, width, acc)
                            for r in 0..<rowsHere { for c in 0..<cols { yp[r * a.ldy + c] = tmp[r * width + c] } }
                        }
                    }
                    t0 += mr
                }
                g0 = g1
            }
            k0 += kn
        }
    }
}

/// (row t0's f32 activations at pair kp, stride): in place for a full block, else rows t0..<end copied into the
/// zero-padded `pad` (rowBlock x cols floats) and read from there.
@inlinable @inline(__always)
public func f32RowBlock(_ a: BF16GEMMArgs, _ t0: Int, _ kp: Int, end: Int) -> (UnsafePointer<Float>, Int) {
    if t0 + BF16Panels.rowBlock <= end { return (a.x + t0 * a.ldx + 2 * kp, a.ldx) }
    let k = a.w.cols
    if kp == 0 {
        for r in 0..<BF16Panels.rowBlock {
            let dst = a.pad + r * k
            if t0 + r < end { dst.update(from: a.x + (t0 + r) * a.ldx, count: k) } else { dst.update(repeating: 0, count: k) }
        }
    }
    return (UnsafePointer(a.pad + 2 * kp), k)
}
