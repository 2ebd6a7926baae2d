// What the opaque C handles point to: retained Swift objects plus the C strings handed out for them.
import Glibc
import MistralEngine

final class ModelHandle {
    let model: Model
    let arch: UnsafeMutablePointer<CChar>
    let desc: UnsafeMutablePointer<CChar>

    init(_ model: Model) {
        self.model = model
        arch = strdup(model.arch)
        desc = strdup(model.summary)
    }

    deinit {
        free(arch)
        free(desc)
    }
}

final class SessionHandle {
    let session: Session
    init(_ session: Session) { self.session = session }
}

func modelHandle(_ p: OpaquePointer?) -> ModelHandle? {
    guard let p else { return nil }
    return Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue()
}

func sessionHandle(_ p: OpaquePointer?) -> SessionHandle? {
    guard let p else { return nil }
    return Unmanaged<SessionHandle>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue()
}
