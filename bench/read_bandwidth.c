/* Memory read bandwidth of one thread, the decode ceiling of bench/proxy_bench.py: sums GIB GiB of uint64
 * (4 independent accumulators, which the compiler turns into wide vector adds under -O3 -march=native, so the
 * loop is bound by memory and not by the adds; numpy's float64 sum was compute-bound on Zen 5 at 16 GB/s).
 *     cc -O3 -march=native -o read_bandwidth bench/read_bandwidth.c
 *     ./read_bandwidth GIB PASSES [--sync]     # --sync: print "ready" after the first touch, wait for a line
 * Prints {"bytes": ..., "best_gbs": ..., "mean_gbs": ...}. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t sum(const uint64_t *p, size_t n) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
    }
    return s0 + s1 + s2 + s3;
}

int main(int argc, char **argv) {
    size_t gib = argc > 1 ? (size_t)atoi(argv[1]) : 2;
    int passes = argc > 2 ? atoi(argv[2]) : 5;
    int sync = argc > 3 && strcmp(argv[3], "--sync") == 0;
    if (gib == 0 || passes <= 0) return 2;
    size_t n = gib << 27; /* 2^27 uint64 = 1 GiB */
    uint64_t *p = malloc(n * sizeof *p);
    if (!p) return 1;
    for (size_t i = 0; i < n; i++) p[i] = i;
    volatile uint64_t sink = sum(p, n);
    if (sync) {
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin)) return 1;
    }
    double best = 1e30, total = 0;
    for (int k = 0; k < passes; k++) {
        double t0 = now();
        sink += sum(p, n);
        double t = now() - t0;
        total += t;
        if (t < best) best = t;
    }
    double bytes = (double)(n * sizeof *p);
    printf("{\"bytes\": %.0f, \"best_gbs\": %.3f, \"mean_gbs\": %.3f}\n", bytes, bytes / best / 1e9,
           bytes * passes / total / 1e9);
    (void)sink;
    free(p);
    return 0;
}
