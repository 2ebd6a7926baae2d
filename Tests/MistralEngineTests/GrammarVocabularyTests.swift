// Grammar masks over real vocabularies: the full 131,072-id Tekken file (byte tokens, partial UTF-8) and SmolLM2's
// 49,152-id byte-level BPE. Every token's verdict in the trie-walked mask equals accepting its bytes one by one.
import XCTest
import MistralEngine

final class GrammarVocabularyTests: XCTestCase {
    /// For several grammar states: the mask (trie walk) against a token-by-token replay of every id.
    func checkMasks(_ tokenizer: any Tokenizer, file: StaticString = #filePath, line: UInt = #line) throws {
        let start = ContinuousClock.now
        let trie = TokenTrie(tokenizer: tokenizer)
        let built = ContinuousClock.now - start
        let grammar = try GBNF.parse(try JSONSchemaGrammar.convert(JSONSchemaGrammar.anyObject))
        let m = try GrammarMatcher(grammar: grammar, trie: trie, logitCount: tokenizer.vocabSize)
        let n = tokenizer.vocabSize
        var logits = [Float](repeating: 0, count: n)
        // prefixes that end: before anything, inside a key, inside a string value mid-character, after a digit
        let prefixes: [[UInt8]] = [[], Array(#"{"ke"#.utf8), Array(#"{"k": "caf"#.utf8) + [0xC3], Array(#"{"k": 12"#.utf8)]
        var report: [String] = ["trie \(trie.nodeCount) nodes in \(built)"]
        for prefix in prefixes {
            m.reset()
            XCTAssertTrue(m.accept(bytes: prefix), file: file, line: line)
            for i in 0..<n { logits[i] = 0 }
            let t0 = ContinuousClock.now
            let allowed = logits.withUnsafeMutableBufferPointer { m.applyMask(to: $0.baseAddress!, count: n) }
            let cold = ContinuousClock.now - t0
            let t1 = ContinuousClock.now
            _ = logits.withUnsafeMutableBufferPointer { m.applyMask(to: $0.baseAddress!, count: n) }
            let warm = ContinuousClock.now - t1
            report.append("\(String(decoding: prefix, as: UTF8.self)): \(allowed) allowed, cold \(cold), cached \(warm)")
            var mismatches = 0, count = 0
            for id in 0..<n {
                let t = Int32(id)
                m.reset()
                _ = m.accept(bytes: prefix)
                let ok = !tokenizer.isControl(t) && !tokenizer.piece(t, special: false).isEmpty
                    && m.accept(bytes: tokenizer.piece(t, special: false))
                if ok { count += 1 }
                if ok != (logits[id] == 0) && !tokenizer.isEndOfGeneration(t) { mismatches += 1 }
            }
            XCTAssertEqual(mismatches, 0, "prefix \(prefix)", file: file, line: line)
            XCTAssertEqual(count, allowed, file: file, line: line)
            XCTAssertLessThan(cold, .seconds(2), file: file, line: line)
        }
        // the string interior allows most of the vocabulary, a mid-character state only continuation bytes' tokens
        print(report.joined(separator: "\n"))
    }

    func testFullTekkenVocabulary() throws {
        try checkMasks(try SharedTekken.shared.get())
    }

    func testSmolLM2Vocabulary() throws {
        try checkMasks(try SharedModel.shared.get().tokenizer)
    }
}
