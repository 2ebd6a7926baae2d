// swift-tools-version:6.0
// libmistral: the engine (MistralEngine), its C ABI (MistralC -> libmistral.so) and the `mistral-cli` tool.
import PackageDescription

// Kernels need a target CPU: without it SIMD FMA loops become calls to fmaf. x86-64-v3 = AVX2 + FMA + F16C.
let kernelFlags: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-march=x86-64-v3"])]
// Only the AVX-512 kernel target is built for AVX-512 (x86-64-v4 + VNNI + BF16); its code runs only after the
// run-time dispatcher (KernelPath) found those features, so nothing else may be auto-vectorized with them.
let avx512Flags: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-march=x86-64-v4", "-Xcc", "-mavx512vnni",
                                                 "-Xcc", "-mavx512bf16"])]

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
        // What the CPU supports (__builtin_cpu_supports, callable from C only).
        .systemLibrary(name: "CCPUFeatures", path: "Sources/CCPUFeatures"),
        // AVX-512 BF16 intrinsics with integer-vector signatures (Swift cannot import __bf16 vector types).
        .systemLibrary(name: "CBF16Intrinsics", path: "Sources/CBF16Intrinsics"),
        // Quantized matrix kernels: activation formats, plain-Swift references, AVX2; one file per (family, ISA).
        .target(name: "MistralKernels", dependencies: ["CCPUFeatures"], swiftSettings: kernelFlags),
        .target(name: "MistralKernelsAVX512", dependencies: ["MistralKernels", "CBF16Intrinsics"], swiftSettings: avx512Flags),
        .target(name: "MistralEngine", dependencies: ["CImageCodecs", "MistralKernels", "MistralKernelsAVX512"],
                swiftSettings: kernelFlags),
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
        .executableTarget(name: "VisionBench", dependencies: ["MistralEngine", "MistralKernels"], path: "bench/VisionBench",
                          swiftSettings: kernelFlags),
        // Speed of each quantized kernel on each CPU path (a benchmark, not a test): swift run -c release KernelBench
        .executableTarget(name: "KernelBench", dependencies: ["MistralEngine", "MistralKernels"], path: "bench/KernelBench",
                          swiftSettings: kernelFlags),
        .testTarget(
            name: "MistralEngineTests",
            dependencies: ["MistralEngine", "MistralKernels", "MistralKernelsAVX512"]
        ),
        // libFuzzer harnesses over the C API; Tests/fuzz/run.sh builds them with -sanitize=fuzzer,address. A normal
        // build links a replay main instead (Tests/fuzz/MistralFuzz/Replay.swift).
        .executableTarget(name: "MistralFuzz", dependencies: ["MistralC", "CMistralABI", "MistralEngine"], path: "Tests/fuzz/MistralFuzz",
                          swiftSettings: kernelFlags),
    ]
)
