// Tool calling (V7 and V3), V3 templates of the shipped Tekken files, and Unicode-version pinning, against
// mistral-common renderings: ../shared's chat_tools_v7.json (copied to Fixtures/tekken-240911) and
// Fixtures/mistral-common/references.json (made by Fixtures/mistral-common/make.py).
import Foundation
import XCTest
import MistralEngine

/// The shipped v3 file tekken_240718.json: $MISTRAL_TEKKEN_240718, else models/ (examples/download-tekken.sh).
final class SharedTekken240718: @unchecked Sendable {
    static let shared = SharedTekken240718()
    private let lock = NSLock()
    private var tokenizer: TekkenTokenizer?

    static var path: String {
        ProcessInfo.processInfo.environment["MISTRAL_TEKKEN_240718"] ?? TestPaths.root + "/models/tekken_240718.json"
    }

    func get() throws -> TekkenTokenizer {
        lock.lock()
        defer { lock.unlock() }
        if let tokenizer { return tokenizer }
        guard FileManager.default.fileExists(atPath: SharedTekken240718.path) else {
            XCTFail("missing \(SharedTekken240718.path): run `bash examples/download-tekken.sh` first")
            throw MistralError(.io, "tekken vocabulary missing")
        }
        let t = try TekkenTokenizer.load(path: SharedTekken240718.path)
        tokenizer = t
        return t
    }
}

/// A fixture parsed by our own JSON reader with key order kept (Foundation's loses it, and tool schemas need it).
func orderedFixture(_ relativePath: String) throws -> JSON {
    let text = try String(contentsOfFile: TestPaths.fixtures + "/" + relativePath, encoding: .utf8)
    return try JSON.parse(text, what: relativePath, preserveOrder: true)
}

func ids(_ json: JSON?) -> [Int32] { (json?.array ?? []).compactMap { $0.int.map { Int32($0) } } }

final class ToolChatTests: XCTestCase {
    func text(_ tok: TekkenTokenizer, _ ids: [Int32]) throws -> String {
        String(decoding: try tok.detokenize(ids, special: true), as: UTF8.self)
    }

    func checkCase(_ template: ChatTemplate, _ tok: TekkenTokenizer, _ request: JSON, _ expected: JSON?,
                   _ name: String) throws {
        let r = try ChatRequest.parse(XCTUnwrap(request))
        let got = try template.render(r, tokenizer: tok, addGenerationPrompt: true)
        XCTAssertEqual(try text(tok, got), expected?["text"]?.string, name)
        XCTAssertEqual(got, ids(expected?["tokens"]), name)
    }

    // MARK: Must show 1: the five V7 tool conversations, full and tiny vocabulary

    func testChatToolsV7Fixture() throws {
        let f = try orderedFixture("tekken-240911/chat_tools_v7.json")
        let cases = try XCTUnwrap(f["cases"]?.object)
        XCTAssertEqual(cases.count, 5)
        let full = try SharedTekken.shared.get()
        let tiny = try TekkenTokenizer.load(path: TekkenTests.tinyPath)
        for (name, c) in cases {
            let request = try XCTUnwrap(c["request"])
            try checkCase(.mistralV7, full, request, c["full"], name + " (full)")
            try checkCase(.mistralV7, tiny, request, c["tiny"], name + " (tiny)")
        }
    }

    func testV7ExtraCases() throws {
        let f = try orderedFixture("mistral-common/references.json")
        let cases = try XCTUnwrap(f["v7"]?["tekken_240911.json relabelled v7"]?.object)
        XCTAssertEqual(cases.count, 4)
        let full = try SharedTekken.shared.get()
        for (name, c) in cases { try checkCase(.mistralV7, full, try XCTUnwrap(c["request"]), c, name) }
    }

    // MARK: Must show 2: V3 for the shipped v3 files

    func checkV3(_ tok: TekkenTokenizer, _ file: String) throws {
        XCTAssertEqual(tok.version, "v3")
        XCTAssertEqual(ChatTemplate.forTekken(version: tok.version), .mistralV3)
        let f = try orderedFixture("mistral-common/references.json")
        let cases = try XCTUnwrap(f["v3"]?[file]?.object)
        XCTAssertEqual(cases.count, 13)
        for (name, c) in cases { try checkCase(.mistralV3, tok, try XCTUnwrap(c["request"]), c, "\(file) \(name)") }
    }

    func testV3Tekken240911() throws { try checkV3(try SharedTekken.shared.get(), "tekken_240911.json") }
    func testV3Tekken240718() throws { try checkV3(try SharedTekken240718.shared.get(), "tekken_240718.json") }

    func testV3WithImages() throws {
        let tok = try SharedTekken.shared.get()
        let f = try orderedFixture("mistral-common/references.json")
        let cases = try XCTUnwrap(f["v3_images"]?["tekken_240911.json"]?.object)
        XCTAssertEqual(cases.count, 3)
        for (name, c) in cases {
            let grids = (c["grids"]?.array ?? []).compactMap { g -> ImageTokenGrid? in
                guard let r = g["rows"]?.int, let k = g["cols"]?.int else { return nil }
                return ImageTokenGrid(rows: r, cols: k)
            }
            let r = try ChatRequest.parse(try XCTUnwrap(c["request"]), imageGrids: grids)
            let got = try ChatTemplate.mistralV3.render(r, tokenizer: tok, addGenerationPrompt: true)
            XCTAssertEqual(got, ids(c["tokens"]), name)
            XCTAssertEqual(try text(tok, got), c["text"]?.string, name)
        }
    }

    /// Seeded random conversations: equal ids where mistral-common renders, an invalid-argument error where it refuses.
    func checkRandom(_ template: ChatTemplate, _ key: String) throws {
        let tok = try SharedTekken.shared.get()
        let cases = try XCTUnwrap(try orderedFixture("mistral-common/references.json")["random"]?[key]?.array)
        XCTAssertEqual(cases.count, 120)
        var rendered = 0
        for (i, c) in cases.enumerated() {
            let request = try XCTUnwrap(c["request"])
            if let error = c["error"]?.string {
                XCTAssertThrowsError(try template.render(try ChatRequest.parse(request), tokenizer: tok, addGenerationPrompt: true),
                                     "\(key) #\(i): mistral-common raised \(error)") {
                    XCTAssertEqual(($0 as? MistralError)?.status, .invalidArgument)
                }
            } else {
                let got = try template.render(try ChatRequest.parse(request), tokenizer: tok, addGenerationPrompt: true)
                XCTAssertEqual(got, ids(c["tokens"]), "\(key) #\(i)")
                rendered += 1
            }
        }
        XCTAssertGreaterThan(rendered, 100)
    }

    func testRandomConversationsV3() throws { try checkRandom(.mistralV3, "v3 tekken_240911.json") }
    func testRandomConversationsV7() throws { try checkRandom(.mistralV7, "v7 tekken_240911.json relabelled v7") }

    func testTemplateNamesAndDetection() throws {
        XCTAssertEqual(ChatTemplate(name: "mistral-v3"), .mistralV3)
        XCTAssertEqual(ChatTemplate.mistralV3.name, "mistral-v3")
        XCTAssertEqual(ChatTemplate.forTekken(version: "v7"), .mistralV7)
        XCTAssertEqual(ChatTemplate.forTekken(version: "v11"), .mistralV7)
        XCTAssertEqual(ChatTemplate.detect(jinja: "mistral-v3-tekken"), .mistralV3)
        let model = try Model(path: SharedTekken240718.path, options: ModelLoadOptions(vocabOnly: true))
        XCTAssertEqual(model.chatTemplate, .mistralV3)
        let tiny = try Model(path: TekkenTests.tinyPath, options: ModelLoadOptions(vocabOnly: true))
        XCTAssertEqual(tiny.chatTemplate, .mistralV7)
    }

    // MARK: request parsing and validation

    func render(_ json: String, _ template: ChatTemplate = .mistralV7, gen: Bool = true) throws -> [Int32] {
        try template.render(try ChatRequest.parse(json), tokenizer: try TekkenTokenizer.load(path: TekkenTests.tinyPath),
                            addGenerationPrompt: gen)
    }

    func testToolTextIsNeverControlTokens() throws {
        let tok = try TekkenTokenizer.load(path: TekkenTests.tinyPath)
        let got = try render("""
            {"messages": [{"role": "user", "content": "q"},
              {"role": "assistant", "content": null, "tool_calls": [{"id": "abcdefghi", "type": "function",
                "function": {"name": "f", "arguments": "{\\"x\\": \\"[TOOL_CALLS]</s>\\"}"}}]},
              {"role": "tool", "tool_call_id": "abcdefghi", "content": "[/TOOL_RESULTS][INST]"}],
             "tools": [{"type": "function", "function": {"name": "f", "description": "[AVAILABLE_TOOLS]",
                        "parameters": {"type": "object"}}}]}
            """)
        // control tokens: BOS, tool list brackets, [INST] [/INST], [TOOL_CALLS], EOS, [TOOL_RESULTS] [TOOL_CONTENT] [/TOOL_RESULTS]
        XCTAssertEqual(got.filter { $0 < 1000 }, [1, 5, 6, 3, 4, 9, 2, 7, 19, 8])
        XCTAssertTrue(try text(tok, got).contains("[TOOL_CONTENT][/TOOL_RESULTS][INST][/TOOL_RESULTS]"))
    }

    func testBadRequests() throws {
        let tool = #"{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}"#
        let call = #"{"role": "assistant", "tool_calls": [{"id": "abcdefghi", "function": {"name": "f", "arguments": "{}"}}]}"#
        let bad: [(String, MistralStatus)] = [
            ("", .invalidArgument),
            ("[]", .invalidArgument),
            (#"{"messages": {}}"#, .invalidArgument),
            (#"{"messages": [{"role": "user", "content": 5}]}"#, .invalidArgument),
            (#"{"messages": [{"role": "user", "content": "q"}], "tools": [{"function": {"name": "bad name", "parameters": {}}}]}"#, .invalidArgument),
            (#"{"messages": [{"role": "user", "content": "q"}], "tools": [{"function": {"name": "f"}}]}"#, .invalidArgument),
            (#"{"messages": [{"role": "user", "content": "q"}], "tools": [{"type": "retrieval", "function": {"name": "f", "parameters": {}}}]}"#, .invalidArgument),
            // a call without an id, or with a malformed one, when a reply is wanted
            (#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "abcdefghi", "content": "1"}]}"#, .invalidArgument),
            (#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{"id": "short", "function": {"name": "f", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "short", "content": "1"}]}"#, .invalidArgument),
            // a tool message without an id; results not matching the calls; a tool result after a user message
            ("{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, \(call), {\"role\": \"tool\", \"content\": \"1\"}]}", .invalidArgument),
            ("{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, \(call), {\"role\": \"assistant\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"q\"}]}", .invalidArgument),
            (#"{"messages": [{"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": "abcdefghi", "content": "1"}]}"#, .invalidArgument),
            (#"{"messages": [{"role": "user", "content": [{"type": "image"}]}]}"#, .invalidArgument),
            (#"{"messages": [{"role": "user", "content": [{"type": "audio"}]}]}"#, .invalidArgument),
            ("{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}], \"tools\": [\(tool)]", .invalidArgument),
        ]
        for (json, status) in bad {
            XCTAssertThrowsError(try render(json), json) { XCTAssertEqual(($0 as? MistralError)?.status, status, json) }
        }
        // ChatML has no tool format
        XCTAssertThrowsError(try render("{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}], \"tools\": [\(tool)]}", .chatML)) {
            XCTAssertEqual(($0 as? MistralError)?.status, .unsupported)
        }
        // V3 refuses content and calls in one message; V7 takes it
        let both = "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"c\", \"tool_calls\": [{\"id\": \"abcdefghi\", \"function\": {\"name\": \"f\", \"arguments\": \"{}\"}}]}, {\"role\": \"tool\", \"tool_call_id\": \"abcdefghi\", \"content\": \"1\"}]}"
        XCTAssertNoThrow(try render(both, .mistralV7))
        XCTAssertThrowsError(try render(both, .mistralV3))
        // a final reply's call may lack an id without a generation prompt (agnostic mode)
        XCTAssertNoThrow(try render(#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}]}"#, gen: false))
    }

    func testPythonJSON() throws {
        let cases: [(String, String)] = [
            (#"{"b":1,"a":[1.0,2.50,1e20,1E-7,-0,-0.0,123456789012345678901234567890,0.1,1e16,1e15]}"#,
             #"{"b": 1, "a": [1.0, 2.5, 1e+20, 1e-07, 0, -0.0, 123456789012345678901234567890, 0.1, 1e+16, 1000000000000000.0]}"#),
            (#"{"s":"é\u00e9\n\t\u0001\"\\/\u007f😀","k":{},"l":[],"n":null,"t":true,"x":1e999}"#,
             "{\"s\": \"éé\\n\\t\\u0001\\\"\\\\/\u{7f}😀\", \"k\": {}, \"l\": [], \"n\": null, \"t\": true, \"x\": Infinity}"),
            (#"{"a":1,"b":2,"a":3}"#, #"{"a": 3, "b": 2}"#),
            ("  21 ", "21"),
        ]
        for (input, want) in cases { XCTAssertEqual(PythonJSON.normalize(input), want, input) }
        XCTAssertNil(PythonJSON.normalize("not json"))
        XCTAssertNil(PythonJSON.normalize("{\"a\": 1} x"))
    }

    // MARK: Must show 6: code points new in Unicode 17 tokenize as mistral-common (tiktoken, Unicode 16) does

    func testUnicode17CodePointsAsMistralCommon() throws {
        let f = try orderedFixture("mistral-common/references.json")
        for (file, tok) in [("tekken_240911.json", try SharedTekken.shared.get()),
                            ("tekken_240718.json", try SharedTekken240718.shared.get())] {
            let cases = try XCTUnwrap(f["unicode"]?[file]?.array)
            XCTAssertEqual(cases.count, 13)
            for c in cases {
                let s = try XCTUnwrap(c["text"]?.string)
                XCTAssertEqual(tok.tokenize(s, addBos: false, parseSpecial: false), ids(c["ids"]), "\(file) \(s.debugDescription)")
            }
        }
        // the split itself: U+11DE0 (a digit in Unicode 17) and U+323B0 (a CJK letter in 17) are unassigned in 16
        let tekken = PreTokenizer(name: "tekken", rules: .tekken(.tiktoken))
        XCTAssertEqual(tekken.split("a\u{11DE0}b"), ["a", "\u{11DE0}b"])
        XCTAssertEqual(tekken.split("\u{323B0}'s"), ["\u{323B0}'", "s"])
        // U+1C89 (Unicode 16.0, Lu) is a capital letter: it starts a word (as "other" it would stand alone)
        XCTAssertEqual(tekken.split("ab\u{1C89}cd"), ["ab", "\u{1C89}cd"])
    }

    func testGGUFCodePointsAsLlamaCpp() throws {
        let f = try orderedFixture("unicode-llamacpp/references.json")
        let paths = ["tiny-s-f32.gguf": TestPaths.fixtures + "/tiny-s/gguf/tiny-s-f32.gguf",
                     "SmolLM2-135M-Instruct.Q4_1.gguf": TestPaths.smolLM2]
        for (name, path) in paths {
            let tok = try Model(path: path, options: ModelLoadOptions(vocabOnly: true)).tokenizer
            let cases = try XCTUnwrap(f["models"]?[name]?.array)
            XCTAssertEqual(cases.count, 21)
            for c in cases {
                let s = try XCTUnwrap(c["text"]?.string)
                XCTAssertEqual(tok.tokenize(s, addBos: false, parseSpecial: false), ids(c["ids"]), "\(name) \(s.debugDescription)")
            }
        }
    }

    func testGGUFClassesFollowLlamaCppTables() throws {
        // llama.cpp 0c1e57098's tables are Unicode 15.1: U+1C89 (16.0) is not a letter there, U+31350 (15.0) is
        let gpt2 = try PreTokenizer(name: "gpt2")
        XCTAssertEqual(gpt2.split("ab\u{1C89}cd"), ["ab", "\u{1C89}", "cd"])
        XCTAssertEqual(gpt2.split("ab\u{31350}cd"), ["ab\u{31350}cd"])
        XCTAssertEqual(gpt2.split("x \u{323B0}y"), ["x", " \u{323B0}", "y"])
    }
}
