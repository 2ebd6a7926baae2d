// A compiled GBNF grammar (llama.cpp's format): every rule flattened into one element array, as llama.cpp's
// llama_grammar_element rules are, plus a precomputed character class for every terminal position so the matcher
// tests a code point with one bitmap lookup (ASCII) or a short range scan.

public enum GrammarElementKind: UInt8, Sendable {
    case end            // ends a rule
    case alt            // separates two alternatives of a rule
    case ruleRef        // value = rule id
    case char           // value = code point; starts a positive class
    case charNot        // value = code point; starts a negated class
    case charRangeUpper // value = upper bound of the range started by the previous char element
    case charAlt        // value = another code point (or range start) of the same class
    case charAny        // "." — any code point
}

public struct GrammarElement: Sendable, Equatable {
    public var kind: GrammarElementKind
    public var value: UInt32
}

/// The code points one terminal accepts, with an ASCII bitmap for the common case.
struct CharClass: Sendable {
    var asciiLow: UInt64 = 0     // code points 0..<64
    var asciiHigh: UInt64 = 0    // code points 64..<128
    var ranges: [ClosedRange<UInt32>] = []   // as written (before negation)
    var negated = false
    var any = false
    /// The element after the class.
    var next: Int32 = 0

    @inline(__always) func matches(_ c: UInt32) -> Bool {
        if c < 64 { return asciiLow >> UInt64(c) & 1 != 0 }
        if c < 128 { return asciiHigh >> UInt64(c - 64) & 1 != 0 }
        return matchesSlow(c)
    }

    func matchesSlow(_ c: UInt32) -> Bool {
        if any { return true }
        var found = false
        for r in ranges where r.contains(c) { found = true; break }
        return found != negated
    }

    /// Whether some code point in low...high is accepted (llama.cpp's match_partial_char, for a UTF-8 sequence
    /// still missing bytes).
    func matchesSome(_ low: UInt32, _ high: UInt32) -> Bool {
        if any { return true }
        if !negated { return ranges.contains { $0.lowerBound <= high && low <= $0.upperBound } }
        // negated: fails only when the excluded ranges cover all of low...high
        var cursor = low
        for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) where r.upperBound >= cursor {
            if r.lowerBound > cursor { return true }
            if r.upperBound >= high { return false }
            cursor = r.upperBound + 1
        }
        return true
    }
}

public struct Grammar: Sendable {
    public let elements: [GrammarElement]
    /// First element of each rule, by rule id.
    public let ruleStart: [Int32]
    public let ruleNames: [String]
    public let rootRule: Int
    /// The text it was compiled from (a cache key for the matcher).
    public let source: String
    /// Per element position: index into `classes` when a terminal class starts there, else -1.
    let classAt: [Int32]
    let classes: [CharClass]

    init(elements: [GrammarElement], ruleStart: [Int32], ruleNames: [String], rootRule: Int, source: String) {
        self.elements = elements
        self.ruleStart = ruleStart
        self.ruleNames = ruleNames
        self.rootRule = rootRule
        self.source = source
        var classAt = [Int32](repeating: -1, count: elements.count)
        var classes: [CharClass] = []
        var i = 0
        while i < elements.count {
            let k = elements[i].kind
            guard k == .char || k == .charNot || k == .charAny else { i += 1; continue }
            var cls = CharClass()
            cls.negated = k == .charNot
            var j = i
            repeat {
                if elements[j].kind == .charAny {
                    cls.any = true
                    j += 1
                } else if j + 1 < elements.count && elements[j + 1].kind == .charRangeUpper {
                    let lo = elements[j].value, hi = elements[j + 1].value
                    if lo <= hi { cls.ranges.append(lo...hi) }
                    j += 2
                } else {
                    cls.ranges.append(elements[j].value...elements[j].value)
                    j += 1
                }
            } while j < elements.count && elements[j].kind == .charAlt
            cls.next = Int32(j)
            for c in 0..<UInt32(128) where cls.matchesSlow(c) {
                if c < 64 { cls.asciiLow |= 1 << UInt64(c) } else { cls.asciiHigh |= 1 << UInt64(c - 64) }
            }
            classAt[i] = Int32(classes.count)
            classes.append(cls)
            i = j
        }
        self.classAt = classAt
        self.classes = classes
    }

    @inline(__always) func isEndOfSequence(_ p: Int) -> Bool {
        let k = elements[p].kind
        return k == .end || k == .alt
    }
}
