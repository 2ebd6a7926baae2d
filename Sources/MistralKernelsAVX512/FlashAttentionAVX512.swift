// Non-causal flash attention for one (image, head): a tile of up to 16 queries against every key of the image in
// blocks of 64, with an online softmax (running max and sum per query), so no score row longer than one block
// exists. Keys arrive transposed per block ([len/64][headDim][64], each block one contiguous 16 KiB run; pad keys
// masked off) so Q·Kᵀ is 16 keys per FMA; values are rows ([len][ldv]) so P·V is headDim/16 vectors per key. The plain reference is
// VisionAttention (the full-softmax kernel), which the tests compare against.
import _Builtin_intrinsics.intel
import MistralKernels
import Glibc

public enum FlashAttentionAVX512 {
    public static let queryTile = 16
    public static let keyBlock = 64

    /// Floats of per-worker scratch `run` needs for a head dimension.
    public static func scratchFloats(headDim: Int) -> Int {
        queryTile * keyBlock + 2 * queryTile * headDim + 2 * queryTile
    }

    /// Floats the keys of one head take in the blocked layout: `len` rounded up to whole key blocks.
    @inline(__always)
    public static func paddedKeys(_ len: Int) -> Int { (len + keyBlock - 1) / keyBlock * keyBlock }

    /// Index of key j, dimension e in one head's blocked keys ([len / 64][headDim][64]: each block contiguous).
    @inline(__always)
    public static func keyIndex(_ j: Int, _ e: Int, headDim: Int) -> Int {
        (j / keyBlock) * headDim * keyBlock + e * keyBlock + j % keyBlock
    }

    /// out[i * ldo + e] = Σ_j softmax_j(scale · q_i·k_j) v_j[e] for the nq (1...16) queries at q (stride ldq).
    /// Keys in the blocked layout (keyIndex; pad keys of the last block are masked), values as rows of stride ldv.
    /// headDim must be a multiple of 16.
    public static func run(q: UnsafePointer<Float>, ldq: Int, nq: Int, kT: UnsafePointer<Float>,
                           v: UnsafePointer<Float>, ldv: Int, len: Int, headDim hd: Int, scale: Float,
                           out: UnsafeMutablePointer<Float>, ldo: Int, scratch: UnsafeMutablePointer<Float>) {
        guard nq > 0, len > 0 else { return }
        let qt = queryTile
        let live = min(nq, qt)
        let s = scratch                                   // [16][64] scores, then probabilities
        let o = scratch + qt * keyBlock                   // [16][hd] output accumulators
        let qT = o + qt * hd                              // [hd][16] queries, transposed and scaled
        let mRun = qT + qt * hd, lRun = mRun + qt
        o.update(repeating: 0, count: qt * hd)
        for i in 0..<qt { mRun[i] = -.infinity; lRun[i] = 0 }
        // Rows past nq repeat the last query; their results are dropped.
        for i in 0..<qt {
            let src = q + min(i, nq - 1) * ldq
            for e in 0..<hd { qT[e * qt + i] = src[e] * scale }
        }
        let vecs = hd / 16
        var j0 = 0
        while j0 < len {
            let valid = min(keyBlock, len - j0)
            let sub = (valid + 15) / 16
            let kBlock = kT + (j0 / keyBlock) * hd * keyBlock
            // S = Q·Kᵀ for 16 keys per vector, 16 query accumulators, queries broadcast from the packed tile.
            for u in 0..<sub {
                let z = __m512(repeating: 0)
                var a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z
                var a8 = z, a9 = z, a10 = z, a11 = z, a12 = z, a13 = z, a14 = z, a15 = z
                var kp = UnsafeRawPointer(kBlock + u * 16)
                var qp = UnsafePointer<Float>(qT)
                for _ in 0..<hd {
                    let kv = kp.loadUnaligned(as: __m512.self)
                    kp += keyBlock * 4
                    a0 = _mm512_fmadd_ps(__m512(repeating: qp[0]), kv, a0)
                    a1 = _mm512_fmadd_ps(__m512(repeating: qp[1]), kv, a1)
                    a2 = _mm512_fmadd_ps(__m512(repeating: qp[2]), kv, a2)
                    a3 = _mm512_fmadd_ps(__m512(repeating: qp[3]), kv, a3)
                    a4 = _mm512_fmadd_ps(__m512(repeating: qp[4]), kv, a4)
                    a5 = _mm512_fmadd_ps(__m512(repeating: qp[5]), kv, a5)
                    a6 = _mm512_fmadd_ps(__m512(repeating: qp[6]), kv, a6)
                    a7 = _mm512_fmadd_ps(__m512(repeating: qp[7]), kv, a7)
                    a8 = _mm512_fmadd_ps(__m512(repeating: qp[8]), kv, a8)
                    a9 = _mm512_fmadd_ps(__m512(repeating: qp[9]), kv, a9)
                    a10 = _mm512_fmadd_ps(__m512(repeating: qp[10]), kv, a10)
                    a11 = _mm512_fmadd_ps(__m512(repeating: qp[11]), kv, a11)
                    a12 = _mm512_fmadd_ps(__m512(repeating: qp[12]), kv, a12)
                    a13 = _mm512_fmadd_ps(__m512(repeating: qp[13]), kv, a13)
                    a14 = _mm512_fmadd_ps(__m512(repeating: qp[14]), kv, a14)
                    a15 = _mm512_fmadd_ps(__m512(repeating: qp[15]), kv, a15)
                    qp += 16
                }
                let left = valid - u * 16
                let keep: UInt16 = left >= 16 ? 0xFFFF : UInt16((1 << left) - 1)
                let ninf = __m512(repeating: -.infinity)
                @inline(__always) func put(_ acc: __m512, _ row: Int) {
                    let val = _mm512_mask_blend_ps(keep, ninf, acc)
                    UnsafeMutableRawPointer(s + row * keyBlock + u * 16).storeBytes(of: val, as: __m512.self)
                }
                put(a0, 0); put(a1, 1); put(a2, 2); put(a3, 3); put(a4, 4); put(a5, 5); put(a6, 6); put(a7, 7)
                put(a8, 8); put(a9, 9); put(a10, 10); put(a11, 11); put(a12, 12); put(a13, 13); put(a14, 14)
                put(a15, 15)
            }
            // Online softmax: new running max, rescale the sums and outputs, probabilities in place of scores.
            for i in 0..<live {
                let row = s + i * keyBlock
                var mx = __m512(repeating: -.infinity)
                for u in 0..<sub { mx = _mm512_max_ps(mx, UnsafeRawPointer(row + u * 16).loadUnaligned(as: __m512.self)) }
                let mNew = max(mRun[i], _mm512_reduce_max_ps(mx))
                let mv = __m512(repeating: mNew)
                var sum = __m512(repeating: 0)
                for u in 0..<sub {
                    let p = UnsafeMutableRawPointer(row + u * 16)
                    let e = exp512(p.loadUnaligned(as: __m512.self) - mv)
                    p.storeBytes(of: e, as: __m512.self)
                    sum += e
                }
                let alpha = mRun[i] == -.infinity ? 0 : expf(mRun[i] - mNew)
                lRun[i] = lRun[i] * alpha + _mm512_reduce_add_ps(sum)
                mRun[i] = mNew
                if alpha != 1 {
                    let av = __m512(repeating: alpha)
                    for c in 0..<vecs {
                        let p = UnsafeMutableRawPointer(o + i * hd + c * 16)
                        p.storeBytes(of: p.loadUnaligned(as: __m512.self) * av, as: __m512.self)
                    }
                }
            }
            pv(s: s, o: o, v: v + j0 * ldv, ldv: ldv, valid: valid, live: live, hd: hd)
            j0 += valid
        }
        for i in 0..<live {
            let inv = __m512(repeating: 1 / lRun[i])
            for c in 0..<vecs {
                let val = UnsafeRawPointer(o + i * hd + c * 16).loadUnaligned(as: __m512.self) * inv
                UnsafeMutableRawPointer(out + i * ldo + c * 16).storeBytes(of: val, as: __m512.self)
            }
        }
    }

    /// O += P·V over one key block: two queries at a time share each value vector, 64 dims per pass.
    @inline(__always)
    static func pv(s: UnsafeMutablePointer<Float>, o: UnsafeMutablePointer<Float>, v: UnsafePointer<Float>, ldv: Int,
                   valid: Int, live: Int, hd: Int) {
        let vecs = hd / 16
        var i = 0
        while i < live {
            let two = i + 1 < live
            let pa = s + i * keyBlock, pb = s + (two ? i + 1 : i) * keyBlock
            var c = 0
            while c < vecs {
                let w = min(4, vecs - c)
                let oa = UnsafeMutableRawPointer(o + i * hd + c * 16)
                let ob = UnsafeMutableRawPointer(o + (two ? i + 1 : i) * hd + c * 16)
                var x0 = oa.loadUnaligned(as: __m512.self), y0 = ob.loadUnaligned(as: __m512.self)
                var x1 = w > 1 ? oa.loadUnaligned(fromByteOffset: 64, as: __m512.self) : __m512()
                var y1 = w > 1 ? ob.loadUnaligned(fromByteOffset: 64, as: __m512.self) : __m512()
                var x2 = w > 2 ? oa.loadUnaligned(fromByteOffset: 128, as: __m512.self) : __m512()
                var y2 = w > 2 ? ob.loadUnaligned(fromByteOffset: 128, as: __m512.self) : __m512()
                var x3 = w > 3 ? oa.loadUnaligned(fromByteOffset: 192, as: __m512.self) : __m512()
                var y3 = w > 3 ? ob.loadUnaligned(fromByteOffset: 192, as: __m512.self) : __m512()
                var vp = UnsafeRawPointer(v + c * 16)
                let vStride = ldv * 4
                if w == 4 {
                    for j in 0..<valid {
                        let ba = __m512(repeating: pa[j]), bb = __m512(repeating: pb[j])
                        let v0 = vp.loadUnaligned(as: __m512.self), v1 = vp.loadUnaligned(fromByteOffset: 64, as: __m512.self)
                        let v2 = vp.loadUnaligned(fromByteOffset: 128, as: __m512.self)
                        let v3 = vp.loadUnaligned(fromByteOffset: 192, as: __m512.self)
                        vp += vStride
                        x0 = _mm512_fmadd_ps(ba, v0, x0); y0 = _mm512_fmadd_ps(bb, v0, y0)
                        x1 = _mm512_fmadd_ps(ba, v1, x1); y1 = _mm512_fmadd_ps(bb, v1, y1)
                        x2 = _mm512_fmadd_ps(ba, v2, x2); y2 = _mm512_fmadd_ps(bb, v2, y2)
                        x3 = _mm512_fmadd_ps(ba, v3, x3); y3 = _mm512_fmadd_ps(bb, v3, y3)
                    }
                } else {
                    for j in 0..<valid {
                        let ba = __m512(repeating: pa[j]), bb = __m512(repeating: pb[j])
                        let v0 = vp.loadUnaligned(as: __m512.self)
                        x0 = _mm512_fmadd_ps(ba, v0, x0); y0 = _mm512_fmadd_ps(bb, v0, y0)
                        if w > 1 {
                            let v1 = vp.loadUnaligned(fromByteOffset: 64, as: __m512.self)
                            x1 = _mm512_fmadd_ps(ba, v1, x1); y1 = _mm512_fmadd_ps(bb, v1, y1)
                        }
                        if w > 2 {
                            let v2 = vp.loadUnaligned(fromByteOffset: 128, as: __m512.self)
                            x2 = _mm512_fmadd_ps(ba, v2, x2); y2 = _mm512_fmadd_ps(bb, v2, y2)
                        }
                        vp += vStride
                    }
                }
                // Store b first: when `two` is false ob == oa, and a's result must win.
                ob.storeBytes(of: y0, as: __m512.self)
                if w > 1 { ob.storeBytes(of: y1, toByteOffset: 64, as: __m512.self) }
                if w > 2 { ob.storeBytes(of: y2, toByteOffset: 128, as: __m512.self) }
                if w > 3 { ob.storeBytes(of: y3, toByteOffset: 192, as: __m512.self) }
                oa.storeBytes(of: x0, as: __m512.self)
                if w > 1 { oa.storeBytes(of: x1, toByteOffset: 64, as: __m512.self) }
                if w > 2 { oa.storeBytes(of: x2, toByteOffset: 128, as: __m512.self) }
                if w > 3 { oa.storeBytes(of: x3, toByteOffset: 192, as: __m512.self) }
                c += w
            }
            i += 2
        }
    }

    /// e^x for 16 lanes (Cephes expf polynomial, ~1 ulp on [-87, 88]). Inputs below -87.3 give e^-87.3 ≈ 1e-38,
    /// so a masked (-inf) key weighs 1e-38 of the block's largest: below any float tolerance.
    @inline(__always)
    static func exp512(_ v: __m512) -> __m512 {
        let x0 = _mm512_min_ps(_mm512_max_ps(v, __m512(repeating: -87.3)), __m512(repeating: 88.3))
        let t = _mm512_fmadd_ps(x0, __m512(repeating: 1.44269504088896341), __m512(repeating: 12_582_912))
        let fx = t - __m512(repeating: 12_582_912)
        var x = _mm512_fnmadd_ps(fx, __m512(repeating: 0.693359375), x0)
        x = _mm512_fnmadd_ps(fx, __m512(repeating: -2.12194440e-4), x)
        let z = x * x
        var y = __m512(repeating: 1.9875691500e-4)
        y = _mm512_fmadd_ps(y, x, __m512(repeating: 1.3981999507e-3))
        y = _mm512_fmadd_ps(y, x, __m512(repeating: 8.3334519073e-3))
        y = _mm512_fmadd_ps(y, x, __m512(repeating: 4.1665795894e-2))
        y = _mm512_fmadd_ps(y, x, __m512(repeating: 1.6666665459e-1))
        y = _mm512_fmadd_ps(y, x, __m512(repeating: 5.0000001201e-1))
        y = _mm512_fmadd_ps(y, z, x) + __m512(repeating: 1)
        let e = (unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return y * unsafeBitCast(e, to: __m512.self)
    }
}
