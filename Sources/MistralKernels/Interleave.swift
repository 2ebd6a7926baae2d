// The row-interleaved weight layout the AVX-512 GEMM kernels read: the rows of a matrix in groups of 16, and
// within a group each block's fields for all 16 rows side by side, so one 512-bit register holds the same 4
// values of 16 rows and one vpdpbusd against 4 broadcast activation bytes gives 16 rows' partial sums at once
// (llama.cpp's repack.cpp does the same with 8 rows for Q4_0 and Q4_K). Outputs come out as 16 consecutive
// floats, with no horizontal sums, and a tile's unpacked weights serve up to 8 tokens from registers.
//
// A group of 16 rows takes exactly the bytes of its 16 rows in the file's layout (repacking moves bytes, never
// adds any), so the matrix keeps its size; the file's copy is dropped after the repack. For 32-value blocks,
// block b of group g sits at g * 16 * rowBytes + b * 16 * blockBytes and holds:
//   d[16]            f16, the rows' scales
//   m[16]            f16, the rows' mins                                   (Q4_1, Q5_1)
//   h[8]             u64: h[k] bit 4r + i = fifth bit of row r's value 4k + i   (Q5_0, Q5_1)
//   q                Q4/Q5: 4 x 64 bytes, chunk j lane r (4 bytes) = row r's nibble bytes 4j...4j+3, so the low
//                    nibbles are values 4j...4j+3 and the high ones values 16+4j...19+4j;
//                    Q8_0: 8 x 64 bytes, chunk k lane r = row r's values 4k...4k+3 as unsigned w + 128.
// For Q4_K, block b of group g (16 x 144 bytes) holds d[16], dmin[16] (f16), the 12 packed scale bytes as 3 x 64
// (chunk c lane r = row r's scale bytes 4c...4c+3), then for each sub-block pair p (0...3) 8 x 64 bytes: chunk j
// lane r = row r's qs bytes 32p + 4j...32p + 4j + 3 (low nibbles: sub-block 2p, high: 2p + 1, values 4j...4j+3).
// Q5_K (16 x 176 bytes) is Q4_K's layout with the fifth bits inserted before the nibbles, at 256: 8 x 64 bytes,
// chunk k lane r = row r's qh bytes 4k...4k+3 (bit j of qh byte i is the fifth bit of sub-block j's value i);
// the nibbles follow at 768. (Behind the nibbles, the kernel's early read of the fifth bits made the block's reads
// jump forward and back, and decode from memory ran at a third of the speed.)
// For Q6_K (16 x 210 bytes): d[16] (f16), the int8 scales as 4 x 64 (chunk c lane r = row r's scales 4c...4c+3),
// then for each half h (0, 1) 24 x 64 bytes: chunks A_g, B_g, H_g (g = 0...7), lane r = row r's bytes
// ql[64h + 4g...], ql[64h + 32 + 4g...], qh[32h + 4g...]; value 128h + 32q + 4g + i is, as in ggml,
// (q = 0: A & 15, 1: B & 15, 2: A >> 4, 3: B >> 4) | ((H >> 2q) & 3) << 4, minus 32.

public enum Interleave {
    /// Rows per group.
    public static let rows = 16

    /// Types with a row-interleaved form.
    public static func supports(_ type: QuantType) -> Bool {
        switch type {
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K: true
        default: false
        }
    }

    /// Byte offsets of the fields inside one interleaved 32-value block group (16 rows).
    @inlinable @inline(__always)
    public static func q32Fields(_ type: QuantType) -> (m: Int, h: Int, q: Int) {
        let min = type == .q4_1 || type == .q5_1, five = type == .q5_0 || type == .q5_1
        let m = 32, h = min ? 64 : 32
        return (m, h, h + (five ? 64 : 0))
    }

    /// Rewrites `rows` rows (a multiple of 16) of `rowBytes` each from the file's layout at `src` into the
    /// interleaved layout at `dst` (the same size). Returns false for a type or shape without one.
    public static func repack(_ type: QuantType, _ src: UnsafeRawPointer, rowBytes: Int, rows: Int,
                              into dst: UnsafeMutableRawPointer) -> Bool {
        guard supports(type), rows % Interleave.rows == 0, rowBytes % type.blockBytes == 0 else { return false }
        let bytes = type.blockBytes, nb = rowBytes / bytes
        if type == .q4_K || type == .q5_K || type == .q6_K {
            for g in 0..<rows / 16 {
                for b in 0..<nb {
                    let out = dst + g &* 16 &* rowBytes + b &* 16 &* bytes
                    for r in 0..<16 {
                        let blk = src + (g &* 16 &+ r) &* rowBytes + b &* bytes
                        kBlock(type, blk, lane: r, group: out, toGroup: true)
                    }
                }
            }
            return true
        }
        let f = q32Fields(type)
        let min = type == .q4_1 || type == .q5_1, five = type == .q5_0 || type == .q5_1
        let qs = (min ? 4 : 2) + (five ? 4 : 0)  // the file block's nibbles / int8 values
        for g in 0..<rows / 16 {
            for b in 0..<nb {
                let out = dst + g &* 16 &* rowBytes + b &* 16 &* bytes
                var masks: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
                for r in 0..<16 {
                    let blk = src + (g &* 16 &+ r) &* rowBytes + b &* bytes
                    out.storeBytes(of: blk.loadUnaligned(as: UInt16.self), toByteOffset: 2 &* r, as: UInt16.self)
                    if min {
                        out.storeBytes(of: blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self),
                                       toByteOffset: f.m &+ 2 &* r, as: UInt16.self)
                    }
                    if five {
                        let qh = blk.loadUnaligned(fromByteOffset: min ? 4 : 2, as: UInt32.self)
                        withUnsafeMutableBytes(of: &masks) { m in
                            for k in 0..<8 {
                                let bits = UInt64((qh >> UInt32(4 &* k)) & 0xF) << UInt64(4 &* r)
                                m.storeBytes(of: m.load(fromByteOffset: 8 &* k, as: UInt64.self) | bits,
                                             toByteOffset: 8 &* k, as: UInt64.self)
                            }
                        }
                    }
                    if type == .q8_0 {
                        for k in 0..<8 {
                            let v = blk.loadUnaligned(fromByteOffset: qs &+ 4 &* k, as: UInt32.self) ^ 0x8080_8080
                            out.storeBytes(of: v, toByteOffset: f.q &+ 64 &* k &+ 4 &* r, as: UInt32.self)
                        }
                    } else {
                        for j in 0..<4 {
                            out.storeBytes(of: blk.loadUnaligned(fromByteOffset: qs &+ 4 &* j, as: UInt32.self),
                                           toByteOffset: f.q &+ 64 &* j &+ 4 &* r, as: UInt32.self)
                        }
                    }
                }
                if five {
                    withUnsafeBytes(of: masks) { m in
                        for k in 0..<8 {
                            out.storeBytes(of: m.load(fromByteOffset: 8 &* k, as: UInt64.self), toByteOffset: f.h &+ 8 &* k,
                                           as: UInt64.self)
                        }
                    }
                }
            }
        }
        return true
    }

    /// The file-layout bytes of block b of row r, read back from an interleaved matrix (the inverse of repack,
    /// for row lookups and tests); `out` takes type.blockBytes bytes.
    public static func fileBlock(_ type: QuantType, _ data: UnsafeRawPointer, rowBytes: Int, row r: Int, block b: Int,
                                 into out: UnsafeMutableRawPointer) {
        let bytes = type.blockBytes
        let f = q32Fields(type)
        let min = type == .q4_1 || type == .q5_1, five = type == .q5_0 || type == .q5_1
        let qs = (min ? 4 : 2) + (five ? 4 : 0)
        let lane = r % 16
        let grp = data + (r / 16) &* 16 &* rowBytes + b &* 16 &* bytes
        if type == .q4_K || type == .q5_K || type == .q6_K {
            let g = UnsafeMutableRawPointer(mutating: grp)
            kBlock(type, UnsafeRawPointer(out), lane: lane, group: g, toGroup: false)
            return
        }
        out.storeBytes(of: grp.loadUnaligned(fromByteOffset: 2 &* lane, as: UInt16.self), as: UInt16.self)
        if min {
            out.storeBytes(of: grp.loadUnaligned(fromByteOffset: f.m &+ 2 &* lane, as: UInt16.self),
                           toByteOffset: 2, as: UInt16.self)
        }
        if five {
            var qh: UInt32 = 0
            for k in 0..<8 {
                let m = grp.loadUnaligned(fromByteOffset: f.h &+ 8 &* k, as: UInt64.self)
                qh |= UInt32((m >> UInt64(4 &* lane)) & 0xF) << UInt32(4 &* k)
            }
            out.storeBytes(of: qh, toByteOffset: min ? 4 : 2, as: UInt32.self)
        }
        if type == .q8_0 {
            for k in 0..<8 {
                for i in 0..<4 {
                    let v = grp.load(fromByteOffset: f.q &+ 64 &* k &+ 4 &* lane &+ i, as: UInt8.self) ^ 0x80
                    out.storeBytes(of: v, toByteOffset: qs &+ 4 &* k &+ i, as: UInt8.self)
                }
            }
        } else {
            for j in 0..<4 {
                out.storeBytes(of: grp.loadUnaligned(fromByteOffset: f.q &+ 64 &* j &+ 4 &* lane, as: UInt32.self),
                               toByteOffset: qs &+ 4 &* j, as: UInt32.self)
            }
        }
    }

    /// Moves one K-quant block (Q4_K, Q5_K or Q6_K, file layout at `blk`) into lane `r` of an interleaved block
    /// group, or back (toGroup false): the same byte moves either way.
    static func kBlock(_ type: QuantType, _ blk: UnsafeRawPointer, lane r: Int, group out: UnsafeMutableRawPointer,
                       toGroup: Bool) {
        let file = UnsafeMutableRawPointer(mutating: blk)
        @inline(__always) func move(_ fileOffset: Int, _ groupOffset: Int, _ size: Int) {
            if toGroup {
                (out + groupOffset).copyMemory(from: blk + fileOffset, byteCount: size)
            } else {
                (file + fileOffset).copyMemory(from: UnsafeRawPointer(out + groupOffset), byteCount: size)
            }
        }
        if type == .q6_K {
            // ql[128], qh[64], scales[16], d
            move(208, 2 &* r, 2)                                                  // d
            for c in 0..<4 { move(192 &+ 4 &* c, 32 &+ 64 &* c &+ 4 &* r, 4) }    // scales
            for h in 0..<2 {
                let base = 288 &+ 1536 &* h &+ 4 &* r
                for g in 0..<8 {
                    move(64 &* h &+ 4 &* g, base &+ 64 &* g, 4)                   // A: ql low half
                    move(64 &* h &+ 32 &+ 4 &* g, base &+ 512 &+ 64 &* g, 4)      // B: ql high half
                    move(128 &+ 32 &* h &+ 4 &* g, base &+ 1024 &+ 64 &* g, 4)    // H: qh
                }
            }
            return
        }
        // Q4_K: d, dmin, scales[12], qs[128]; Q5_K: the same with qh[32] before qs, which the group puts at 256
        // and its nibbles after it, at 768.
        let five = type == .q5_K
        move(0, 2 &* r, 2)                                   // d
        move(2, 32 &+ 2 &* r, 2)                             // dmin
        for c in 0..<3 { move(4 &+ 4 &* c, 64 &+ 64 &* c &+ 4 &* r, 4) }   // packed scales
        let qsFile = five ? 48 : 16, qsGroup = five ? 768 : 256
        for p in 0..<4 {
            for j in 0..<8 { move(qsFile &+ 32 &* p &+ 4 &* j, qsGroup &+ 512 &* p &+ 64 &* j &+ 4 &* r, 4) }
        }
        if five {
            for k in 0..<8 { move(16 &+ 4 &* k, 256 &+ 64 &* k &+ 4 &* r, 4) }  // qh
        }
    }
}
