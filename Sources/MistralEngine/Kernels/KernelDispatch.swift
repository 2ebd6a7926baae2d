// The one place a quantized weight type meets its kernel: the best instruction set the CPU runs (KernelPath,
// overridable with MISTRAL_CPU), falling back per type to a slower path that has one.
import MistralKernels
import MistralKernelsAVX512
import Synchronization
import Glibc

public enum KernelDispatch {
    private static let current = Atomic<Int>(KernelPath.allCases.firstIndex(of: KernelPath.selected) ?? 0)

    /// The path kernels are taken from now.
    public static var path: KernelPath { KernelPath.allCases[current.load(ordering: .relaxed)] }

    /// Switches every later matmul to `path` (tests run each path the CPU has); refused when the CPU lacks it.
    @discardableResult
    public static func use(_ path: KernelPath) -> Bool {
        guard path <= KernelPath.best, let i = KernelPath.allCases.firstIndex(of: path) else { return false }
        current.store(i, ordering: .relaxed)
        return true
    }

    /// Repacking at load into the row-interleaved layout is on unless MISTRAL_REPACK=0 or a test turned it off.
    private static let repack = Atomic<Bool>({
        guard let v = getenv("MISTRAL_REPACK") else { return true }
        return String(cString: v) != "0"
    }())

    /// Turns repacking of matrices loaded later on or off (tests compare both layouts).
    public static func allowRepack(_ on: Bool) { repack.store(on, ordering: .relaxed) }

    /// Whether weights of `type` loaded now should be repacked: the current path has interleaved kernels for it.
    public static func prefersInterleaved(_ q: QuantType) -> Bool {
        repack.load(ordering: .relaxed) && interleavedKernel(q, on: path) != nil
    }

    /// The current path's own row-interleaved kernel for `q` where that path repacks `q` (faster than its
    /// file-layout kernel), else nil: those matrices stay in the file's layout.
    static func interleavedKernel(_ q: QuantType, on p: KernelPath) -> QuantKernel? {
        switch p {
        case .avx512: AVX512Kernels.interleaved[q]
        case .avx2: AVX2Kernels.repacked.contains(q) ? AVX2Kernels.interleaved[q] : nil
        default: nil
        }
    }

    /// Whether the current path's kernel for `type` computes every token alike however many tokens share a call
    /// (BatchRowIdentityTests checks each one claimed): row-interleaved kernels and AVX-512's file-layout kernels
    /// but Q4_K/Q5_K (whose calls of fewer than 4 tokens take the AVX2 kernel). The others group tokens into tiles
    /// that round differently, and a batched step runs them per sequence (MatMulSegments).
    public static func groupsTokensAlike(_ type: GGMLType, interleaved: Bool) -> Bool {
        guard let q = QuantType(rawValue: type.rawValue) else { return true }  // float weights: a dot per token
        if interleaved { return true }
        return path == .avx512 && ![.q4_K, .q5_K].contains(q) && AVX512Kernels.table[q] != nil
    }

    /// The kernel for weights of `type` on the current path, nil for types without one (float weights).
    @inline(__always)
    public static func kernel(_ type: GGMLType, interleaved: Bool = false) -> QuantKernel? {
        guard let q = QuantType(rawValue: type.rawValue) else { return nil }
        let p = path
        if interleaved {
            // a matrix repacked on a faster path than the current one (tests switch paths) takes the best below
            if p == .avx512, let k = AVX512Kernels.interleaved[q] { return k }
            if p >= .avx2, let k = AVX2Kernels.interleaved[q] { return k }
            return GenericKernels.interleaved[q]
        }
        if p == .avx512, let k = AVX512Kernels.table[q] { return k }
        if p >= .avx2, let k = AVX2Kernels.table[q] { return k }
        return GenericKernels.table[q]
    }
}
