// AVX-512 kernels of the packed float GEMM (layout: MistralKernels/BF16Panels.swift): 8 activation rows x 32
// output columns per register tile (16 zmm accumulators), K blocked so a panel group stays in L2.
//  - bf16 mode: activations already rounded to bf16 pairs, one vdpbf16ps per (row, 16 columns, k-pair).
//  - f32 mode: f32 activations, the bf16 weight pairs widened in registers (shift / mask), two FMAs per pair.
import _Builtin_intrinsics.intel
import CBF16Intrinsics
import MistralKernels

public enum BF16GEMMAVX512 {
    /// Columns of panels `panels` for rows `rows` of a bf16-mode call (`a.xb` set).
    public static func runBF16(_ a: BF16GEMMArgs, panels: Range<Int>, rows: Range<Int>) {
        guard let xb = a.xb else { return }
        let pairs = a.w.pairs
        forEachBF16Tile(a, panels: panels, rowRange: rows,
                        rows: { t0, kp in (xb + (t0 * pairs + kp), pairs) },
                        tile: tileBF16)
    }

    /// The same for f32 mode.
    public static func runF32(_ a: BF16GEMMArgs, panels: Range<Int>, rows: Range<Int>) {
        forEachBF16Tile(a, panels: panels, rowRange: rows,
                        rows: { t0, kp in f32RowBlock(a, t0, kp, end: rows.upperBound) },
                        tile: tileF32)
    }

    @inline(__always)
    static func bcast(_ p: UnsafePointer<UInt32>, _ i: Int) -> __m512i {
        unsafeBitCast(SIMD16<UInt32>(repeating: p[i]), to: __m512i.self)
    }

    @inline(__always)
    static func store(_ c0: __m512, _ c1: __m512, _ y: UnsafeMutablePointer<Float>, _ acc: Bool) {
        let p = UnsafeMutableRawPointer(y)
        if acc {
            p.storeBytes(of: c0 + p.loadUnaligned(as: __m512.self), as: __m512.self)
            p.storeBytes(of: c1 + p.loadUnaligned(fromByteOffset: 64, as: __m512.self), toByteOffset: 64, as: __m512.self)
        } else {
            p.storeBytes(of: c0, as: __m512.self)
            p.storeBytes(of: c1, toByteOffset: 64, as: __m512.self)
        }
    }

    /// 8 rows of bf16 pairs (stride ldx words) x one panel's kn pairs -> y (8 x 32, stride ldy).
    @inline(__always)
    static func tileBF16(_ x: UnsafePointer<UInt32>, _ ldx: Int, _ w: UnsafePointer<UInt32>, _ kn: Int,
                         _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ acc: Bool) {
        let z = __m512(repeating: 0)
        var c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z
        var c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z
        let x0 = x, x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx
        let x4 = x + 4 * ldx, x5 = x + 5 * ldx, x6 = x + 6 * ldx, x7 = x + 7 * ldx
        var wp = UnsafeRawPointer(w)
        for kp in 0..<kn {
            let b0 = wp.loadUnaligned(as: __m512i.self)
            let b1 = wp.loadUnaligned(fromByteOffset: 64, as: __m512i.self)
            wp += 128
            var a = bcast(x0, kp)
            c00 = mistral_dpbf16_512(c00, a, b0); c01 = mistral_dpbf16_512(c01, a, b1)
            a = bcast(x1, kp)
            c10 = mistral_dpbf16_512(c10, a, b0); c11 = mistral_dpbf16_512(c11, a, b1)
            a = bcast(x2, kp)
            c20 = mistral_dpbf16_512(c20, a, b0); c21 = mistral_dpbf16_512(c21, a, b1)
            a = bcast(x3, kp)
            c30 = mistral_dpbf16_512(c30, a, b0); c31 = mistral_dpbf16_512(c31, a, b1)
            a = bcast(x4, kp)
            c40 = mistral_dpbf16_512(c40, a, b0); c41 = mistral_dpbf16_512(c41, a, b1)
            a = bcast(x5, kp)
            c50 = mistral_dpbf16_512(c50, a, b0); c51 = mistral_dpbf16_512(c51, a, b1)
            a = bcast(x6, kp)
            c60 = mistral_dpbf16_512(c60, a, b0); c61 = mistral_dpbf16_512(c61, a, b1)
            a = bcast(x7, kp)
            c70 = mistral_dpbf16_512(c70, a, b0); c71 = mistral_dpbf16_512(c71, a, b1)
        }
        store(c00, c01, y, acc); store(c10, c11, y + ldy, acc)
        store(c20, c21, y + 2 * ldy, acc); store(c30, c31, y + 3 * ldy, acc)
        store(c40, c41, y + 4 * ldy, acc); store(c50, c51, y + 5 * ldy, acc)
        store(c60, c61, y + 6 * ldy, acc); store(c70, c71, y + 7 * ldy, acc)
    }

    /// 8 rows of f32 activations (stride ldx floats) x one panel's kn pairs, weights widened to f32 in registers.
    @inline(__always)
    static func tileF32(_ x: UnsafePointer<Float>, _ ldx: Int, _ w: UnsafePointer<UInt32>, _ kn: Int,
                        _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ acc: Bool) {
        let z = __m512(repeating: 0)
        var c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z
        var c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z
        let x0 = x, x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx
        let x4 = x + 4 * ldx, x5 = x + 5 * ldx, x6 = x + 6 * ldx, x7 = x + 7 * ldx
        let high = SIMD16<UInt32>(repeating: 0xFFFF_0000)
        var wp = UnsafeRawPointer(w)
        for kp in 0..<kn {
            let p0 = wp.loadUnaligned(as: SIMD16<UInt32>.self)
            let p1 = wp.loadUnaligned(fromByteOffset: 64, as: SIMD16<UInt32>.self)
            wp += 128
            let e0 = unsafeBitCast(p0 &<< 16, to: __m512.self), o0 = unsafeBitCast(p0 & high, to: __m512.self)
            let e1 = unsafeBitCast(p1 &<< 16, to: __m512.self), o1 = unsafeBitCast(p1 & high, to: __m512.self)
            let k = 2 * kp
            @inline(__always) func row(_ xr: UnsafePointer<Float>, _ ca: inout __m512, _ cb: inout __m512) {
                let ae = __m512(repeating: xr[k]), ao = __m512(repeating: xr[k + 1])
                ca = _mm512_fmadd_ps(ae, e0, ca); cb = _mm512_fmadd_ps(ae, e1, cb)
                ca = _mm512_fmadd_ps(ao, o0, ca); cb = _mm512_fmadd_ps(ao, o1, cb)
            }
            row(x0, &c00, &c01); row(x1, &c10, &c11); row(x2, &c20, &c21); row(x3, &c30, &c31)
            row(x4, &c40, &c41); row(x5, &c50, &c51); row(x6, &c60, &c61); row(x7, &c70, &c71)
        }
        store(c00, c01, y, acc); store(c10, c11, y + ldy, acc)
        store(c20, c21, y + 2 * ldy, acc); store(c30, c31, y + 3 * ldy, acc)
        store(c40, c41, y + 4 * ldy, acc); store(c50, c51, y + 5 * ldy, acc)
        store(c60, c61, y + 6 * ldy, acc); store(c70, c71, y + 7 * ldy, acc)
    }
}
