// GPT-2's reversible byte <-> unicode mapping (llama.cpp's unicode_byte_to_utf8 / unicode_utf8_to_byte).
// Printable bytes ('!'...'~', '¡'...'¬', '®'...'ÿ') stand for themselves; the other 68 bytes are mapped, in
// byte order, to U+0100, U+0101, ... so that every byte becomes one printable code point.

enum ByteLevel {
    /// Code point that stands for each byte.
    static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            if isPrintable(UInt8(b)) {
                table[b] = UInt32(b)
            } else {
                table[b] = 256 + n
                n += 1
            }
        }
        return table
    }()

    /// UTF-8 encoding (1 or 2 bytes) of the code point that stands for each byte.
    static let byteToUTF8: [[UInt8]] = byteToScalar.map { utf8Bytes(of: $0) }

    /// Inverse map, indexed by code point; -1 where the code point stands for no byte. Covers U+0000...U+0143.
    static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 256 + 68)
        for b in 0..<256 { table[Int(byteToScalar[b])] = Int16(b) }
        return table
    }()

    @inline(__always)
    static func isPrintable(_ b: UInt8) -> Bool {
        (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)
    }

    /// The byte a code point stands for, or nil when it stands for none.
    @inline(__always)
    static func byte(for scalar: UInt32) -> UInt8? {
        guard scalar < UInt32(scalarToByte.count) else { return nil }
        let v = scalarToByte[Int(scalar)]
        return v < 0 ? nil : UInt8(v)
    }

    /// Appends the byte-level encoding of `bytes` (each byte replaced by the UTF-8 of its code point).
    static func encode<S: Sequence>(_ bytes: S, into out: inout [UInt8]) where S.Element == UInt8 {
        let table = byteToUTF8
        for b in bytes { out.append(contentsOf: table[Int(b)]) }
    }

    static func utf8Bytes(of scalar: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        appendUTF8(scalar, to: &out)
        return out
    }

    @inline(__always)
    static func appendUTF8(_ c: UInt32, to out: inout [UInt8]) {
        if c < 0x80 {
            out.append(UInt8(c))
        } else if c < 0x800 {
            out.append(UInt8(0xC0 | (c >> 6)))
            out.append(UInt8(0x80 | (c & 0x3F)))
        } else if c < 0x10000 {
            out.append(UInt8(0xE0 | (c >> 12)))
            out.append(UInt8(0x80 | ((c >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (c & 0x3F)))
        } else {
            out.append(UInt8(0xF0 | ((c >> 18) & 0x07)))
            out.append(UInt8(0x80 | ((c >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((c >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (c & 0x3F)))
        }
    }
}

/// Strict UTF-8 helpers over raw bytes (no Foundation).
enum UTF8Bytes {
    /// True when `bytes` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
    static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        let n = bytes.count
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 { i += 1; continue }
            if b0 < 0xC2 { return false }  // continuation byte or overlong 2-byte lead
            if b0 < 0xE0 {
                guard i + 1 < n, bytes[i + 1] & 0xC0 == 0x80 else { return false }
                i += 2
                continue
            }
            if b0 < 0xF0 {
                guard i + 2 < n else { return false }
                let b1 = bytes[i + 1], b2 = bytes[i + 2]
                guard b1 & 0xC0 == 0x80, b2 & 0xC0 == 0x80 else { return false }
                if b0 == 0xE0 && b1 < 0xA0 { return false }  // overlong
                if b0 == 0xED && b1 >= 0xA0 { return false }  // surrogate
                i += 3
                continue
            }
            if b0 < 0xF5 {
                guard i + 3 < n else { return false }
                let b1 = bytes[i + 1], b2 = bytes[i + 2], b3 = bytes[i + 3]
                guard b1 & 0xC0 == 0x80, b2 & 0xC0 == 0x80, b3 & 0xC0 == 0x80 else { return false }
                if b0 == 0xF0 && b1 < 0x90 { return false }  // overlong
                if b0 == 0xF4 && b1 >= 0x90 { return false }  // above U+10FFFF
                i += 4
                continue
            }
            return false
        }
        return true
    }

    /// Decodes well-formed UTF-8 into code points plus the byte offset where each starts (one extra entry at the
    /// end holding the total length). Input must already be valid; malformed bytes decode as U+FFFD, one byte each.
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>, scalars: inout [UInt32], offsets: inout [Int]) {
        scalars.removeAll(keepingCapacity: true)
        offsets.removeAll(keepingCapacity: true)
        scalars.reserveCapacity(bytes.count)
        offsets.reserveCapacity(bytes.count + 1)
        var i = 0
        let n = bytes.count
        while i < n {
            offsets.append(i)
            let b0 = UInt32(bytes[i])
            if b0 < 0x80 {
                scalars.append(b0)
                i += 1
            } else if b0 >= 0xC0 && b0 < 0xE0 && i + 1 < n {
                scalars.append(((b0 & 0x1F) << 6) | (UInt32(bytes[i + 1]) & 0x3F))
                i += 2
            } else if b0 >= 0xE0 && b0 < 0xF0 && i + 2 < n {
                scalars.append(((b0 & 0x0F) << 12) | ((UInt32(bytes[i + 1]) & 0x3F) << 6) | (UInt32(bytes[i + 2]) & 0x3F))
                i += 3
            } else if b0 >= 0xF0 && b0 < 0xF8 && i + 3 < n {
                scalars.append(((b0 & 0x07) << 18) | ((UInt32(bytes[i + 1]) & 0x3F) << 12)
                    | ((UInt32(bytes[i + 2]) & 0x3F) << 6) | (UInt32(bytes[i + 3]) & 0x3F))
                i += 4
            } else {
                scalars.append(0xFFFD)
                i += 1
            }
        }
        offsets.append(n)
    }
}
