// The AVX-512 (F/BW/VL/DQ + VNNI) kernel of each quantized weight type that has one.
import MistralKernels

public enum AVX512Kernels {
    public static let table: [QuantType: QuantKernel] = [
        .q4_K: QuantKernel(.q8_K, KQuantsAVX512.q4_K),
        .q5_K: QuantKernel(.q8_K, KQuantsAVX512.q5_K),
        .q6_K: QuantKernel(.q8_K, KQuantsAVX512.q6_K),
    ]
}
