// TEMPORARY stub until the tokenizer lands.
public final class BPETokenizer: Sendable {
    let tokens: [String]
    public let bosId: Int32?, eosId: Int32?, addBosByDefault: Bool
    public let preTokenizer: String
    public var vocabSize: Int { tokens.count }
    init(tokens: [String]) { self.tokens = tokens; bosId = 1; eosId = 2; addBosByDefault = false; preTokenizer = "smollm" }
    public static func fromGGUF(_ g: GGUFFile) throws -> BPETokenizer { BPETokenizer(tokens: try g.stringArray("tokenizer.ggml.tokens") ?? []) }
    public func isControl(_ t: Int32) -> Bool { t < 17 }
    public func isEndOfGeneration(_ t: Int32) -> Bool { t == 2 || t == 0 }
    public var endOfGenerationIds: [Int32] { [0, 2] }
    public func tokenize(_ text: String, addBos: Bool, parseSpecial: Bool) -> [Int32] { [] }
    public func tokenize(utf8 bytes: UnsafeRawBufferPointer, addBos: Bool, parseSpecial: Bool) throws -> [Int32] { [] }
    public func piece(_ token: Int32, special: Bool) -> [UInt8] { Array(tokens[Int(token)].replacingOccurrences("Ġ", " ").utf8) }
    public func detokenize(_ ts: [Int32], special: Bool) throws -> [UInt8] { ts.flatMap { piece($0, special: special) } }
}
extension String { func replacingOccurrences(_ a: String, _ b: String) -> String { split(separator: a, omittingEmptySubsequences: false).joined(separator: b) } }
