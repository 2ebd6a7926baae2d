// AVX-512 BF16 intrinsics in integer-vector clothing: Swift cannot import functions typed with __bf16 vectors
// (__m512bh), so these wrappers take the bf16 pairs as __m512i. Each carries its own target attribute, so the
// header compiles in any module; Swift code built for AVX-512 BF16 inlines them to one instruction.
#ifndef MISTRAL_BF16_INTRINSICS_H
#define MISTRAL_BF16_INTRINSICS_H
#include <immintrin.h>

/// acc + a[2i]·b[2i] + a[2i+1]·b[2i+1] per f32 lane (vdpbf16ps).
static inline __attribute__((always_inline, target("avx512f,avx512bf16")))
__m512 mistral_dpbf16_512(__m512 acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

/// 32 bf16 (round to nearest even) from two vectors of 16 f32: lo fills the low half (vcvtne2ps2bf16).
static inline __attribute__((always_inline, target("avx512f,avx512bf16")))
__m512i mistral_cvtne2ps_pbh_512(__m512 hi, __m512 lo) {
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}
#endif
