// Which instruction set the kernels run on: chosen once from CPUID, or forced by MISTRAL_CPU=generic|avx2|avx512
// (a forced path the CPU lacks is refused, falling back to the best one it has).
import CCPUFeatures
import Glibc

public enum KernelPath: String, Sendable, CaseIterable, Comparable {
    case generic, avx2, avx512

    public static func < (a: KernelPath, b: KernelPath) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!  // allCases holds every case
    }

    /// The best path this CPU runs.
    public static let best: KernelPath = {
        if mistral_cpu_has_avx512_vnni() != 0 { return .avx512 }
        if mistral_cpu_has_avx2() != 0 { return .avx2 }
        return .generic
    }()

    /// Paths this CPU can run, slowest first.
    public static var available: [KernelPath] { allCases.filter { $0 <= best } }

    /// MISTRAL_CPU if set to a path the CPU runs, else the best one.
    public static let selected: KernelPath = {
        guard let raw = getenv("MISTRAL_CPU"), let forced = KernelPath(rawValue: String(cString: raw)),
              forced <= best else { return best }
        return forced
    }()

    public static var hasAVX512BF16: Bool { mistral_cpu_has_avx512_bf16() != 0 }
}
