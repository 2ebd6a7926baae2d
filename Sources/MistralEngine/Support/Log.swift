// Diagnostics go to a caller-set callback, never to stdout/stderr.
import Glibc

public enum LogLevel: Int32, Sendable {
    case error = 0, warn = 1, info = 2, debug = 3
}

public typealias LogCallback = @convention(c) (Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void

/// Process-wide log sink. Callbacks run under the read side of a rwlock and `set` takes the write side, so once
/// `set` returns no thread is still inside (or about to enter) the old callback with the old user_data. Readers
/// do not exclude each other: callbacks on several threads run at once, and a callback may log again (glibc's
/// default rwlock prefers readers). A callback must not call `set` (it would wait for itself).
public final class Log: @unchecked Sendable {
    public static let shared = Log()

    // Heap-allocated so the lock never moves; the sink lives for the whole process.
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>
    private var callback: LogCallback?
    private var level: Int32 = LogLevel.warn.rawValue
    private var userData: UnsafeMutableRawPointer?

    private init() {
        lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
        lock.initialize(to: pthread_rwlock_t())
        pthread_rwlock_init(lock, nil)
    }

    public func set(callback: LogCallback?, level: Int32, userData: UnsafeMutableRawPointer?) {
        pthread_rwlock_wrlock(lock)
        self.callback = callback
        self.level = level
        self.userData = userData
        pthread_rwlock_unlock(lock)
    }

    public func emit(_ level: LogLevel, _ message: @autoclosure () -> String) {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        guard let cb = callback, level.rawValue <= self.level else { return }
        let ud = userData
        message().withCString { cb(level.rawValue, $0, ud) }
    }
}

public func logInfo(_ message: @autoclosure () -> String) { Log.shared.emit(.info, message()) }
public func logWarn(_ message: @autoclosure () -> String) { Log.shared.emit(.warn, message()) }
public func logDebug(_ message: @autoclosure () -> String) { Log.shared.emit(.debug, message()) }
