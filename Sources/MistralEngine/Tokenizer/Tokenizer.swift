// What the rest of the engine needs from a tokenizer, whatever its kind (GGUF byte-level BPE, Tekken).

public protocol Tokenizer: Sendable {
    var vocabSize: Int { get }
    var bosId: Int32? { get }
    var eosId: Int32? { get }
    /// Whether texts conventionally start with BOS (GGUF add_bos_token; always true for Tekken).
    var addBosByDefault: Bool { get }
    /// Ids that end generation (EOS, end-of-turn markers).
    var endOfGenerationIds: [Int32] { get }
    func isControl(_ token: Int32) -> Bool
    func isEndOfGeneration(_ token: Int32) -> Bool
    /// The id of a token whose text is exactly `text` (special tokens included), if any.
    func tokenId(forText text: String) -> Int32?
    func tokenize(_ text: String, addBos: Bool, parseSpecial: Bool) -> [Int32]
    /// Validates UTF-8 first: invalid input throws `.invalidArgument`.
    func tokenize(utf8 bytes: UnsafeRawBufferPointer, addBos: Bool, parseSpecial: Bool) throws -> [Int32]
    /// The bytes of one token; control tokens give their text only when `special`; out-of-range ids give [].
    func piece(_ token: Int32, special: Bool) -> [UInt8]
    /// Throws `.invalidArgument` for an id outside the vocabulary.
    func detokenize(_ tokens: [Int32], special: Bool) throws -> [UInt8]
}

/// A tokenizer whose core works on bytes already known to be valid UTF-8; the two public entry points (a Swift
/// String, or caller bytes that must be validated first) are shared.
public protocol ValidatedUTF8Tokenizer: Tokenizer {
    func tokenizeValid(_ bytes: UnsafeBufferPointer<UInt8>, addBos: Bool, parseSpecial: Bool) -> [Int32]
}

extension ValidatedUTF8Tokenizer {
    public func tokenize(_ text: String, addBos: Bool, parseSpecial: Bool) -> [Int32] {
        if let r = text.utf8.withContiguousStorageIfAvailable({ tokenizeValid($0, addBos: addBos, parseSpecial: parseSpecial) }) {
            return r
        }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { tokenizeValid($0, addBos: addBos, parseSpecial: parseSpecial) }
    }

    public func tokenize(utf8 bytes: UnsafeRawBufferPointer, addBos: Bool, parseSpecial: Bool) throws -> [Int32] {
        let buf = bytes.bindMemory(to: UInt8.self)
        guard UTF8Bytes.isValid(buf) else { throw MistralError.invalid("text to tokenize is not valid UTF-8") }
        return tokenizeValid(buf, addBos: addBos, parseSpecial: parseSpecial)
    }
}

extension BPETokenizer: ValidatedUTF8Tokenizer {}
