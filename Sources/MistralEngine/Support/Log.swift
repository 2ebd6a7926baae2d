// Diagnostics go to a caller-set callback, never to stdout/stderr.
import Glibc

public enum LogLevel: Int32, Sendable {
    case error = 0, warn = 1, info = 2, debug = 3
}

public typealias LogCallback = @convention(c) (Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void

/// Process-wide log sink. The mutex guards the three fields; the callback is invoked outside the lock.
public final class Log: @unchecked Sendable {
    public static let shared = Log()

    private var mutex = pthread_mutex_t()
    private var callback: LogCallback?
    private var level: Int32 = LogLevel.warn.rawValue
    private var userData: UnsafeMutableRawPointer?

    private init() { pthread_mutex_init(&mutex, nil) }

    public func set(callback: LogCallback?, level: Int32, userData: UnsafeMutableRawPointer?) {
        pthread_mutex_lock(&mutex)
        self.callback = callback
        self.level = level
        self.userData = userData
        pthread_mutex_unlock(&mutex)
    }

    public func emit(_ level: LogLevel, _ message: @autoclosure () -> String) {
        pthread_mutex_lock(&mutex)
        let cb = callback, maxLevel = self.level, ud = userData
        pthread_mutex_unlock(&mutex)
        guard let cb, level.rawValue <= maxLevel else { return }
        message().withCString { cb(level.rawValue, $0, ud) }
    }
}

public func logInfo(_ message: @autoclosure () -> String) { Log.shared.emit(.info, message()) }
public func logWarn(_ message: @autoclosure () -> String) { Log.shared.emit(.warn, message()) }
public func logDebug(_ message: @autoclosure () -> String) { Log.shared.emit(.debug, message()) }
