// Loads, constants and reductions shared by the AVX-512 kernels. Built for x86-64-v4 + VNNI (Package.swift);
// nothing here runs unless the dispatcher found those features.
import _Builtin_intrinsics.intel

@inline(__always) func load256(_ p: UnsafeRawPointer) -> __m256i { p.loadUnaligned(as: __m256i.self) }
@inline(__always) func load512(_ p: UnsafeRawPointer) -> __m512i { p.loadUnaligned(as: __m512i.self) }
@inline(__always) func load128(_ p: UnsafeRawPointer) -> __m128i { p.loadUnaligned(as: __m128i.self) }

/// [lo | hi] as one 512-bit vector.
@inline(__always) func join(_ lo: __m256i, _ hi: __m256i) -> __m512i { __m512i(lowHalf: lo, highHalf: hi) }

/// A vector of 32 Int16 lanes.
@inline(__always) func i16x32(_ v: SIMD32<Int16>) -> __m512i { unsafeBitCast(v, to: __m512i.self) }
@inline(__always) func i16x16(_ v: SIMD16<Int16>) -> __m256i { unsafeBitCast(v, to: __m256i.self) }

@inline(__always) func hsum256(_ v: __m256) -> Float {
    let s = v.lowHalf + v.highHalf
    return (s[0] + s[2]) + (s[1] + s[3])
}

@inline(__always) func half(_ p: UnsafeRawPointer) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self)))
}

/// permutexvar index that repeats lane i of 16-bit lanes `copies` times, starting at lane `first`.
@inline(__always) func repeatIndex32(first: Int16, copies: Int) -> SIMD32<Int16> {
    var v = SIMD32<Int16>()
    for i in 0..<32 { v[i] = first + Int16(i / copies) }
    return v
}
