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

    /// Types the avx2 path repacks at load. Not Q6_K: its interleaved tile decodes from memory at about 60 % of
    /// the file-layout kernel's speed (22 vs 39 GB/s, 16384 x 5120, two threads) and prompts only ~10 % faster,
    /// and it is the output projection of Q4_0 and Q4_K_M files. Its kernel below still serves a Q6_K matrix
    /// repacked on another path.
    public static let repacked: Set<QuantType> = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K]

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
