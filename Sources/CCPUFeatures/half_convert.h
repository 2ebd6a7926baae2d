/* f32 -> f16 for 8 values with F16C's vcvtps2ph: _mm256_cvtps_ph takes its rounding mode as an immediate, so it is
 * a macro Swift cannot import. */
#ifndef MISTRAL_HALF_CONVERT_H
#define MISTRAL_HALF_CONVERT_H

#include <immintrin.h>
#include <stdint.h>

/* dst[i] = f16(src[i]) for i in 0..<8, rounded to nearest even (Float16(_:)'s rounding). */
__attribute__((target("avx,f16c")))
static inline void mistral_float_to_half8(const float *src, uint16_t *dst) {
    _mm_storeu_si128((__m128i *)dst, _mm256_cvtps_ph(_mm256_loadu_ps(src), _MM_FROUND_TO_NEAREST_INT));
}

#endif
