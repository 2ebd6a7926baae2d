// mistral_image_*, mistral_image_embed, mistral_image_token_grid, mistral_model_has_vision.
import CMistralABI
import Glibc
import MistralEngine

/// What a mistral_image handle points to: decoded pixels plus a content hash (prefix reuse tells images apart by it).
final class ImageHandle {
    let image: RGBImage
    let contentHash: UInt64

    init(_ image: RGBImage) {
        self.image = image
        var h: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a over size and pixels
        for v in [UInt64(image.width), UInt64(image.height)] { h = (h ^ v) &* 0x100_0000_01B3 }
        for b in image.pixels { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        contentHash = h == 0 ? 1 : h
    }
}

func imageHandle(_ p: OpaquePointer?) -> ImageHandle? {
    guard let p else { return nil }
    return Unmanaged<ImageHandle>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue()
}

func publish(_ image: RGBImage, _ out: UnsafeMutablePointer<OpaquePointer?>) {
    out.pointee = OpaquePointer(Unmanaged.passRetained(ImageHandle(image)).toOpaque())
}

@_cdecl("mistral_image_load_file")
public func mistral_image_load_file(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mistral_status {
    out?.pointee = nil
    return guarded {
        let out = try require(out, "out_image")
        publish(try ImageFile.load(path: String(cString: try require(path, "path"))), out)
    }
}

@_cdecl("mistral_image_load_memory")
public func mistral_image_load_memory(_ data: UnsafeRawPointer?, _ len: Int,
                                      _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mistral_status {
    out?.pointee = nil
    return guarded {
        let out = try require(out, "out_image")
        guard len > 0, len <= maxTextBytes else { throw invalid("len \(len) is out of range") }
        publish(try ImageFile.decode(UnsafeRawBufferPointer(start: try require(data, "data"), count: len)), out)
    }
}

@_cdecl("mistral_image_from_rgb")
public func mistral_image_from_rgb(_ rgb: UnsafePointer<UInt8>?, _ width: UInt32, _ height: UInt32,
                                   _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mistral_status {
    out?.pointee = nil
    return guarded {
        let out = try require(out, "out_image")
        publish(try rgbImage(rgb, width, height), out)
    }
}

/// Validates dimensions before touching the caller's pixels, then copies them.
func rgbImage(_ rgb: UnsafePointer<UInt8>?, _ width: UInt32, _ height: UInt32) throws -> RGBImage {
    let w = Int(width), h = Int(height)
    guard w > 0, h > 0, w <= ImageLimits.maxSide, h <= ImageLimits.maxSide, w * h <= ImageLimits.maxPixels else {
        throw invalid("image of \(w)x\(h) pixels is out of range (1...\(ImageLimits.maxSide) per side, at most \(ImageLimits.maxPixels) pixels)")
    }
    let pixels = Array(UnsafeBufferPointer(start: try require(rgb, "rgb"), count: w * h * 3))
    return try RGBImage(width: w, height: h, pixels: pixels)
}

@_cdecl("mistral_image_free")
public func mistral_image_free(_ image: OpaquePointer?) {
    guard let image else { return }
    Unmanaged<ImageHandle>.fromOpaque(UnsafeRawPointer(image)).release()
}

@_cdecl("mistral_image_width")
public func mistral_image_width(_ image: OpaquePointer?) -> UInt32 { UInt32(clamping: imageHandle(image)?.image.width ?? 0) }

@_cdecl("mistral_image_height")
public func mistral_image_height(_ image: OpaquePointer?) -> UInt32 { UInt32(clamping: imageHandle(image)?.image.height ?? 0) }

@_cdecl("mistral_image_rgb")
public func mistral_image_rgb(_ image: OpaquePointer?) -> UnsafePointer<UInt8>? {
    // The pixels live in the handle's immutable array, which stays allocated until mistral_image_free.
    imageHandle(image)?.image.pixels.withUnsafeBufferPointer { $0.baseAddress }
}

@_cdecl("mistral_model_has_vision")
public func mistral_model_has_vision(_ model: OpaquePointer?) -> Int32 {
    modelHandle(model)?.model.vision != nil ? 1 : 0
}

@_cdecl("mistral_image_token_grid")
public func mistral_image_token_grid(_ model: OpaquePointer?, _ width: UInt32, _ height: UInt32,
                                     _ rows: UnsafeMutablePointer<UInt32>?, _ cols: UnsafeMutablePointer<UInt32>?) -> mistral_status {
    guarded {
        let m = try require(modelHandle(model), "model").model
        let rows = try require(rows, "rows"), cols = try require(cols, "cols")
        let grid = try m.imageGrid(width: Int(width), height: Int(height))
        rows.pointee = UInt32(clamping: grid.rows)
        cols.pointee = UInt32(clamping: grid.cols)
    }
}

@_cdecl("mistral_image_embed")
public func mistral_image_embed(_ model: OpaquePointer?, _ rgb: UnsafePointer<UInt8>?, _ width: UInt32, _ height: UInt32,
                                _ out: UnsafeMutablePointer<Float>?, _ capacity: Int,
                                _ nRows: UnsafeMutablePointer<Int>?) -> mistral_status {
    guarded {
        let m = try require(modelHandle(model), "model").model
        let nRows = try require(nRows, "n_rows")
        nRows.pointee = 0
        guard m.vision != nil, let c = m.config else { throw MistralError(.unsupported, "this model has no vision encoder") }
        let grid = try m.imageGrid(width: Int(width), height: Int(height))
        nRows.pointee = grid.count
        guard grid.count <= capacity else {
            throw MistralError(.bufferTooSmall, "the image needs \(grid.count) rows, capacity is \(capacity)")
        }
        let out = try require(out, "out")
        let rows = try m.embedImages([try rgbImage(rgb, width, height)])
        guard !rows.isEmpty, rows.count == grid.count * c.nEmbd else {
            throw MistralError(.internal, "encoder row count mismatch")
        }
        rows.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: rows.count) }
    }
}
