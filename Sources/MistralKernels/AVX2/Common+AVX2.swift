// Loads and reductions shared by the AVX2 kernels (x86-64-v3: AVX2, FMA, F16C), which run on every CPU the
// library supports.
import _Builtin_intrinsics.intel

@inline(__always) func load256(_ p: UnsafeRawPointer) -> __m256i { p.loadUnaligned(as: __m256i.self) }
@inline(__always) func load128(_ p: UnsafeRawPointer) -> __m128i { p.loadUnaligned(as: __m128i.self) }

@inline(__always) func hsum256(_ v: __m256) -> Float {
    let s = v.lowHalf + v.highHalf
    return (s[0] + s[2]) + (s[1] + s[3])
}

@inline(__always) func bytes16(_ v: SIMD16<UInt8>) -> __m128i { unsafeBitCast(v, to: __m128i.self) }
@inline(__always) func bytes32(_ v: SIMD32<UInt8>) -> __m256i { unsafeBitCast(v, to: __m256i.self) }
