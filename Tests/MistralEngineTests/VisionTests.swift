// The Pixtral vision encoder, projector and image preprocessing against the tiny-s reference (transformers f32
// forward, mistral-common preprocessing), from every checkpoint layout.
import Foundation
import XCTest
import MistralEngine
import MistralKernels

final class VisionTests: XCTestCase {
    static let cases = ["img1", "img2", "img3", "img1_img2"]
    var tiny: String { TestPaths.fixtures + "/tiny-s" }

    func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count, "length mismatch")
        guard a.count == b.count, !a.isEmpty else { return .infinity }
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// File names and pixel sizes of a case's images (meta.json).
    func images(_ name: String) throws -> [(file: String, hfHeight: Int, hfWidth: Int)] {
        let meta = try loadJSON("tiny-s/reference/\(name)/meta.json")
        let files = (meta["images"] as? [[String: Any]] ?? []).compactMap { $0["file"] as? String }
        let sizes = (meta["image_sizes_hf"] as? [[Any]] ?? []).map { $0.compactMap { ($0 as? NSNumber)?.intValue } }
        XCTAssertEqual(files.count, sizes.count)
        return zip(files, sizes).map { ($0, $1[0], $1[1]) }
    }

    /// The token grids implied by the prompt: runs of [IMG]=10 split by [IMG_BREAK]=12, ended by [IMG_END]=13.
    func promptGrids(_ name: String) throws -> [ImageTokenGrid] {
        let ids = int32s(try loadJSON("tiny-s/reference/\(name)/meta.json")["prompt_ids"])
        var grids: [ImageTokenGrid] = []
        var rows = 0, run = 0, cols = -1
        for id in ids {
            switch id {
            case 10: run += 1
            case 12, 13:
                if cols == -1 { cols = run } else { XCTAssertEqual(run, cols, "ragged image rows in \(name)") }
                rows += 1
                run = 0
                if id == 13 {
                    grids.append(ImageTokenGrid(rows: rows, cols: cols))
                    rows = 0
                    cols = -1
                }
            default: break
            }
        }
        return grids
    }

    /// The HF model input of each image of a case, cropped from the (zero-padded) batch.
    func hfPixels(_ name: String) throws -> [PixelImage] {
        let (shape, values) = try loadNpy("tiny-s/reference/\(name)/pixel_values_hf.npy")
        let imgs = try images(name)
        XCTAssertEqual(shape.count, 4)
        XCTAssertEqual(shape[0], imgs.count)
        let H = shape[2], W = shape[3]
        return try imgs.enumerated().map { i, img in
            var px = [Float]()
            for c in 0..<3 {
                for y in 0..<img.hfHeight {
                    let base = ((i * 3 + c) * H + y) * W
                    px.append(contentsOf: values[base..<base + img.hfWidth])
                }
            }
            return try PixelImage(width: img.hfWidth, height: img.hfHeight, pixels: px)
        }
    }

    func hfConfig() throws -> VisionConfig {
        let data = try Data(contentsOf: URL(fileURLWithPath: tiny + "/hf/config.json"))
        let json = try data.withUnsafeBytes { try JSON.parse($0, what: "config.json") }
        return try VisionConfig.fromHuggingFace(json)
    }

    // MARK: preprocessing

    func testPreprocessingMatchesMistralCommon() throws {
        let config = try hfConfig()
        XCTAssertEqual(config.imageSize, 112)
        XCTAssertEqual(config.patchSize, 14)
        for name in Self.cases {
            let imgs = try images(name)
            let grids = try promptGrids(name)
            XCTAssertEqual(grids.count, imgs.count, name)
            for (i, img) in imgs.enumerated() {
                let rgb = try ImageFile.load(path: tiny + "/reference/" + img.file)
                let pre = try ImagePreprocessor.preprocess(rgb, config: config)
                let (shape, ref) = try loadNpy("tiny-s/reference/\(name)/pixel_values_mistral_common_\(i).npy")
                XCTAssertEqual([pre.height, pre.width], [shape[2], shape[3]], "\(name) image \(i) size")
                let target = try ImagePreprocessor.targetSize(width: rgb.width, height: rgb.height, config: config)
                XCTAssertEqual(target.grid, grids[i], "\(name) image \(i) token grid")
                XCTAssertEqual(target.grid, ImageTokenGrid(rows: shape[2] / 28, cols: shape[3] / 28))
                let d = maxAbsDiff(pre.pixels, ref)
                print("preprocess \(name)[\(i)] \(rgb.width)x\(rgb.height) -> \(pre.width)x\(pre.height): max |diff| = \(d)")
                // img1 is not resized: exact up to float rounding; resized ones match OpenCV to ~4e-5 (the brief allows 0.03).
                XCTAssertLessThan(d, img.file.hasPrefix("img1") ? 1e-5 : 1e-3, "\(name) image \(i)")
            }
        }
    }

    func testTargetSizes() throws {
        var c = try hfConfig()
        c.imageSize = 1540
        // mistral-common: 6000x4000 -> ratio 3.896 -> 1540x1027 -> 55x37 tokens of 28 pixels.
        let big = try ImagePreprocessor.targetSize(width: 6000, height: 4000, config: c)
        XCTAssertEqual(big.grid, ImageTokenGrid(rows: 37, cols: 55))
        XCTAssertEqual([big.width, big.height], [1540, 1036])
        // An extreme aspect ratio keeps at least one pixel (one token) on the short side.
        let thin = try ImagePreprocessor.targetSize(width: 16000, height: 3, config: c)
        XCTAssertEqual(thin.grid, ImageTokenGrid(rows: 1, cols: 55))
        XCTAssertThrowsError(try ImagePreprocessor.targetSize(width: 0, height: 10, config: c))
        XCTAssertThrowsError(try ImagePreprocessor.targetSize(width: 20000, height: 10, config: c))
    }

    func testLargeImageStreamsWithoutHugeCopies() throws {
        var c = try hfConfig()
        c.imageSize = 1540
        let w = 6000, h = 4000
        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w { rgb[(y * w + x) * 3] = UInt8(truncatingIfNeeded: x); rgb[(y * w + x) * 3 + 1] = UInt8(truncatingIfNeeded: y) } }
        let image = try RGBImage(width: w, height: h, pixels: rgb)
        let pre = try ImagePreprocessor.preprocess(image, config: c)
        XCTAssertEqual([pre.width, pre.height], [1540, 1036])
        XCTAssertEqual(pre.pixels.count, 3 * 1540 * 1036)
        XCTAssertTrue(pre.pixels.allSatisfy { $0.isFinite })
        // Blue is 0 everywhere: (0 - mean) / std.
        XCTAssertEqual(pre.pixels[2 * 1540 * 1036 + 777], (0 - 0.40821073) / 0.27577711, accuracy: 1e-6)
    }

    // MARK: image files

    func testPNGDecodeAndErrors() throws {
        let path = tiny + "/reference/img1_84x56.png"
        let rgb = try ImageFile.load(path: path)
        XCTAssertEqual([rgb.width, rgb.height], [84, 56])
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let again = try ImageFile.decode(bytes)
        XCTAssertEqual(again.pixels, rgb.pixels)
        // Truncated data, a corrupted chunk, and garbage are errors, not crashes.
        XCTAssertThrowsError(try ImageFile.decode(Array(bytes.prefix(bytes.count / 2)))) { e in
            XCTAssertEqual((e as? MistralError)?.status, .format)
        }
        var corrupt = bytes
        for i in 40..<min(80, corrupt.count) { corrupt[i] ^= 0x5A }
        XCTAssertThrowsError(try ImageFile.decode(corrupt))
        XCTAssertThrowsError(try ImageFile.decode([UInt8](repeating: 7, count: 100))) { e in
            XCTAssertEqual((e as? MistralError)?.status, .unsupported)
        }
        XCTAssertThrowsError(try ImageFile.load(path: tiny + "/no-such.png")) { e in
            XCTAssertEqual((e as? MistralError)?.status, .io)
        }
        // A header announcing 20000 x 20000 is refused before any allocation.
        var huge = Array(bytes.prefix(33))
        huge[16...19] = [0, 0, 0x4E, 0x20]
        huge[20...23] = [0, 0, 0x4E, 0x20]
        XCTAssertThrowsError(try ImageFile.decode(huge))
    }


    // 16x8 flat-color JPEGs written by libjpeg-turbo's tjCompress2 (quality 95): RGB (200, 40, 90) 4:4:4,
    // grayscale 77, and Adobe CMYK (200, 100, 50, 180), which PIL reads as inverted CMYK -> RGB = C·K/255.
    static let jpegRGB = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAIBAQEBAQIBAQECAgICAgQDAgICAgUEBAMEBgUGBgYFBgYGBwkIBgcJBwYGCAsICQoKCgoKBggLDAsKDAkKCgr/2wBDAQICAgICAgUDAwUKBwYHCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgr/wAARCAAIABADAREAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwD53rnP9MAoA//Z"
    static let jpegGray = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAIBAQEBAQIBAQECAgICAgQDAgICAgUEBAMEBgUGBgYFBgYGBwkIBgcJBwYGCAsICQoKCgoKBggLDAsKDAkKCgr/wAALCAAIABABAREA/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/9oACAEBAAA/APjOiv/Z"
    static let jpegCMYK = "/9j/7gAOQWRvYmUAZAAAAAAC/9sAQwACAQEBAQECAQEBAgICAgIEAwICAgIFBAQDBAYFBgYGBQYGBgcJCAYHCQcGBggLCAkKCgoKCgYICwwLCgwJCgoK/9sAQwECAgICAgIFAwMFCgcGBwoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoK/8AAFAgACAAQBAERAAIRAQMRAQQRAP/EAB8AAAEFAQEBAQEBAAAAAAAAAAABAgMEBQYHCAkKC//EALUQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5+v/EAB8BAAMBAQEBAQEBAQEAAAAAAAABAgMEBQYHCAkKC//EALURAAIBAgQEAwQHBQQEAAECdwABAgMRBAUhMQYSQVEHYXETIjKBCBRCkaGxwQkjM1LwFWJy0QoWJDThJfEXGBkaJicoKSo1Njc4OTpDREVGR0hJSlNUVVZXWFlaY2RlZmdoaWpzdHV2d3h5eoKDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uLj5OXm5+jp6vLz9PX29/j5+v/aAA4EAQACEQMRBAAAPwC5X9UH8Tn2hRQAV//Z"

    func testJPEGDecodeAndErrors() throws {
        func decode(_ b64: String) throws -> RGBImage {
            guard let data = Data(base64Encoded: b64) else { throw MistralError(.format, "bad base64") }
            return try ImageFile.decode([UInt8](data))
        }
        func check(_ img: RGBImage, _ rgb: (Float, Float, Float), _ tol: Float, _ what: String) {
            XCTAssertEqual([img.width, img.height], [16, 8], what)
            var worst: Float = 0
            for i in 0..<(img.width * img.height) {
                worst = max(worst, abs(Float(img.pixels[3 * i]) - rgb.0), abs(Float(img.pixels[3 * i + 1]) - rgb.1),
                            abs(Float(img.pixels[3 * i + 2]) - rgb.2))
            }
            XCTAssertLessThanOrEqual(worst, tol, what)
        }
        check(try decode(Self.jpegRGB), (200, 40, 90), 3, "RGB JPEG")
        check(try decode(Self.jpegGray), (77, 77, 77), 1, "grayscale JPEG")
        check(try decode(Self.jpegCMYK), (200 * 180 / 255, 100 * 180 / 255, 50 * 180 / 255), 3, "CMYK JPEG")
        guard let good = Data(base64Encoded: Self.jpegRGB) else { return XCTFail("base64") }
        let bytes = [UInt8](good)
        // Truncated (no entropy data / no EOI), a corrupted header, garbage after the SOI marker: errors.
        XCTAssertThrowsError(try ImageFile.decode(Array(bytes.prefix(bytes.count - 12)))) { e in
            XCTAssertEqual((e as? MistralError)?.status, .format)
        }
        XCTAssertThrowsError(try ImageFile.decode(Array(bytes.prefix(200))))
        XCTAssertThrowsError(try ImageFile.decode([0xFF, 0xD8, 0xFF] + [UInt8](repeating: 0x42, count: 64)))
        var badHeader = bytes
        for i in 20..<60 { badHeader[i] = 0xFF }
        XCTAssertThrowsError(try ImageFile.decode(badHeader))
    }

    // MARK: encoder

    /// The encoder on every CPU path the machine has (AVX-512: flash attention and the packed GEMM's zmm kernels;
    /// AVX2: FMA kernels and the full-softmax attention; generic: the plain references) in f32 mode within
    /// `tolerance` of transformers, and in bf16-compute mode within `bf16Tolerance` (where the CPU has AVX-512 BF16).
    func checkEncoder(_ weights: PixtralWeights, tolerance: Float, label: String, bf16Tolerance: Float = 3e-2) throws {
        defer { KernelDispatch.use(KernelPath.selected) }
        let skipped = KernelPath.allCases.filter { !KernelPath.available.contains($0) }
        if !skipped.isEmpty { print("vision \(label): paths this CPU lacks, skipped: \(skipped)") }
        for path in KernelPath.available {
            XCTAssertTrue(KernelDispatch.use(path))
            for mode in FloatGEMMCompute.allCases where mode == .f32 || mode.effective == .bf16 {
                try checkEncoder(weights, tolerance: mode == .f32 ? tolerance : bf16Tolerance,
                                 label: "\(label) \(path) \(mode)", compute: mode)
            }
        }
    }

    func checkEncoder(_ weights: PixtralWeights, tolerance: Float, label: String, compute: FloatGEMMCompute) throws {
        let encoder = try PixtralEncoder(weights: weights, threads: 2, compute: compute)
        for name in Self.cases {
            let pixels = try hfPixels(name)
            let grids = try promptGrids(name)
            XCTAssertEqual(try pixels.map { try encoder.tokenGrid($0) }, grids, "\(label) \(name) grids")
            let trace = try encoder.encodeWithTrace(pixels)
            let tower = try loadNpy("tiny-s/reference/\(name)/vision_tower_out.npy").values
            let merger = try loadNpy("tiny-s/reference/\(name)/patch_merger_out.npy").values
            let projector = try loadNpy("tiny-s/reference/\(name)/projector_out.npy").values
            let dt = maxAbsDiff(trace.visionTower, tower)
            let dm = maxAbsDiff(trace.patchMerger, merger)
            let dp = maxAbsDiff(trace.projector, projector)
            print("vision \(label) \(name): tower \(dt), merger \(dm), projector \(dp)")
            XCTAssertLessThan(dt, tolerance, "\(label) \(name) vision tower")
            XCTAssertLessThan(dm, tolerance, "\(label) \(name) patch merger")
            XCTAssertLessThan(dp, tolerance, "\(label) \(name) projector")
            // The allocation-free entry point writes the same rows.
            var rows = [Float](repeating: .nan, count: trace.projector.count)
            let n = try rows.withUnsafeMutableBufferPointer {
                try encoder.encode(pixels, into: $0.baseAddress!, capacityRows: grids.reduce(0) { $0 + $1.count })
            }
            XCTAssertEqual(n, grids.reduce(0) { $0 + $1.count })
            XCTAssertEqual(rows, trace.projector)
        }
    }

    func testEncoderHuggingFace() throws {
        let w = try PixtralWeights(path: tiny + "/hf")
        XCTAssertEqual(w.layout, .huggingFace(prefix: ""))
        XCTAssertEqual(w.config.projectionDim, 64)
        try checkEncoder(w, tolerance: 1e-3, label: "hf")
    }

    func testEncoderNative() throws {
        let w = try PixtralWeights(path: tiny + "/native")
        XCTAssertEqual(w.layout, .native)
        XCTAssertEqual(w.config, try hfConfig().with { $0.imageBreakTokenId = 12; $0.imageEndTokenId = 13 })
        try checkEncoder(w, tolerance: 1e-3, label: "native")
    }

    func testEncoderMmprojF32() throws {
        let w = try PixtralWeights(path: tiny + "/gguf/mmproj-tiny-s-f32.gguf")
        XCTAssertEqual(w.layout, .gguf)
        XCTAssertEqual(w.imageBreakEmbedding?.count, 64)
        try checkEncoder(w, tolerance: 1e-3, label: "mmproj-f32")
    }

    func testEncoderMmprojF16() throws {
        let w = try PixtralWeights(path: tiny + "/gguf/mmproj-tiny-s-f16.gguf")
        try checkEncoder(w, tolerance: 1e-2, label: "mmproj-f16")
    }

    func testEncoderRejectsBadInput() throws {
        let w = try PixtralWeights(path: tiny + "/hf")
        let encoder = try PixtralEncoder(weights: w, threads: 1)
        // Not a multiple of 28 pixels, too many patches, wrong value count.
        XCTAssertThrowsError(try encoder.encode([try PixelImage(width: 30, height: 28, pixels: .init(repeating: 0, count: 3 * 30 * 28))]))
        XCTAssertThrowsError(try encoder.encode([try PixelImage(width: 336, height: 56, pixels: .init(repeating: 0, count: 3 * 336 * 56))]))
        XCTAssertThrowsError(try PixelImage(width: 28, height: 28, pixels: [0]))
        var small = [Float](repeating: 0, count: 64)
        XCTAssertThrowsError(try small.withUnsafeMutableBufferPointer {
            try encoder.encode([try PixelImage(width: 56, height: 28, pixels: .init(repeating: 0, count: 3 * 56 * 28))],
                               into: $0.baseAddress!, capacityRows: 1)
        }) { e in XCTAssertEqual((e as? MistralError)?.status, .bufferTooSmall) }
        // A tensor missing from the checkpoint is a format error.
        let st = try SafetensorsFile(path: tiny + "/hf/model.safetensors")
        var tensors = st.tensors
        tensors["vision_tower.ln_pre.weight"] = nil
        XCTAssertThrowsError(try PixtralWeights(tensors: tensors, layout: .huggingFace(prefix: ""), config: w.config))
    }
}

extension VisionConfig {
    func with(_ change: (inout VisionConfig) -> Void) -> VisionConfig {
        var c = self
        change(&c)
        return c
    }
}
