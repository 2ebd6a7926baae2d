// A read-only memory map of a whole file: weights are used in place, never copied.
import Glibc
import Synchronization

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
        try? prefetch(progress: LoadProgress(nil))
    }

    /// The same, advancing `progress` by the bytes read (the caller announced `size` of them).
    func prefetch(progress: LoadProgress) throws {
        let page = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
        _ = madvise(UnsafeMutableRawPointer(mutating: base), size, MADV_WILLNEED)
        var sum: UInt8 = 0
        var off = 0, reported = 0
        while off < size {
            sum &+= base.load(fromByteOffset: off, as: UInt8.self)
            off += page
            if off - reported >= 16 << 20 {
                try progress.advance(off - reported)
                reported = off
            }
        }
        try progress.advance(size - reported)
        // An atomic add the optimizer cannot drop: without it the loads above are dead code and nothing is read.
        MappedFile.prefetchSink.add(Int(sum), ordering: .relaxed)
    }

    private static let prefetchSink = Atomic<Int>(0)

    /// Reads the pages of the given ranges (those inside this mapping) into memory, advancing `progress` so that
    /// it has moved by `size` in all: after binding, only the tensors used in place need reading — repacked ones
    /// were read (and their pages given back) while they were repacked.
    func prefetch(ranges: [(UnsafeRawPointer, Int)], progress: LoadProgress) throws {
        let page = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
        var sum: UInt8 = 0
        var done = 0
        for (p, count) in ranges where p >= base && count > 0 && p - base <= size - count {
            let start = (p - base) / page * page
            _ = madvise(UnsafeMutableRawPointer(mutating: base + start), count + (p - base - start), MADV_WILLNEED)
            var off = p - base
            while off < p - base + count {
                sum &+= base.load(fromByteOffset: off, as: UInt8.self)
                off += page
            }
            try progress.advance(count)
            done += count
        }
        try progress.advance(max(0, size - done))
        MappedFile.prefetchSink.add(Int(sum), ordering: .relaxed)
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
