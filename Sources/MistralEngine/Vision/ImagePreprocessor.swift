// mistral-common's image preprocessing (ImageEncoder + transform_image): scale down so the longest side is at
// most image_size, round each side up to whole tokens (patch * merge pixels), resize with OpenCV's bicubic
// (INTER_CUBIC, a = -0.75, no antialiasing, replicated borders), then /255 and CLIP mean/std, channel-first.
// The resize is separable and streams over source rows: only four resized rows are kept besides the output.
import Glibc

/// Packed 8-bit RGB pixels, row-major, 3 bytes per pixel.
public struct RGBImage: Sendable {
    public let width: Int
    public let height: Int
    public let pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0, width <= ImageLimits.maxSide, height <= ImageLimits.maxSide,
              width * height <= ImageLimits.maxPixels else {
            throw MistralError.invalid("image of \(width)x\(height) pixels is outside the limits (sides 1...\(ImageLimits.maxSide), at most \(ImageLimits.maxPixels) pixels)")
        }
        guard pixels.count == width * height * 3 else {
            throw MistralError.invalid("RGB image of \(width)x\(height) needs \(width * height * 3) bytes, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// Limits on decoded and preprocessed images.
public enum ImageLimits {
    public static let maxSide = 16384
    public static let maxPixels = 100_000_000
}

/// A model-ready image: normalized floats, channel-first (3 x height x width), sides multiples of patch * merge.
public struct PixelImage: Sendable {
    public let width: Int
    public let height: Int
    public let pixels: [Float]

    public init(width: Int, height: Int, pixels: [Float]) throws {
        guard width > 0, height > 0, width <= ImageLimits.maxSide, height <= ImageLimits.maxSide else {
            throw MistralError.invalid("pixel image of \(width)x\(height) is out of range")
        }
        guard pixels.count == 3 * width * height else {
            throw MistralError.invalid("pixel image of \(width)x\(height) needs \(3 * width * height) values, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// Rows and columns of [IMG] tokens of one image (the prompt has `cols` [IMG] then [IMG_BREAK] per row, the last
/// [IMG_BREAK] replaced by [IMG_END]).
public struct ImageTokenGrid: Sendable, Equatable, CustomStringConvertible {
    public let rows: Int
    public let cols: Int
    public init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
    }
    public var count: Int { rows * cols }
    public var description: String { "\(rows)x\(cols)" }
}

public enum ImagePreprocessor {
    /// The resized pixel size and token grid mistral-common picks for a width x height image.
    public static func targetSize(width: Int, height: Int, config: VisionConfig) throws
        -> (width: Int, height: Int, grid: ImageTokenGrid) {
        guard width > 0, height > 0, width <= ImageLimits.maxSide, height <= ImageLimits.maxSide else {
            throw MistralError.invalid("image of \(width)x\(height) pixels is out of range")
        }
        var w = width, h = height
        let maxSize = Double(config.imageSize)
        let ratio = max(Double(h) / maxSize, Double(w) / maxSize)
        if ratio > 1 {
            // Python's round(): halves to even.
            w = max(Int((Double(w) / ratio).rounded(.toNearestOrEven)), 1)
            h = max(Int((Double(h) / ratio).rounded(.toNearestOrEven)), 1)
        }
        let tp = config.tokenPixels
        let cols = (w - 1) / tp + 1, rows = (h - 1) / tp + 1
        return (cols * tp, rows * tp, ImageTokenGrid(rows: rows, cols: cols))
    }

    public static func preprocess(_ image: RGBImage, config: VisionConfig) throws -> PixelImage {
        try image.pixels.withUnsafeBufferPointer {
            try preprocess(rgb: $0, width: image.width, height: image.height, config: config)
        }
    }

    /// Preprocesses packed RGB8 pixels (row-major, 3 bytes per pixel).
    public static func preprocess(rgb: UnsafeBufferPointer<UInt8>, width: Int, height: Int,
                                  config: VisionConfig) throws -> PixelImage {
        let (tw, th, _) = try targetSize(width: width, height: height, config: config)
        guard width * height <= ImageLimits.maxPixels else {
            throw MistralError.invalid("image of \(width)x\(height) has more than \(ImageLimits.maxPixels) pixels")
        }
        guard rgb.count >= width * height * 3, let src = rgb.baseAddress else {
            throw MistralError.invalid("RGB buffer of \(rgb.count) bytes is too small for \(width)x\(height)")
        }
        guard config.imageMean.count == 3, config.imageStd.count == 3 else {
            throw MistralError.invalid("vision config needs 3 mean and std values")
        }
        var out = [Float](repeating: 0, count: 3 * tw * th)
        let plane = tw * th
        let mean = (config.imageMean[0], config.imageMean[1], config.imageMean[2])
        let std = (config.imageStd[0], config.imageStd[1], config.imageStd[2])
        @inline(__always) func store(_ o: UnsafeMutablePointer<Float>, _ idx: Int, _ r: Float, _ g: Float, _ b: Float) {
            o[idx] = (r / 255 - mean.0) / std.0
            o[plane + idx] = (g / 255 - mean.1) / std.1
            o[2 * plane + idx] = (b / 255 - mean.2) / std.2
        }
        if tw == width && th == height {
            // OpenCV copies when the size does not change.
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<plane {
                    store(o.baseAddress!, i, Float(src[3 * i]), Float(src[3 * i + 1]), Float(src[3 * i + 2]))
                }
            }
            return try PixelImage(width: tw, height: th, pixels: out)
        }

        let xTaps = cubicTaps(src: width, dst: tw), yTaps = cubicTaps(src: height, dst: th)
        // Ring of four horizontally resized source rows (interleaved RGB floats), tagged by source row.
        let ring = try allocateZeroed(Float.self, count: 4 * tw * 3, what: "resize rows")
        defer { free(ring) }
        var ringRow = [Int](repeating: -1, count: 4)
        func horizontal(_ sy: Int) -> UnsafeMutablePointer<Float> {
            let slot = sy & 3
            let dst = ring + slot * tw * 3
            if ringRow[slot] == sy { return dst }
            ringRow[slot] = sy
            let row = src + sy * width * 3
            for dx in 0..<tw {
                let t = xTaps[dx]
                var r: Float = 0, g: Float = 0, b: Float = 0
                for j in 0..<4 {
                    let sx = min(max(t.index - 1 + j, 0), width - 1)
                    let wgt = t.weights[j]
                    r += Float(row[3 * sx]) * wgt
                    g += Float(row[3 * sx + 1]) * wgt
                    b += Float(row[3 * sx + 2]) * wgt
                }
                dst[3 * dx] = r
                dst[3 * dx + 1] = g
                dst[3 * dx + 2] = b
            }
            return dst
        }
        out.withUnsafeMutableBufferPointer { o in
            for dy in 0..<th {
                let t = yTaps[dy]
                var rows: [UnsafeMutablePointer<Float>] = []
                rows.reserveCapacity(4)
                for j in 0..<4 { rows.append(horizontal(min(max(t.index - 1 + j, 0), height - 1))) }
                // Each distinct source row maps to its own slot (sy & 3) since the four rows are consecutive
                // (clamped ones repeat an already-present row).
                let w0 = t.weights[0], w1 = t.weights[1], w2 = t.weights[2], w3 = t.weights[3]
                let r0 = rows[0], r1 = rows[1], r2 = rows[2], r3 = rows[3]
                for dx in 0..<tw {
                    var px: (Float, Float, Float) = (0, 0, 0)
                    let i = 3 * dx
                    px.0 = r0[i] * w0 + r1[i] * w1 + r2[i] * w2 + r3[i] * w3
                    px.1 = r0[i + 1] * w0 + r1[i + 1] * w1 + r2[i + 1] * w2 + r3[i + 1] * w3
                    px.2 = r0[i + 2] * w0 + r1[i + 2] * w1 + r2[i + 2] * w2 + r3[i + 2] * w3
                    store(o.baseAddress!, dy * tw + dx, px.0, px.1, px.2)
                }
            }
        }
        return try PixelImage(width: tw, height: th, pixels: out)
    }

    /// OpenCV's source position and 4 weights per destination pixel (taps at index-1 ... index+2).
    static func cubicTaps(src: Int, dst: Int) -> [(index: Int, weights: [Float])] {
        let scale = 1 / (Double(dst) / Double(src))
        let a: Float = -0.75
        var taps: [(index: Int, weights: [Float])] = []
        taps.reserveCapacity(dst)
        for d in 0..<dst {
            var f = Float((Double(d) + 0.5) * scale - 0.5)
            let s = f.rounded(.down)
            f -= s
            let c0 = ((a * (f + 1) - 5 * a) * (f + 1) + 8 * a) * (f + 1) - 4 * a
            let c1 = ((a + 2) * f - (a + 3)) * f * f + 1
            let c2 = ((a + 2) * (1 - f) - (a + 3)) * (1 - f) * (1 - f) + 1
            let c3 = 1 - c0 - c1 - c2
            taps.append((Int(s), [c0, c1, c2, c3]))
        }
        return taps
    }
}
