// AVX2 + FMA kernel of the packed float GEMM (layout: BF16Panels.swift): f32 activations against the bf16 weight
// pairs widened in registers. The 8 x 32 tile runs as four 4-row x 16-column sub-tiles (8 ymm accumulators each,
// AVX2 has 16 registers). Without AVX-512 BF16 the bf16-compute mode runs this kernel too (the more exact one).
import _Builtin_intrinsics.intel

public enum BF16GEMMAVX2 {
    /// Columns of panels `panels` for rows `rows`, f32 activations.
    public static func runF32(_ a: BF16GEMMArgs, panels: Range<Int>, rows: Range<Int>) {
        forEachBF16Tile(a, panels: panels, rowRange: rows,
                        rows: { t0, kp in f32RowBlock(a, t0, kp, end: rows.upperBound) },
                        tile: tile)
    }

    @inline(__always)
    static func tile(_ x: UnsafePointer<Float>, _ ldx: Int, _ w: UnsafePointer<UInt32>, _ kn: Int,
                     _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ acc: Bool) {
        for half in 0..<2 {
            for group in 0..<2 {
                sub(x + group * 4 * ldx, ldx, w + half * 16, kn, y + group * 4 * ldy + half * 16, ldy, acc)
            }
        }
    }

    @inline(__always)
    static func sub(_ x: UnsafePointer<Float>, _ ldx: Int, _ w: UnsafePointer<UInt32>, _ kn: Int,
                    _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ acc: Bool) {
        let z = SIMD8<Float>(repeating: 0)
        var c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z
        let x0 = x, x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx
        let high = SIMD8<UInt32>(repeating: 0xFFFF_0000)
        var wp = UnsafeRawPointer(w)
        for kp in 0..<kn {
            let p0 = wp.loadUnaligned(as: SIMD8<UInt32>.self)
            let p1 = wp.loadUnaligned(fromByteOffset: 32, as: SIMD8<UInt32>.self)
            wp += 128
            let e0 = unsafeBitCast(p0 &<< 16, to: SIMD8<Float>.self), o0 = unsafeBitCast(p0 & high, to: SIMD8<Float>.self)
            let e1 = unsafeBitCast(p1 &<< 16, to: SIMD8<Float>.self), o1 = unsafeBitCast(p1 & high, to: SIMD8<Float>.self)
            let k = 2 * kp
            @inline(__always) func row(_ xr: UnsafePointer<Float>, _ ca: inout SIMD8<Float>, _ cb: inout SIMD8<Float>) {
                let ae = SIMD8<Float>(repeating: xr[k]), ao = SIMD8<Float>(repeating: xr[k + 1])
                ca.addProduct(ae, e0); cb.addProduct(ae, e1)
                ca.addProduct(ao, o0); cb.addProduct(ao, o1)
            }
            row(x0, &c00, &c01); row(x1, &c10, &c11); row(x2, &c20, &c21); row(x3, &c30, &c31)
        }
        @inline(__always) func store(_ ca: SIMD8<Float>, _ cb: SIMD8<Float>, _ yr: UnsafeMutablePointer<Float>) {
            let p = UnsafeMutableRawPointer(yr)
            if acc {
                p.storeBytes(of: ca + p.loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                p.storeBytes(of: cb + p.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self), toByteOffset: 32, as: SIMD8<Float>.self)
            } else {
                p.storeBytes(of: ca, as: SIMD8<Float>.self)
                p.storeBytes(of: cb, toByteOffset: 32, as: SIMD8<Float>.self)
            }
        }
        store(c00, c01, y); store(c10, c11, y + ldy); store(c20, c21, y + 2 * ldy); store(c30, c31, y + 3 * ldy)
    }
}
