// Quantized matrix-vector kernels: ggml Q4_0 / Q4_1 / Q8_0 weights, used in place from the file, times
// activations quantized to int8 per 32-block. Pure Swift tuned for x86-64-v3 (AVX2/FMA/F16C); about 3.5 ns per
// 32-weight block on this project's 2 GHz Zen machines (a per-block scalar formulation took 5.1 ns).
//
//  * Activations are stored widened to Int16 and pre-permuted so the weight nibbles/bytes are consumed in place
//    as 16-bit lanes (no byte->word widening): a 16-byte Q4 run read as SIMD8<UInt16> gives, per lane i, four
//    nibbles (v&15 -> w[2i], v>>4&15 -> w[2i+16], v>>8&15 -> w[2i+1], v>>12 -> w[2i+17]).
//  * Two blocks per 256-bit vector; products by vpmullw (|4 * 15 * 127| < 2^15), folded to Int32 with
//    (l + l<<16) & 0xFFFF0000 (= pair sum * 65536, exact), then vcvtdq2ps; the 1/65536 is folded into dx.
//  * Q4: 4 blocks per iteration; the four (d, m) f16 pairs are gathered as [b0 b2 | b1 b3] so one vcvtph2ps
//    gives every per-lane scale; Q4_1's m*sx term is one FMA against [0 sx 0 sx ...]; Q4_0's -8 offset is
//    acc += d * (dx*S - 2*sx) per lane (4 lanes per block -> -8*d*sx).
//  * Q8_0: the two i16 partials of each i32 lane are converted separately (no overflow); 4 accumulators.
//  * Scales stay per lane; the only horizontal sum is at the end of a row.

public struct PreparedActivations: @unchecked Sendable {  // written by one thread, then only read by the kernels
  public let capacityBlocks: Int
  public private(set) var cols: Int = 0
  /// Q4 layout: per block pair, 4 x SIMD16<Int16>.
  let q4: UnsafeMutablePointer<SIMD16<Int16>>
  /// Q8 layout: per block, 2 x SIMD16<Int16> (even / odd elements).
  let q8: UnsafeMutablePointer<SIMD16<Int16>>
  /// per pair: [dx_k x4, dx_k+1 x4]
  let dxv: UnsafeMutablePointer<SIMD8<Float>>
  /// per pair: [2 sx_k x4, 2 sx_k+1 x4]   (Q4_0: the -8 offset, spread over 4 lanes)
  let sx8v: UnsafeMutablePointer<SIMD8<Float>>
  /// per pair: [0, sx_k, 0, sx_k+1]         (Q4_1: multiplies [d_k, m_k, d_k+1, m_k+1])
  let sxm: UnsafeMutablePointer<SIMD4<Float>>
  /// per quad of blocks (4q..4q+3): [0, sx0, 0, sx2, 0, sx1, 0, sx3]  (Q4_1, matches the dm gather order)
  let sxm8: UnsafeMutablePointer<SIMD8<Float>>
  /// per block dx (Q8_0)
  let dx: UnsafeMutablePointer<Float>
  /// per block dx / 65536 (Q8_0)
  let dx16: UnsafeMutablePointer<Float>

  public init(capacity cols: Int) {
    let nb = (cols + 31) / 32
    let np = (nb + 1) / 2
    capacityBlocks = np * 2
    q4 = .allocate(capacity: np * 4)
    q8 = .allocate(capacity: np * 4)
    dxv = .allocate(capacity: np)
    sx8v = .allocate(capacity: np)
    sxm = .allocate(capacity: np)
    dx = .allocate(capacity: np * 2)
    dx16 = .allocate(capacity: np * 2)
    sxm8 = .allocate(capacity: (np + 1) / 2)
  }

  public func deallocate() {
    q4.deallocate(); q8.deallocate(); dxv.deallocate(); sx8v.deallocate(); sxm.deallocate(); dx.deallocate(); sxm8.deallocate(); dx16.deallocate()
  }

  /// Quantize x (cols floats, cols % 32 == 0) to int8 per 32-block and lay it out for the kernels.
  /// The caller guarantees cols % 32 == 0 and cols <= the capacity given at init.
  public mutating func prepare(x: UnsafePointer<Float>, cols: Int) {
    self.cols = cols
    let nb = cols / 32
    let np = (nb + 1) / 2
    let q4s = UnsafeMutableRawPointer(q4).assumingMemoryBound(to: Int16.self)
    let q8s = UnsafeMutableRawPointer(q8).assumingMemoryBound(to: Int16.self)
    let dxs = UnsafeMutableRawPointer(dxv).assumingMemoryBound(to: Float.self)
    let sx8s = UnsafeMutableRawPointer(sx8v).assumingMemoryBound(to: Float.self)
    let sxms = UnsafeMutableRawPointer(sxm).assumingMemoryBound(to: Float.self)
    var qStorage: (SIMD16<Int16>, SIMD16<Int16>) = (.zero, .zero)
    withUnsafeMutableBytes(of: &qStorage) { raw in
    let q = raw.baseAddress!.assumingMemoryBound(to: Int16.self)
    for b in 0..<(np * 2) {
      var d: Float = 0
      var sum = 0
      if b < nb {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[b * 32 + j])) }
        d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        for j in 0..<32 {
          let v = Int16(clampedInt(x[b * 32 + j] * id, 127))
          q[j] = v
          sum += Int(v)
        }
      } else {
        for j in 0..<32 { q[j] = 0 }
      }
      let sx = d * Float(sum)
      let pair = b >> 1, half = b & 1
      // Q4 layout
      let base = pair * 64 + half * 8
      for i in 0..<8 {
        q4s[base + i] = q[2 * i]
        q4s[base + 16 + i] = q[2 * i + 16]
        q4s[base + 32 + i] = q[2 * i + 1]
        q4s[base + 48 + i] = q[2 * i + 17]
      }
      // Q8 layout
      for i in 0..<16 {
        q8s[b * 32 + i] = q[2 * i]
        q8s[b * 32 + 16 + i] = q[2 * i + 1]
      }
      for l in 0..<4 {
        dxs[pair * 8 + half * 4 + l] = d * (1.0 / 65536)
        sx8s[pair * 8 + half * 4 + l] = 2 * sx
      }
      sxms[pair * 4 + half * 2] = 0
      sxms[pair * 4 + half * 2 + 1] = sx
      dx[b] = d
      dx16[b] = d * (1.0 / 65536)
      let sm8 = UnsafeMutableRawPointer(sxm8).assumingMemoryBound(to: Float.self)
      let qd = b >> 2, within = b & 3
      let lane = 1 + 4 * (within & 1) + 2 * (within >> 1)  // 1, 5, 3, 7
      sm8[qd * 8 + lane - 1] = 0
      sm8[qd * 8 + lane] = sx
    }
    }
  }
}

@inline(__always) private func h2f(_ p: UnsafeRawPointer) -> Float {
  Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self)))
}

@inline(__always) private func hsum(_ v: SIMD8<Float>) -> Float {
  let h = v.lowHalf + v.highHalf
  return (h[0] + h[2]) + (h[1] + h[3])
}

/// Σ over 32 weights of two Q4 blocks -> per-lane partial sums (lanes 0-3: block lo, 4-7: block hi).
@inline(__always) private func q4dot(_ v: SIMD16<UInt16>, _ a: UnsafePointer<SIMD16<Int16>>) -> SIMD8<Int32> {
  let m4 = SIMD16<UInt16>(repeating: 15)
  let n0 = unsafeBitCast(v & m4, to: SIMD16<Int16>.self)
  let n1 = unsafeBitCast((v &>> 4) & m4, to: SIMD16<Int16>.self)
  let n2 = unsafeBitCast((v &>> 8) & m4, to: SIMD16<Int16>.self)
  let n3 = unsafeBitCast(v &>> 12, to: SIMD16<Int16>.self)
  let p = (n0 &* a[0] &+ n1 &* a[1]) &+ (n2 &* a[2] &+ n3 &* a[3])
  let l = unsafeBitCast(p, to: SIMD8<Int32>.self)
  return (l &+ (l &<< 16)) & SIMD8<Int32>(repeating: -65536)   // = (pair sum) << 16, exact
}

public func dotRowsQ4_1(w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, cols: Int,
                        act: PreparedActivations, y: UnsafeMutablePointer<Float>) {
  let nb = cols / 32
  let np = nb / 2
  let nq = nb / 4
  for r in rows {
    var p = w + r * rowBytes
    var acc = SIMD8<Float>(), acc2 = SIMD8<Float>()
    var macc = SIMD4<Float>()
    var macc8 = SIMD8<Float>()
    var a = UnsafePointer(act.q4)
    var k = 0
    var qd = 0
    while qd < nq {
      let v01 = SIMD16<UInt16>(lowHalf: (p + 4).loadUnaligned(as: SIMD8<UInt16>.self),
                               highHalf: (p + 24).loadUnaligned(as: SIMD8<UInt16>.self))
      let v23 = SIMD16<UInt16>(lowHalf: (p + 44).loadUnaligned(as: SIMD8<UInt16>.self),
                               highHalf: (p + 64).loadUnaligned(as: SIMD8<UInt16>.self))
      let f01 = SIMD8<Float>(q4dot(v01, a))
      let f23 = SIMD8<Float>(q4dot(v23, a + 4))
      // gather [d0 m0 d2 m2 | d1 m1 d3 m3]
      let u = SIMD4<UInt32>(p.loadUnaligned(as: UInt32.self), (p + 40).loadUnaligned(as: UInt32.self),
                            (p + 20).loadUnaligned(as: UInt32.self), (p + 60).loadUnaligned(as: UInt32.self))
      let h = unsafeBitCast(u, to: SIMD8<Float16>.self)
      let dm = SIMD8<Float>(Float(h[0]), Float(h[1]), Float(h[2]), Float(h[3]), Float(h[4]), Float(h[5]), Float(h[6]), Float(h[7]))
      let d01 = SIMD8<Float>(lowHalf: SIMD4(repeating: dm[0]), highHalf: SIMD4(repeating: dm[4]))
      let d23 = SIMD8<Float>(lowHalf: SIMD4(repeating: dm[2]), highHalf: SIMD4(repeating: dm[6]))
      acc.addProduct(f01, d01 * act.dxv[k])
      acc2.addProduct(f23, d23 * act.dxv[k + 1])
      macc8.addProduct(dm, act.sxm8[qd])
      p += 80
      a += 8
      k &+= 2
      qd &+= 1
    }
    acc += acc2
    macc += macc8.lowHalf + macc8.highHalf
    macc = SIMD4(0, macc[1] + macc[3], 0, 0) // fold the quad m-terms into lane 1
    while k < np {
      let v = SIMD16<UInt16>(lowHalf: (p + 4).loadUnaligned(as: SIMD8<UInt16>.self),
                             highHalf: (p + 24).loadUnaligned(as: SIMD8<UInt16>.self))
      let f = SIMD8<Float>(q4dot(v, a))
      let u0 = p.loadUnaligned(as: UInt32.self), u1 = (p + 20).loadUnaligned(as: UInt32.self)
      let h = unsafeBitCast(SIMD2<UInt32>(u0, u1), to: SIMD4<Float16>.self)
      let dm = SIMD4<Float>(Float(h[0]), Float(h[1]), Float(h[2]), Float(h[3]))
      let dv = SIMD8<Float>(lowHalf: SIMD4(repeating: dm[0]), highHalf: SIMD4(repeating: dm[2]))
      acc.addProduct(f, dv * act.dxv[k])
      macc.addProduct(dm, act.sxm[k])
      p += 40
      a += 4
      k &+= 1
    }
    if nb & 1 != 0 {
      let v = SIMD16<UInt16>(lowHalf: (p + 4).loadUnaligned(as: SIMD8<UInt16>.self), highHalf: .zero)
      let f = SIMD8<Float>(q4dot(v, a))
      let d = h2f(p), m = h2f(p + 2)
      acc.addProduct(f, SIMD8(lowHalf: SIMD4(repeating: d), highHalf: .zero) * act.dxv[k])
      macc.addProduct(SIMD4(d, m, 0, 0), act.sxm[k])
    }
    y[r - rows.lowerBound] = hsum(acc) + (macc[1] + macc[3])
  }
}

public func dotRowsQ4_0(w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, cols: Int,
                        act: PreparedActivations, y: UnsafeMutablePointer<Float>) {
  let nb = cols / 32
  let np = nb / 2
  let nq = nb / 4
  for r in rows {
    var p = w + r * rowBytes
    var acc = SIMD8<Float>(), acc2 = SIMD8<Float>()
    var a = UnsafePointer(act.q4)
    var k = 0
    var qd = 0
    while qd < nq {
      let v01 = SIMD16<UInt16>(lowHalf: (p + 2).loadUnaligned(as: SIMD8<UInt16>.self),
                               highHalf: (p + 20).loadUnaligned(as: SIMD8<UInt16>.self))
      let v23 = SIMD16<UInt16>(lowHalf: (p + 38).loadUnaligned(as: SIMD8<UInt16>.self),
                               highHalf: (p + 56).loadUnaligned(as: SIMD8<UInt16>.self))
      let f01 = SIMD8<Float>(q4dot(v01, a))
      let f23 = SIMD8<Float>(q4dot(v23, a + 4))
      // gather [d0 x d2 x | d1 x d3 x] (x = first qs bytes, never used)
      let u = SIMD4<UInt32>(p.loadUnaligned(as: UInt32.self), (p + 36).loadUnaligned(as: UInt32.self),
                            (p + 18).loadUnaligned(as: UInt32.self), (p + 54).loadUnaligned(as: UInt32.self))
      let h = unsafeBitCast(u, to: SIMD8<Float16>.self)
      let dm = SIMD8<Float>(Float(h[0]), Float(h[1]), Float(h[2]), Float(h[3]), Float(h[4]), Float(h[5]), Float(h[6]), Float(h[7]))
      let d01 = SIMD8<Float>(lowHalf: SIMD4(repeating: dm[0]), highHalf: SIMD4(repeating: dm[4]))
      let d23 = SIMD8<Float>(lowHalf: SIMD4(repeating: dm[2]), highHalf: SIMD4(repeating: dm[6]))
      // d * (dx * S - 8 * sx), the -8*sx spread over 4 lanes
      acc.addProduct(f01 * act.dxv[k] - act.sx8v[k], d01)
      acc2.addProduct(f23 * act.dxv[k + 1] - act.sx8v[k + 1], d23)
      p += 72
      a += 8
      k &+= 2
      qd &+= 1
    }
    acc += acc2
    while k < np {
      let v = SIMD16<UInt16>(lowHalf: (p + 2).loadUnaligned(as: SIMD8<UInt16>.self),
                             highHalf: (p + 20).loadUnaligned(as: SIMD8<UInt16>.self))
      let f = SIMD8<Float>(q4dot(v, a))
      let d0 = h2f(p), d1 = h2f(p + 18)
      let dv = SIMD8<Float>(lowHalf: SIMD4(repeating: d0), highHalf: SIMD4(repeating: d1))
      acc.addProduct(f * act.dxv[k] - act.sx8v[k], dv)
      p += 36
      a += 4
      k &+= 1
    }
    if nb & 1 != 0 {
      let v = SIMD16<UInt16>(lowHalf: (p + 2).loadUnaligned(as: SIMD8<UInt16>.self), highHalf: .zero)
      let f = SIMD8<Float>(q4dot(v, a))
      let d = h2f(p)
      acc.addProduct(f * act.dxv[k] - act.sx8v[k], SIMD8(lowHalf: SIMD4(repeating: d), highHalf: .zero))
    }
    y[r - rows.lowerBound] = hsum(acc)
  }
}

public func dotRowsQ8_0(w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, cols: Int,
                        act: PreparedActivations, y: UnsafeMutablePointer<Float>) {
  let nb = cols / 32
  let hiMask = SIMD8<Int32>(repeating: -65536)
  for r in rows {
    var p = w + r * rowBytes
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>(), acc2 = SIMD8<Float>(), acc3 = SIMD8<Float>()
    var a = UnsafePointer(act.q8)
    var b = 0
    // One block: i16 products e*a_e + o*a_o (|.| <= 32512), then each i32 lane holds two i16 partials;
    // convert (l & 0xFFFF0000) and (l << 16) separately: both exact = partial * 65536 (1/65536 is in dx16).
    @inline(__always) func blk(_ p: UnsafeRawPointer, _ a: UnsafePointer<SIMD16<Int16>>, _ s: Float,
                               _ x: inout SIMD8<Float>, _ y: inout SIMD8<Float>) {
      let v = unsafeBitCast(p.loadUnaligned(as: SIMD16<UInt16>.self), to: SIMD16<Int16>.self)
      let e = (v &<< 8) &>> 8
      let o = v &>> 8
      let l = unsafeBitCast(e &* a[0] &+ o &* a[1], to: SIMD8<Int32>.self)
      let sv = SIMD8<Float>(repeating: s)
      x.addProduct(SIMD8<Float>(l & hiMask), sv)
      y.addProduct(SIMD8<Float>(l &<< 16), sv)
    }
    while b + 2 <= nb {
      blk(p + 2, a, h2f(p) * act.dx16[b], &acc0, &acc1)
      blk(p + 36, a + 2, h2f(p + 34) * act.dx16[b + 1], &acc2, &acc3)
      p += 68
      a += 4
      b &+= 2
    }
    if b < nb { blk(p + 2, a, h2f(p) * act.dx16[b], &acc0, &acc1) }
    y[r - rows.lowerBound] = hsum((acc0 + acc1) + (acc2 + acc3))
  }
}

// MARK: - two activation rows at once (prompt processing)
// The nibble planes and block scales of a weight row are extracted once and used for two tokens, which saves
// about a third of the per-block work when a batch is evaluated.

@inline(__always) private func q4planes(_ v: SIMD16<UInt16>) -> (SIMD16<Int16>, SIMD16<Int16>, SIMD16<Int16>, SIMD16<Int16>) {
  let m4 = SIMD16<UInt16>(repeating: 15)
  return (unsafeBitCast(v & m4, to: SIMD16<Int16>.self), unsafeBitCast((v &>> 4) & m4, to: SIMD16<Int16>.self),
          unsafeBitCast((v &>> 8) & m4, to: SIMD16<Int16>.self), unsafeBitCast(v &>> 12, to: SIMD16<Int16>.self))
}

@inline(__always) private func q4dot(_ n: (SIMD16<Int16>, SIMD16<Int16>, SIMD16<Int16>, SIMD16<Int16>),
                                     _ a: UnsafePointer<SIMD16<Int16>>) -> SIMD8<Float> {
  let p = (n.0 &* a[0] &+ n.1 &* a[1]) &+ (n.2 &* a[2] &+ n.3 &* a[3])
  let l = unsafeBitCast(p, to: SIMD8<Int32>.self)
  return SIMD8<Float>((l &+ (l &<< 16)) & SIMD8<Int32>(repeating: -65536))
}

/// Like dotRowsQ4_1 for two prepared activation rows (same cols), writing yA[r - lo] and yB[r - lo].
public func dotRowsQ4_1Pair(w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, cols: Int,
                            actA: PreparedActivations, actB: PreparedActivations,
                            yA: UnsafeMutablePointer<Float>, yB: UnsafeMutablePointer<Float>) {
  let nb = cols / 32
  let np = nb / 2
  for r in rows {
    var p = w + r * rowBytes
    var accA = SIMD8<Float>(), accB = SIMD8<Float>()
    var mA = SIMD4<Float>(), mB = SIMD4<Float>()
    var a = UnsafePointer(actA.q4), b = UnsafePointer(actB.q4)
    var k = 0
    while k < np {
      let v = SIMD16<UInt16>(lowHalf: (p + 4).loadUnaligned(as: SIMD8<UInt16>.self),
                             highHalf: (p + 24).loadUnaligned(as: SIMD8<UInt16>.self))
      let planes = q4planes(v)
      let u0 = p.loadUnaligned(as: UInt32.self), u1 = (p + 20).loadUnaligned(as: UInt32.self)
      let h = unsafeBitCast(SIMD2<UInt32>(u0, u1), to: SIMD4<Float16>.self)
      let dm = SIMD4<Float>(Float(h[0]), Float(h[1]), Float(h[2]), Float(h[3]))
      let dv = SIMD8<Float>(lowHalf: SIMD4(repeating: dm[0]), highHalf: SIMD4(repeating: dm[2]))
      accA.addProduct(q4dot(planes, a), dv * actA.dxv[k])
      accB.addProduct(q4dot(planes, b), dv * actB.dxv[k])
      mA.addProduct(dm, actA.sxm[k])
      mB.addProduct(dm, actB.sxm[k])
      p += 40
      a += 4
      b += 4
      k &+= 1
    }
    if nb & 1 != 0 {
      let v = SIMD16<UInt16>(lowHalf: (p + 4).loadUnaligned(as: SIMD8<UInt16>.self), highHalf: .zero)
      let planes = q4planes(v)
      let d = h2f(p), m = h2f(p + 2)
      let dv = SIMD8<Float>(lowHalf: SIMD4(repeating: d), highHalf: .zero)
      accA.addProduct(q4dot(planes, a), dv * actA.dxv[k])
      accB.addProduct(q4dot(planes, b), dv * actB.dxv[k])
      mA.addProduct(SIMD4(d, m, 0, 0), actA.sxm[k])
      mB.addProduct(SIMD4(d, m, 0, 0), actB.sxm[k])
    }
    yA[r - rows.lowerBound] = hsum(accA) + (mA[1] + mA[3])
    yB[r - rows.lowerBound] = hsum(accB) + (mB[1] + mB[3])
  }
}
