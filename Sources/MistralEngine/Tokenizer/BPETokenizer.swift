// Byte-level BPE tokenizer, behaving like llama.cpp's LLAMA_VOCAB_TYPE_BPE (src/llama-vocab.cpp):
//   1. special-token partitioning (tokenizer_st_partition),
//   2. pre-tokenization of each raw-text fragment into words (PreTokenizer),
//   3. GPT-2 byte-level encoding of each word and BPE merging by merge rank (llm_tokenizer_bpe_session),
//   4. vocabulary lookup of the merged symbols, with llama.cpp's single-byte fallback.
// Everything that does not depend on the input is precomputed at init; the object is immutable afterwards.
import Glibc

public final class BPETokenizer: Sendable {
    // llama_token_attr bits (llama.h)
    static let attrUnknown: UInt8 = 1 << 0
    static let attrUnused: UInt8 = 1 << 1
    static let attrNormal: UInt8 = 1 << 2
    static let attrControl: UInt8 = 1 << 3
    static let attrUserDefined: UInt8 = 1 << 4
    static let attrByte: UInt8 = 1 << 5

    /// Token texts that llama.cpp treats as end of generation (and forces to CONTROL).
    static let endOfGenerationTexts: Set<[UInt8]> = Set([
        "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "</s>", "<end_of_turn>", "<|end_of_text|>",
    ].map { Array($0.utf8) })

    struct Merge: Sendable {
        let rank: Int32
        /// Interned id of the merged text (a token id when < vocabSize).
        let result: Int32
    }

    public let bosId: Int32?
    public let eosId: Int32?
    public let addBosByDefault: Bool
    public let preTokenizer: String
    public let endOfGenerationIds: [Int32]

    let rules: PreTokenizerRules
    let splitter: PreTokenizer
    /// Raw text of each token, as stored in the vocabulary.
    let tokenText: [[UInt8]]
    let attrs: [UInt8]
    let tokenToId: [[UInt8]: Int32]
    /// (left interned id << 32 | right interned id) -> merge. Interned ids below vocabSize are token ids; merge
    /// parts that are not tokens get ids from vocabSize up.
    let merges: [UInt64: Merge]
    /// Interned id of the one-code-point symbol each byte starts as, or -1 when that text appears nowhere.
    let byteSymbol: [Int32]
    /// Token whose text is the single ASCII byte, or -1 (llama.cpp's fallback for symbols not in the vocab).
    let asciiToken: [Int32]
    /// CONTROL / USER_DEFINED / UNKNOWN tokens, longest text first (ties by id).
    let specialTokens: [Int32]
    /// Detokenized bytes of each token with special == true.
    let pieces: [[UInt8]]
    let endOfGeneration: Set<Int32>

    public var vocabSize: Int { tokenText.count }

    public convenience init(tokens: [String], tokenTypes: [Int32]?, merges: [String], preTokenizer: String,
                            bos: Int32?, eos: Int32?, addBos: Bool) throws {
        try self.init(tokens: tokens, tokenTypes: tokenTypes, merges: merges, preTokenizer: preTokenizer,
                      bos: bos, eos: eos, addBos: addBos, extraEndOfGeneration: [])
    }

    init(tokens: [String], tokenTypes: [Int32]?, merges mergeList: [String], preTokenizer: String,
         bos: Int32?, eos: Int32?, addBos: Bool, extraEndOfGeneration: [Int32]) throws {
        let rules = try PreTokenizerRules(name: preTokenizer)
        let n = tokens.count
        guard n > 0 else { throw MistralError.invalid("tokenizer vocabulary is empty") }
        guard n < Int(Int32.max) / 2 else { throw MistralError.invalid("tokenizer vocabulary has \(n) tokens, too many") }
        if let t = tokenTypes, t.count < n {
            throw MistralError.invalid("tokenizer has \(n) tokens but only \(t.count) token types")
        }
        for (name, id) in [("bos", bos), ("eos", eos)] {
            if let id, id < 0 || Int(id) >= n {
                throw MistralError.invalid("\(name) token id \(id) is outside the vocabulary (0..<\(n))")
            }
        }
        for id in extraEndOfGeneration where id < 0 || Int(id) >= n {
            throw MistralError.invalid("end-of-generation token id \(id) is outside the vocabulary (0..<\(n))")
        }
        if addBos && bos == nil {
            throw MistralError.invalid("adding BOS is requested by default but no BOS token is set")
        }

        // Vocabulary.
        var text: [[UInt8]] = []
        text.reserveCapacity(n)
        var toId: [[UInt8]: Int32] = [:]
        toId.reserveCapacity(n)
        var attrs = [UInt8](repeating: BPETokenizer.attrNormal, count: n)
        for i in 0..<n {
            var bytes = Array(tokens[i].utf8)
            if bytes.isEmpty { bytes = Array("[EMPTY_\(i)]".utf8) }  // as llama.cpp
            if let other = toId.updateValue(Int32(i), forKey: bytes) {
                throw MistralError.invalid("duplicate token in vocabulary: '\(tokens[i])' has ids \(other) and \(i)")
            }
            text.append(bytes)
            if let types = tokenTypes {
                switch types[i] {
                case 1: attrs[i] = BPETokenizer.attrNormal
                case 2: attrs[i] = BPETokenizer.attrUnknown
                case 3: attrs[i] = BPETokenizer.attrControl
                case 4: attrs[i] = BPETokenizer.attrUserDefined
                case 5: attrs[i] = BPETokenizer.attrUnused
                case 6: attrs[i] = BPETokenizer.attrByte
                default: attrs[i] = 0  // UNDEFINED
                }
            }
        }

        // End of generation: eos, eot/eom when given, and the tokens with a known end-of-turn text (forced CONTROL).
        var eog = Set<Int32>()
        for i in 0..<n where BPETokenizer.endOfGenerationTexts.contains(text[i]) {
            eog.insert(Int32(i))
            attrs[i] |= BPETokenizer.attrControl
        }
        if let eos { eog.insert(eos) }
        for id in extraEndOfGeneration { eog.insert(id) }

        // Merges, interned so that merging compares integers only.
        var interned = toId
        var nextId = Int32(n)
        func intern(_ s: ArraySlice<UInt8>) -> Int32 {
            let key = Array(s)
            if let id = interned[key] { return id }
            interned[key] = nextId
            nextId += 1
            return nextId - 1
        }
        var pairs: [UInt64: Merge] = [:]
        pairs.reserveCapacity(mergeList.count)
        for (rank, merge) in mergeList.enumerated() {
            let bytes = Array(merge.utf8)
            // llama.cpp splits at the first space after the first byte
            guard bytes.count >= 3, let sp = bytes[1...].firstIndex(of: 0x20), sp + 1 < bytes.count else {
                throw MistralError.invalid("merge #\(rank) '\(merge)' is not of the form 'left right'")
            }
            guard rank < Int(Int32.max) else { throw MistralError.invalid("too many merges") }
            let left = intern(bytes[..<sp])
            let right = intern(bytes[(sp + 1)...])
            var joined = Array(bytes[..<sp])
            joined.append(contentsOf: bytes[(sp + 1)...])
            let result = intern(joined[...])
            let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
            if pairs[key] == nil { pairs[key] = Merge(rank: Int32(rank), result: result) }  // first rank wins
        }

        var byteSymbol = [Int32](repeating: -1, count: 256)
        for b in 0..<256 { byteSymbol[b] = interned[ByteLevel.byteToUTF8[b]] ?? -1 }
        var asciiToken = [Int32](repeating: -1, count: 128)
        for b in 0..<128 { asciiToken[b] = toId[[UInt8(b)]] ?? -1 }

        // Special tokens for partitioning, longest first.
        let specialMask = BPETokenizer.attrControl | BPETokenizer.attrUserDefined | BPETokenizer.attrUnknown
        var specialIdx: [Int] = []
        for i in 0..<n where attrs[i] & specialMask != 0 { specialIdx.append(i) }
        specialIdx.sort { (a: Int, b: Int) -> Bool in
            let la = text[a].count, lb = text[b].count
            return la != lb ? la > lb : a < b
        }
        let specials = specialIdx.map { Int32($0) }

        // Pieces (llama.cpp's cache_token_to_piece, special == true).
        var pieces: [[UInt8]] = []
        pieces.reserveCapacity(n)
        for i in 0..<n {
            pieces.append(BPETokenizer.makePiece(text: text[i], attr: attrs[i]))
        }

        self.rules = rules
        self.splitter = try PreTokenizer(name: preTokenizer)
        self.preTokenizer = preTokenizer
        self.tokenText = text
        self.attrs = attrs
        self.tokenToId = toId
        self.merges = pairs
        self.byteSymbol = byteSymbol
        self.asciiToken = asciiToken
        self.specialTokens = specials
        self.pieces = pieces
        self.endOfGeneration = eog
        self.endOfGenerationIds = eog.sorted()
        self.bosId = bos
        self.eosId = eos
        self.addBosByDefault = addBos
    }

    /// Reads `tokenizer.ggml.*` like llama.cpp's llama_vocab::impl::load for a "gpt2" model.
    public static func fromGGUF(_ gguf: GGUFFile) throws -> BPETokenizer {
        guard let model = try gguf.string("tokenizer.ggml.model") else {
            throw MistralError.format("GGUF has no tokenizer.ggml.model")
        }
        guard model == "gpt2" else {
            throw MistralError.unsupported("tokenizer model '\(model)' is not supported (only byte-level BPE, 'gpt2')")
        }
        guard let tokens = try gguf.stringArray("tokenizer.ggml.tokens") else {
            throw MistralError.format("GGUF has no tokenizer.ggml.tokens")
        }
        guard let merges = try gguf.stringArray("tokenizer.ggml.merges") else {
            throw MistralError.format("GGUF has no tokenizer.ggml.merges")
        }
        var types: [Int32]? = nil
        if let raw = try gguf.intArray("tokenizer.ggml.token_type") {
            types = try raw.map {
                guard let v = Int32(exactly: $0) else { throw MistralError.format("tokenizer.ggml.token_type holds \($0)") }
                return v
            }
        }
        // llama.cpp: a missing pre-tokenizer means "default"
        let pre = try gguf.string("tokenizer.ggml.pre") ?? "default"
        let rules = try PreTokenizerRules(name: pre)
        let n = tokens.count

        // llama.cpp's BPE defaults are bos = eos = 11; a key out of range keeps the default (with a warning there).
        func special(_ key: String, default def: Int32?) throws -> Int32? {
            var id = def.flatMap { Int($0) < n ? $0 : nil }
            if let v = try gguf.int(key), v >= 0, v < n { id = Int32(v) }
            return id
        }
        let bos = try special("tokenizer.ggml.bos_token_id", default: 11)
        let eos = try special("tokenizer.ggml.eos_token_id", default: 11)
        let extra = [try special("tokenizer.ggml.eot_token_id", default: nil),
                     try special("tokenizer.ggml.eom_token_id", default: nil)].compactMap { $0 }
        var addBos = rules.addBosDefault
        if let b = try gguf.bool("tokenizer.ggml.add_bos_token") { addBos = b }
        do {
            return try BPETokenizer(tokens: tokens, tokenTypes: types, merges: merges, preTokenizer: pre,
                                    bos: bos, eos: eos, addBos: addBos, extraEndOfGeneration: extra)
        } catch let e as MistralError where e.status == .invalidArgument {
            throw MistralError.format("GGUF tokenizer: \(e.message)")
        }
    }

    // MARK: token properties

    @inline(__always) func inRange(_ token: Int32) -> Bool { token >= 0 && Int(token) < tokenText.count }

    public func isControl(_ token: Int32) -> Bool {
        inRange(token) && attrs[Int(token)] & BPETokenizer.attrControl != 0
    }

    public func isEndOfGeneration(_ token: Int32) -> Bool {
        endOfGeneration.contains(token)
    }

    public func tokenId(forText text: String) -> Int32? {
        tokenToId[Array(text.utf8)]
    }

    // MARK: detokenization

    static func makePiece(text: [UInt8], attr: UInt8) -> [UInt8] {
        if attr & (attrUnknown | attrControl | attrUserDefined) != 0 { return text }
        if attr & attrNormal != 0 { return decodeByteLevel(text) }
        if attr & attrByte != 0 {
            // llama.cpp: strtol(text.substr(3, 2), 16) of "<0xXX>"
            var v: UInt8 = 0
            var i = 3
            while i < min(5, text.count), let d = hexValue(text[i]) { v = v &* 16 &+ d; i += 1 }
            return [v]
        }
        return []
    }

    @inline(__always) static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }

    /// llama_decode_text: each code point back to its byte; one that stands for no byte becomes
    /// "[UNK_BYTE_0x<its utf8 in hex><whole text>]".
    static func decodeByteLevel(_ text: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        text.withUnsafeBufferPointer { buf in
            var cps: [UInt32] = []
            var offs: [Int] = []
            UTF8Bytes.decode(buf, scalars: &cps, offsets: &offs)
            for (i, c) in cps.enumerated() {
                if let b = ByteLevel.byte(for: c) {
                    out.append(b)
                } else {
                    out.append(contentsOf: Array("[UNK_BYTE_0x".utf8))
                    let hex = Array("0123456789abcdef".utf8)
                    for k in offs[i]..<offs[i + 1] {
                        out.append(hex[Int(buf[k] >> 4)])
                        out.append(hex[Int(buf[k] & 15)])
                    }
                    out.append(contentsOf: text)
                    out.append(0x5D)  // ]
                }
            }
        }
        return out
    }

    /// Raw bytes of a token. Control and unknown tokens give their text only when `special` is true.
    public func piece(_ token: Int32, special: Bool) -> [UInt8] {
        guard inRange(token) else { return [] }
        let i = Int(token)
        if !special && attrs[i] & (BPETokenizer.attrUnknown | BPETokenizer.attrControl) != 0 { return [] }
        return pieces[i]
    }

    /// Concatenated pieces (llama_detokenize with remove_special = false, unparse_special = special), including
    /// llama.cpp's clean-up of tokenization spaces for the pre-tokenizers that enable it.
    public func detokenize(_ tokens: [Int32], special: Bool) throws -> [UInt8] {
        var out: [UInt8] = []
        for t in tokens {
            guard inRange(t) else {
                throw MistralError.invalid("token id \(t) is outside the vocabulary (0..<\(vocabSize))")
            }
            out.append(contentsOf: piece(t, special: special))
        }
        if rules.cleanSpaces { BPETokenizer.cleanSpaces(&out) }
        return out
    }

    /// The three passes of llama.cpp's clean_spaces in llama_vocab::impl::detokenize.
    static func cleanSpaces(_ text: inout [UInt8]) {
        let space: UInt8 = 0x20, quote: UInt8 = 0x27
        // 1: " ?", " !", " .", " ," lose the space
        var total1 = text.count
        var total = total1 > 0 ? 1 : 0
        var i = 1
        while i < total1 {
            let x = text[i]
            if text[i - 1] == space && (x == 0x3F || x == 0x21 || x == 0x2E || x == 0x2C) { total -= 1 }
            text[total] = x
            total += 1
            i += 1
        }
        // 2: " ' " becomes "'"
        total1 = total
        total = total1 > 0 ? 1 : 0
        i = 1
        while i < total1 {
            let x = text[i]
            if x == quote && i + 1 < total1 && text[i - 1] == space && text[i + 1] == space {
                total -= 1
                i += 1
                text[i] = 0
            }
            text[total] = x
            total += 1
            i += 1
        }
        // 3: " 's", " 'm", " 're", " 've" lose the space
        total1 = total
        total = total1 > 0 ? 1 : 0
        i = 1
        while i < total1 {
            let x = text[i]
            if text[i - 1] == space && x == quote && i + 1 < total1 {
                let x1 = text[i + 1]
                if x1 == 0x73 || x1 == 0x6D {  // s m
                    total -= 1
                } else if x1 != 0x74 && x1 != 0x64 && i + 2 < total1 {  // not t d
                    let x2 = text[i + 2]
                    if (x1 == 0x72 && x2 == 0x65) || (x1 == 0x76 && x2 == 0x65) { total -= 1 }  // re ve
                }
            }
            text[total] = x
            total += 1
            i += 1
        }
        text.removeLast(text.count - total)
    }

    // MARK: tokenization

    enum Fragment {
        case token(Int32)
        case text(Int, Int)  // byte range [start, end)
    }

    /// tokenizer_st_partition: each special token in turn (longest first) splits every raw-text fragment at all of
    /// its occurrences. Without parseSpecial, CONTROL and UNKNOWN tokens are left as text; USER_DEFINED still split.
    func partition(_ bytes: UnsafeBufferPointer<UInt8>, parseSpecial: Bool) -> [Fragment] {
        guard bytes.count > 0, let base = bytes.baseAddress else { return [] }
        var frags: [Fragment] = [.text(0, bytes.count)]
        let skipMask = BPETokenizer.attrControl | BPETokenizer.attrUnknown
        for id in specialTokens {
            if !parseSpecial && attrs[Int(id)] & skipMask != 0 { continue }
            let needle = tokenText[Int(id)]
            var out: [Fragment] = []
            var changed = false
            needle.withUnsafeBufferPointer { nb in
                guard let np = nb.baseAddress else { return }
                for frag in frags {
                    guard case .text(let s, let e) = frag, e - s >= nb.count else {
                        out.append(frag)
                        continue
                    }
                    var cur = s
                    while let m = BPETokenizer.find(base, cur, e, np, nb.count) {
                        if m > cur { out.append(.text(cur, m)) }
                        out.append(.token(id))
                        cur = m + nb.count
                        changed = true
                    }
                    if cur < e { out.append(.text(cur, e)) }
                }
            }
            if changed { frags = out }
        }
        return frags
    }

    /// First occurrence of needle[0..<count] in base[from..<to], as a byte offset from base.
    static func find(_ base: UnsafePointer<UInt8>, _ from: Int, _ to: Int, _ needle: UnsafePointer<UInt8>, _ count: Int) -> Int? {
        guard count > 0 else { return nil }
        var cur = from
        let first = Int32(needle[0])
        while to - cur >= count {
            guard let p = memchr(base + cur, first, to - cur - count + 1) else { return nil }
            let m = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(p))
            if memcmp(base + m, needle, count) == 0 { return m }
            cur = m + 1
        }
        return nil
    }

    public func tokenizeValid(_ bytes: UnsafeBufferPointer<UInt8>, addBos: Bool, parseSpecial: Bool) -> [Int32] {
        var output: [Int32] = []
        output.reserveCapacity(bytes.count / 3 + 2)
        if addBos, let bos = bosId { output.append(bos) }
        var ws = Workspace()
        for frag in partition(bytes, parseSpecial: parseSpecial) {
            switch frag {
            case .token(let id):
                output.append(id)
            case .text(let s, let e):
                tokenizeText(UnsafeBufferPointer(rebasing: bytes[s..<e]), &ws, &output)
            }
        }
        return output
    }

    /// Scratch buffers reused across the words of one call.
    struct Workspace {
        var cps: [UInt32] = []
        var offsets: [Int] = []
        var symbol: [Int32] = []    // interned id, -1 when none
        var start: [Int32] = []     // first byte of the symbol within the word
        var length: [Int32] = []    // bytes; 0 once merged away
        var prev: [Int32] = []
        var next: [Int32] = []
        var heap = MinHeap<MergeCandidate>()
        var encoded: [UInt8] = []
    }

    func tokenizeText(_ bytes: UnsafeBufferPointer<UInt8>, _ ws: inout Workspace, _ output: inout [Int32]) {
        UTF8Bytes.decode(bytes, scalars: &ws.cps, offsets: &ws.offsets)
        let ends = splitter.split(ws.cps)
        var startCp = 0
        for endCp in ends {
            let b0 = ws.offsets[startCp], b1 = ws.offsets[endCp]
            startCp = endCp
            if b1 > b0 { bpeWord(UnsafeBufferPointer(rebasing: bytes[b0..<b1]), &ws, &output) }
        }
    }

    /// llm_tokenizer_bpe_session::tokenize for one word (raw bytes, before byte-level encoding).
    func bpeWord(_ word: UnsafeBufferPointer<UInt8>, _ ws: inout Workspace, _ output: inout [Int32]) {
        let n = word.count
        if rules.ignoreMerges {
            ws.encoded.removeAll(keepingCapacity: true)
            ByteLevel.encode(word, into: &ws.encoded)
            if let id = tokenToId[ws.encoded] {
                output.append(id)
                return
            }
        }
        if n == 1 {
            emitSymbol(byteSymbol[Int(word[0])], word, 0, 1, &output)
            return
        }

        ws.symbol.removeAll(keepingCapacity: true)
        ws.start.removeAll(keepingCapacity: true)
        ws.length.removeAll(keepingCapacity: true)
        ws.prev.removeAll(keepingCapacity: true)
        ws.next.removeAll(keepingCapacity: true)
        for i in 0..<n {
            ws.symbol.append(byteSymbol[Int(word[i])])
            ws.start.append(Int32(i))
            ws.length.append(1)
            ws.prev.append(Int32(i - 1))
            ws.next.append(i + 1 == n ? -1 : Int32(i + 1))
        }
        ws.heap.removeAll()
        for i in 1..<n { addBigram(Int32(i - 1), Int32(i), &ws) }

        while let top = ws.heap.popMin() {
            let l = Int(top.left), r = Int(top.right)
            // stale: either side merged away, or the right side grew (llama.cpp compares the texts)
            if ws.length[l] == 0 || ws.length[r] == 0 || ws.symbol[r] != top.rightSymbol || ws.next[l] != top.right {
                continue
            }
            ws.symbol[l] = top.result
            ws.length[l] += ws.length[r]
            ws.length[r] = 0
            ws.next[l] = ws.next[r]
            if ws.next[r] >= 0 { ws.prev[Int(ws.next[r])] = top.left }
            addBigram(ws.prev[l], top.left, &ws)
            addBigram(top.left, ws.next[l], &ws)
        }

        var i: Int32 = 0
        while i != -1 {
            let k = Int(i)
            if ws.length[k] > 0 {
                emitSymbol(ws.symbol[k], word, Int(ws.start[k]), Int(ws.length[k]), &output)
            }
            i = ws.next[k]
        }
    }

    @inline(__always)
    func addBigram(_ left: Int32, _ right: Int32, _ ws: inout Workspace) {
        guard left >= 0, right >= 0 else { return }
        let ls = ws.symbol[Int(left)], rs = ws.symbol[Int(right)]
        guard ls >= 0, rs >= 0 else { return }
        guard let m = merges[UInt64(UInt32(ls)) << 32 | UInt64(UInt32(rs))] else { return }
        ws.heap.push(MergeCandidate(rank: m.rank, left: left, right: right, rightSymbol: rs, result: m.result))
    }

    /// A final symbol: its token, or else (llama.cpp) the tokens of the single bytes of its byte-level text that
    /// are tokens themselves (only ASCII bytes can be).
    @inline(__always)
    func emitSymbol(_ symbol: Int32, _ word: UnsafeBufferPointer<UInt8>, _ start: Int, _ length: Int, _ output: inout [Int32]) {
        if symbol >= 0 && Int(symbol) < tokenText.count {
            output.append(symbol)
            return
        }
        for k in start..<(start + length) {
            for b in ByteLevel.byteToUTF8[Int(word[k])] where b < 0x80 {
                let t = asciiToken[Int(b)]
                if t >= 0 { output.append(t) }
            }
        }
    }
}

/// A candidate merge of llama.cpp's BPE, ordered by (rank, left) like llm_bigram_bpe::comparator.
struct MergeCandidate: HeapOrdered {
    let rank: Int32
    let left: Int32
    let right: Int32
    let rightSymbol: Int32
    let result: Int32

    @inline(__always) func precedes(_ o: MergeCandidate) -> Bool {
        rank != o.rank ? rank < o.rank : left < o.left
    }
}
