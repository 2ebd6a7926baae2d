// Thread-local last-error message and the wrapper every exported call runs its body in.
import CMistralABI
import Glibc
import MistralEngine

/// One key per process; each thread's value is a malloc'ed C string freed when the thread exits.
private let lastErrorKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key) { free($0) }
    return key
}()

func setLastError(_ message: String) {
    let old = pthread_getspecific(lastErrorKey)
    pthread_setspecific(lastErrorKey, strdup(message))
    free(old)
}

func lastErrorPointer() -> UnsafePointer<CChar> {
    if let p = pthread_getspecific(lastErrorKey) { return UnsafePointer(p.assumingMemoryBound(to: CChar.self)) }
    return emptyString
}

// Never mutated or freed, so sharing it between threads is safe.
nonisolated(unsafe) private let emptyString: UnsafePointer<CChar> = UnsafePointer(strdup("")!)

/// Runs `body`, turning thrown errors into a status code plus the thread's last-error message.
@inline(__always)
func guarded(_ body: () throws -> Void) -> mistral_status {
    do {
        try body()
        return MISTRAL_OK
    } catch let e as MistralError {
        setLastError(e.message)
        return e.status.rawValue
    } catch {
        setLastError("unexpected error: \(error)")
        return MISTRAL_ERR_INTERNAL
    }
}

func invalid(_ message: String) -> MistralError { MistralError(.invalidArgument, message) }

func require<T>(_ value: T?, _ name: String) throws -> T {
    guard let value else { throw invalid("\(name) must not be NULL") }
    return value
}

/// Reads a caller's params struct that starts with `size_t struct_size`: fields beyond the caller's struct_size
/// (an older header) keep `defaults`; a newer caller's extra fields are ignored.
func readParams<T>(_ p: UnsafePointer<T>?, defaults: T, name: String) throws -> T {
    guard let p else { return defaults }
    let declared = UnsafeRawPointer(p).loadUnaligned(as: Int.self)
    guard declared >= MemoryLayout<Int>.size, declared <= 1 << 16 else {
        throw invalid("\(name).struct_size is \(declared); fill the struct with \(name)_init first")
    }
    var out = defaults
    withUnsafeMutableBytes(of: &out) { dst in
        dst.copyMemory(from: UnsafeRawBufferPointer(start: UnsafeRawPointer(p), count: min(declared, dst.count)))
    }
    return out
}

/// Sizes beyond these are caller bugs (a negative value cast to size_t, say), refused before any allocation.
let maxTokenCount = 1 << 26
let maxTextBytes = 1 << 31
