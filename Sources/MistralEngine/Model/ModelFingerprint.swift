// A 128-bit fingerprint of a model's decoder, so that a saved session (or a KV prefix copied between sessions) is
// never continued on different weights. It covers: the architecture and every config number (layers, widths,
// heads, rope base / layout, rms epsilon, vocabulary and trained context), each matrix's type and shape (after
// any load-time conversion), the dequantized values of its first, middle and last row, every norm vector, and the
// rope frequency factors. Dequantized rows do not depend on the CPU's repacked layout, so the same file gives the
// same fingerprint on every machine; a re-quantized load (weight_type) gives another one, as its KV cache differs.
// The tokenizer is not covered (token ids are).
import Glibc

/// Two independent 64-bit multiply-rotate hashes over 8-byte words (fast enough for whole KV caches).
struct StateHasher {
    private(set) var a: UInt64 = 0x9E37_79B9_7F4A_7C15
    private(set) var b: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private var pending: UInt64 = 0
    private var pendingBytes = 0
    private(set) var count: UInt64 = 0

    @inline(__always) private mutating func word(_ w: UInt64) {
        a = (a ^ w) &* 0x0000_0100_0000_01B3
        a = (a << 29) | (a >> 35)
        b = (b &+ w) &* 0xFF51_AFD7_ED55_8CCD
        b ^= b >> 31
    }

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        var i = 0
        let n = bytes.count
        count &+= UInt64(n)
        while pendingBytes != 0 && i < n {
            pending |= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) << (8 * UInt64(pendingBytes))
            pendingBytes += 1
            i += 1
            if pendingBytes == 8 { word(pending); pending = 0; pendingBytes = 0 }
        }
        while i + 8 <= n {
            word(base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        while i < n {
            pending |= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) << (8 * UInt64(pendingBytes))
            pendingBytes += 1
            i += 1
        }
    }

    mutating func add<T>(value: T) { withUnsafeBytes(of: value) { add($0) } }

    /// The digest of everything added (the length included, so a short tail cannot collide with zero bytes).
    func finish() -> (UInt64, UInt64) {
        var h = self
        if h.pendingBytes != 0 { h.word(h.pending) }
        h.word(count)
        h.word(0x5EED)
        return (h.a ^ (h.b >> 17), h.b ^ (h.a << 13))
    }
}

extension LlamaWeights {
    /// See the file's comment. Dequantizes 3 rows per matrix: milliseconds even for a 24B model.
    func computeFingerprint() -> (UInt64, UInt64) {
        var h = StateHasher()
        let c = config
        for byte in c.arch.utf8 { h.add(value: byte) }
        for v in [c.nLayer, c.nEmbd, c.nFF, c.nHead, c.nKVHead, c.headDim, c.rotDim, c.nVocab, c.nCtxTrain] {
            h.add(value: Int64(v))
        }
        h.add(value: c.ropeBase.bitPattern)
        h.add(value: c.rmsEps.bitPattern)
        h.add(value: c.ropeInterleaved ? UInt8(1) : 0)
        func matrix(_ m: WeightMatrix) {
            h.add(value: m.type.rawValue)
            h.add(value: Int64(m.rows))
            h.add(value: Int64(m.cols))
            var row = [Float](repeating: 0, count: m.cols)
            for r in Set([0, m.rows / 2, m.rows - 1]).sorted() where r >= 0 && r < m.rows {
                row.withUnsafeMutableBufferPointer { buf in
                    guard let p = buf.baseAddress else { return }
                    m.dequantizeRow(r, into: p)
                    h.add(UnsafeRawBufferPointer(buf))
                }
            }
        }
        func vector(_ p: UnsafePointer<Float>, _ n: Int) { h.add(UnsafeRawBufferPointer(start: p, count: n * 4)) }
        matrix(tokenEmbedding)
        matrix(output)
        vector(outputNorm, c.nEmbd)
        if let f = ropeFreqFactors { vector(f, c.rotDim / 2) }
        for l in layers {
            vector(l.attnNorm, c.nEmbd)
            vector(l.ffnNorm, c.nEmbd)
            for m in [l.wq, l.wk, l.wv, l.wo, l.wGate, l.wUp, l.wDown] { matrix(m) }
        }
        return h.finish()
    }
}
