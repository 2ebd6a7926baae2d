// The one error type the engine throws; the C layer turns it into a status code plus a message.

public enum MistralStatus: Int32, Sendable {
    case ok = 0
    case invalidArgument = 1
    case io = 2
    case format = 3
    case unsupported = 4
    case outOfMemory = 5
    case contextFull = 6
    case bufferTooSmall = 7
    case cancelled = 8
    case `internal` = 9

    public var name: String {
        switch self {
        case .ok: return "MISTRAL_OK"
        case .invalidArgument: return "MISTRAL_ERR_INVALID_ARGUMENT"
        case .io: return "MISTRAL_ERR_IO"
        case .format: return "MISTRAL_ERR_FORMAT"
        case .unsupported: return "MISTRAL_ERR_UNSUPPORTED"
        case .outOfMemory: return "MISTRAL_ERR_OUT_OF_MEMORY"
        case .contextFull: return "MISTRAL_ERR_CONTEXT_FULL"
        case .bufferTooSmall: return "MISTRAL_ERR_BUFFER_TOO_SMALL"
        case .cancelled: return "MISTRAL_ERR_CANCELLED"
        case .internal: return "MISTRAL_ERR_INTERNAL"
        }
    }
}

public struct MistralError: Error, CustomStringConvertible, Sendable {
    public let status: MistralStatus
    public let message: String

    public init(_ status: MistralStatus, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { "\(status.name): \(message)" }

    static func format(_ message: String) -> MistralError { MistralError(.format, message) }
    static func invalid(_ message: String) -> MistralError { MistralError(.invalidArgument, message) }
    static func unsupported(_ message: String) -> MistralError { MistralError(.unsupported, message) }
}
