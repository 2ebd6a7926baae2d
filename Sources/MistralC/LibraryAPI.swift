// mistral_version*, mistral_last_error, mistral_status_string, mistral_log_set.
import CMistralABI
import Glibc
import MistralEngine

// Process-lifetime C strings: written once at initialisation, never mutated or freed, so sharing is safe.
nonisolated(unsafe) private let versionString: UnsafePointer<CChar> = UnsafePointer(strdup(MISTRAL_VERSION_STRING)!)
nonisolated(unsafe) private let statusNames: [UnsafePointer<CChar>] = (0...9).map {
    UnsafePointer(strdup(MistralStatus(rawValue: Int32($0))?.name ?? "?")!)
}
nonisolated(unsafe) private let unknownStatus: UnsafePointer<CChar> = UnsafePointer(strdup("MISTRAL_ERR_UNKNOWN")!)

@_cdecl("mistral_version")
public func mistral_version() -> UnsafePointer<CChar> { versionString }

@_cdecl("mistral_version_number")
public func mistral_version_number() -> Int32 { Int32(MISTRAL_VERSION_MAJOR * 10000 + MISTRAL_VERSION_MINOR * 100 + MISTRAL_VERSION_PATCH) }

@_cdecl("mistral_last_error")
public func mistral_last_error() -> UnsafePointer<CChar> { lastErrorPointer() }

@_cdecl("mistral_status_string")
public func mistral_status_string(_ status: mistral_status) -> UnsafePointer<CChar> {
    status >= 0 && Int(status) < statusNames.count ? statusNames[Int(status)] : unknownStatus
}

@_cdecl("mistral_log_set")
public func mistral_log_set(_ callback: mistral_log_callback?, _ level: Int32, _ userData: UnsafeMutableRawPointer?) {
    Log.shared.set(callback: callback, level: level, userData: userData)
}
