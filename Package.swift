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
        .target(name: "MistralEngine", swiftSettings: kernelFlags),
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
        .testTarget(
            name: "MistralEngineTests",
            dependencies: ["MistralEngine"]
        ),
    ]
)
