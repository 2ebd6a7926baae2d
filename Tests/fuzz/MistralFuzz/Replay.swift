// The entry point. In a fuzz build (-DFUZZING) it hands over to libFuzzer's driver: SwiftPM links an executable's
// main to this module's, so libFuzzer's own main is never used. Otherwise it is a replay tool:
// `MistralFuzz TARGET FILE...` runs each saved input (a crash regression file, a corpus entry) through the target
// once; exit status 0 means the process lived.
import Glibc

#if FUZZING
// libFuzzer's C entry point (pointer arguments and an int result pass the same way under Swift's convention).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

@main
struct FuzzMain {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { LLVMFuzzerTestOneInput($0, $1) })
    }
}
#else
@main
struct Replay {
    static func main() {
        let args = CommandLine.arguments
        guard args.count >= 3 else {
            print("usage: MistralFuzz TARGET FILE...   (targets: \(fuzzTargets.map { $0.0 }.joined(separator: " ")))")
            exit(2)
        }
        setenv("MISTRAL_FUZZ_TARGET", args[1], 1)
        guard fuzzTargets.contains(where: { $0.0 == args[1] }) else {
            print("unknown target \(args[1])")
            exit(2)
        }
        for path in args[2...] {
            guard let f = fopen(path, "rb") else {
                print("cannot open \(path)")
                exit(1)
            }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = fread(&chunk, 1, chunk.count, f)
                if n <= 0 { break }
                bytes += chunk[..<n]
            }
            fclose(f)
            _ = bytes.withUnsafeBufferPointer { LLVMFuzzerTestOneInput($0.baseAddress, $0.count) }
            print("ok \(args[1]) \(path)")
        }
    }
}
#endif
