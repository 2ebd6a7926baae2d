// The one place a quantized weight type meets its kernel: the best instruction set the CPU runs (KernelPath,
// overridable with MISTRAL_CPU), falling back per type to a slower path that has one.
import MistralKernels
import MistralKernelsAVX512
import Synchronization

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

    /// The kernel for weights of `type` on the current path, nil for types without one (float weights).
    @inline(__always)
    public static func kernel(_ type: GGMLType) -> QuantKernel? {
        guard let q = QuantType(rawValue: type.rawValue) else { return nil }
        let p = path
        if p == .avx512, let k = AVX512Kernels.table[q] { return k }
        if p >= .avx2, let k = AVX2Kernels.table[q] { return k }
        return GenericKernels.table[q]
    }
}
