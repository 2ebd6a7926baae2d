/* A software prefetch for kernels whose reads inside a block jump around enough that the hardware prefetcher
 * falls behind (the row-interleaved K-quant tiles). _mm_prefetch is a macro Swift cannot import. */
#ifndef MISTRAL_PREFETCH_H
#define MISTRAL_PREFETCH_H

/* Brings the cache line at p towards L1 for reading; never faults, whatever p is. */
static inline void mistral_prefetch_read(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

/* The same, non-temporal: the line is read once, so it should not displace what the outer caches hold. */
static inline void mistral_prefetch_read_once(const void *p) {
    __builtin_prefetch(p, 0, 0);
}

#endif
