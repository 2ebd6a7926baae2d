// Lane-wise min/max of SIMD16<Float> written as lane loops, which LLVM turns into vminps/vmaxps: the stdlib's
// generic pointwiseMin/pointwiseMax stay out-of-line calls (9 % of a decode step at depth 4096, inside exp16).

/// max(a[i], b[i]) per lane (b's lane where a's is NaN, as Swift.max(b, a) picks).
@inlinable @inline(__always)
public func lanesMax(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
    var r = a
    for i in 0..<16 { r[i] = a[i] > b[i] ? a[i] : b[i] }
    return r
}

/// min(a[i], b[i]) per lane (b's lane where a's is NaN).
@inlinable @inline(__always)
public func lanesMin(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
    var r = a
    for i in 0..<16 { r[i] = a[i] < b[i] ? a[i] : b[i] }
    return r
}
