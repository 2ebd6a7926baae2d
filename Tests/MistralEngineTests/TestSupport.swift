// Shared helpers for the tests: where the fixtures and the real model are, and JSON loading.
import Foundation
import XCTest
import MistralEngine

enum TestPaths {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static var fixtures: String { root + "/Tests/Fixtures" }

    /// The real SmolLM2 model. `.ci/run` (or the README's download step) puts it in models/.
    static var smolLM2: String {
        ProcessInfo.processInfo.environment["MISTRAL_TEST_MODEL"] ?? root + "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    }
}

func loadJSON(_ relativePath: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixtures + "/" + relativePath))
    guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw MistralError(.format, "fixture \(relativePath) is not a JSON object")
    }
    return obj
}

/// Loads the SmolLM2 model once per process; fails (never skips) when the file is missing.
final class SharedModel: @unchecked Sendable {
    static let shared = SharedModel()
    private let lock = NSLock()
    private var model: Model?

    func get(file: StaticString = #filePath, line: UInt = #line) throws -> Model {
        lock.lock()
        defer { lock.unlock() }
        if let model { return model }
        guard FileManager.default.fileExists(atPath: TestPaths.smolLM2) else {
            XCTFail("missing \(TestPaths.smolLM2): run `bash examples/download-model.sh` (or .ci/run) first",
                    file: file, line: line)
            throw MistralError(.io, "model missing")
        }
        let m = try Model(path: TestPaths.smolLM2)
        model = m
        return m
    }
}

func int32s(_ any: Any?) -> [Int32] { (any as? [Any] ?? []).compactMap { ($0 as? NSNumber)?.int32Value } }
