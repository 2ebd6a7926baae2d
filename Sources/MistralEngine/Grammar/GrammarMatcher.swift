// The grammar's pushdown matcher over Unicode code points (llama.cpp's stack semantics) and the token mask it
// gives each decode step.
//
// Parse stacks are persistent: a stack is a node (element position, parent node) in an arena, and nodes are
// interned, so equal stacks are the same node and a set of stacks is a sorted list of node ids, interned too.
// A matcher state is (stack set, partial UTF-8 sequence). Stepping a state by one byte is memoized in a flat hash
// table, so once warm a trie edge costs one probe; the mask of a state already seen is cached as a bitset. The
// walk over the token trie prunes a subtree as soon as its prefix cannot continue the grammar, including prefixes
// that end inside a UTF-8 sequence (byte-level BPE and Tekken byte tokens). Bounded: stack depth, stacks per set
// and arena size (the arena is rebuilt from the current state when it grows too large).

public final class GrammarMatcher {
    public let grammar: Grammar
    public let trie: TokenTrie

    static let maxStackDepth: Int32 = 8192
    static let maxStacksPerSet = 2048
    static let maxExpansionDepth = 4000
    /// Rule expansions one step may do: ambiguous grammars (`r ::= s | s`, nested) reach the same stacks along
    /// exponentially many paths, so work, not only the result, is bounded.
    static let maxExpansionsPerStep = 200_000
    static let maxArenaNodes = 1 << 21
    static let maxMemoEntries = 1 << 22
    static let maskCacheBytes = 8 << 20

    // arena of stack nodes
    private var nodePos: [Int32] = []
    private var nodeParent: [Int32] = []
    private var nodeDepth: [Int32] = []
    private var nodeIndex: [UInt64: Int32] = [:]
    // interned stack sets (id 0 = dead, the empty set)
    private var setStart: [Int32] = [0]
    private var setCount: [Int32] = [0]
    private var setItems: [Int32] = []
    private var setAccepting: [Bool] = [false]
    private var setIndex: [[Int32]: Int32] = [[]: 0]
    // byte transitions (set, partial UTF-8, byte) -> (set, partial UTF-8)
    private var memo = TransitionTable()
    // cached masks per state
    private var maskSlot: [UInt64: Int] = [:]
    private var maskStore: [UInt64] = []
    private let maskWords: Int
    private let maxMasks: Int
    // scratch
    private var seen: [UInt32] = []
    private var stamp: UInt32 = 0
    private var expansion: [Int32] = []
    private var overflow = false
    private var budget = 0
    private var walk: [(node: Int32, key: UInt64, row: Int32)] = []
    private struct AcceptKey: Hashable { var set: Int32; var matched: UInt64 }
    private var acceptMemo: [AcceptKey: Int32] = [:]
    private var bits: [UInt64]
    // per-state rows of byte transitions for the trie walk
    private var rows: [UInt64] = []
    private var rowOf: [UInt64: Int32] = [:]
    private var rowState: [UInt64] = []
    static let maxRows = 2048
    static let uncomputed = UInt64.max
    private var eogSaved: [Float]

    private var initialSet: Int32 = 0
    /// The current state: everything accepted so far.
    private(set) var currentSet: Int32 = 0
    private(set) var currentDec: UInt32 = 0

    /// `logitCount`: the length of the logit rows the mask is applied to (may exceed the tokenizer's vocabulary).
    public init(grammar: Grammar, trie: TokenTrie, logitCount: Int) throws {
        self.grammar = grammar
        self.trie = trie
        maskWords = (max(logitCount, trie.vocabSize) + 63) / 64
        maxMasks = max(4, GrammarMatcher.maskCacheBytes / (maskWords * 8))
        eogSaved = [Float](repeating: 0, count: trie.endOfGeneration.count)
        bits = [UInt64](repeating: 0, count: maskWords)
        try buildInitialSet()
        reset()
    }

    /// Back to the start of the grammar (before any text).
    public func reset() {
        currentSet = initialSet
        currentDec = 0
    }

    private func buildInitialSet() throws {
        expansion.removeAll(keepingCapacity: true)
        overflow = false
        budget = GrammarMatcher.maxExpansionsPerStep
        var a = Int(grammar.ruleStart[grammar.rootRule])
        while true {
            if grammar.isEndOfSequence(a) { advance(-1, depth: 0) } else if let n = intern(Int32(a), -1) { advance(n, depth: 0) }
            while !grammar.isEndOfSequence(a) { a += 1 }
            if grammar.elements[a].kind == .alt { a += 1 } else { break }
        }
        guard !overflow else {
            throw MistralError.invalid("grammar: the start rule expands to more than \(GrammarMatcher.maxStacksPerSet) "
                                       + "parse stacks, nests too deeply or is too ambiguous")
        }
        initialSet = internSet()
    }

    /// Whether the text so far is a complete sentence of the grammar (end-of-generation may be sampled).
    public var canFinish: Bool { currentDec == 0 && setAccepting[Int(currentSet)] }
    /// Whether the grammar allows nothing more than ending.
    public var mustFinish: Bool { canFinish && setCount[Int(currentSet)] == 1 }

    // MARK: arena

    private func intern(_ pos: Int32, _ parent: Int32) -> Int32? {
        let key = UInt64(UInt32(bitPattern: pos)) << 32 | UInt64(UInt32(bitPattern: parent))
        if let n = nodeIndex[key] { return n }
        let depth = parent < 0 ? 1 : nodeDepth[Int(parent)] + 1
        guard depth <= GrammarMatcher.maxStackDepth else {
            overflow = true
            return nil
        }
        let n = Int32(nodePos.count)
        nodePos.append(pos)
        nodeParent.append(parent)
        nodeDepth.append(depth)
        nodeIndex[key] = n
        return n
    }

    /// Expands stack `s` until its top is a terminal (llama.cpp's advance_stack), appending results to `expansion`.
    private func advance(_ s: Int32, depth: Int) {
        budget -= 1
        guard depth < GrammarMatcher.maxExpansionDepth, expansion.count <= GrammarMatcher.maxStacksPerSet,
              budget > 0, !overflow else {
            overflow = true
            return
        }
        if s < 0 { expansion.append(-1); return }
        let p = Int(nodePos[Int(s)])
        let el = grammar.elements[p]
        guard el.kind == .ruleRef else { expansion.append(s); return }
        let parent = nodeParent[Int(s)]
        var base = parent
        if !grammar.isEndOfSequence(p + 1) {
            guard let b = intern(Int32(p + 1), parent) else { return }
            base = b
        }
        var a = Int(grammar.ruleStart[Int(el.value)])
        while true {
            if grammar.isEndOfSequence(a) {
                advance(base, depth: depth + 1)
            } else if let n = intern(Int32(a), base) {
                advance(n, depth: depth + 1)
            }
            while !grammar.isEndOfSequence(a) { a += 1 }
            if grammar.elements[a].kind == .alt { a += 1 } else { break }
        }
    }

    /// Interns the stacks in `expansion` (deduplicated, sorted) as a set; 0 when empty or overflowed.
    private func internSet() -> Int32 {
        if overflow || expansion.isEmpty { return 0 }
        expansion.sort()
        var w = 0
        for k in 0..<expansion.count where k == 0 || expansion[k] != expansion[k - 1] {
            expansion[w] = expansion[k]
            w += 1
        }
        expansion.removeLast(expansion.count - w)
        if let id = setIndex[expansion] { return id }
        let id = Int32(setStart.count)
        setStart.append(Int32(setItems.count))
        setCount.append(Int32(expansion.count))
        setItems.append(contentsOf: expansion)
        setAccepting.append(expansion[0] == -1)
        setIndex[expansion] = id
        return id
    }

    /// The set after accepting code point `c` from set `set` (0 = rejected). The result depends only on which
    /// stacks' terminals match `c`, so it is memoized per (set, matching stacks): the ~20k distinct characters of a
    /// vocabulary inside a JSON string cost one expansion, not one each.
    private func accept(_ set: Int32, _ c: UInt32) -> Int32 {
        let start = Int(setStart[Int(set)]), count = Int(setCount[Int(set)])
        var matched: UInt64 = 0
        let memoizable = count <= 64
        if memoizable {
            for k in 0..<count {
                let s = setItems[start + k]
                if s < 0 { continue }
                let ci = grammar.classAt[Int(nodePos[Int(s)])]
                if ci >= 0 && grammar.classes[Int(ci)].matches(c) { matched |= 1 << UInt64(k) }
            }
            if matched == 0 { return 0 }
            if let r = acceptMemo[AcceptKey(set: set, matched: matched)] { return r }
        }
        expansion.removeAll(keepingCapacity: true)
        overflow = false
        budget = GrammarMatcher.maxExpansionsPerStep
        for k in start..<start + count {
            let s = setItems[k]
            if s < 0 { continue }
            if memoizable && matched >> UInt64(k - start) & 1 == 0 { continue }
            let p = Int(nodePos[Int(s)])
            let ci = grammar.classAt[p]
            guard ci >= 0 else { continue }
            let cls = grammar.classes[Int(ci)]
            guard memoizable || cls.matches(c) else { continue }
            let next = Int(cls.next)
            let parent = nodeParent[Int(s)]
            if grammar.isEndOfSequence(next) {
                advance(parent, depth: 0)
            } else if let n = intern(Int32(next), parent) {
                advance(n, depth: 0)
            }
            if overflow { break }
        }
        let result = overflow ? 0 : internSet()
        if memoizable { acceptMemo[AcceptKey(set: set, matched: matched)] = result }
        return result
    }

    /// Whether some stack of `set` can accept a code point in low...high.
    private func acceptsSome(_ set: Int32, _ low: UInt32, _ high: UInt32) -> Bool {
        let start = Int(setStart[Int(set)]), count = Int(setCount[Int(set)])
        for k in start..<start + count {
            let s = setItems[k]
            if s < 0 { continue }
            let ci = grammar.classAt[Int(nodePos[Int(s)])]
            if ci >= 0 && grammar.classes[Int(ci)].matchesSome(low, high) { return true }
        }
        return false
    }

    // MARK: bytes

    /// Partial UTF-8 packed as remaining << 21 | value bits so far; 0 = between characters.
    private func stepUncached(_ set: Int32, _ dec: UInt32, _ b: UInt8) -> (Int32, UInt32) {
        var remain = dec >> 21, value = dec & 0x1F_FFFF
        if remain == 0 {
            if b < 0x80 { return (accept(set, UInt32(b)), 0) }
            if b & 0xE0 == 0xC0 { remain = 1; value = UInt32(b & 0x1F); if value < 2 { return (0, 0) } }
            else if b & 0xF0 == 0xE0 { remain = 2; value = UInt32(b & 0x0F) }
            else if b & 0xF8 == 0xF0 { remain = 3; value = UInt32(b & 0x07); if value > 4 { return (0, 0) } }
            else { return (0, 0) }
        } else {
            guard b & 0xC0 == 0x80 else { return (0, 0) }
            value = value << 6 | UInt32(b & 0x3F)
            remain -= 1
            if remain == 0 {
                guard value <= 0x10FFFF, !(0xD800...0xDFFF).contains(value) else { return (0, 0) }
                return (accept(set, value), 0)
            }
        }
        // still inside a character: the code points it can complete to (llama.cpp's match_partial_char)
        var low = value << (6 * remain)
        let high = min(low | ((1 << (6 * remain)) - 1), 0x10FFFF)
        if low == 0 { low = remain == 2 ? 0x800 : remain == 3 ? 0x10000 : low }   // overlong forms
        guard low <= high, acceptsSome(set, low, high) else { return (0, 0) }
        return (set, remain << 21 | value)
    }

    @inline(__always) private func step(_ set: Int32, _ dec: UInt32, _ b: UInt8) -> (Int32, UInt32) {
        let key = UInt64(UInt32(bitPattern: set)) << 32 | UInt64(dec) << 8 | UInt64(b)
        if let v = memo.find(key) { return (Int32(truncatingIfNeeded: v >> 32), UInt32(truncatingIfNeeded: v)) }
        let (s, d) = stepUncached(set, dec, b)
        memo.insert(key, UInt64(UInt32(bitPattern: s)) << 32 | UInt64(d))
        return (s, d)
    }

    // MARK: tokens

    /// Accepts the bytes of a sampled token; false when the grammar does not allow them (the state is kept).
    public func accept(token: Int32) -> Bool {
        guard token >= 0, Int(token) < trie.vocabSize else { return false }
        let bytes = trie.pieces[Int(token)]
        return !bytes.isEmpty && accept(bytes: bytes)
    }

    /// Accepts raw text bytes (not a token); false, with the state kept, when the grammar rejects them.
    public func accept(bytes: [UInt8]) -> Bool {
        var set = currentSet, dec = currentDec
        for b in bytes {
            (set, dec) = step(set, dec, b)
            if set == 0 { return false }
        }
        currentSet = set
        currentDec = dec
        compactIfLarge()
        return true
    }

    /// The cached mask slot of the current state (filled on first use).
    private func currentMaskSlot() -> Int {
        let key = UInt64(UInt32(bitPattern: currentSet)) << 32 | UInt64(currentDec)
        if let s = maskSlot[key] { return s }
        if maskSlot.count >= maxMasks { maskSlot.removeAll(keepingCapacity: true) }
        let slot = maskSlot.count
        if maskStore.count < (slot + 1) * maskWords {
            maskStore.append(contentsOf: repeatElement(0, count: (slot + 1) * maskWords - maskStore.count))
        }
        maskSlot[key] = slot
        fillMask(slot: slot)
        return slot
    }

    /// Sets the logit of every token the grammar does not allow next to -infinity; end-of-generation tokens stay
    /// only when the text so far is complete. Returns how many tokens remain allowed.
    public func applyMask(to logits: UnsafeMutablePointer<Float>, count n: Int) -> Int {
        let slot = currentMaskSlot()
        let eog = trie.endOfGeneration
        for (k, e) in eog.enumerated() where k < eogSaved.count && Int(e) < n { eogSaved[k] = logits[Int(e)] }
        var allowed = 0
        maskStore.withUnsafeBufferPointer { m in
            let base = slot * maskWords
            var w = 0
            while w * 64 < n {
                let bits = w < maskWords ? m[base + w] : 0
                let lo = w * 64, hi = min(lo + 64, n)
                if bits == ~0 && hi - lo == 64 {
                    allowed += 64
                } else {
                    allowed += bits.nonzeroBitCount
                    if bits == 0 {
                        for i in lo..<hi { logits[i] = -.infinity }
                    } else {
                        for i in lo..<hi where bits >> UInt64(i - lo) & 1 == 0 { logits[i] = -.infinity }
                    }
                }
                w += 1
            }
        }
        let finish = canFinish
        for (k, e) in eog.enumerated() where k < eogSaved.count && Int(e) < n {
            logits[Int(e)] = finish ? eogSaved[k] : -.infinity
            if finish { allowed += 1 }
        }
        return allowed
    }

    /// Whether `token` may come next (end-of-generation tokens: only when the text is complete).
    public func allows(_ token: Int32) -> Bool {
        if trie.endOfGeneration.contains(token) { return canFinish }
        guard token >= 0, Int(token) < trie.vocabSize else { return false }
        let slot = currentMaskSlot()
        return maskStore[slot * maskWords + Int(token) >> 6] >> UInt64(token & 63) & 1 != 0
    }

    /// The row of `rows` holding the 256 byte transitions of state `key` (set << 32 | partial UTF-8), filled
    /// lazily: during a trie walk one state usually covers many nodes, so an edge costs an array read. Only
    /// whole-character states get rows (partial UTF-8 states are many and short-lived: they use the memo), and
    /// at most maxRows of them (-1: none; rows are only dropped between walks, never during one).
    private func transitionRow(_ key: UInt64) -> Int32 {
        if key & 0xFFFF_FFFF != 0 { return -1 }
        if let r = rowOf[key] { return r }
        if rowOf.count >= GrammarMatcher.maxRows { return -1 }
        let r = Int32(rowOf.count)
        rowOf[key] = r
        rowState.append(key)
        rows.append(contentsOf: repeatElement(GrammarMatcher.uncomputed, count: 256))
        return r
    }

    @inline(__always) private func transition(key: UInt64, row: Int32, _ b: UInt8) -> UInt64 {
        if row >= 0 {
            let v = rows[Int(row) << 8 | Int(b)]
            if v != GrammarMatcher.uncomputed { return v }
        }
        let (s, d) = step(Int32(truncatingIfNeeded: key >> 32), UInt32(truncatingIfNeeded: key), b)
        let packed = UInt64(UInt32(bitPattern: s)) << 32 | UInt64(d)
        if row >= 0 { rows[Int(row) << 8 | Int(b)] = packed }
        return packed
    }

    private func fillMask(slot: Int) {
        let base = slot * maskWords
        if rowOf.count >= GrammarMatcher.maxRows {
            rowOf.removeAll(keepingCapacity: true)
            rowState.removeAll(keepingCapacity: true)
            rows.removeAll(keepingCapacity: true)
        }
        for w in 0..<maskWords { bits[w] = 0 }
        walk.removeAll(keepingCapacity: true)
        let startKey = UInt64(UInt32(bitPattern: currentSet)) << 32 | UInt64(currentDec)
        walk.append((0, startKey, transitionRow(startKey)))
        var lastKey = startKey, lastRow = walk[0].row
        let trie = self.trie
        trie.childStart.withUnsafeBufferPointer { childStart in
        trie.edgeByte.withUnsafeBufferPointer { edgeByte in
        trie.edgeChild.withUnsafeBufferPointer { edgeChild in
        trie.tokenStart.withUnsafeBufferPointer { tokenStart in
        trie.tokens.withUnsafeBufferPointer { tokens in
        bits.withUnsafeMutableBufferPointer { bits in
            while let (node, key, row) = walk.popLast() {
                let lo = Int(childStart[Int(node)]), hi = Int(childStart[Int(node) + 1])
                for e in lo..<hi {
                    let next = transition(key: key, row: row, edgeByte[e])
                    if next >> 32 == 0 { continue }  // set 0: rejected
                    let child = Int(edgeChild[e])
                    let t0 = Int(tokenStart[child]), t1 = Int(tokenStart[child + 1])
                    for t in t0..<t1 {
                        let id = Int(tokens[t])
                        bits[id >> 6] |= 1 << UInt64(id & 63)
                    }
                    if childStart[child] < childStart[child + 1] {
                        if next != lastKey {
                            lastKey = next
                            lastRow = transitionRow(next)
                        }
                        walk.append((Int32(child), next, lastRow))
                    }
                }
            }
        }}}}}}
        for w in 0..<maskWords { maskStore[base + w] = bits[w] }
    }

    /// Rebuilds the arena around the current state when the memo or arena outgrew their bounds.
    private func compactIfLarge() {
        guard nodePos.count > GrammarMatcher.maxArenaNodes || memo.count > GrammarMatcher.maxMemoEntries else { return }
        // the current stacks as element positions, bottom first
        let start = Int(setStart[Int(currentSet)]), count = Int(setCount[Int(currentSet)])
        var stacks: [[Int32]] = []
        for k in start..<start + count {
            var s = setItems[k], positions: [Int32] = []
            while s >= 0 { positions.append(nodePos[Int(s)]); s = nodeParent[Int(s)] }
            stacks.append(positions.reversed())
        }
        nodePos.removeAll(keepingCapacity: true)
        nodeParent.removeAll(keepingCapacity: true)
        nodeDepth.removeAll(keepingCapacity: true)
        nodeIndex.removeAll(keepingCapacity: true)
        setStart = [0]; setCount = [0]; setItems.removeAll(keepingCapacity: true); setAccepting = [false]
        setIndex = [[]: 0]
        memo.removeAll()
        acceptMemo.removeAll(keepingCapacity: true)
        maskSlot.removeAll(keepingCapacity: true)
        rowOf.removeAll(keepingCapacity: true)
        rowState.removeAll(keepingCapacity: true)
        rows.removeAll(keepingCapacity: true)
        try? buildInitialSet()
        expansion.removeAll(keepingCapacity: true)
        overflow = false
        for positions in stacks {
            var s: Int32 = -1
            for p in positions { s = intern(p, s) ?? -1 }
            expansion.append(s)
        }
        currentSet = internSet()
    }
}

/// Open-addressing hash table UInt64 -> UInt64 (linear probing, power-of-two capacity): the byte-transition memo
/// probed once per trie edge, so it avoids Dictionary's hashing and existential overhead.
struct TransitionTable {
    private var keys: [UInt64]
    private var values: [UInt64]
    private var mask: Int
    private(set) var count = 0
    private static let empty = UInt64.max

    init(capacity: Int = 1 << 12) {
        keys = [UInt64](repeating: TransitionTable.empty, count: capacity)
        values = [UInt64](repeating: 0, count: capacity)
        mask = capacity - 1
    }

    @inline(__always) private static func hash(_ k: UInt64) -> Int {
        var x = k &* 0x9E37_79B9_7F4A_7C15
        x ^= x >> 29
        return Int(truncatingIfNeeded: x)
    }

    @inline(__always) func find(_ key: UInt64) -> UInt64? {
        var i = TransitionTable.hash(key) & mask
        return keys.withUnsafeBufferPointer { k in
            while true {
                let v = k[i]
                if v == key { return values[i] }
                if v == TransitionTable.empty { return nil }
                i = (i + 1) & mask
            }
        }
    }

    mutating func insert(_ key: UInt64, _ value: UInt64) {
        if (count + 1) * 2 > keys.count { grow() }
        var i = TransitionTable.hash(key) & mask
        while keys[i] != TransitionTable.empty && keys[i] != key { i = (i + 1) & mask }
        if keys[i] == TransitionTable.empty { count += 1 }
        keys[i] = key
        values[i] = value
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        keys = [UInt64](repeating: TransitionTable.empty, count: oldKeys.count * 2)
        values = [UInt64](repeating: 0, count: oldKeys.count * 2)
        mask = keys.count - 1
        count = 0
        for (k, v) in zip(oldKeys, oldValues) where k != TransitionTable.empty { insert(k, v) }
    }

    mutating func removeAll() {
        self = TransitionTable()
    }
}
