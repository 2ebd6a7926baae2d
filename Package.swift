// swift-tools-version:6.0
// libmistral: the engine (MistralEngine), its C ABI (MistralC -> libmistral.so) and the `mistral-cli` tool.
import PackageDescription

// Kernels need a target CPU: without it SIMD FMA loops become calls to fmaf. x86-64-v3 = AVX2 + FMA + F16C.
let kernelFlags: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-march=x86-64-v3"])]

let package = Package(
    name: "mistral",
    products: [
        .library(name: "mistral", type: .dynamic, targets: ["MistralC"]),
        .executable(name: "mistral-cli", targets: ["MistralCLI"]),
    ],
    targets: [
        // libpng (png_image API) and libjpeg-turbo's TurboJPEG API, whose errors come back as return codes
        // (classic libjpeg's error_exit must longjmp, which Swift cannot set up).
        .systemLibrary(name: "CImageCodecs", path: "Sources/CImageCodecs"),
        .target(name: "MistralEngine", dependencies: ["CImageCodecs"], swiftSettings: kernelFlags),
        .systemLibrary(name: "CMistralABI", path: "Sources/CMistralABI"),
        .target(
            name: "MistralC",
            dependencies: ["MistralEngine", "CMistralABI"],
            exclude: ["exports.map"],
            swiftSettings: kernelFlags,
            linkerSettings: [.unsafeFlags([
                "-static-stdlib",
                // lld, not the default gold: gold keeps the engine's cross-module (GOT-referenced) Swift metadata
                // symbols in .dynsym as LOCAL entries with GLOB_DAT relocations even though exports.map hides
                // them; lld resolves those GOT slots with RELATIVE relocations, so only mistral_* remain.
                "-use-ld=lld",
                "-Xlinker", "-soname=libmistral.so.0",
                "-Xlinker", "--version-script=\(Context.packageDirectory)/Sources/MistralC/exports.map",
            ])]
        ),
        .executableTarget(name: "MistralCLI", dependencies: ["MistralEngine"], swiftSettings: kernelFlags),
        // Speed of the Pixtral encoder at real size (a benchmark, not a test): swift run -c release VisionBench
        .executableTarget(name: "VisionBench", dependencies: ["MistralEngine"], path: "bench/VisionBench",
                          swiftSettings: kernelFlags),
        .testTarget(
            name: "MistralEngineTests",
            dependencies: ["MistralEngine"]
        ),
        // libFuzzer harnesses over the C API; Tests/fuzz/run.sh builds them with -sanitize=fuzzer,address. A normal
        // build links a replay main instead (Tests/fuzz/MistralFuzz/Replay.swift).
        .executableTarget(name: "MistralFuzz", dependencies: ["MistralC", "CMistralABI"], path: "Tests/fuzz/MistralFuzz",
                          swiftSettings: kernelFlags),
    ]
)
