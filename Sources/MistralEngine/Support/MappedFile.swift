// A read-only memory map of a whole file: weights are used in place, never copied.
import Glibc

public final class MappedFile: @unchecked Sendable {  // immutable after init; the mapping is read-only
    public let path: String
    public let base: UnsafeRawPointer
    public let size: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw MistralError(.io, "cannot open '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw MistralError(.io, "cannot stat '\(path)': \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw MistralError(.io, "'\(path)' is not a regular file")
        }
        let size = Int(st.st_size)
        guard size > 0 else { throw MistralError.format("'\(path)' is empty") }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw MistralError(.io, "cannot map '\(path)': \(String(cString: strerror(errno)))")
        }
        self.base = UnsafeRawPointer(p)
        self.size = size
    }

    /// Reads the whole mapping into memory now (as llama.cpp's MAP_POPULATE load does), so the first forward pass
    /// does not stall on page faults and disk reads: one touched byte per page after a read-ahead hint.
    public func prefetch() {
        let page = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
        _ = madvise(UnsafeMutableRawPointer(mutating: base), size, MADV_WILLNEED)
        var sum: UInt8 = 0
        var off = 0
        while off < size {
            sum &+= base.load(fromByteOffset: off, as: UInt8.self)
            off += page
        }
        withExtendedLifetime(sum) {}
    }

    /// Gives back the memory of the whole pages inside [p, p + count) when they lie in this mapping (after their
    /// tensor was copied elsewhere): the private read-only mapping re-reads them from the file if touched again.
    public func dropPages(_ p: UnsafeRawPointer, _ count: Int) {
        guard p >= base, count > 0, p - base <= size - count else { return }
        let page = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
        let start = (Int(bitPattern: p) + page - 1) / page * page, end = (Int(bitPattern: p) + count) / page * page
        guard end > start, let q = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(q, end - start, MADV_DONTNEED)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }
}
