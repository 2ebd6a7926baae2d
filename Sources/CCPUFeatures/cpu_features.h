/* What the running CPU (and the OS's saved vector state) supports, for choosing a kernel path once at start.
 * __builtin_cpu_supports reads CPUID and XCR0 through the compiler runtime; it is only callable from C. */
#ifndef MISTRAL_CPU_FEATURES_H
#define MISTRAL_CPU_FEATURES_H

/* x86-64-v3: what every kernel target of the library is built for. */
static inline int mistral_cpu_has_avx2(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")
        && __builtin_cpu_supports("bmi2");
#else
    return 0;
#endif
}

/* The AVX-512 kernel target: F, BW, VL, DQ and VNNI (vpdpbusd / vpdpwssd). */
static inline int mistral_cpu_has_avx512_vnni(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return mistral_cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

/* vdpbf16ps, for bf16 float GEMMs. */
static inline int mistral_cpu_has_avx512_bf16(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return mistral_cpu_has_avx512_vnni() && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

#endif
