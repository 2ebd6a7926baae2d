// The plain-Swift kernel of every quantized weight type: the path of CPUs without AVX2 and the tests' oracle.

public enum GenericKernels {
    public static let table: [QuantType: QuantKernel] = [
        .q4_K: QuantKernel(.q8_K, KQuantsGeneric.q4_K),
        .q5_K: QuantKernel(.q8_K, KQuantsGeneric.q5_K),
        .q6_K: QuantKernel(.q8_K, KQuantsGeneric.q6_K),
        .q4_0: QuantKernel(.q8_0, Q32Generic.q4_0),
        .q4_1: QuantKernel(.q8_0, Q32Generic.q4_1),
        .q5_0: QuantKernel(.q8_0, Q32Generic.q5_0),
        .q5_1: QuantKernel(.q8_0, Q32Generic.q5_1),
        .q8_0: QuantKernel(.q8_0, Q32Generic.q8_0),
        .q2_K: QuantKernel(.q8_K, KQuantsLowGeneric.q2_K),
        .q3_K: QuantKernel(.q8_K, KQuantsLowGeneric.q3_K),
    ]

    /// On the row-interleaved layout (Interleave.swift).
    public static let interleaved: [QuantType: QuantKernel] = [
        .q4_0: QuantKernel(.q8_0, InterleavedGeneric.q4_0),
        .q4_1: QuantKernel(.q8_0, InterleavedGeneric.q4_1),
        .q5_0: QuantKernel(.q8_0, InterleavedGeneric.q5_0),
        .q5_1: QuantKernel(.q8_0, InterleavedGeneric.q5_1),
        .q8_0: QuantKernel(.q8_0, InterleavedGeneric.q8_0),
        .q4_K: QuantKernel(.q8_K, InterleavedGeneric.q4_K),
        .q5_K: QuantKernel(.q8_K, InterleavedGeneric.q5_K),
        .q6_K: QuantKernel(.q8_K, InterleavedGeneric.q6_K),
    ]
}
