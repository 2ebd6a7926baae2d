// Up-front checks for allocations a file or a caller sizes. Linux overcommits: a 48 GB calloc "succeeds" and the
// process is OOM-killed later, when the pages are touched. Refusing here turns that into MISTRAL_ERR_OUT_OF_MEMORY.
import Glibc

public enum MemoryBudget {
    /// Physical memory in bytes (sysconf), lowered to the cgroup limit when one is set.
    public static var physicalBytes: Double {
        let pages = Double(max(sysconf(Int32(_SC_PHYS_PAGES)), 0))
        let pageSize = Double(max(sysconf(Int32(_SC_PAGESIZE)), 0))
        let physical = pages * pageSize
        guard let limit = cgroupLimitBytes(), limit > 0 else { return physical }
        return physical > 0 ? min(physical, limit) : limit
    }

    /// What the kernel says can still be had without swapping others out: MemAvailable + SwapFree
    /// (/proc/meminfo); nil when unknown.
    public static var availableBytes: Double? {
        guard let text = readSmallFile("/proc/meminfo") else { return nil }
        var available: Double?
        var swapFree = 0.0
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let kb = Double(parts[1]) else { continue }
            if parts[0] == "MemAvailable:" { available = kb * 1024 }
            if parts[0] == "SwapFree:" { swapFree = kb * 1024 }
        }
        return available.map { $0 + swapFree }
    }

    /// Throws outOfMemory when `bytes` cannot fit: more than physical memory, or more than is available now.
    /// Doubles so that a caller's estimate can never overflow.
    public static func ensure(bytes: Double, what: String) throws {
        guard bytes.isFinite, bytes >= 0 else {
            throw MistralError(.outOfMemory, "\(what): size is not computable")
        }
        let physical = physicalBytes
        if physical > 0, bytes > physical {
            throw MistralError(.outOfMemory, "\(what) needs \(gib(bytes)) but the machine has \(gib(physical)) of memory")
        }
        if let available = availableBytes, bytes > available {
            throw MistralError(.outOfMemory, "\(what) needs \(gib(bytes)) but only \(gib(available)) of memory is available")
        }
    }

    public static func ensure(bytes: Int, what: String) throws { try ensure(bytes: Double(bytes), what: what) }

    static func gib(_ bytes: Double) -> String {
        let g = bytes / 1_073_741_824
        // No Int(...) of a Double: the estimate may be astronomically large.
        return g >= 1 ? "\((g * 10).rounded() / 10) GiB" : "\((bytes / 1_048_576).rounded()) MiB"
    }

    /// cgroup v2 memory.max of this process's group (or v1's limit_in_bytes); nil when unlimited or unknown.
    static func cgroupLimitBytes() -> Double? {
        for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            guard let text = readSmallFile(path) else { continue }
            let value = text.split(separator: "\n").first.map(String.init) ?? ""
            if value == "max" { return nil }
            // v1 reports "unlimited" as a huge page-rounded number.
            if let v = Double(value), v > 0, v < 1e18 { return v }
        }
        return nil
    }

    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 8192)
        var used = 0
        while used < buffer.count {
            let n = buffer.withUnsafeMutableBytes { b in b.baseAddress.map { read(fd, $0 + used, b.count - used) } ?? 0 }
            if n <= 0 { break }
            used += n
        }
        return String(decoding: buffer[..<used], as: UTF8.self)
    }
}
