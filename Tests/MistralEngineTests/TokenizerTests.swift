// The byte-level BPE tokenizer against llama.cpp (0c1e57098) on the real SmolLM2 vocabulary, plus hand-checked
// pre-tokenizer rules and small synthetic vocabularies that pin down merge order, fallbacks and partitioning.
import Foundation
import XCTest
import MistralEngine

private enum TokenizerFixtures {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static var modelPath: String {
        ProcessInfo.processInfo.environment["MISTRAL_TEST_MODEL"] ?? root + "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    }

    static func json(_ name: String) throws -> [String: Any] {
        let path = root + "/Tests/Fixtures/smollm2-llamacpp/" + name
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw MistralError(.format, "fixture \(name) is not a JSON object")
        }
        return obj
    }

    static func ids(_ any: Any?) -> [Int32] {
        (any as? [Any] ?? []).compactMap { ($0 as? NSNumber)?.int32Value }
    }

    /// Loaded once per process.
    static let loaded: Result<BPETokenizer, any Error> = Result {
        guard FileManager.default.fileExists(atPath: modelPath) else {
            throw MistralError(.io, "missing model \(modelPath): run `.ci/run` or the README's download step "
                + "(examples/download-model.sh) to fetch it, or set MISTRAL_TEST_MODEL")
        }
        return try BPETokenizer.fromGGUF(GGUFFile(path: modelPath))
    }

    static func tokenizer(file: StaticString = #filePath, line: UInt = #line) throws -> BPETokenizer {
        switch loaded {
        case .success(let t): return t
        case .failure(let e):
            XCTFail("cannot load the SmolLM2 tokenizer: \(e)", file: file, line: line)
            throw e
        }
    }
}

final class TokenizerTests: XCTestCase {
    // MARK: real vocabulary vs llama.cpp

    func testMetadata() throws {
        let tok = try TokenizerFixtures.tokenizer()
        XCTAssertEqual(tok.vocabSize, 49152)
        XCTAssertEqual(tok.preTokenizer, "smollm")
        XCTAssertEqual(tok.bosId, 1)
        XCTAssertEqual(tok.eosId, 2)
        XCTAssertFalse(tok.addBosByDefault)
        for id: Int32 in 0...16 { XCTAssertTrue(tok.isControl(id), "token \(id) should be control") }
        XCTAssertFalse(tok.isControl(17))
        XCTAssertFalse(tok.isControl(-1))
        XCTAssertFalse(tok.isControl(49152))
        // eos (<|im_end|>) and <|endoftext|> end generation; <|im_start|> does not
        XCTAssertEqual(tok.endOfGenerationIds, [0, 2])
        XCTAssertTrue(tok.isEndOfGeneration(2))
        XCTAssertTrue(tok.isEndOfGeneration(0))
        XCTAssertFalse(tok.isEndOfGeneration(1))
        XCTAssertEqual(tok.tokenId(forText: "<|im_start|>"), 1)
        XCTAssertEqual(tok.tokenId(forText: "Ġthe"), 260)
        XCTAssertNil(tok.tokenId(forText: "definitely not a token"))
    }

    func testFixtureCasesMatchLlamaCpp() throws {
        let tok = try TokenizerFixtures.tokenizer()
        let j = try TokenizerFixtures.json("tokenize_Q4_1.json")
        let cases = j["cases"] as? [[String: Any]] ?? []
        XCTAssertGreaterThanOrEqual(cases.count, 6)
        for c in cases {
            let text = c["text"] as? String ?? ""
            let ids = TokenizerFixtures.ids(c["ids"])
            let noParse = TokenizerFixtures.ids(c["ids_no_parse_special"])
            XCTAssertFalse(ids.isEmpty, "fixture case without ids: \(text)")
            XCTAssertEqual(tok.tokenize(text, addBos: false, parseSpecial: true), ids, "parse_special: \(text.debugDescription)")
            XCTAssertEqual(tok.tokenize(text, addBos: false, parseSpecial: false), noParse, "no parse_special: \(text.debugDescription)")
            // the raw-bytes entry point agrees
            let viaBytes = try Array(text.utf8).withUnsafeBytes { try tok.tokenize(utf8: $0, addBos: false, parseSpecial: true) }
            XCTAssertEqual(viaBytes, ids)
            // BOS is prepended only on request
            XCTAssertEqual(tok.tokenize(text, addBos: true, parseSpecial: true), [1] + ids)
            // byte-level BPE round-trips
            XCTAssertEqual(try tok.detokenize(ids, special: true), Array(text.utf8), text.debugDescription)
        }
    }

    func testGreedyPromptsAndPieces() throws {
        let tok = try TokenizerFixtures.tokenizer()
        for name in ["greedy_chat_Q4_1.json", "greedy_once_Q4_1.json",
                     "greedy_chat_Q4_1_ignore_eos.json", "greedy_once_Q4_1_ignore_eos.json"] {
            let j = try TokenizerFixtures.json(name)
            let prompt = j["prompt"] as? String ?? ""
            XCTAssertEqual(tok.tokenize(prompt, addBos: tok.addBosByDefault, parseSpecial: true),
                           TokenizerFixtures.ids(j["prompt_token_ids"]), name)

            let generated = TokenizerFixtures.ids(j["generated_token_ids"])
            let pieces = j["generated_pieces"] as? [String] ?? []
            XCTAssertEqual(generated.count, pieces.count, name)
            XCTAssertFalse(generated.isEmpty, name)
            for (id, expected) in zip(generated, pieces) {
                XCTAssertEqual(String(decoding: tok.piece(id, special: true), as: UTF8.self), expected, "\(name): token \(id)")
            }
            let text = try tok.detokenize(generated, special: true)
            XCTAssertEqual(String(decoding: text, as: UTF8.self), j["generated_text"] as? String, name)
        }
    }

    func testControlPiecesNeedSpecial() throws {
        let tok = try TokenizerFixtures.tokenizer()
        XCTAssertEqual(tok.piece(2, special: true), Array("<|im_end|>".utf8))
        XCTAssertEqual(tok.piece(2, special: false), [])
        XCTAssertEqual(tok.piece(260, special: false), Array(" the".utf8))
        XCTAssertEqual(tok.piece(-1, special: true), [])
        XCTAssertEqual(tok.piece(49152, special: true), [])
        XCTAssertEqual(try tok.detokenize([1, 4093, 198, 26843, 2], special: false), Array("user\nHi".utf8))
        XCTAssertEqual(try tok.detokenize([1, 4093, 198, 26843, 2], special: true), Array("<|im_start|>user\nHi<|im_end|>".utf8))
    }

    func testInvalidInputs() throws {
        let tok = try TokenizerFixtures.tokenizer()
        let bad: [[UInt8]] = [
            [0x61, 0xFF],              // never valid
            [0x61, 0xC3],              // truncated 2-byte sequence
            [0x80, 0x61],              // stray continuation byte
            [0xC0, 0xAF],              // overlong '/'
            [0xED, 0xA0, 0x80],        // surrogate U+D800
            [0xF4, 0x90, 0x80, 0x80],  // above U+10FFFF
        ]
        for b in bad {
            XCTAssertThrowsError(try b.withUnsafeBytes { try tok.tokenize(utf8: $0, addBos: false, parseSpecial: true) },
                                 "\(b)") { error in
                XCTAssertEqual((error as? MistralError)?.status, .invalidArgument, "\(b)")
            }
        }
        // valid multi-byte input goes through
        let ok: [UInt8] = Array("é🤖".utf8)
        XCTAssertEqual(try ok.withUnsafeBytes { try tok.tokenize(utf8: $0, addBos: false, parseSpecial: true) },
                       tok.tokenize("é🤖", addBos: false, parseSpecial: true))
        XCTAssertEqual(try [UInt8]().withUnsafeBytes { try tok.tokenize(utf8: $0, addBos: false, parseSpecial: true) }, [])

        for ids: [Int32] in [[-1], [49152], [504, 49152], [Int32.max]] {
            XCTAssertThrowsError(try tok.detokenize(ids, special: true), "\(ids)") { error in
                XCTAssertEqual((error as? MistralError)?.status, .invalidArgument)
            }
        }
        XCTAssertThrowsError(try PreTokenizer(name: "no-such-pre-tokenizer")) { error in
            XCTAssertEqual((error as? MistralError)?.status, .unsupported)
        }
    }

    // MARK: pre-tokenizer rules, reasoned from llama.cpp's unicode_regex_split_custom_gpt2/_llama3

    func testSmolLMSplitting() throws {
        let pre = try PreTokenizer(name: "smollm")
        XCTAssertEqual(pre.split(""), [])
        XCTAssertEqual(pre.split("   "), ["   "])                       // \s+ to the end of text: one word
        XCTAssertEqual(pre.split("\n\n\n"), ["\n\n\n"])
        XCTAssertEqual(pre.split("a  b"), ["a", " ", " b"])               // \s+(?!\S) leaves the last space for " b"
        XCTAssertEqual(pre.split("a\n\nb"), ["a", "\n", "\n", "b"])
        XCTAssertEqual(pre.split("x   "), ["x", "   "])                  // trailing whitespace stays whole
        XCTAssertEqual(pre.split("Hello, world!"), ["Hello", ",", " world", "!"])
        // every digit is its own piece, and a piece boundary ends the text for the GPT-2 pass
        XCTAssertEqual(pre.split("abc123def"), ["abc", "1", "2", "3", "def"])
        XCTAssertEqual(pre.split(" 42x"), [" ", "4", "2", "x"])
        XCTAssertEqual(pre.split("x=3.14"), ["x", "=", "3", ".", "1", "4"])
        // contractions are lowercase-only in GPT-2
        XCTAssertEqual(pre.split("don't I'll we're it'S"), ["don", "'t", " I", "'ll", " we", "'re", " it", "'", "S"])
        XCTAssertEqual(pre.split("' s"), ["'", " s"])
        // an unassigned code point (U+0378) is "other", not a letter
        XCTAssertEqual(pre.split("a\u{378}b"), ["a", "\u{378}", "b"])
        // non-ASCII letters and numbers by Unicode category
        XCTAssertEqual(pre.split("naïve ½x"), ["naïve", " ", "½", "x"])
    }

    func testGPT2AndLlama3Splitting() throws {
        let gpt2 = try PreTokenizer(name: "gpt2")
        XCTAssertEqual(gpt2.split(" 42x"), [" 42", "x"])
        XCTAssertEqual(gpt2.split("abc123def"), ["abc", "123", "def"])
        XCTAssertEqual(gpt2.split("a  b"), ["a", " ", " b"])
        XCTAssertEqual(gpt2.split("hi !!  ?"), ["hi", " !!", " ", " ?"])

        let llama3 = try PreTokenizer(name: "llama-bpe")
        XCTAssertEqual(llama3.split("1234567"), ["123", "456", "7"])
        XCTAssertEqual(llama3.split(" 42x"), [" ", "42", "x"])
        XCTAssertEqual(llama3.split("a\n\nb"), ["a", "\n\n", "b"])        // \s*[\r\n]+
        XCTAssertEqual(llama3.split("it'S ok"), ["it", "'S", " ok"])      // case-insensitive contractions
        XCTAssertEqual(llama3.split("(x)\n"), ["(x", ")\n"])               // [^\r\n\p{L}\p{N}]?\p{L}+ takes the "(", punct+[\r\n]*
        XCTAssertEqual(llama3.split("   \n  x"), ["   \n", " ", " x"])

        let def = try PreTokenizer(name: "default")
        XCTAssertEqual(def.split("a, b1234"), ["a", ",", " b", "123", "4"])
    }

    func testEdgeCaseIdsFollowTheSplit() throws {
        let tok = try TokenizerFixtures.tokenizer()
        let pre = try PreTokenizer(name: tok.preTokenizer)
        XCTAssertEqual(tok.tokenize("", addBos: false, parseSpecial: true), [])
        XCTAssertEqual(tok.tokenize("", addBos: true, parseSpecial: true), [1])
        for text in ["   ", "\n\n\n", "abc123def", " 42x", "don't I'll we're it'S", "a  b", "x   ", "a\u{378}b", "\t\t tab"] {
            let whole = tok.tokenize(text, addBos: false, parseSpecial: true)
            let pieces = pre.split(text).flatMap { tok.tokenize($0, addBos: false, parseSpecial: true) }
            XCTAssertEqual(whole, pieces, text.debugDescription)
            XCTAssertEqual(try tok.detokenize(whole, special: true), Array(text.utf8), text.debugDescription)
        }
        // whitespace-only words are single vocabulary tokens here
        XCTAssertEqual(tok.tokenize("   ", addBos: false, parseSpecial: true), [tok.tokenId(forText: "ĠĠĠ")].compactMap { $0 })
        XCTAssertEqual(tok.tokenize("\n\n\n", addBos: false, parseSpecial: true), [tok.tokenId(forText: "ĊĊĊ")].compactMap { $0 })
        // digits are single tokens, never merged with letters
        let digits = tok.tokenize("abc123def", addBos: false, parseSpecial: true)
        XCTAssertEqual(Array(digits[1...3]), ["1", "2", "3"].map { tok.tokenId(forText: $0) ?? -1 })
        // contractions
        XCTAssertEqual(tok.tokenize("'ll", addBos: false, parseSpecial: true), [tok.tokenId(forText: "'ll")].compactMap { $0 })
    }

    func testLongTextRoundTrip() throws {
        let tok = try TokenizerFixtures.tokenizer()
        let paragraph = """
            The quick brown fox jumps over the lazy dog, while 3,141 engineers (and 27 robots) debate whether \
            tokenizers should be "fast" or 'correct'. It's 2024-11-29; temperatures reached 37.5°C in the shade! \
            Meanwhile, naïve cafés serve crème brûlée — délicieux.\n\n    Indented code: for i in 0..<10 { print(i) }\n
            """
        var text = ""
        var k = 0
        while text.utf8.count < 100_000 {
            text += paragraph.replacingOccurrences(of: "fox", with: "fox\(k)")
            k += 1
        }
        let ids = tok.tokenize(text, addBos: false, parseSpecial: true)
        XCTAssertGreaterThan(ids.count, text.utf8.count / 8)
        XCTAssertLessThan(ids.count, text.utf8.count / 2)
        XCTAssertEqual(try tok.detokenize(ids, special: true), Array(text.utf8))
    }

    // MARK: synthetic vocabularies (exact expectations by construction)

    private func make(_ tokens: [String], types: [Int32]? = nil, merges: [String], pre: String = "gpt2") throws -> BPETokenizer {
        try BPETokenizer(tokens: tokens, tokenTypes: types, merges: merges, preTokenizer: pre, bos: nil, eos: nil, addBos: false)
    }

    func testMergeRankOrder() throws {
        let v = ["a", "b", "c", "ab", "bc", "abc"]
        // "b c" outranks "a b": bc first, then a+bc
        let t1 = try make(v, merges: ["b c", "a b", "a bc"])
        XCTAssertEqual(t1.tokenize("abc", addBos: false, parseSpecial: false), [5])
        // "a b" first: ab + c, and no (ab, c) merge exists
        let t2 = try make(v, merges: ["a b", "b c", "a bc"])
        XCTAssertEqual(t2.tokenize("abc", addBos: false, parseSpecial: false), [3, 2])
        // equal ranks: leftmost pair merges first
        let t3 = try make(["a", "aa"], merges: ["a a"])
        XCTAssertEqual(t3.tokenize("aaa", addBos: false, parseSpecial: false), [1, 0])
        XCTAssertEqual(t3.tokenize("aaaa", addBos: false, parseSpecial: false), [1, 1])
        // a duplicated merge keeps its first rank
        let t4 = try make(v, merges: ["a b", "b c", "b c"])
        XCTAssertEqual(t4.tokenize("abc", addBos: false, parseSpecial: false), [3, 2])
    }

    func testFallbacks() throws {
        // "x y" merges into "xy", which is not a token: llama.cpp falls back to the single-byte tokens
        let t = try make(["x", "y"], merges: ["x y"])
        XCTAssertEqual(t.tokenize("xy", addBos: false, parseSpecial: false), [0, 1])
        // bytes whose byte-level text is not a token are dropped (é = C3 A9 = "Ã©")
        XCTAssertEqual(t.tokenize("xéy", addBos: false, parseSpecial: false), [0, 1])
        XCTAssertEqual(try t.detokenize([0, 1], special: false), Array("xy".utf8))
    }

    func testSpecialPartitioning() throws {
        // 0..4 bytes-ish normal tokens, 5 = user-defined "<u>", 6 = control "<c>", 7 = control "<c><c>"
        let tokens = ["<", "u", ">", "c", "a", "<u>", "<c>", "<c><c>"]
        let t = try make(tokens, types: [1, 1, 1, 1, 1, 4, 3, 3], merges: ["a a"])
        XCTAssertEqual(t.tokenize("a<u>a", addBos: false, parseSpecial: false), [4, 5, 4])  // user-defined always
        XCTAssertEqual(t.tokenize("a<c>", addBos: false, parseSpecial: false), [4, 0, 3, 2])  // control only if parsing
        XCTAssertEqual(t.tokenize("a<c>", addBos: false, parseSpecial: true), [4, 6])
        XCTAssertEqual(t.tokenize("<c><c><c>", addBos: false, parseSpecial: true), [7, 6])  // longest first
        XCTAssertTrue(t.isControl(6))
        XCTAssertFalse(t.isControl(5))
        XCTAssertEqual(t.piece(5, special: false), Array("<u>".utf8))  // user-defined text always shows
        XCTAssertEqual(t.piece(6, special: false), [])
    }

    func testGPT2CleansSpacesOnDetokenize() throws {
        // llama.cpp's clean_spaces is on for "gpt2" and off for "smollm"
        let tokens = ["Ġ", "!", "a", "Ġ'", "s"]
        let g = try make(tokens, merges: ["Ġ '"], pre: "gpt2")
        XCTAssertEqual(try g.detokenize([2, 0, 1], special: false), Array("a!".utf8))
        XCTAssertEqual(try g.detokenize([2, 3, 4], special: false), Array("a's".utf8))
        let s = try make(tokens, merges: ["Ġ '"], pre: "smollm")
        XCTAssertEqual(try s.detokenize([2, 0, 1], special: false), Array("a !".utf8))
    }

    func testInitValidation() throws {
        XCTAssertThrowsError(try make(["a"], merges: ["ab"]))            // no space
        XCTAssertThrowsError(try make(["a"], merges: [" a"]))            // space first
        XCTAssertThrowsError(try make(["a"], merges: ["a "]))            // empty right side
        XCTAssertThrowsError(try make(["a", "a"], merges: []))           // duplicate token
        XCTAssertThrowsError(try make(["a"], types: [], merges: []))     // too few types
        XCTAssertThrowsError(try BPETokenizer(tokens: ["a"], tokenTypes: nil, merges: [], preTokenizer: "gpt2",
                                              bos: 1, eos: nil, addBos: false))
        XCTAssertThrowsError(try BPETokenizer(tokens: ["a"], tokenTypes: nil, merges: [], preTokenizer: "gpt2",
                                              bos: nil, eos: -1, addBos: false))
        XCTAssertThrowsError(try BPETokenizer(tokens: ["a"], tokenTypes: nil, merges: [], preTokenizer: "gpt2",
                                              bos: nil, eos: nil, addBos: true))
        XCTAssertThrowsError(try make(["a"], merges: [], pre: "tekken-not-yet")) { error in
            XCTAssertEqual((error as? MistralError)?.status, .unsupported)
        }
        XCTAssertNoThrow(try make(["a"], merges: ["a a"]))
    }
}
