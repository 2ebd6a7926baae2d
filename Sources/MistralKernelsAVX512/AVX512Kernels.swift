// The AVX-512 (F/BW/VL/DQ + VNNI) kernel of each quantized weight type that has one.
import MistralKernels

public enum AVX512Kernels {
    public static let table: [QuantType: QuantKernel] = [
        .q4_K: QuantKernel(.q8_K, KQuantsAVX512.q4_K),
        .q5_K: QuantKernel(.q8_K, KQuantsAVX512.q5_K),
        .q6_K: QuantKernel(.q8_K, KQuantsAVX512.q6_K),
        .q4_0: QuantKernel(.q8_0, Q32AVX512.q4_0),
        .q4_1: QuantKernel(.q8_0, Q32AVX512.q4_1),
        .q5_0: QuantKernel(.q8_0, Q32AVX512.q5_0),
        .q5_1: QuantKernel(.q8_0, Q32AVX512.q5_1),
        .q8_0: QuantKernel(.q8_0, Q32AVX512.q8_0),
        .q2_K: QuantKernel(.q8_K, KQuantsLowAVX512.q2_K),
        .q3_K: QuantKernel(.q8_K, KQuantsLowAVX512.q3_K),
    ]

    /// On the row-interleaved layout (Interleave.swift): the GEMM tiles of 16 rows x 8 tokens.
    public static let interleaved: [QuantType: QuantKernel] = [
        .q4_0: QuantKernel(.q8_0, InterleavedQ32AVX512.q4_0),
        .q4_1: QuantKernel(.q8_0, InterleavedQ32AVX512.q4_1),
        .q5_0: QuantKernel(.q8_0, InterleavedQ32AVX512.q5_0),
        .q5_1: QuantKernel(.q8_0, InterleavedQ32AVX512.q5_1),
        .q8_0: QuantKernel(.q8_0, InterleavedQ32AVX512.q8_0),
        .q4_K: QuantKernel(.q8_K, InterleavedKQuantsAVX512.q4_K),
        .q5_K: QuantKernel(.q8_K, InterleavedKQuantsAVX512.q5_K),
        .q6_K: QuantKernel(.q8_K, InterleavedKQuantsAVX512.q6_K),
    ]
}
