// Software prefetch for the row-interleaved tiles of every ISA (the hardware prefetcher alone falls behind their
// reads from memory, which jump between a block group's fields).
import CCPUFeatures

/// Calls `body` with the start of each 64-byte cache line of the `bytes` bytes from p.
@usableFromInline @inline(__always)
func eachLine(_ p: UnsafeRawPointer, _ bytes: Int, _ body: (UnsafeRawPointer) -> Void) {
    var o = 0
    while o < bytes {
        body(p + o)
        o &+= 64
    }
}

/// Prefetches the cache lines of the `bytes` bytes from p into L1 (a hint: never faults, wherever p points).
@inlinable @inline(__always)
public func prefetchLines(_ p: UnsafeRawPointer, _ bytes: Int) {
    eachLine(p, bytes) { mistral_prefetch_read($0) }
}

/// prefetchLines for data read once (a decode step's weights): non-temporal, so that streaming them does not
/// evict what the outer caches hold (the sessions' KV caches).
@inlinable @inline(__always)
public func prefetchLinesOnce(_ p: UnsafeRawPointer, _ bytes: Int) {
    eachLine(p, bytes) { mistral_prefetch_read_once($0) }
}
