// Lane-wise min/max of SIMD16<Float> written as lane loops, which LLVM turns into vminps/vmaxps: the stdlib's
// generic pointwiseMin/pointwiseMax stay out-of-line calls (9 % of a decode step at depth 4096, inside exp16).
// And a tree sum of the 16 lanes: SIMD16.sum() adds them one after another (15 dependent adds and lane extracts).

/// v[0] + ... + v[15] summed as a tree of halves (4 levels of vector adds; rounds differently from v.sum()).
@inlinable @inline(__always)
public func lanesSum(_ v: SIMD16<Float>) -> Float {
    let s8 = v.lowHalf + v.highHalf
    let s4 = s8.lowHalf + s8.highHalf
    let s2 = s4.lowHalf + s4.highHalf
    return s2[0] + s2[1]
}

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
