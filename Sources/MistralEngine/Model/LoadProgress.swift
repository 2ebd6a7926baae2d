// Load progress for the caller's callback: a fraction of the load's slow work (re-quantizing float matrices,
// reading a GGUF file into memory) that only ever grows, from 0 to exactly 1; the callback can cancel.

/// Called with the fraction done (0...1, increasing); returning false cancels the load with MistralError.cancelled.
public typealias LoadProgressCallback = @Sendable (Double) -> Bool

final class LoadProgress {
    private let callback: LoadProgressCallback?
    /// Units (bytes) of slow work the load will do; known up front so the fraction never goes back.
    private var total: Double = 0
    private var done: Double = 0
    private var lastReported = -1.0

    init(_ callback: LoadProgressCallback?) { self.callback = callback }

    var isActive: Bool { callback != nil }

    /// Announces more work before any of it is done.
    func expect(_ units: Int) { total += Double(max(units, 0)) }

    /// Records `units` done; reports when the fraction moved by 1/200 or more since the last call.
    func advance(_ units: Int) throws {
        guard callback != nil else { return }
        done += Double(max(units, 0))
        let f = total > 0 ? min(done / total, 1) : 0
        if f - lastReported >= 0.005 && f < 1 { try report(f) }
    }

    /// The first call (0) and the last (1).
    func start() throws { try report(0) }
    func finish() throws { try report(1) }

    private func report(_ f: Double) throws {
        guard let callback, f > lastReported else { return }
        lastReported = f
        if !callback(f) { throw MistralError(.cancelled, "loading was cancelled by the progress callback") }
    }
}
