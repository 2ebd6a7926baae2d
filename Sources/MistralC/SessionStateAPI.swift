// mistral_session_copy_prefix / common_prefix / tokens, save and load (file and memory), and shift.
import CMistralABI
import Glibc
import MistralEngine

private func cPath(_ p: UnsafePointer<CChar>?) throws -> String {
    guard let s = String(validatingCString: try require(p, "path")) else { throw invalid("path is not valid UTF-8") }
    return s
}

@_cdecl("mistral_session_copy_prefix")
public func mistral_session_copy_prefix(_ dst: OpaquePointer?, _ src: OpaquePointer?, _ nPositions: UInt32) -> mistral_status {
    guarded {
        let d = try require(sessionHandle(dst), "dst").session
        let s = try require(sessionHandle(src), "src").session
        try d.copyPrefix(from: s, count: Int(nPositions))
    }
}

@_cdecl("mistral_session_common_prefix")
public func mistral_session_common_prefix(_ session: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int,
                                          _ nCommon: UnsafeMutablePointer<Int>?) -> mistral_status {
    nCommon?.pointee = 0
    return guarded {
        let s = try require(sessionHandle(session), "session").session
        let out = try require(nCommon, "n_common")
        guard nTokens >= 0, nTokens <= maxTokenCount else { throw invalid("n_tokens \(nTokens) is out of range") }
        if nTokens == 0 { return }
        out.pointee = try s.commonPrefix(UnsafeBufferPointer(start: try require(tokens, "tokens"), count: nTokens))
    }
}

@_cdecl("mistral_session_tokens")
public func mistral_session_tokens(_ session: OpaquePointer?, _ tokens: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                   _ nTokens: UnsafeMutablePointer<Int>?) -> mistral_status {
    guarded {
        let s = try require(sessionHandle(session), "session").session
        let count = try require(nTokens, "n_tokens")
        let ids = try s.tokens()
        count.pointee = ids.count
        guard ids.count <= capacity else {
            throw MistralError(.bufferTooSmall, "the session holds \(ids.count) positions, capacity is \(capacity)")
        }
        guard !ids.isEmpty else { return }
        let out = try require(tokens, "tokens")
        ids.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: ids.count) }
    }
}

@_cdecl("mistral_session_save_file")
public func mistral_session_save_file(_ session: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> mistral_status {
    guarded { try require(sessionHandle(session), "session").session.saveState(path: try cPath(path)) }
}

@_cdecl("mistral_session_load_file")
public func mistral_session_load_file(_ session: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> mistral_status {
    guarded { try require(sessionHandle(session), "session").session.loadState(path: try cPath(path)) }
}

@_cdecl("mistral_session_save_memory")
public func mistral_session_save_memory(_ session: OpaquePointer?, _ buffer: UnsafeMutableRawPointer?, _ capacity: Int,
                                        _ nBytes: UnsafeMutablePointer<Int>?) -> mistral_status {
    nBytes?.pointee = 0
    return guarded {
        let s = try require(sessionHandle(session), "session").session
        let out = try require(nBytes, "n_bytes")
        let need = try s.stateSize()
        out.pointee = need
        guard capacity >= need else {
            throw MistralError(.bufferTooSmall, "the session state needs \(need) bytes, capacity is \(capacity)")
        }
        out.pointee = try s.saveState(into: UnsafeMutableRawBufferPointer(start: try require(buffer, "buffer"), count: capacity))
    }
}

@_cdecl("mistral_session_load_memory")
public func mistral_session_load_memory(_ session: OpaquePointer?, _ data: UnsafeRawPointer?, _ len: Int) -> mistral_status {
    guarded {
        let s = try require(sessionHandle(session), "session").session
        guard len >= 0 else { throw invalid("len is out of range") }
        try s.loadState(UnsafeRawBufferPointer(start: try require(data, "data"), count: len))
    }
}

@_cdecl("mistral_session_shift")
public func mistral_session_shift(_ session: OpaquePointer?, _ nKeep: UInt32, _ nDiscard: UInt32) -> mistral_status {
    guarded { try require(sessionHandle(session), "session").session.shift(keep: Int(nKeep), discard: Int(nDiscard)) }
}
