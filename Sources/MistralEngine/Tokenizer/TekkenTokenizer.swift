// Mistral's Tekken tokenizer, read from a `tekken.json`, behaving like mistral-common 1.13.1's Tekkenizer:
//   - ids 0..<numSpecialTokens are the special (control) tokens, from the file or the default v7 list, padded with
//     "<SPECIAL_n>" fillers; vocabulary rank r is id r + numSpecialTokens;
//   - encoding is tiktoken's: split with the file's pattern (PreTokenizerRules.tekken(.tiktoken)), then each word
//     is one token if it is in the vocabulary, else byte-pair merged by rank over its raw bytes;
//   - special tokens never come out of text unless `parseSpecial` is asked for (mistral-common never parses them).
// Everything that does not depend on the input is precomputed at init; the object is immutable afterwards.
import Glibc

public final class TekkenTokenizer: Sendable {
    /// mistral-common's Tekkenizer.DEPRECATED_SPECIAL_TOKENS: the special tokens of files (v3, v7) that list none.
    public static let defaultSpecialTokens: [String] = [
        "<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]",
        "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]", "[PREFIX]", "[MIDDLE]",
        "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]",
    ]

    /// The pre-tokenization pattern this implementation follows (every tekken.json so far has it).
    public static let pattern =
        "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"
        + "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|"
        + "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

    /// mistral-common's TokenizerVersion values, in order.
    static let versions = ["v1", "v2", "v3", "v7", "v11", "v13", "v15"]

    /// `config.version` of the file ("v3", "v7", ...).
    public let version: String
    /// Number of special tokens (ids 0..<numSpecialTokens).
    public let numSpecialTokens: Int
    /// n_words: special tokens plus the vocabulary ranks kept (`config.default_vocab_size`).
    public let vocabSize: Int
    public let bosId: Int32?
    public let eosId: Int32?
    public var addBosByDefault: Bool { true }
    public let endOfGenerationIds: [Int32]

    /// Text of each special token, by id.
    let specialText: [[UInt8]]
    /// Special token texts, for tokenId(forText:) and parseSpecial.
    let specialTable: ByteTable
    /// Distinct lengths of the special token texts, longest first.
    let specialLengths: [Int]
    /// Whether a byte starts some special token text.
    let specialFirstByte: [Bool]
    /// Vocabulary: bytes of rank r are vocab.bytes[vocab.offsets[r]..<vocab.offsets[r + 1]].
    let vocab: ByteTable
    let splitter: PreTokenizer

    // MARK: loading

    /// Most special tokens a file may declare (default_num_special_tokens).
    public static let maxSpecialTokens = 1 << 16

    public static func load(path: String) throws -> TekkenTokenizer {
        let file = try MappedFile(path: path)
        let json = try JSON.parse(UnsafeRawBufferPointer(start: file.base, count: file.size), what: path)
        do {
            return try TekkenTokenizer(json: json)
        } catch let e as MistralError {
            throw MistralError(e.status, "\(path): \(e.message)")
        }
    }

    public init(json: JSON) throws {
        func bad(_ message: String) -> MistralError { MistralError.format("tekken tokenizer: \(message)") }
        guard let config = json["config"]?.object else { throw bad("no 'config' object") }

        guard let version = config["version"]?.string else { throw bad("config.version is missing") }
        guard let versionIndex = TekkenTokenizer.versions.firstIndex(of: version) else {
            throw bad("unknown config.version '\(version)' (known: \(TekkenTokenizer.versions.joined(separator: ", ")))")
        }
        guard let pattern = config["pattern"]?.string else { throw bad("config.pattern is missing") }
        guard pattern == TekkenTokenizer.pattern else {
            throw MistralError.unsupported("tekken tokenizer: config.pattern is not the Tekken pattern this engine implements")
        }
        guard let vocabSize = config["default_vocab_size"]?.int else { throw bad("config.default_vocab_size is missing") }
        guard let numSpecial = config["default_num_special_tokens"]?.int else {
            throw bad("config.default_num_special_tokens is missing")
        }
        // mistral-common reserves 1000; the bound keeps the "<SPECIAL_n>" fillers below a few MB.
        guard numSpecial >= 3, numSpecial <= TekkenTokenizer.maxSpecialTokens, vocabSize >= numSpecial + 256,
              vocabSize < Int(Int32.max) else {
            throw bad("vocabulary size \(vocabSize) with \(numSpecial) special tokens is out of range")
        }
        guard let vocabList = json["vocab"]?.array else { throw bad("no 'vocab' array") }
        let inner = vocabSize - numSpecial
        guard vocabList.count >= inner else {
            throw bad("default_vocab_size \(vocabSize) needs \(inner) vocabulary entries but the file has \(vocabList.count)")
        }

        // Special tokens: the file's list (rank = position), else the default list; then "<SPECIAL_n>" fillers.
        var specials: [String] = []
        if let list = json["special_tokens"], !list.isNull {
            guard let entries = list.array else { throw bad("'special_tokens' is not an array") }
            for (i, entry) in entries.enumerated() {
                guard let text = entry["token_str"]?.string, let rank = entry["rank"]?.int else {
                    throw bad("special token #\(i) needs 'rank' and 'token_str'")
                }
                guard rank == i else { throw bad("special token '\(text)' has rank \(rank) at position \(i)") }
                specials.append(text)
            }
        } else {
            guard versionIndex <= TekkenTokenizer.versions.firstIndex(of: "v7") ?? 0 else {
                throw bad("a \(version) tokenizer file must list its special tokens")
            }
            specials = TekkenTokenizer.defaultSpecialTokens
        }
        guard specials.count <= numSpecial else {
            throw bad("\(specials.count) special tokens listed but default_num_special_tokens is \(numSpecial)")
        }
        for i in specials.count..<numSpecial { specials.append("<SPECIAL_\(i)>") }
        var specialBytes: [UInt8] = []
        var specialOffsets: [Int32] = [0]
        for s in specials {
            guard !s.isEmpty else { throw bad("a special token is empty") }
            specialBytes.append(contentsOf: s.utf8)
            guard let end = Int32(exactly: specialBytes.count) else { throw bad("special tokens are too long") }
            specialOffsets.append(end)
        }
        let specialTable = try ByteTable(bytes: specialBytes, offsets: specialOffsets) { i in
            bad("special token '\(specials[i])' appears twice")
        }
        guard let bos = specialTable.find("<s>"), let eos = specialTable.find("</s>") else {
            throw bad("the special tokens lack '<s>' or '</s>'")
        }

        // Vocabulary ranks 0..<inner, in order, each token's bytes base64-encoded.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(inner * 8)
        var offsets: [Int32] = [0]
        offsets.reserveCapacity(inner + 1)
        for r in 0..<inner {
            let entry = vocabList[r]
            guard let rank = entry["rank"]?.int, let b64 = entry["token_bytes"]?.string else {
                throw bad("vocabulary entry #\(r) needs 'rank' and 'token_bytes'")
            }
            guard rank == r else { throw bad("vocabulary entry #\(r) has rank \(rank)") }
            let start = bytes.count
            guard Base64.decode(b64, into: &bytes) else { throw bad("vocabulary entry #\(r) has invalid base64") }
            let length = bytes.count - start
            guard length > 0 else { throw bad("vocabulary entry #\(r) is empty") }
            if r < 256 && (length != 1 || bytes[start] != UInt8(r)) {
                throw bad("vocabulary rank \(r) must be the single byte \(r)")
            }
            guard bytes.count < Int(Int32.max) else { throw bad("vocabulary is too large") }
            offsets.append(Int32(bytes.count))
        }
        let vocab = try ByteTable(bytes: bytes, offsets: offsets) { r in bad("vocabulary rank \(r) repeats an earlier token") }

        var firstByte = [Bool](repeating: false, count: 256)
        var lengths = Set<Int>()
        for i in 0..<numSpecial {
            let s = specialTable.entry(i)
            firstByte[Int(s[s.startIndex])] = true
            lengths.insert(s.count)
        }

        self.version = version
        self.numSpecialTokens = numSpecial
        self.vocabSize = vocabSize
        self.bosId = Int32(bos)
        self.eosId = Int32(eos)
        self.endOfGenerationIds = [Int32(eos)]
        self.specialText = (0..<numSpecial).map { Array(specialTable.entry($0)) }
        self.specialTable = specialTable
        self.specialLengths = lengths.sorted(by: >)
        self.specialFirstByte = firstByte
        self.vocab = vocab
        self.splitter = PreTokenizer(name: "tekken", rules: .tekken(.tiktoken))
    }

    // MARK: token properties

    @inline(__always) func inRange(_ token: Int32) -> Bool { token >= 0 && Int(token) < vocabSize }

    /// Every special token is a control token: it decodes to text only when asked for.
    public func isControl(_ token: Int32) -> Bool { token >= 0 && Int(token) < numSpecialTokens }

    public func isEndOfGeneration(_ token: Int32) -> Bool { token == eosId }

    /// A special token by its text ("[IMG]"), else the vocabulary token whose bytes are the text's UTF-8.
    public func tokenId(forText text: String) -> Int32? {
        if let i = specialTable.find(text) { return Int32(i) }
        if let r = vocab.find(text) { return Int32(r + numSpecialTokens) }
        return nil
    }

    // MARK: decoding

    /// Raw bytes of one token; special tokens give their text only when `special`; out-of-range ids give [].
    public func piece(_ token: Int32, special: Bool) -> [UInt8] {
        guard inRange(token) else { return [] }
        let i = Int(token)
        if i < numSpecialTokens { return special ? specialText[i] : [] }
        return Array(vocab.entry(i - numSpecialTokens))
    }

    /// The tokens' bytes concatenated (mistral-common's decode with SpecialTokenPolicy IGNORE, or KEEP when
    /// `special`). Throws `.invalidArgument` for an id outside the vocabulary.
    public func detokenize(_ tokens: [Int32], special: Bool) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(tokens.count * 4)
        for t in tokens {
            guard inRange(t) else {
                throw MistralError.invalid("token id \(t) is outside the vocabulary (0..<\(vocabSize))")
            }
            let i = Int(t)
            if i < numSpecialTokens {
                if special { out.append(contentsOf: specialText[i]) }
            } else {
                out.append(contentsOf: vocab.entry(i - numSpecialTokens))
            }
        }
        return out
    }

    // MARK: encoding

    public func tokenizeValid(_ bytes: UnsafeBufferPointer<UInt8>, addBos: Bool, parseSpecial: Bool) -> [Int32] {
        var output: [Int32] = []
        output.reserveCapacity(bytes.count / 3 + 2)
        if addBos, let bos = bosId { output.append(bos) }
        var ws = Workspace()
        if !parseSpecial {
            tokenizeText(bytes, &ws, &output)
            return output
        }
        // Special token texts become their ids: leftmost match first, the longest one at a position.
        var start = 0
        var i = 0
        let n = bytes.count
        while i < n {
            if specialFirstByte[Int(bytes[i])], let (id, length) = specialAt(bytes, i) {
                if i > start { tokenizeText(UnsafeBufferPointer(rebasing: bytes[start..<i]), &ws, &output) }
                output.append(Int32(id))
                i += length
                start = i
            } else {
                i += 1
            }
        }
        if n > start { tokenizeText(UnsafeBufferPointer(rebasing: bytes[start..<n]), &ws, &output) }
        return output
    }

    /// The longest special token whose text starts at `i`.
    func specialAt(_ bytes: UnsafeBufferPointer<UInt8>, _ i: Int) -> (Int, Int)? {
        guard let base = bytes.baseAddress else { return nil }
        for length in specialLengths where length <= bytes.count - i {
            if let id = specialTable.find(base + i, length) { return (id, length) }
        }
        return nil
    }

    /// Scratch buffers reused across the words of one call.
    struct Workspace {
        var cps: [UInt32] = []
        var offsets: [Int] = []
        var next: [Int32] = []      // start of the next part, by part start
        var prev: [Int32] = []      // start of the previous part, -1 for the first
        var rank: [Int32] = []      // rank of the part starting here
        var alive: [Bool] = []      // whether a part starts here
        var heap = MinHeap<RankedRange>()
    }

    /// Splits raw text into words and encodes each.
    func tokenizeText(_ bytes: UnsafeBufferPointer<UInt8>, _ ws: inout Workspace, _ output: inout [Int32]) {
        guard !bytes.isEmpty else { return }
        UTF8Bytes.decode(bytes, scalars: &ws.cps, offsets: &ws.offsets)
        let ends = splitter.split(ws.cps)
        var startCp = 0
        for endCp in ends {
            let b0 = ws.offsets[startCp], b1 = ws.offsets[endCp]
            startCp = endCp
            if b1 > b0 { encodeWord(UnsafeBufferPointer(rebasing: bytes[b0..<b1]), &ws, &output) }
        }
    }

    /// tiktoken's byte_pair_encode for one word: the word's own token if it has one; otherwise, starting from single
    /// bytes, repeatedly merge the adjacent pair whose concatenation has the lowest rank (leftmost on ties) until no
    /// adjacent pair is a token. A heap of candidate pairs ordered by (rank, position) makes the same choices as
    /// tiktoken's linear scan without its quadratic cost on long words.
    func encodeWord(_ word: UnsafeBufferPointer<UInt8>, _ ws: inout Workspace, _ output: inout [Int32]) {
        let n = word.count
        guard let base = word.baseAddress, n > 0 else { return }
        if n >= 1 << 30 {  // positions are Int32: a word of a gigabyte or more is encoded in pieces
            encodeWord(UnsafeBufferPointer(rebasing: word[..<(1 << 29)]), &ws, &output)
            encodeWord(UnsafeBufferPointer(rebasing: word[(1 << 29)...]), &ws, &output)
            return
        }
        let offset = Int32(numSpecialTokens)
        if let r = vocab.find(base, n) {
            output.append(Int32(r) + offset)
            return
        }
        // n >= 2 here: every single byte is a token.
        ws.next.removeAll(keepingCapacity: true)
        ws.prev.removeAll(keepingCapacity: true)
        ws.rank.removeAll(keepingCapacity: true)
        ws.alive.removeAll(keepingCapacity: true)
        for i in 0..<n {
            ws.next.append(Int32(i + 1))
            ws.prev.append(Int32(i - 1))
            ws.rank.append(Int32(word[i]))
            ws.alive.append(true)
        }
        ws.heap.removeAll()
        for i in 0..<(n - 1) {
            if let r = vocab.find(base + i, 2) {
                ws.heap.push(RankedRange(rank: Int32(r), start: Int32(i), end: Int32(i + 2)))
            }
        }
        while let top = ws.heap.popMin() {
            let i = Int(top.start)
            guard ws.alive[i] else { continue }
            let j = Int(ws.next[i])
            guard j < n, Int(ws.next[j]) == Int(top.end) else { continue }  // stale: a side has changed
            // merge part j into part i
            ws.rank[i] = top.rank
            ws.alive[j] = false
            let k = Int(ws.next[j])
            ws.next[i] = Int32(k)
            if k < n {
                ws.prev[k] = Int32(i)
                let e = Int(ws.next[k])
                if let r = vocab.find(base + i, e - i) {
                    ws.heap.push(RankedRange(rank: Int32(r), start: Int32(i), end: Int32(e)))
                }
            }
            let p = Int(ws.prev[i])
            if p >= 0, let r = vocab.find(base + p, k - p) {
                ws.heap.push(RankedRange(rank: Int32(r), start: Int32(p), end: Int32(k)))
            }
        }
        var i = 0
        while i < n {
            output.append(ws.rank[i] + offset)
            i = Int(ws.next[i])
        }
    }
}

extension TekkenTokenizer: ValidatedUTF8Tokenizer {}

/// A candidate merge of the byte range start..<end, ordered by (rank, start).
struct RankedRange: HeapOrdered {
    let rank: Int32
    let start: Int32
    let end: Int32

    @inline(__always) func precedes(_ o: RankedRange) -> Bool {
        rank != o.rank ? rank < o.rank : start < o.start
    }
}

/// An immutable set of byte strings stored back to back, looked up by content without allocating: open addressing
/// over a power-of-two table of entry indices.
struct ByteTable: Sendable {
    let bytes: [UInt8]
    /// Entry i is bytes[offsets[i]..<offsets[i + 1]].
    let offsets: [Int32]
    let slots: [Int32]  // entry index, -1 when empty
    let mask: Int

    var count: Int { offsets.count - 1 }

    /// Throws `duplicate(i)` when entry i repeats an earlier one.
    init(bytes: [UInt8], offsets: [Int32], duplicate: (Int) -> MistralError) throws {
        self.bytes = bytes
        self.offsets = offsets
        let n = offsets.count - 1
        var size = 16
        while size < n * 2 { size <<= 1 }
        var slots = [Int32](repeating: -1, count: size)
        let mask = size - 1
        try bytes.withUnsafeBufferPointer { b in
            for i in 0..<n {
                let s = Int(offsets[i]), e = Int(offsets[i + 1])
                let p = b.baseAddress.map { $0 + s }
                var h = ByteTable.hash(p, e - s) & mask
                while slots[h] >= 0 {
                    let o = Int(slots[h])
                    let os = Int(offsets[o]), oe = Int(offsets[o + 1])
                    if oe - os == e - s, let q = b.baseAddress, memcmp(q + os, q + s, e - s) == 0 { throw duplicate(i) }
                    h = (h + 1) & mask
                }
                slots[h] = Int32(i)
            }
        }
        self.slots = slots
        self.mask = mask
    }

    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>?, _ n: Int) -> Int {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        if let p {
            for k in 0..<n { h = (h ^ UInt64(p[k])) &* 0x0000_0100_0000_01B3 }
        }
        h ^= h >> 29
        return Int(truncatingIfNeeded: h)
    }

    func entry(_ i: Int) -> ArraySlice<UInt8> { bytes[Int(offsets[i])..<Int(offsets[i + 1])] }

    /// Index of the entry equal to p[0..<n], if any.
    @inline(__always)
    func find(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        var h = ByteTable.hash(p, n) & mask
        return slots.withUnsafeBufferPointer { sl in
            offsets.withUnsafeBufferPointer { of in
                bytes.withUnsafeBufferPointer { b -> Int? in
                    guard let q = b.baseAddress else { return nil }
                    while true {
                        let o = Int(sl[h])
                        if o < 0 { return nil }
                        let s = Int(of[o])
                        if Int(of[o + 1]) - s == n && memcmp(q + s, p, n) == 0 { return o }
                        h = (h + 1) & mask
                    }
                }
            }
        }
    }

    func find(_ text: String) -> Int? {
        var copy = text
        return copy.withUTF8 { buf -> Int? in
            guard let p = buf.baseAddress, buf.count > 0 else { return nil }
            return find(p, buf.count)
        }
    }
}

/// Standard base64 (RFC 4648 alphabet, '=' padding required), as Python's base64.b64decode accepts it.
enum Base64 {
    static let values: [Int8] = {
        var v = [Int8](repeating: -1, count: 256)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        for (i, c) in alphabet.enumerated() { v[Int(c)] = Int8(i) }
        return v
    }()

    /// Appends the decoded bytes of `text`; false (with `out` partly appended) when it is not valid base64.
    static func decode(_ text: String, into out: inout [UInt8]) -> Bool {
        var copy = text
        return copy.withUTF8 { s -> Bool in
            let n = s.count
            guard n % 4 == 0 else { return false }
            var i = 0
            while i < n {
                let last = i + 4 == n
                var quad: UInt32 = 0
                var pad = 0
                for k in 0..<4 {
                    let c = s[i + k]
                    if c == UInt8(ascii: "=") {
                        // padding only at the end of the last quad, in its last one or two places
                        guard last, k >= 2 else { return false }
                        pad += 1
                        quad <<= 6
                        continue
                    }
                    guard pad == 0 else { return false }
                    let v = values[Int(c)]
                    guard v >= 0 else { return false }
                    quad = quad << 6 | UInt32(v)
                }
                out.append(UInt8(truncatingIfNeeded: quad >> 16))
                if pad < 2 { out.append(UInt8(truncatingIfNeeded: quad >> 8)) }
                if pad < 1 { out.append(UInt8(truncatingIfNeeded: quad)) }
                i += 4
            }
            return true
        }
    }
}
