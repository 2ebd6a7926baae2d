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

extension BPETokenizer: Tokenizer {}
