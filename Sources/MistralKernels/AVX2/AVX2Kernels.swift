// The AVX2 (x86-64-v3) kernel of each quantized weight type that has one.

public enum AVX2Kernels {
    public static let table: [QuantType: QuantKernel] = [
        .q4_K: QuantKernel(.q8_K, KQuantsAVX2.q4_K),
        .q5_K: QuantKernel(.q8_K, KQuantsAVX2.q5_K),
        .q6_K: QuantKernel(.q8_K, KQuantsAVX2.q6_K),
        .q4_0: QuantKernel(.q8_0, Q32AVX2.q4_0),
        .q4_1: QuantKernel(.q8_0, Q32AVX2.q4_1),
        .q5_0: QuantKernel(.q8_0, Q32AVX2.q5_0),
        .q5_1: QuantKernel(.q8_0, Q32AVX2.q5_1),
        .q8_0: QuantKernel(.q8_0, Q32AVX2.q8_0),
        .q2_K: QuantKernel(.q8_K, KQuantsLowAVX2.q2_K),
        .q3_K: QuantKernel(.q8_K, KQuantsLowAVX2.q3_K),
    ]

    /// Types the avx2 path repacks at load (KernelDispatch.prefersInterleaved): each one's interleaved tile was
    /// measured at least as fast as its file-layout kernel, decode from memory included (KernelBench 16384 x 5120,
    /// two threads). A type left out keeps the file layout on this path; its kernel below still serves a matrix
    /// repacked on another path.
    public static let repacked: Set<QuantType> = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]

    /// On the row-interleaved layout (Interleave.swift): the GEMM tiles of 8 rows x 4 tokens.
    public static let interleaved: [QuantType: QuantKernel] = [
        .q4_0: QuantKernel(.q8_0, InterleavedQ32AVX2.q4_0),
        .q4_1: QuantKernel(.q8_0, InterleavedQ32AVX2.q4_1),
        .q5_0: QuantKernel(.q8_0, InterleavedQ32AVX2.q5_0),
        .q5_1: QuantKernel(.q8_0, InterleavedQ32AVX2.q5_1),
        .q8_0: QuantKernel(.q8_0, InterleavedQ32AVX2.q8_0),
        .q4_K: QuantKernel(.q8_K, InterleavedKQuantsAVX2.q4_K),
        .q5_K: QuantKernel(.q8_K, InterleavedKQuantsAVX2.q5_K),
        .q6_K: QuantKernel(.q8_K, InterleavedKQuantsAVX2.q6_K),
    ]
}
