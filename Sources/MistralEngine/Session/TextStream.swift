// Turns the bytes of generated tokens into text a caller can show: only complete, valid UTF-8 leaves (bytes of
// a character split across tokens are held back), and text that could be the start of a stop string is held
// until it is known not to be one.

public struct TextStream {
    private var pendingBytes: [UInt8] = []   // an incomplete UTF-8 sequence at the end
    private var pendingText: [UInt8] = []    // valid UTF-8 held back for stop-string matching
    private let stops: [[UInt8]]
    public private(set) var stopped = false

    public init(stopStrings: [String]) {
        stops = stopStrings.map { Array($0.utf8) }.filter { !$0.isEmpty }
    }

    /// Adds a token's bytes; returns the text that is now safe to pass on (possibly empty).
    public mutating func push(_ bytes: [UInt8]) -> [UInt8] {
        guard !stopped else { return [] }
        pendingBytes += bytes
        let valid = takeCompleteUTF8()
        pendingText += valid
        return releaseText(final: false)
    }

    /// Flushes whatever is held at the end of generation (an incomplete character becomes U+FFFD).
    public mutating func finish() -> [UInt8] {
        guard !stopped else { return [] }
        if !pendingBytes.isEmpty {
            pendingText += [0xEF, 0xBF, 0xBD]
            pendingBytes.removeAll()
        }
        return releaseText(final: true)
    }

    private mutating func releaseText(final: Bool) -> [UInt8] {
        if let (at, _) = firstStopMatch() {
            stopped = true
            let out = Array(pendingText[..<at])
            pendingText.removeAll()
            return out
        }
        if final || stops.isEmpty {
            defer { pendingText.removeAll() }
            return pendingText
        }
        // keep the longest suffix that is a proper prefix of some stop string
        var hold = 0
        for s in stops {
            for len in stride(from: min(s.count - 1, pendingText.count), to: 0, by: -1) where len > hold {
                if pendingText.suffix(len).elementsEqual(s.prefix(len)) { hold = len; break }
            }
        }
        let out = Array(pendingText.dropLast(hold))
        pendingText.removeFirst(pendingText.count - hold)
        return out
    }

    private func firstStopMatch() -> (Int, Int)? {
        var best: (Int, Int)?
        for (si, s) in stops.enumerated() where s.count <= pendingText.count {
            var i = 0
            while i + s.count <= pendingText.count {
                if pendingText[i] == s[0] && pendingText[i..<i + s.count].elementsEqual(s) {
                    if best == nil || i < best!.0 { best = (i, si) }
                    break
                }
                i += 1
            }
        }
        return best
    }

    /// Moves the longest prefix of pendingBytes made of whole sequences out, replacing invalid bytes by U+FFFD.
    private mutating func takeCompleteUTF8() -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        let b = pendingBytes
        while i < b.count {
            let lead = b[i]
            let len: Int
            switch lead {
            case 0x00...0x7F: len = 1
            case 0xC2...0xDF: len = 2
            case 0xE0...0xEF: len = 3
            case 0xF0...0xF4: len = 4
            default: len = 0
            }
            if len == 0 { out += [0xEF, 0xBF, 0xBD]; i += 1; continue }
            if i + len > b.count {
                // incomplete: keep it if what we have so far is a valid beginning
                if validPrefix(b[i...]) { break }
                out += [0xEF, 0xBF, 0xBD]; i += 1; continue
            }
            if validSequence(b[i..<i + len]) {
                out += b[i..<i + len]
                i += len
            } else {
                out += [0xEF, 0xBF, 0xBD]
                i += 1
            }
        }
        pendingBytes = Array(b[i...])
        return out
    }

    private func secondByteRange(_ lead: UInt8) -> ClosedRange<UInt8> {
        switch lead {
        case 0xE0: return 0xA0...0xBF
        case 0xED: return 0x80...0x9F
        case 0xF0: return 0x90...0xBF
        case 0xF4: return 0x80...0x8F
        default: return 0x80...0xBF
        }
    }

    private func validSequence(_ s: ArraySlice<UInt8>) -> Bool {
        let a = Array(s)
        if a.count == 1 { return true }
        guard secondByteRange(a[0]).contains(a[1]) else { return false }
        for c in a.dropFirst(2) where !(0x80...0xBF).contains(c) { return false }
        return true
    }

    private func validPrefix(_ s: ArraySlice<UInt8>) -> Bool {
        let a = Array(s)
        if a.count >= 2 && !secondByteRange(a[0]).contains(a[1]) { return false }
        for c in a.dropFirst(2) where !(0x80...0xBF).contains(c) { return false }
        return true
    }
}
