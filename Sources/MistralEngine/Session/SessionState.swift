// Saving a session (its tokens, KV cache, next-token logits and RNG) to bytes and restoring it, so that the
// restored session continues exactly as the original would have. Format version 1, little-endian:
//
//   offset  size  field
//        0     8  magic "LMSTSESS"
//        8     4  u32 format version (1)
//       12     4  u32 header bytes (96)
//       16    16  the model's fingerprint (ModelFingerprint.swift)
//       32     4  u32 n_layer        36  u32 kv_dim      40  u32 n_vocab
//       44     4  i32 KV type (MISTRAL_KV_*) of the cache rows below
//       48     8  u64 n_past (positions saved)
//       56     4  u32 flags: bit 0 = next-token logits saved
//       60     4  u32 n_ctx of the saving session (informative)
//       64    32  the sampling RNG's state (4 x u64)
//       96        n_past x i32 tokens, n_past x u64 row tags, [n_vocab x f32 logits],
//                 then per layer: keys of positions 0..<n_past, values of positions 0..<n_past (KV type's rows)
//     end-16  16  checksum of every byte before it (StateHasher)
//
// Not saved: the session's own seed (reset() reseeds with the restoring session's), the last call's stop reason
// and generated tokens. Restoring checks every field before changing anything, so a refused file (another
// model, a larger context than the session's, a truncated or corrupt file) leaves the session as it was.
import Glibc

enum SessionStateFormat {
    static let magic: [UInt8] = Array("LMSTSESS".utf8)
    static let version: UInt32 = 1
    static let headerBytes = 96
    static let checksumBytes = 16
    static let logitsFlag: UInt32 = 1
}

/// Where serialized bytes go: checked as they are written, hashed for the checksum.
protocol StateSink {
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws
}

/// Into a caller's buffer (bounds known in advance from stateSize).
struct MemorySink: StateSink {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    var offset = 0
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count <= capacity - offset else { throw MistralError(.internal, "session state overran its buffer") }
        if let src = bytes.baseAddress, bytes.count > 0 { (base + offset).copyMemory(from: src, byteCount: bytes.count) }
        offset += bytes.count
    }
}

/// Into an open file.
struct FileSink: StateSink {
    let file: UnsafeMutablePointer<FILE>
    let path: String
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let src = bytes.baseAddress, bytes.count > 0 else { return }
        guard fwrite(src, 1, bytes.count, file) == bytes.count else {
            throw MistralError(.io, "cannot write '\(path)': \(String(cString: strerror(errno)))")
        }
    }
}

/// Hashes what passes through to the sink.
struct HashingWriter<S: StateSink> {
    var sink: S
    var hasher = StateHasher()
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        hasher.add(bytes)
        try sink.write(bytes)
    }
    mutating func write<T>(value: T) throws { try withUnsafeBytes(of: value) { try write($0) } }
}

extension Session {
    /// Bytes that save writes for the current context.
    public func stateSize() throws -> Int { try exclusive { stateSizeLocked() } }

    func stateSizeLocked() -> Int {
        let c = weights.config, n = history.count
        let kv = c.nLayer * 2 * n * state.cache.rowBytes
        return SessionStateFormat.headerBytes + n * 12 + (logitsValid ? c.nVocab * 4 : 0) + kv
            + SessionStateFormat.checksumBytes
    }

    /// Writes the session into `buffer` (at least stateSize() bytes) and returns the bytes written.
    public func saveState(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try exclusive {
            let need = stateSizeLocked()
            guard let base = buffer.baseAddress, buffer.count >= need else {
                throw MistralError(.bufferTooSmall, "the session state needs \(need) bytes, the buffer holds \(buffer.count)")
            }
            var w = HashingWriter(sink: MemorySink(base: base, capacity: need))
            try serialize(&w)
            return w.sink.offset
        }
    }

    /// Writes the session to a file (replaced if it exists; removed again when writing fails).
    public func saveState(path: String) throws {
        try exclusive {
            guard let f = fopen(path, "wb") else {
                throw MistralError(.io, "cannot create '\(path)': \(String(cString: strerror(errno)))")
            }
            var w = HashingWriter(sink: FileSink(file: f, path: path))
            do {
                try serialize(&w)
                guard fflush(f) == 0 else { throw MistralError(.io, "cannot write '\(path)': \(String(cString: strerror(errno)))") }
            } catch {
                fclose(f)
                unlink(path)
                throw error
            }
            guard fclose(f) == 0 else {
                unlink(path)
                throw MistralError(.io, "cannot write '\(path)': \(String(cString: strerror(errno)))")
            }
        }
    }

    private func serialize<S: StateSink>(_ w: inout HashingWriter<S>) throws {
        guard let fp = model.fingerprint else { throw MistralError.invalid("the model has no weights") }
        let c = weights.config, n = history.count, cache = state.cache
        try SessionStateFormat.magic.withUnsafeBytes { try w.write($0) }
        try w.write(value: SessionStateFormat.version.littleEndian)
        try w.write(value: UInt32(SessionStateFormat.headerBytes).littleEndian)
        try w.write(value: fp.0.littleEndian)
        try w.write(value: fp.1.littleEndian)
        for v in [c.nLayer, c.kvDim, c.nVocab] { try w.write(value: UInt32(truncatingIfNeeded: v).littleEndian) }
        try w.write(value: cache.type.rawValue.littleEndian)
        try w.write(value: UInt64(n).littleEndian)
        try w.write(value: (logitsValid ? SessionStateFormat.logitsFlag : 0).littleEndian)
        try w.write(value: UInt32(truncatingIfNeeded: nCtx).littleEndian)
        for v in [rng.s.0, rng.s.1, rng.s.2, rng.s.3] { try w.write(value: v.littleEndian) }
        try history.withUnsafeBytes { try w.write($0) }
        try rowTags.withUnsafeBytes { try w.write($0) }
        if logitsValid { try w.write(UnsafeRawBufferPointer(start: state.logits, count: c.nVocab * 4)) }
        for l in 0..<c.nLayer {
            try w.write(UnsafeRawBufferPointer(start: cache.k + cache.offset(layer: l, pos: 0), count: n * cache.rowBytes))
            try w.write(UnsafeRawBufferPointer(start: cache.v + cache.offset(layer: l, pos: 0), count: n * cache.rowBytes))
        }
        let digest = w.hasher.finish()
        try withUnsafeBytes(of: (digest.0.littleEndian, digest.1.littleEndian)) { try w.sink.write($0) }
    }

    /// Restores a session saved by saveState from `bytes`. Throws (leaving the session unchanged) for another
    /// model (invalidArgument), more positions than this session's n_ctx (contextFull), a newer format
    /// (unsupported) or a truncated, corrupt or inconsistent file (format).
    public func loadState(_ bytes: UnsafeRawBufferPointer) throws {
        try exclusive { try restore(bytes) }
    }

    /// The same from a file.
    public func loadState(path: String) throws {
        try exclusive {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw MistralError(.io, "cannot open '\(path)': \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                throw MistralError(.io, "'\(path)' is not a regular file")
            }
            let size = Int(st.st_size)
            // The header says how big the file must be: refuse before allocating for a file that cannot fit.
            var header = [UInt8](repeating: 0, count: SessionStateFormat.headerBytes)
            let got = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            guard got == SessionStateFormat.headerBytes else {
                throw MistralError.format("'\(path)' is too short for a session file (\(size) bytes)")
            }
            let expected = try header.withUnsafeBytes { try checkHeader($0).total }
            guard size == expected else {
                throw MistralError.format("'\(path)' has \(size) bytes; its header describes \(expected) (truncated or corrupt)")
            }
            let buf = try allocateZeroed(UInt8.self, count: size, what: "session file (\(size) bytes)")
            defer { free(buf) }
            var done = 0
            while done < size {
                let r = pread(fd, buf + done, size - done, off_t(done))
                if r < 0 && errno == EINTR { continue }
                guard r > 0 else { throw MistralError(.io, "cannot read '\(path)' (the file changed while it was read?)") }
                done += r
            }
            try restore(UnsafeRawBufferPointer(start: buf, count: size))
        }
    }

    /// What the header promises, checked against this session: the total size, the position count, the cache
    /// type of the rows and whether logits follow.
    private func checkHeader(_ b: UnsafeRawBufferPointer) throws
        -> (total: Int, n: Int, type: KVCacheType, logits: Bool, rowBytes: Int) {
        guard b.count >= SessionStateFormat.headerBytes + SessionStateFormat.checksumBytes || b.count == SessionStateFormat.headerBytes else {
            throw MistralError.format("\(b.count) bytes are too few for a session file")
        }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        guard b.prefix(8).elementsEqual(SessionStateFormat.magic) else {
            throw MistralError.format("not a libmistral session file (bad magic)")
        }
        guard u32(8) == SessionStateFormat.version else {
            throw MistralError(.unsupported, "session file format version \(u32(8)); this library reads version \(SessionStateFormat.version)")
        }
        guard u32(12) == UInt32(SessionStateFormat.headerBytes) else {
            throw MistralError.format("session file header size \(u32(12)), expected \(SessionStateFormat.headerBytes)")
        }
        guard let fp = model.fingerprint else { throw MistralError.invalid("the model has no weights") }
        let c = weights.config
        guard u64(16) == fp.0, u64(24) == fp.1, u32(32) == UInt32(c.nLayer), u32(36) == UInt32(c.kvDim),
              u32(40) == UInt32(c.nVocab) else {
            throw MistralError.invalid("the session file was saved from a different model (fingerprint or shape differs)")
        }
        let rawType = Int32(bitPattern: u32(44))
        guard let type = KVCacheType(rawValue: rawType), type != .q8_0 || c.kvDim % 32 == 0 else {
            throw MistralError.format("session file KV type \(rawType) is not valid")
        }
        let flags = u32(56)
        guard flags & ~SessionStateFormat.logitsFlag == 0 else { throw MistralError.format("session file flags \(flags) are not valid") }
        let n64 = u64(48)
        guard n64 <= UInt64(nCtx) else {
            throw MistralError(.contextFull, "the session file holds \(n64) positions; this session's n_ctx is \(nCtx)")
        }
        let n = Int(n64), logits = flags & SessionStateFormat.logitsFlag != 0
        guard !logits || n > 0 else { throw MistralError.format("session file has logits but no positions") }
        let rowBytes = type.bytes(values: c.kvDim)
        // n <= nCtx <= 2^22 and the model's sizes are bounded, so these products fit; checked anyway.
        let (kv, o1) = (c.nLayer * 2).multipliedReportingOverflow(by: n)
        let (kvBytes, o2) = kv.multipliedReportingOverflow(by: rowBytes)
        guard !o1, !o2 else { throw MistralError.format("session file sizes overflow") }
        let total = SessionStateFormat.headerBytes + n * 12 + (logits ? c.nVocab * 4 : 0) + kvBytes
            + SessionStateFormat.checksumBytes
        return (total, n, type, logits, rowBytes)
    }

    private func restore(_ b: UnsafeRawBufferPointer) throws {
        guard b.count >= SessionStateFormat.headerBytes + SessionStateFormat.checksumBytes, let base = b.baseAddress else {
            throw MistralError.format("\(b.count) bytes are too few for a session file")
        }
        let h = try checkHeader(b)
        guard b.count == h.total else {
            throw MistralError.format("session data has \(b.count) bytes; its header describes \(h.total) (truncated or corrupt)")
        }
        var hasher = StateHasher()
        hasher.add(UnsafeRawBufferPointer(start: base, count: h.total - SessionStateFormat.checksumBytes))
        let digest = hasher.finish()
        let tail = h.total - SessionStateFormat.checksumBytes
        guard UInt64(littleEndian: b.loadUnaligned(fromByteOffset: tail, as: UInt64.self)) == digest.0,
              UInt64(littleEndian: b.loadUnaligned(fromByteOffset: tail + 8, as: UInt64.self)) == digest.1 else {
            throw MistralError.format("session data checksum mismatch (corrupt)")
        }
        let c = weights.config, n = h.n, vocab = c.nVocab
        var o = SessionStateFormat.headerBytes
        var tokens = [Int32](repeating: 0, count: n)
        var tags = [UInt64](repeating: 0, count: n)
        for i in 0..<n {
            tokens[i] = Int32(littleEndian: b.loadUnaligned(fromByteOffset: o + 4 * i, as: Int32.self))
            guard tokens[i] >= -1, Int(tokens[i]) < vocab else {
                throw MistralError.format("session token #\(i) = \(tokens[i]) is outside the vocabulary")
            }
        }
        o += 4 * n
        for i in 0..<n { tags[i] = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: o + 8 * i, as: UInt64.self)) }
        o += 8 * n
        let logitsAt = o
        if h.logits {
            for i in 0..<vocab {
                let v = Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o + 4 * i, as: UInt32.self)))
                guard !v.isNaN, v != .infinity else { throw MistralError.format("session logit #\(i) is \(v)") }
            }
            o += 4 * vocab
        }
        // Everything is checked: from here on nothing fails but the conversion row's allocation, made first.
        let cache = state.cache
        let row = try allocateZeroed(Float.self, count: c.kvDim, what: "KV conversion row")
        defer { free(row) }
        for l in 0..<c.nLayer {
            for (dst, src) in [(cache.k, base + o), (cache.v, base + o + n * h.rowBytes)] {
                if h.type == cache.type {
                    (dst + cache.offset(layer: l, pos: 0)).copyMemory(from: src, byteCount: n * h.rowBytes)
                } else {
                    for p in 0..<n {
                        KVCache.decodeRow(h.type, src + p * h.rowBytes, c.kvDim, into: row)
                        cache.store(row, into: dst, layer: l, pos: p, n: 1)
                    }
                }
            }
            o += 2 * n * h.rowBytes
        }
        if h.logits {
            for i in 0..<vocab {
                state.logits[i] = Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: logitsAt + 4 * i, as: UInt32.self)))
            }
        }
        history = tokens
        rowTags = tags
        logitsValid = h.logits
        func u64(_ off: Int) -> UInt64 { UInt64(littleEndian: b.loadUnaligned(fromByteOffset: off, as: UInt64.self)) }
        rng.s = (u64(64), u64(72), u64(80), u64(88))
    }
}

extension KVCache {
    /// n values stored as `type` (a file's rows) as floats.
    static func decodeRow(_ type: KVCacheType, _ src: UnsafeRawPointer, _ n: Int, into dst: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            for i in 0..<n { dst[i] = Float(bitPattern: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
        case .f16:
            for i in 0..<n { dst[i] = halfToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .q8_0:
            for b in 0..<n / 32 {
                let blk = src + b * 34
                let d = halfToFloat(blk.loadUnaligned(as: UInt16.self))
                for j in 0..<32 { dst[b * 32 + j] = Float(blk.load(fromByteOffset: 2 + j, as: Int8.self)) * d }
            }
        }
    }
}

/// For fuzzing and tests that build session files by hand.
public enum SessionStateFile {
    /// Rewrites the checksum of `bytes` (a session file, possibly edited) so that it matches its contents.
    public static func reseal(_ bytes: inout [UInt8]) {
        let n = bytes.count - SessionStateFormat.checksumBytes
        guard n >= 0 else { return }
        var h = StateHasher()
        bytes.withUnsafeBytes { h.add(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
        let d = h.finish()
        withUnsafeBytes(of: (d.0.littleEndian, d.1.littleEndian)) { src in
            for i in 0..<SessionStateFormat.checksumBytes { bytes[n + i] = src[i] }
        }
    }
}
