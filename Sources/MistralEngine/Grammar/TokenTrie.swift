// Every token's bytes in one byte trie, built once per model: a grammar mask walks shared prefixes once instead of
// re-matching each of the 49k-131k tokens from its first byte. Nodes are numbered breadth-first so each node's
// children are contiguous (compressed sparse rows, no per-node allocation).

public final class TokenTrie: Sendable {
    /// Edges of node n: edgeByte/edgeChild[childStart[n] ..< childStart[n + 1]], bytes ascending.
    let childStart: [Int32]
    let edgeByte: [UInt8]
    let edgeChild: [Int32]
    /// Tokens whose bytes end exactly at node n: tokens[tokenStart[n] ..< tokenStart[n + 1]].
    let tokenStart: [Int32]
    let tokens: [Int32]
    /// The bytes of every token id (empty for control tokens), for accepting a sampled token.
    let pieces: [[UInt8]]
    /// Logit rows may be longer than the tokenizer's vocabulary; ids beyond it are never allowed.
    public let vocabSize: Int
    let endOfGeneration: [Int32]

    public var nodeCount: Int { childStart.count - 1 }

    public init(tokenizer: any Tokenizer) {
        let n = tokenizer.vocabSize
        var pieces = [[UInt8]](repeating: [], count: n)
        var order: [Int32] = []
        order.reserveCapacity(n)
        for id in 0..<n {
            let t = Int32(id)
            if tokenizer.isControl(t) { continue }
            let p = tokenizer.piece(t, special: false)
            if p.isEmpty { continue }
            pieces[id] = p
            order.append(t)
        }
        order.sort { a, b in
            let pa = pieces[Int(a)], pb = pieces[Int(b)]
            return pa.lexicographicallyPrecedes(pb) || (pa == pb && a < b)
        }
        // breadth-first over sorted ranges: a node is (range of `order`, depth); its tokens of length == depth
        // come first in the range, the rest split by the byte at `depth` into its children.
        var childStart: [Int32] = [], edgeByte: [UInt8] = [], edgeChild: [Int32] = []
        var tokenStart: [Int32] = [], tokens: [Int32] = []
        var queue: [(lo: Int, hi: Int, depth: Int)] = [(0, order.count, 0)]
        var head = 0
        while head < queue.count {
            let (lo, hi, depth) = queue[head]
            head += 1
            childStart.append(Int32(edgeByte.count))
            tokenStart.append(Int32(tokens.count))
            var k = lo
            while k < hi && pieces[Int(order[k])].count == depth {
                tokens.append(order[k])
                k += 1
            }
            while k < hi {
                let b = pieces[Int(order[k])][depth]
                var j = k + 1
                while j < hi && pieces[Int(order[j])][depth] == b { j += 1 }
                edgeByte.append(b)
                edgeChild.append(Int32(queue.count))
                queue.append((k, j, depth + 1))
                k = j
            }
        }
        childStart.append(Int32(edgeByte.count))
        tokenStart.append(Int32(tokens.count))
        self.childStart = childStart
        self.edgeByte = edgeByte
        self.edgeChild = edgeChild
        self.tokenStart = tokenStart
        self.tokens = tokens
        self.pieces = pieces
        self.vocabSize = n
        self.endOfGeneration = tokenizer.endOfGenerationIds.filter { $0 >= 0 && Int($0) < n }
    }
}
