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
    static let upperish: UInt8 = 32     // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] (Tekken's first letter class)
    static let lowerish: UInt8 = 64     // [\p{Ll}\p{Lm}\p{Lo}\p{M}] (Tekken's second letter class)
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
        case .uppercaseLetter, .titlecaseLetter:
            f |= letter | upperish
        case .lowercaseLetter:
            f |= letter | lowerish
        case .modifierLetter, .otherLetter:
            f |= letter | upperish | lowerish
        case .nonspacingMark, .spacingMark, .enclosingMark:
            f |= upperish | lowerish
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

/// Which engine's reading of the Tekken pattern to follow; they split some texts differently.
public enum TekkenFlavor: Sendable, Equatable {
    /// tiktoken (fancy-regex) running `tekken.json`'s own pattern, as mistral-common does:
    ///   [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|
    ///   [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}|
    ///    ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
    case tiktoken
    /// llama.cpp's LLAMA_VOCAB_PRE_TYPE_TEKKEN rewrite of it for std::regex over collapsed text:
    ///   [^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|
    ///   [^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}|
    ///    ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
    /// The letter classes differ from the original: "upper" is any letter but a-z and "lower" any letter but A-Z,
    /// so non-ASCII letters count as both cases, and combining marks (\p{M}) are not letters at all. Texts of
    /// ASCII letters and of lower-case-after-capital words split the same; e.g. "ÉCOLE" (tiktoken: one word;
    /// llama.cpp: "É", "COLE") or a letter followed by a combining mark do not.
    case llamaCpp
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
    /// `tekken`: Mistral's Tekken pattern. A GGUF's "tekken" gets llama.cpp's reading (`.llamaCpp`); a
    /// `tekken.json` tokenizer (TekkenTokenizer) uses `.tiktoken`.
    case tekken(TekkenFlavor)

    public init(name: String) throws {
        switch name {
        case "smollm": self = .smollm
        case "gpt2", "gpt-2": self = .gpt2
        case "llama-bpe", "llama3", "llama-v3": self = .llama3
        case "default": self = .llamaDefault
        case "tekken": self = .tekken(.llamaCpp)
        default:
            throw MistralError.unsupported("pre-tokenizer '\(name)' is not supported (supported: smollm, gpt2, llama-bpe, tekken, default)")
        }
    }

    /// The splitting passes, in order.
    var passes: [PreTokenizerPass] {
        switch self {
        case .gpt2: return [.gpt2]
        case .smollm: return [.isolateNumbers, .gpt2]
        case .llama3: return [.llama3]
        case .llamaDefault: return [.defaultPunctRuns, .gpt2, .numberRuns, .asciiDigitTriples]
        case .tekken(let flavor): return [.tekken(flavor)]
        }
    }

    /// llama.cpp's `ignore_merges`: a word that is itself a vocabulary token is emitted without merging.
    var ignoreMerges: Bool {
        switch self {
        case .llama3, .tekken: return true
        case .gpt2, .smollm, .llamaDefault: return false
        }
    }

    /// llama.cpp's `clean_spaces` (clean_up_tokenization_spaces), applied by detokenize.
    var cleanSpaces: Bool {
        switch self {
        case .smollm, .tekken: return false
        case .gpt2, .llama3, .llamaDefault: return true
        }
    }

    /// llama.cpp's `add_bos` default before `tokenizer.ggml.add_bos_token` overrides it.
    var addBosDefault: Bool {
        switch self {
        case .llama3, .tekken: return true
        case .gpt2, .smollm, .llamaDefault: return false
        }
    }
}

enum PreTokenizerPass: Sendable {
    case isolateNumbers     // regex "\p{N}"
    case gpt2               // unicode_regex_split_custom_gpt2
    case llama3             // unicode_regex_split_custom_llama3
    case defaultPunctRuns   // regex "[\p{P}\$\+<=>\^~\|]+"
    case numberRuns         // regex "\p{N}+"
    case asciiDigitTriples  // regex "[0-9][0-9][0-9]"
    case tekken(TekkenFlavor)
}

public struct PreTokenizer: Sendable {
    public let name: String
    public let rules: PreTokenizerRules

    public init(name: String) throws {
        self.name = name
        self.rules = try PreTokenizerRules(name: name)
    }

    public init(name: String, rules: PreTokenizerRules) {
        self.name = name
        self.rules = rules
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
                        case .tekken(let flavor): seg.tekken(flavor, into: &out)
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

    /// The Tekken pattern (see TekkenFlavor), matched the way a backtracking regex engine (fancy-regex, std::regex)
    /// matches it: at each position the first alternative that matches wins, quantifiers are greedy and give back
    /// characters only when the rest of their alternative fails. Every character matches some alternative, so the
    /// words cover the segment.
    mutating func tekken(_ flavor: TekkenFlavor, into out: inout [Int]) {
        let cps = self.cps, flags = self.flags, end = self.end
        let L = CodepointClass.letter, N = CodepointClass.number, W = CodepointClass.whitespace
        let upperBit = CodepointClass.upperish, lowerBit = CodepointClass.lowerish
        let cr: UInt32 = 0x0D, lf: UInt32 = 0x0A, space: UInt32 = 0x20, slash: UInt32 = 0x2F
        let tiktoken = flavor == .tiktoken

        // Character classes; a position at or past the end of the segment is in none.
        @inline(__always) func upper(_ i: Int) -> Bool {  // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]  |  (?=\p{L})[^a-z]
            guard i < end else { return false }
            if tiktoken { return flags[i] & upperBit != 0 }
            let c = cps[i]
            return flags[i] & L != 0 && !(c >= 0x61 && c <= 0x7A)
        }
        @inline(__always) func lower(_ i: Int) -> Bool {  // [\p{Ll}\p{Lm}\p{Lo}\p{M}]  |  (?=\p{L})[^A-Z]
            guard i < end else { return false }
            if tiktoken { return flags[i] & lowerBit != 0 }
            let c = cps[i]
            return flags[i] & L != 0 && !(c >= 0x41 && c <= 0x5A)
        }
        @inline(__always) func lead(_ i: Int) -> Bool {  // [^\r\n\p{L}\p{N}]
            guard i < end else { return false }
            let c = cps[i]
            return flags[i] & (L | N) == 0 && c != cr && c != lf
        }
        @inline(__always) func other(_ i: Int) -> Bool {  // [^\s\p{L}\p{N}]
            i < end && flags[i] & (W | L | N) == 0
        }
        @inline(__always) func white(_ i: Int) -> Bool {  // \s
            i < end && flags[i] & W != 0
        }
        @inline(__always) func newline(_ i: Int) -> Bool {  // [\r\n]
            i < end && (cps[i] == cr || cps[i] == lf)
        }

        /// End of the match starting at p (p < end).
        func match(_ p: Int) -> Int {
            let hasLead = lead(p)
            // [^\r\n\p{L}\p{N}]?UPPER*LOWER+ : the optional lead is tried taken first, then not taken
            var skip = hasLead ? 1 : 0
            while skip >= 0 {
                let q = p + skip
                var k = 0
                while upper(q + k) { k += 1 }
                var j = k
                while true {  // UPPER* gives back until LOWER+ can start
                    if lower(q + j) {
                        var e = q + j + 1
                        while lower(e) { e += 1 }
                        return e
                    }
                    if j == 0 { break }
                    j -= 1
                }
                skip -= 1
            }
            // [^\r\n\p{L}\p{N}]?UPPER+LOWER*
            skip = hasLead ? 1 : 0
            while skip >= 0 {
                let q = p + skip
                var e = q
                while upper(e) { e += 1 }
                if e > q {
                    while lower(e) { e += 1 }
                    return e
                }
                skip -= 1
            }
            // \p{N}
            if flags[p] & N != 0 { return p + 1 }
            // <space>?[^\s\p{L}\p{N}]+[\r\n/]*  (without the space the class cannot start at a space)
            let q = cps[p] == space ? p + 1 : p
            if other(q) {
                var e = q + 1
                while other(e) { e += 1 }
                while e < end && (cps[e] == cr || cps[e] == lf || cps[e] == slash) { e += 1 }
                return e
            }
            var e = p
            var lastNewline = -1
            while white(e) {
                if newline(e) { lastNewline = e }
                e += 1
            }
            // \s*[\r\n]+ : up to and including the last newline of the run of white space
            if lastNewline >= 0 { return lastNewline + 1 }
            // \s+(?!\S) : the whole run at the end of the segment, else all but its last character
            if e == end && e > p { return e }
            if e - p > 1 { return e - 1 }
            // \s+
            if e > p { return e }
            return p + 1  // not reachable: every character is in one of the classes above
        }

        var pos = ini
        while pos < end {
            pos = match(pos)
            add(pos, &out)
        }
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
