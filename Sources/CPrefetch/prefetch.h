/* A software prefetch, for kernels whose reads run ahead of what the hardware prefetchers fetch in time
 * (Swift cannot call __builtin_prefetch, and clang's _mm_prefetch is a macro). */
#ifndef MISTRAL_PREFETCH_H
#define MISTRAL_PREFETCH_H

/* Asks for the cache line at p in every cache level; never faults, whatever p is. */
static inline void mistral_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

#endif
