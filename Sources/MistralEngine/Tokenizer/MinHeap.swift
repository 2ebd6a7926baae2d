// The priority queue both BPE tokenizers merge with: lowest candidate first.

protocol HeapOrdered {
    func precedes(_ other: Self) -> Bool
}

struct MinHeap<Element: HeapOrdered> {
    private var items: [Element] = []

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard items[i].precedes(items[p]) else { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func popMin() -> Element? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && items[l].precedes(items[m]) { m = l }
                if r < n && items[r].precedes(items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return first
    }
}
