// Parser for llama.cpp's GBNF grammar text (grammars/README.md): `name ::= alternatives` rules, `|`, sequences,
// `( )` groups, "literals", [classes] with ranges and `^` negation, `.`, escapes \x.. \u.... \U........ \t \r \n
// \\ \" \[ \], repetition * + ? {m} {m,} {m,n}, `#` comments, start rule `root`. Repetitions are rewritten into
// helper rules the way llama.cpp's parser does, so the compiled rules match llama.cpp's. Errors are
// MistralError(.invalidArgument) naming line, column and byte offset; sizes are bounded so no text can make the
// parser or the matcher run away.

public enum GBNF {
    /// Largest {m,n} bound (llama.cpp's MAX_REPETITION_THRESHOLD).
    public static let maxRepetition = 2000
    public static let maxElements = 1 << 20
    public static let maxNesting = 256
    public static let maxTextBytes = 4 << 20

    public static func parse(_ text: String) throws -> Grammar {
        guard text.utf8.count <= maxTextBytes else {
            throw MistralError.invalid("grammar: text of \(text.utf8.count) bytes is too large (at most \(maxTextBytes))")
        }
        var p = GBNFParser(bytes: Array(text.utf8))
        try p.parseAll()
        return try p.finish(source: text)
    }
}

struct GBNFParser {
    let s: [UInt8]
    var i = 0
    var symbolIds: [String: Int] = [:]
    var symbolNames: [String] = []
    var rules: [[GrammarElement]?] = []
    var totalElements = 0
    /// Where each rule name was first used, for "undefined rule" messages.
    var firstUse: [Int: Int] = [:]

    init(bytes: [UInt8]) { s = bytes }

    @inline(__always) func at(_ k: Int) -> UInt8 { k < s.count ? s[k] : 0 }
    var c: UInt8 { at(i) }

    func fail(_ message: String, at pos: Int? = nil) -> MistralError {
        let where_ = min(pos ?? i, s.count)
        var line = 1, col = 1
        for k in 0..<where_ {
            if s[k] == 0x0A { line += 1; col = 1 } else if s[k] & 0xC0 != 0x80 { col += 1 }
        }
        return MistralError.invalid("grammar: \(message) at line \(line), column \(col) (byte \(where_))")
    }

    static func isWordChar(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || b == 0x2D || (b >= 0x30 && b <= 0x39)
    }
    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    mutating func skipSpace(newlineOK: Bool) {
        while i < s.count {
            let b = s[i]
            if b == 0x20 || b == 0x09 || (newlineOK && (b == 0x0A || b == 0x0D)) {
                i += 1
            } else if b == 0x23 {  // '#' comment to end of line
                while i < s.count && s[i] != 0x0A && s[i] != 0x0D { i += 1 }
            } else {
                return
            }
        }
    }

    mutating func symbolId(_ name: String, usedAt pos: Int) -> Int {
        if let id = symbolIds[name] { return id }
        let id = symbolNames.count
        symbolIds[name] = id
        symbolNames.append(name)
        rules.append(nil)
        firstUse[id] = pos
        return id
    }

    mutating func generatedId(_ base: String) -> Int {
        let id = symbolNames.count
        let name = "\(base)_\(id)"
        symbolIds[name] = id
        symbolNames.append(name)
        rules.append(nil)
        return id
    }

    mutating func addRule(_ id: Int, _ rule: [GrammarElement]) throws {
        totalElements += rule.count
        guard totalElements <= GBNF.maxElements else {
            throw fail("grammar is too large (more than \(GBNF.maxElements) elements after expanding repetitions)")
        }
        rules[id] = rule
    }

    mutating func parseName() throws -> String {
        let start = i
        while i < s.count && GBNFParser.isWordChar(s[i]) { i += 1 }
        guard i > start else { throw fail("expecting a rule name") }
        return String(decoding: s[start..<i], as: UTF8.self)
    }

    mutating func parseInt() throws -> Int {
        let start = i
        var v = 0
        while i < s.count && GBNFParser.isDigit(s[i]) {
            v = v * 10 + Int(s[i] - 0x30)
            guard v <= GBNF.maxRepetition else {
                throw fail("repetition count is larger than \(GBNF.maxRepetition)", at: start)
            }
            i += 1
        }
        guard i > start else { throw fail("expecting an integer") }
        return v
    }

    mutating func parseHex(_ n: Int) throws -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<n {
            let b = c
            let d: UInt32
            switch b {
            case 0x30...0x39: d = UInt32(b - 0x30)
            case 0x41...0x46: d = UInt32(b - 0x41 + 10)
            case 0x61...0x66: d = UInt32(b - 0x61 + 10)
            default: throw fail("expecting \(n) hex digits")
            }
            v = v << 4 | d
            i += 1
        }
        guard v <= 0x10FFFF else { throw fail("code point \(v) is beyond U+10FFFF") }
        return v
    }

    /// One character of a literal or class: an escape or one UTF-8 encoded code point.
    mutating func parseChar() throws -> UInt32 {
        guard i < s.count else { throw fail("unexpected end of input") }
        if s[i] == 0x5C {  // backslash
            let e = at(i + 1)
            i += 2
            switch e {
            case UInt8(ascii: "x"): return try parseHex(2)
            case UInt8(ascii: "u"): return try parseHex(4)
            case UInt8(ascii: "U"): return try parseHex(8)
            case UInt8(ascii: "t"): return 9
            case UInt8(ascii: "r"): return 13
            case UInt8(ascii: "n"): return 10
            case UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "["), UInt8(ascii: "]"): return UInt32(e)
            default:
                i -= 2
                throw fail("unknown escape")
            }
        }
        // the text came from a Swift String, so it is valid UTF-8
        let b = s[i]
        let len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4
        var v = UInt32(len == 1 ? b : len == 2 ? b & 0x1F : len == 3 ? b & 0x0F : b & 0x07)
        for k in 1..<max(len, 1) { v = v << 6 | UInt32(at(i + k) & 0x3F) }
        i += len
        return v
    }

    mutating func parseAll() throws {
        skipSpace(newlineOK: true)
        while i < s.count {
            try parseRule()
        }
    }

    mutating func parseRule() throws {
        let namePos = i
        let name = try parseName()
        skipSpace(newlineOK: false)
        let id = symbolId(name, usedAt: namePos)
        guard at(i) == 0x3A, at(i + 1) == 0x3A, at(i + 2) == 0x3D else { throw fail("expecting ::=") }
        if rules[id] != nil { throw fail("rule '\(name)' is defined twice", at: namePos) }
        i += 3
        skipSpace(newlineOK: true)
        try parseAlternates(ruleName: name, ruleId: id, nested: false, depth: 0)
        if c == 0x0D {
            i += at(i + 1) == 0x0A ? 2 : 1
        } else if c == 0x0A {
            i += 1
        } else if i < s.count {
            throw fail("expecting newline or end")
        }
        skipSpace(newlineOK: true)
    }

    mutating func parseAlternates(ruleName: String, ruleId: Int, nested: Bool, depth: Int) throws {
        guard depth < GBNF.maxNesting else { throw fail("groups nested more than \(GBNF.maxNesting) deep") }
        var rule: [GrammarElement] = []
        try parseSequence(ruleName: ruleName, rule: &rule, nested: nested, depth: depth)
        while c == UInt8(ascii: "|") {
            rule.append(GrammarElement(kind: .alt, value: 0))
            i += 1
            skipSpace(newlineOK: true)
            try parseSequence(ruleName: ruleName, rule: &rule, nested: nested, depth: depth)
        }
        rule.append(GrammarElement(kind: .end, value: 0))
        try addRule(ruleId, rule)
    }

    mutating func parseSequence(ruleName: String, rule: inout [GrammarElement], nested: Bool, depth: Int) throws {
        var lastSymStart = rule.count
        while i < s.count {
            let b = s[i]
            if b == UInt8(ascii: "\"") {  // literal
                i += 1
                lastSymStart = rule.count
                while c != UInt8(ascii: "\"") {
                    guard i < s.count else { throw fail("unterminated string literal") }
                    rule.append(GrammarElement(kind: .char, value: try parseChar()))
                }
                i += 1
                skipSpace(newlineOK: nested)
            } else if b == UInt8(ascii: "[") {  // class
                i += 1
                var startKind = GrammarElementKind.char
                if c == UInt8(ascii: "^") {
                    i += 1
                    startKind = .charNot
                }
                lastSymStart = rule.count
                while c != UInt8(ascii: "]") {
                    guard i < s.count else { throw fail("unterminated character class") }
                    let ch = try parseChar()
                    rule.append(GrammarElement(kind: lastSymStart < rule.count ? .charAlt : startKind, value: ch))
                    if c == UInt8(ascii: "-") && at(i + 1) != UInt8(ascii: "]") {
                        guard i + 1 < s.count else { throw fail("unexpected end of input") }
                        i += 1
                        let hi = try parseChar()
                        guard hi >= ch else { throw fail("character range with its end before its start") }
                        rule.append(GrammarElement(kind: .charRangeUpper, value: hi))
                    }
                }
                if rule.count == lastSymStart { throw fail("empty character class") }
                i += 1
                skipSpace(newlineOK: nested)
            } else if GBNFParser.isWordChar(b) {  // rule reference
                let pos = i
                let name = try parseName()
                let ref = symbolId(name, usedAt: pos)
                skipSpace(newlineOK: nested)
                lastSymStart = rule.count
                rule.append(GrammarElement(kind: .ruleRef, value: UInt32(ref)))
            } else if b == UInt8(ascii: "(") {  // group → synthesized rule
                i += 1
                skipSpace(newlineOK: true)
                let sub = generatedId(ruleName)
                try parseAlternates(ruleName: ruleName, ruleId: sub, nested: true, depth: depth + 1)
                lastSymStart = rule.count
                rule.append(GrammarElement(kind: .ruleRef, value: UInt32(sub)))
                guard c == UInt8(ascii: ")") else { throw fail("expecting ')'") }
                i += 1
                skipSpace(newlineOK: nested)
            } else if b == UInt8(ascii: ".") {
                lastSymStart = rule.count
                rule.append(GrammarElement(kind: .charAny, value: 0))
                i += 1
                skipSpace(newlineOK: nested)
            } else if b == UInt8(ascii: "*") || b == UInt8(ascii: "+") || b == UInt8(ascii: "?") {
                let pos = i
                i += 1
                skipSpace(newlineOK: nested)
                let (lo, hi) = b == UInt8(ascii: "*") ? (0, -1) : b == UInt8(ascii: "+") ? (1, -1) : (0, 1)
                try repeatLast(&rule, from: lastSymStart, min: lo, max: hi, ruleName: ruleName, at: pos)
            } else if b == UInt8(ascii: "{") {
                let pos = i
                i += 1
                skipSpace(newlineOK: nested)
                guard GBNFParser.isDigit(c) else { throw fail("expecting an integer") }
                let lo = try parseInt()
                skipSpace(newlineOK: nested)
                var hi = -1
                if c == UInt8(ascii: "}") {
                    hi = lo
                    i += 1
                } else if c == UInt8(ascii: ",") {
                    i += 1
                    skipSpace(newlineOK: nested)
                    if GBNFParser.isDigit(c) {
                        hi = try parseInt()
                        skipSpace(newlineOK: nested)
                    }
                    guard c == UInt8(ascii: "}") else { throw fail("expecting '}'") }
                    i += 1
                } else {
                    throw fail("expecting ',' or '}'")
                }
                skipSpace(newlineOK: nested)
                if hi >= 0 && hi < lo { throw fail("repetition {\(lo),\(hi)} has its maximum below its minimum", at: pos) }
                try repeatLast(&rule, from: lastSymStart, min: lo, max: hi, ruleName: ruleName, at: pos)
            } else {
                break
            }
        }
    }

    /// llama.cpp's rewrite: S{m,n} → S…S (m times) then n-m nested optional helper rules; S{m,} → m copies and
    /// a right-recursive `S' ::= S S' |`.
    mutating func repeatLast(_ rule: inout [GrammarElement], from start: Int, min lo: Int, max hi: Int,
                             ruleName: String, at pos: Int) throws {
        guard start < rule.count else { throw fail("expecting an item before a repetition operator", at: pos) }
        let item = Array(rule[start...])
        guard (lo + (hi < 0 ? 1 : hi - lo)) * item.count + totalElements <= GBNF.maxElements else {
            throw fail("grammar is too large (more than \(GBNF.maxElements) elements after expanding repetitions)", at: pos)
        }
        if lo == 0 {
            rule.removeLast(rule.count - start)
        } else {
            for _ in 1..<max(lo, 1) { rule.append(contentsOf: item) }
        }
        let optional = hi < 0 ? 1 : hi - lo
        var lastRec = 0
        for k in 0..<optional {
            var rec = item
            let id = generatedId(ruleName)
            if k > 0 || hi < 0 { rec.append(GrammarElement(kind: .ruleRef, value: UInt32(hi < 0 ? id : lastRec))) }
            rec.append(GrammarElement(kind: .alt, value: 0))
            rec.append(GrammarElement(kind: .end, value: 0))
            try addRule(id, rec)
            lastRec = id
        }
        if optional > 0 { rule.append(GrammarElement(kind: .ruleRef, value: UInt32(lastRec))) }
    }

    func finish(source: String) throws -> Grammar {
        guard let root = symbolIds["root"] else { throw MistralError.invalid("grammar: no 'root' rule") }
        var defined: [[GrammarElement]] = []
        for (id, r) in rules.enumerated() {
            guard let r else { throw fail("undefined rule '\(symbolNames[id])'", at: firstUse[id]) }
            defined.append(r)
        }
        if let bad = GBNFParser.leftRecursiveRule(defined) {
            throw MistralError.invalid("grammar: rule '\(symbolNames[bad])' is left-recursive (a rule that can reach "
                                       + "itself without consuming a character); rewrite it with repetition")
        }
        var elements: [GrammarElement] = []
        var starts: [Int32] = []
        for r in defined {
            starts.append(Int32(elements.count))
            elements.append(contentsOf: r)
        }
        return Grammar(elements: elements, ruleStart: starts, ruleNames: symbolNames, rootRule: root, source: source)
    }

    /// llama.cpp's detect_left_recursion, iterative (an explicit stack, so a deep rule chain cannot overflow the
    /// thread's stack): returns a rule that reaches itself through leftmost (or empty-able leftmost) references.
    static func leftRecursiveRule(_ rules: [[GrammarElement]]) -> Int? {
        let n = rules.count
        // which rules may produce the empty string: fixed point over "some alternative is all empty-able refs"
        var mayBeEmpty = [Bool](repeating: false, count: n)
        var changed = true
        while changed {
            changed = false
            for (id, r) in rules.enumerated() where !mayBeEmpty[id] {
                var altEmpty = true
                for e in r {
                    if e.kind == .end || e.kind == .alt {
                        if altEmpty { mayBeEmpty[id] = true; changed = true; break }
                        altEmpty = true
                    } else if e.kind == .ruleRef {
                        if !mayBeEmpty[Int(e.value)] { altEmpty = false }
                    } else {
                        altEmpty = false
                    }
                }
            }
        }
        // edges: rule -> rules referenced at the left of an alternative (past empty-able prefixes)
        var edges = [[Int]](repeating: [], count: n)
        for (id, r) in rules.enumerated() {
            var leftmost = true
            for e in r {
                if e.kind == .end || e.kind == .alt {
                    leftmost = true
                } else if e.kind == .ruleRef {
                    if leftmost { edges[id].append(Int(e.value)) }
                    if !mayBeEmpty[Int(e.value)] { leftmost = false }
                } else {
                    leftmost = false
                }
            }
        }
        // cycle search (white/grey/black DFS)
        var color = [UInt8](repeating: 0, count: n)
        for start in 0..<n where color[start] == 0 {
            var stack: [(Int, Int)] = [(start, 0)]
            color[start] = 1
            while let (v, k) = stack.last {
                if k < edges[v].count {
                    stack[stack.count - 1].1 += 1
                    let w = edges[v][k]
                    if color[w] == 1 { return w }
                    if color[w] == 0 {
                        color[w] = 1
                        stack.append((w, 0))
                    }
                } else {
                    color[v] = 2
                    stack.removeLast()
                }
            }
        }
        return nil
    }
}
