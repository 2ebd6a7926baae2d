// Pre-tokenization: splitting text into the words that BPE merges within. Mirrors llama.cpp's
// unicode_regex_split (src/unicode.cpp) for the pre-tokenizer types we support: each rule set is a sequence of
// passes, each pass refining the previous pass's segments (a segment boundary acts as end of text for the next
// pass, exactly like llama.cpp's `offsets`). Character classes come from the stdlib's Unicode tables
// (generalCategory, White_Space); llama.cpp's own tables may be of a slightly different Unicode version.

/// Per-code-point class bits, the subset of llama.cpp's unicode_cpt_flags the supported patterns use.
/// Every in-range code point has `inRange` set (llama.cpp: `flags.as_uint() != 0`); positions outside the current
/// segment get 0. Unassigned code points (Cn) are neither letters nor numbers: they count as "other".
struct CodepointClass: Sendable {
    static let letter: UInt8 = 1        // \p{L}
    static let number: UInt8 = 2        // \p{N}
    static let whitespace: UInt8 = 4    // \s (Unicode White_Space)
    static let punctuation: UInt8 = 8   // \p{P}
    static let defaultPunct: UInt8 = 16 // [\p{P}\$\+<=>\^~\|] as llama.cpp's "default" pre-tokenizer matches it
    static let inRange: UInt8 = 128

    static let ascii: [UInt8] = (0..<128).map { classify(UInt32($0)) }

    @inline(__always)
    static func of(_ c: UInt32) -> UInt8 {
        c < 128 ? ascii[Int(c)] : classify(c)
    }

    static func classify(_ c: UInt32) -> UInt8 {
        guard let scalar = Unicode.Scalar(c) else { return inRange }  // not reachable for decoded UTF-8
        let p = scalar.properties
        var f = inRange
        if p.isWhitespace { f |= whitespace }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            f |= letter
        case .decimalNumber, .letterNumber, .otherNumber:
            f |= number
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            f |= punctuation
        default:
            break
        }
        // llama.cpp matches "[\p{P}\$\+<=>\^~\|]+" against a collapsed text in which non-ASCII whitespace is a
        // vertical tab and non-ASCII punctuation one marker byte; in ASCII its class is !"#%&'()*,-./:;?@[\]_{}
        // plus $+<=>^~| (everything printable but letters, digits and the backtick).
        if c < 128 {
            if (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x5F) || (c >= 0x7B && c <= 0x7E) {
                f |= defaultPunct
            }
        } else if f & punctuation != 0 && f & whitespace == 0 {
            f |= defaultPunct
        }
        return f
    }
}

/// The pre-tokenizer rule sets we implement, by llama.cpp's `tokenizer.ggml.pre` names.
public enum PreTokenizerRules: Sendable, Equatable {
    /// `gpt2` / `gpt-2`: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    case gpt2
    /// `smollm`: every \p{N} isolated first, then the GPT-2 pattern within each piece.
    case smollm
    /// `llama-bpe` / `llama3` / `llama-v3`: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    case llama3
    /// `default`: llama.cpp's fallback set: [\p{P}\$\+<=>\^~\|]+, then GPT-2, then \p{N}+, then [0-9][0-9][0-9].
    case llamaDefault

    public init(name: String) throws {
        switch name {
        case "smollm": self = .smollm
        case "gpt2", "gpt-2": self = .gpt2
        case "llama-bpe", "llama3", "llama-v3": self = .llama3
        case "default": self = .llamaDefault
        default:
            throw MistralError.unsupported("pre-tokenizer '\(name)' is not supported (supported: smollm, gpt2, llama-bpe, default)")
        }
    }

    /// The splitting passes, in order.
    var passes: [PreTokenizerPass] {
        switch self {
        case .gpt2: return [.gpt2]
        case .smollm: return [.isolateNumbers, .gpt2]
        case .llama3: return [.llama3]
        case .llamaDefault: return [.defaultPunctRuns, .gpt2, .numberRuns, .asciiDigitTriples]
        }
    }

    /// llama.cpp's `ignore_merges`: a word that is itself a vocabulary token is emitted without merging.
    var ignoreMerges: Bool { self == .llama3 }

    /// llama.cpp's `clean_spaces` (clean_up_tokenization_spaces), applied by detokenize.
    var cleanSpaces: Bool {
        switch self {
        case .smollm: return false
        case .gpt2, .llama3, .llamaDefault: return true
        }
    }

    /// llama.cpp's `add_bos` default before `tokenizer.ggml.add_bos_token` overrides it.
    var addBosDefault: Bool { self == .llama3 }
}

enum PreTokenizerPass: Sendable {
    case isolateNumbers     // regex "\p{N}"
    case gpt2               // unicode_regex_split_custom_gpt2
    case llama3             // unicode_regex_split_custom_llama3
    case defaultPunctRuns   // regex "[\p{P}\$\+<=>\^~\|]+"
    case numberRuns         // regex "\p{N}+"
    case asciiDigitTriples  // regex "[0-9][0-9][0-9]"
}

public struct PreTokenizer: Sendable {
    public let name: String
    public let rules: PreTokenizerRules

    public init(name: String) throws {
        self.name = name
        self.rules = try PreTokenizerRules(name: name)
    }

    /// The words `text` splits into (for inspection and tests; tokenizing works on byte ranges).
    public func split(_ text: String) -> [String] {
        let cps = text.unicodeScalars.map { $0.value }
        var words: [String] = []
        var start = 0
        for end in split(cps) {
            var s = String.UnicodeScalarView()
            for c in cps[start..<end] { if let u = Unicode.Scalar(c) { s.append(u) } }
            words.append(String(s))
            start = end
        }
        return words
    }

    /// Splits code points into words; returns the end index (exclusive) of each word, in order. Words are
    /// contiguous and cover the input.
    func split(_ cps: [UInt32]) -> [Int] {
        var classes = [UInt8](repeating: 0, count: cps.count)
        for i in 0..<cps.count { classes[i] = CodepointClass.of(cps[i]) }
        return cps.withUnsafeBufferPointer { c in
            classes.withUnsafeBufferPointer { f in
                var ends = c.isEmpty ? [] : [c.count]
                for pass in rules.passes {
                    var out: [Int] = []
                    out.reserveCapacity(max(ends.count, c.count / 3))
                    var start = 0
                    for end in ends {
                        var seg = Segment(cps: c, flags: f, ini: start, end: end)
                        switch pass {
                        case .isolateNumbers: seg.isolate(CodepointClass.number, into: &out)
                        case .gpt2: seg.gpt2(into: &out)
                        case .llama3: seg.llama3(into: &out)
                        case .defaultPunctRuns: seg.runs(of: CodepointClass.defaultPunct, into: &out)
                        case .numberRuns: seg.runs(of: CodepointClass.number, into: &out)
                        case .asciiDigitTriples: seg.asciiDigitTriples(into: &out)
                        }
                        start = end
                    }
                    ends = out
                }
                return ends
            }
        }
    }
}

/// One segment [ini, end) of the code points being split, with llama.cpp's accessors: outside the segment a code
/// point reads as OUT_OF_RANGE and its class as 0.
private struct Segment {
    let cps: UnsafeBufferPointer<UInt32>
    let flags: UnsafeBufferPointer<UInt8>
    let ini: Int
    let end: Int
    var prevEnd: Int

    static let outOfRange: UInt32 = 0xFFFF_FFFF

    init(cps: UnsafeBufferPointer<UInt32>, flags: UnsafeBufferPointer<UInt8>, ini: Int, end: Int) {
        self.cps = cps
        self.flags = flags
        self.ini = ini
        self.end = end
        self.prevEnd = ini
    }

    @inline(__always) func cpt(_ pos: Int) -> UInt32 { pos >= ini && pos < end ? cps[pos] : Segment.outOfRange }
    @inline(__always) func cls(_ pos: Int) -> UInt8 { pos >= ini && pos < end ? flags[pos] : 0 }

    /// llama.cpp's _add_token: closes a word at `to` (if non-empty) and returns its length.
    @inline(__always)
    @discardableResult
    mutating func add(_ to: Int, _ out: inout [Int]) -> Int {
        let len = to - prevEnd
        if len > 0 { out.append(to) }
        prevEnd = to
        return len
    }

    @inline(__always) static func isOther(_ f: UInt8) -> Bool {
        f & (CodepointClass.whitespace | CodepointClass.letter | CodepointClass.number) == 0 && f != 0
    }

    /// A regex of one class member, split as std::regex_iterator does: each match is its own piece, as is each
    /// stretch of text between matches.
    mutating func isolate(_ cls: UInt8, into out: inout [Int]) {
        var pos = ini
        while pos < end {
            if flags[pos] & cls != 0 {
                add(pos, &out)
                add(pos + 1, &out)
            }
            pos += 1
        }
        add(end, &out)
    }

    /// A regex `[class]+`: maximal runs are pieces, as is the text between them.
    mutating func runs(of cls: UInt8, into out: inout [Int]) {
        var pos = ini
        while pos < end {
            if flags[pos] & cls != 0 {
                add(pos, &out)
                while pos < end && flags[pos] & cls != 0 { pos += 1 }
                add(pos, &out)
            } else {
                pos += 1
            }
        }
        add(end, &out)
    }

    /// The regex [0-9][0-9][0-9]: leftmost non-overlapping triples of ASCII digits.
    mutating func asciiDigitTriples(into out: inout [Int]) {
        @inline(__always) func isDigit(_ c: UInt32) -> Bool { c >= 0x30 && c <= 0x39 }
        var pos = ini
        while pos < end {
            if pos + 2 < end && isDigit(cps[pos]) && isDigit(cps[pos + 1]) && isDigit(cps[pos + 2]) {
                add(pos, &out)
                add(pos + 3, &out)
                pos += 3
            } else {
                pos += 1
            }
        }
        add(end, &out)
    }

    /// unicode_regex_split_custom_gpt2:
    /// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    mutating func gpt2(into out: inout [Int]) {
        let L = CodepointClass.letter, N = CodepointClass.number, W = CodepointClass.whitespace
        let quote: UInt32 = 0x27, space: UInt32 = 0x20
        var pos = ini
        while pos < end {
            let c = cpt(pos)
            let f = cls(pos)

            // 's|'t|'re|'ve|'m|'ll|'d
            if c == quote && pos + 1 < end {
                let n = cpt(pos + 1)
                if n == 0x73 || n == 0x74 || n == 0x6D || n == 0x64 {  // s t m d
                    pos += add(pos + 2, &out)
                    continue
                }
                if pos + 2 < end {
                    let nn = cpt(pos + 2)
                    if (n == 0x72 && nn == 0x65) || (n == 0x76 && nn == 0x65) || (n == 0x6C && nn == 0x6C) {  // re ve ll
                        pos += add(pos + 3, &out)
                        continue
                    }
                }
            }

            var f2 = c == space ? cls(pos + 1) : f
            // <space>?\p{L}+
            if f2 & L != 0 {
                if c == space { pos += 1 }
                while f2 & L != 0 { pos += 1; f2 = cls(pos) }
                add(pos, &out)
                continue
            }
            // <space>?\p{N}+
            if f2 & N != 0 {
                if c == space { pos += 1 }
                while f2 & N != 0 { pos += 1; f2 = cls(pos) }
                add(pos, &out)
                continue
            }
            // <space>?[^\s\p{L}\p{N}]+
            if Segment.isOther(f2) {
                if c == space { pos += 1 }
                while Segment.isOther(f2) { pos += 1; f2 = cls(pos) }
                add(pos, &out)
                continue
            }

            var nws = 0
            while cls(pos + nws) & W != 0 { nws += 1 }
            // \s+(?!\S)
            if nws > 1 && cpt(pos + nws) != Segment.outOfRange {
                pos += nws - 1
                add(pos, &out)
                continue
            }
            // \s+
            if nws > 0 {
                pos += nws
                add(pos, &out)
                continue
            }
            // no match
            pos += 1
            add(pos, &out)
        }
    }

    /// unicode_regex_split_custom_llama3:
    /// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    mutating func llama3(into out: inout [Int]) {
        let L = CodepointClass.letter, N = CodepointClass.number, W = CodepointClass.whitespace
        let quote: UInt32 = 0x27, space: UInt32 = 0x20, cr: UInt32 = 0x0D, lf: UInt32 = 0x0A
        @inline(__always) func lower(_ c: UInt32) -> UInt32 { c >= 0x41 && c <= 0x5A ? c + 0x20 : c }
        var pos = ini
        while pos < end {
            let c = cpt(pos)
            let f = cls(pos)

            // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            if c == quote && pos + 1 < end {
                let n = lower(cpt(pos + 1))
                if n == 0x73 || n == 0x74 || n == 0x6D || n == 0x64 {
                    pos += add(pos + 2, &out)
                    continue
                }
                if pos + 2 < end {
                    let nn = lower(cpt(pos + 2))
                    if (n == 0x72 && nn == 0x65) || (n == 0x76 && nn == 0x65) || (n == 0x6C && nn == 0x6C) {
                        pos += add(pos + 3, &out)
                        continue
                    }
                }
            }

            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(c == cr || c == lf || f & N != 0) {
                if f & L != 0 || cls(pos + 1) & L != 0 {
                    pos += 1
                    while cls(pos) & L != 0 { pos += 1 }
                    add(pos, &out)
                    continue
                }
            }

            // \p{N}{1,3}
            if f & N != 0 {
                var start = pos
                while cls(pos) & N != 0 {
                    pos += 1
                    if pos - start >= 3 {
                        add(pos, &out)
                        start = pos
                    }
                }
                add(pos, &out)
                continue
            }

            // <space>?[^\s\p{L}\p{N}]+[\r\n]*   (llama.cpp tests `flags`, not `flags2`, for being in range)
            var f2 = c == space ? cls(pos + 1) : f
            if f2 & (W | L | N) == 0 && f != 0 {
                if c == space { pos += 1 }
                while Segment.isOther(f2) { pos += 1; f2 = cls(pos) }
                var c2 = cpt(pos)
                while c2 == cr || c2 == lf { pos += 1; c2 = cpt(pos) }
                add(pos, &out)
                continue
            }

            var nws = 0
            var lastEndRN = 0
            while cls(pos + nws) & W != 0 {
                let c2 = cpt(pos + nws)
                if c2 == cr || c2 == lf { lastEndRN = pos + nws + 1 }
                nws += 1
            }
            // \s*[\r\n]+
            if lastEndRN > 0 {
                pos = lastEndRN
                add(pos, &out)
                continue
            }
            // \s+(?!\S)
            if nws > 1 && cpt(pos + nws) != Segment.outOfRange {
                pos += nws - 1
                add(pos, &out)
                continue
            }
            // \s+
            if nws > 0 {
                pos += nws
                add(pos, &out)
                continue
            }
            // no match
            pos += 1
            add(pos, &out)
        }
    }
}
