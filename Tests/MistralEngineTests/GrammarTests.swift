// The GBNF parser (llama.cpp's syntax and its errors), the pushdown matcher on text, and the token mask over a
// synthetic vocabulary (multi-byte and partial UTF-8 tokens) against an independent prefix checker.
import XCTest
import MistralEngine

/// A vocabulary given as raw byte pieces; id 0 is a control end-of-generation token.
struct PieceTokenizer: Tokenizer {
    let pieces: [[UInt8]]
    var vocabSize: Int { pieces.count }
    var bosId: Int32? { nil }
    var eosId: Int32? { 0 }
    var addBosByDefault: Bool { false }
    var endOfGenerationIds: [Int32] { [0] }
    func isControl(_ token: Int32) -> Bool { token == 0 }
    func isEndOfGeneration(_ token: Int32) -> Bool { token == 0 }
    func tokenId(forText text: String) -> Int32? { pieces.firstIndex(of: Array(text.utf8)).map { Int32($0) } }
    func tokenize(_ text: String, addBos: Bool, parseSpecial: Bool) -> [Int32] { [] }
    func tokenize(utf8 bytes: UnsafeRawBufferPointer, addBos: Bool, parseSpecial: Bool) throws -> [Int32] { [] }
    func piece(_ token: Int32, special: Bool) -> [UInt8] {
        token > 0 && Int(token) < pieces.count ? pieces[Int(token)] : []
    }
    func detokenize(_ tokens: [Int32], special: Bool) throws -> [UInt8] { tokens.flatMap { piece($0, special: special) } }
}

func matcher(_ gbnf: String, pieces: [[UInt8]] = [[]]) throws -> GrammarMatcher {
    let trie = TokenTrie(tokenizer: PieceTokenizer(pieces: pieces))
    return try GrammarMatcher(grammar: try GBNF.parse(gbnf), trie: trie, logitCount: pieces.count)
}

/// Whether the whole of `text` is a sentence of the grammar.
func accepts(_ gbnf: String, _ text: String) throws -> Bool {
    let m = try matcher(gbnf)
    return m.accept(bytes: Array(text.utf8)) && m.canFinish
}

final class GrammarParserTests: XCTestCase {
    func testParsesLlamaCppSyntax() throws {
        let json = #"""
        # a JSON grammar in the style of llama.cpp's grammars/json.gbnf
        root   ::= object
        value  ::= object | array | string | number | ("true" | "false" | "null") ws

        object ::=
          "{" ws (
                    string ":" ws value
            ("," ws string ":" ws value)*
          )? "}" ws

        array  ::=
          "[" ws (
                    value
            ("," ws value)*
          )? "]" ws

        string ::=
          "\"" (
            [^"\\\x7F\x00-\x1F] |
            "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
          )* "\"" ws

        number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
        ws ::= | " " | "\n" [ \t]{0,20}
        """#
        XCTAssertTrue(try accepts(json, #"{"a": [1, 2.5, "x\n\u00e9", true, null], "b": {}}"#))
        XCTAssertTrue(try accepts(json, "{\n  \"k\": \"caf\u{e9} \u{1F600}\"}"))
        XCTAssertFalse(try accepts(json, #"{"a": [1, 2,]}"#))
        XCTAssertFalse(try accepts(json, #"{"a" 1}"#))
        XCTAssertFalse(try accepts(json, "{\"a\": \"tab\there\"}"))  // raw control character in a string
    }

    func testRepetitionsClassesEscapes() throws {
        XCTAssertTrue(try accepts(#"root ::= "a"{2,3}"#, "aa"))
        XCTAssertTrue(try accepts(#"root ::= "a"{2,3}"#, "aaa"))
        XCTAssertFalse(try accepts(#"root ::= "a"{2,3}"#, "a"))
        XCTAssertFalse(try accepts(#"root ::= "a"{2,3}"#, "aaaa"))
        XCTAssertTrue(try accepts(#"root ::= "a"{2,}"#, String(repeating: "a", count: 50)))
        XCTAssertFalse(try accepts(#"root ::= "a"{2,}"#, "a"))
        XCTAssertTrue(try accepts(#"root ::= "x"{3}"#, "xxx"))
        XCTAssertFalse(try accepts(#"root ::= "x"{3}"#, "xxxx"))
        XCTAssertTrue(try accepts(#"root ::= "a"? "b"+ "c"*"#, "bbb"))
        XCTAssertTrue(try accepts(#"root ::= "a"? "b"+ "c"*"#, "abcc"))
        XCTAssertFalse(try accepts(#"root ::= "a"? "b"+ "c"*"#, "ac"))
        XCTAssertTrue(try accepts("root ::= [a-cx-z]+", "abzx"))
        XCTAssertFalse(try accepts("root ::= [a-cx-z]+", "abd"))
        XCTAssertTrue(try accepts("root ::= [^a-c]+", "xyz\u{e9}"))
        XCTAssertFalse(try accepts("root ::= [^a-c]+", "xbz"))
        XCTAssertTrue(try accepts("root ::= . . .", "a\u{e9}\u{4e2d}"))
        XCTAssertTrue(try accepts(#"root ::= "\x41\u00e9\U0001F600\t\n\r\\\"\[\]""#, "A\u{e9}\u{1F600}\t\n\r\\\"[]"))
        XCTAssertTrue(try accepts("root ::= [\\]\\[-]+", "]-["))
        XCTAssertTrue(try accepts("root ::= \"\u{4e2d}\u{6587}\"", "\u{4e2d}\u{6587}"))
        XCTAssertTrue(try accepts("root ::= item ( \" \" item )*  # comment\nitem ::= [0-9]+\n", "1 22 333"))
        XCTAssertTrue(try accepts(#"root ::= ("ab" | "c")*"#, ""))
        XCTAssertTrue(try accepts(#"root ::= ("ab" | "c")*"#, "abcab"))
        XCTAssertFalse(try accepts(#"root ::= ("ab" | "c")*"#, "abca"))
    }

    func testBadGrammarsGiveMessagesWithPositions() {
        let cases: [(String, String)] = [
            ("item ::= \"a\"", "no 'root' rule"),
            ("root ::= item", "undefined rule 'item' at line 1, column 10"),
            ("root ::= \"abc", "unterminated string literal"),
            ("root ::= [abc", "unterminated character class"),
            ("root ::= \"\\q\"", "unknown escape at line 1, column 11"),
            ("root ::= root \"a\"", "left-recursive"),
            ("root ::= a\na ::= b? c\nb ::= \"x\"\nc ::= a \"y\"", "left-recursive"),
            ("root ::= \"a\"{3000}", "larger than 2000"),
            ("root ::= \"a\"{3,1}", "maximum below its minimum"),
            ("root ::= * \"a\"", "expecting an item before a repetition"),
            ("root ::= \"a\" )", "expecting newline or end"),
            ("root \"a\"", "expecting ::="),
            ("root ::= (\"a\"", "expecting ')'"),
            ("root ::= []", "empty character class"),
            ("root ::= [z-a]", "end before its start"),
            ("root ::= \"\\x4\"", "expecting 2 hex digits"),
            ("root ::= \"\\U00110000\"", "beyond U+10FFFF"),
            ("root ::= \"a\"\nroot ::= \"b\"", "defined twice at line 2, column 1"),
            ("root ::= \"a\"{5", "expecting ',' or '}'"),
            ("root ::= " + String(repeating: "(", count: 300) + "\"a\"" + String(repeating: ")", count: 300), "nested more than 256"),
            ("root ::= \"a\"{2000}{2000}", "grammar is too large"),
            ("", "no 'root' rule"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try GBNF.parse(text), text) { error in
                guard let e = error as? MistralError else { return XCTFail("not a MistralError: \(error)") }
                XCTAssertEqual(e.status, .invalidArgument, text)
                XCTAssertTrue(e.message.hasPrefix("grammar: "), e.message)
                XCTAssertTrue(e.message.contains(expected), "\(text): \(e.message)")
            }
        }
    }

    func testDeepNestingAndAmbiguityAreBounded() throws {
        // not left-recursive, but every "(" pushes a stack entry: past the depth bound the text is refused
        let m = try matcher(#"root ::= "(" root ")" | """#)
        XCTAssertTrue(m.accept(bytes: Array(String(repeating: "(", count: 1000).utf8)))
        XCTAssertFalse(m.accept(bytes: Array(String(repeating: "(", count: 9000).utf8)))
        // exponentially ambiguous: stacks are interned, so equal parses collapse and this stays fast
        let amb = try matcher(#"root ::= ("a" | "a" "a" | "a"+)*"#)
        let start = ContinuousClock.now
        XCTAssertTrue(amb.accept(bytes: Array(String(repeating: "a", count: 2000).utf8)))
        XCTAssertTrue(amb.canFinish)
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(5))
        // 2^40 expansion paths to one stack: the work per step is bounded, so the step is refused, fast
        var rules = #"root ::= "q" r0"# + "\n"
        for k in 0..<40 { rules += "r\(k) ::= r\(k + 1) | r\(k + 1)\n" }
        rules += #"r40 ::= "a""# + "\n"
        let exp = try matcher(rules)
        let t0 = ContinuousClock.now
        XCTAssertFalse(exp.accept(bytes: Array("q".utf8)))
        XCTAssertLessThan(ContinuousClock.now - t0, .seconds(5))
        XCTAssertTrue(exp.accept(bytes: []))  // still usable
    }
}

final class GrammarMaskTests: XCTestCase {
    // id 0 is end-of-generation; the rest include multi-character tokens, a two-byte character split into its
    // bytes, and tokens that straddle grammar boundaries
    static let pieces: [[UInt8]] = [[]] + ["[", "]", "1", "2", "12", "123", ",", ", ", " ", "[1", "1,", "]]", "a",
                                            "-", "\u{e9}"].map { Array($0.utf8) } + [[0xC3], [0xA9], [0xC3, 0xA9, 0x31]]

    /// An oracle written separately from the grammar: whether `s` can be extended to "[" int ("," " "? int)* "]".
    static func viableListPrefix(_ s: [UInt8]) -> Bool {
        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        for (i, c) in s.enumerated() {
            let prev: UInt8? = i > 0 ? s[i - 1] : nil
            switch c {
            case UInt8(ascii: "["): if i != 0 { return false }
            case UInt8(ascii: ","): if !(prev.map(isDigit) ?? false) { return false }
            case UInt8(ascii: " "): if prev != UInt8(ascii: ",") { return false }
            case UInt8(ascii: "]"): if !(prev.map(isDigit) ?? false) || i != s.count - 1 { return false }
            default: if !isDigit(c) || prev == nil { return false }
            }
        }
        return true
    }

    func testMaskEqualsOracleAlongRandomWalks() throws {
        let gbnf = #"root ::= "[" [0-9]+ ("," " "? [0-9]+)* "]""#
        let m = try matcher(gbnf, pieces: GrammarMaskTests.pieces)
        var rng = RandomGenerator(seed: 7)
        var logits = [Float](repeating: 0, count: GrammarMaskTests.pieces.count)
        for _ in 0..<200 {
            m.reset()
            var text: [UInt8] = []
            for _ in 0..<30 {
                for i in logits.indices { logits[i] = 0 }
                let n = logits.withUnsafeMutableBufferPointer { m.applyMask(to: $0.baseAddress!, count: $0.count) }
                var allowed: [Int32] = []
                for (id, piece) in GrammarMaskTests.pieces.enumerated() where id > 0 {
                    let ok = GrammarMaskTests.viableListPrefix(text + piece)
                    XCTAssertEqual(logits[id] == 0, ok, "after \(String(decoding: text, as: UTF8.self)) token \(piece)")
                    if ok { allowed.append(Int32(id)) }
                }
                let complete = text.last == UInt8(ascii: "]")
                XCTAssertEqual(logits[0] == 0, complete, "EOS after \(String(decoding: text, as: UTF8.self))")
                XCTAssertEqual(n, allowed.count + (complete ? 1 : 0))
                if allowed.isEmpty { XCTAssertTrue(complete); break }
                let pick = allowed[Int(rng.next() % UInt64(allowed.count))]
                XCTAssertTrue(m.allows(pick))
                XCTAssertTrue(m.accept(token: pick))
                text += GrammarMaskTests.pieces[Int(pick)]
            }
        }
    }

    func testPartialUTF8TokensAndEndOfGeneration() throws {
        let m = try matcher(#"root ::= "\u00e9"+ "1""#, pieces: GrammarMaskTests.pieces)
        let id = { (p: [UInt8]) in Int32(GrammarMaskTests.pieces.firstIndex(of: p)!) }
        XCTAssertTrue(m.allows(id([0xC3])))          // first byte of é
        XCTAssertFalse(m.allows(id([0xA9])))         // a continuation byte cannot start
        XCTAssertTrue(m.allows(id(Array("\u{e9}".utf8))))
        XCTAssertFalse(m.allows(0))                  // nothing yet: EOS not allowed
        XCTAssertTrue(m.accept(token: id([0xC3])))
        XCTAssertTrue(m.allows(id([0xA9])))          // now the continuation is required
        XCTAssertFalse(m.allows(id(Array("1".utf8))))
        XCTAssertFalse(m.allows(id([0xC3])))
        XCTAssertTrue(m.accept(token: id([0xA9])))
        XCTAssertTrue(m.allows(id([0xC3, 0xA9, 0x31])))
        XCTAssertTrue(m.accept(token: id([0xC3, 0xA9, 0x31])))
        XCTAssertTrue(m.canFinish)
        XCTAssertTrue(m.mustFinish)
        XCTAssertTrue(m.allows(0))
        XCTAssertFalse(m.accept(token: id(Array("1".utf8))))
        // a grammar that needs a character no token has: nothing is allowed
        let none = try matcher(#"root ::= "\u4e2d""#, pieces: GrammarMaskTests.pieces)
        var logits = [Float](repeating: 1, count: GrammarMaskTests.pieces.count)
        let n = logits.withUnsafeMutableBufferPointer { none.applyMask(to: $0.baseAddress!, count: $0.count) }
        XCTAssertEqual(n, 0)
        XCTAssertTrue(logits.allSatisfy { $0 == -.infinity })
    }
}
