// How many physical cores the machine has: the default size of a model's worker pool. SMT siblings share a
// core's execution units and bandwidth, so threads beyond one per core only add contention to the forward pass.
import Glibc

enum CPUTopology {
    /// Distinct (package, core) pairs of the online CPUs in /sys, or the online CPU count when /sys says nothing.
    static let physicalCores: Int = {
        let online = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let configured = max(online, sysconf(Int32(_SC_NPROCESSORS_CONF)))
        var cores = Set<Int>()
        for cpu in 0..<min(configured, 4096) {
            let base = "/sys/devices/system/cpu/cpu\(cpu)/topology/"
            guard let core = readInt(base + "core_id") else { continue }
            let package = readInt(base + "physical_package_id") ?? 0
            cores.insert(package << 20 | core & 0xFFFFF)
        }
        return cores.isEmpty ? online : min(cores.count, online)
    }()

    private static func readInt(_ path: String) -> Int? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buffer = [CChar](repeating: 0, count: 32)
        guard fgets(&buffer, 32, f) != nil else { return nil }
        let text = String(cString: buffer).filter { !$0.isWhitespace }
        return Int(text)
    }
}
