// Decoding PNG and JPEG files to packed RGB8, as mistral-common sees them (PIL + _convert_to_rgb): transparency is
// composited onto white with PIL's integer blend, grayscale is replicated, CMYK is converted as PIL does.
// PNG uses libpng's simplified png_image API and JPEG libjpeg-turbo's TurboJPEG API: both catch the libraries'
// errors internally (setjmp inside C) and return a status, so a corrupt file is a thrown MistralError, never a
// call to exit() or abort().
import CImageCodecs
import Glibc

public enum ImageFile {
    public enum Kind: Sendable { case png, jpeg }

    /// The format of `bytes` by its signature, nil when neither PNG nor JPEG.
    public static func detect(_ bytes: UnsafeRawBufferPointer) -> Kind? {
        if bytes.count >= 8, bytes[0] == 0x89, bytes[1] == 0x50, bytes[2] == 0x4E, bytes[3] == 0x47,
           bytes[4] == 0x0D, bytes[5] == 0x0A, bytes[6] == 0x1A, bytes[7] == 0x0A { return .png }
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return .jpeg }
        return nil
    }

    /// Decodes a PNG or JPEG file.
    public static func load(path: String) throws -> RGBImage {
        let file = try MappedFile(path: path)
        do {
            return try decode(UnsafeRawBufferPointer(start: file.base, count: file.size))
        } catch let e as MistralError {
            throw MistralError(e.status, "'\(path)': \(e.message)")
        }
    }

    /// Decodes PNG or JPEG bytes.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> RGBImage {
        switch detect(bytes) {
        case .png: return try decodePNG(bytes)
        case .jpeg: return try decodeJPEG(bytes)
        case nil: throw MistralError.unsupported("not a PNG or JPEG image (unknown signature)")
        }
    }

    public static func decode(_ bytes: [UInt8]) throws -> RGBImage {
        try bytes.withUnsafeBytes { try decode($0) }
    }

    static func checkSize(_ w: Int, _ h: Int) throws {
        guard w > 0, h > 0 else { throw MistralError.format("image has an empty size \(w)x\(h)") }
        guard w <= ImageLimits.maxSide, h <= ImageLimits.maxSide, w * h <= ImageLimits.maxPixels else {
            throw MistralError.invalid("image of \(w)x\(h) pixels is too large (sides up to \(ImageLimits.maxSide), at most \(ImageLimits.maxPixels) pixels)")
        }
    }

    /// PIL's paste-with-mask blend onto white: (255·(255-a) + c·a) / 255 with its rounding.
    @inline(__always)
    static func overWhite(_ c: UInt8, _ a: UInt8) -> UInt8 {
        let t = 255 * (255 - Int(a)) + Int(c) * Int(a) + 128
        return UInt8(truncatingIfNeeded: ((t >> 8) + t) >> 8)
    }

    // MARK: PNG

    static func decodePNG(_ bytes: UnsafeRawBufferPointer) throws -> RGBImage {
        guard let base = bytes.baseAddress else { throw MistralError.format("empty PNG data") }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        func failure(_ what: String) -> MistralError {
            let message = withUnsafeBytes(of: image.message) { raw -> String in
                let chars = raw.prefix(while: { $0 != 0 })
                return String(decoding: chars, as: UTF8.self)
            }
            png_image_free(&image)
            return MistralError.format("corrupt PNG (\(what)): \(message)")
        }
        guard png_image_begin_read_from_memory(&image, base, bytes.count) != 0 else { throw failure("header") }
        let w = Int(image.width), h = Int(image.height)
        do {
            try checkSize(w, h)
            try MemoryBudget.ensure(bytes: w * h * 7, what: "decoding a \(w)x\(h) PNG")  // RGBA + RGB
        } catch { png_image_free(&image); throw error }
        // 8-bit RGBA, not premultiplied; 16-bit samples are taken as sRGB-encoded (scaled, not gamma-converted).
        image.format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
        image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
        let rgbaCount = w * h * 4
        guard let rgba = malloc(rgbaCount) else {
            png_image_free(&image)
            throw MistralError(.outOfMemory, "cannot allocate \(rgbaCount) bytes for a \(w)x\(h) PNG")
        }
        defer { free(rgba) }
        guard png_image_finish_read(&image, nil, rgba, 0, nil) != 0 else { throw failure("pixel data") }
        png_image_free(&image)
        let src = rgba.assumingMemoryBound(to: UInt8.self)
        let pixels = [UInt8](unsafeUninitializedCapacity: w * h * 3) { out, count in
            for i in 0..<(w * h) {
                let a = src[4 * i + 3]
                if a == 255 {
                    out[3 * i] = src[4 * i]; out[3 * i + 1] = src[4 * i + 1]; out[3 * i + 2] = src[4 * i + 2]
                } else {
                    out[3 * i] = overWhite(src[4 * i], a)
                    out[3 * i + 1] = overWhite(src[4 * i + 1], a)
                    out[3 * i + 2] = overWhite(src[4 * i + 2], a)
                }
            }
            count = w * h * 3
        }
        return try RGBImage(width: w, height: h, pixels: pixels)
    }

    // MARK: JPEG

    static func decodeJPEG(_ bytes: UnsafeRawBufferPointer) throws -> RGBImage {
        guard let base = bytes.baseAddress else { throw MistralError.format("empty JPEG data") }
        guard let handle = tjInitDecompress() else {
            throw MistralError(.outOfMemory, "cannot create a JPEG decoder")
        }
        defer { tjDestroy(handle) }
        let data = base.assumingMemoryBound(to: UInt8.self)
        func message() -> String { String(cString: tjGetErrorStr2(handle)) }
        var w: Int32 = 0, h: Int32 = 0, subsamp: Int32 = 0, colorspace: Int32 = 0
        guard tjDecompressHeader3(handle, data, UInt(bytes.count), &w, &h, &subsamp, &colorspace) == 0 else {
            throw MistralError.format("corrupt JPEG header: \(message())")
        }
        let width = Int(w), height = Int(h)
        try checkSize(width, height)
        let cmyk = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        let channels = cmyk ? 4 : 3
        let format = cmyk ? Int32(TJPF_CMYK.rawValue) : Int32(TJPF_RGB.rawValue)
        let count = width * height * channels
        try MemoryBudget.ensure(bytes: count + width * height * 3, what: "decoding a \(width)x\(height) JPEG")
        try JPEGScanBudget.check(bytes, width: width, height: height)
        guard let buffer = malloc(count) else {
            throw MistralError(.outOfMemory, "cannot allocate \(count) bytes for a \(width)x\(height) JPEG")
        }
        defer { free(buffer) }
        let dst = buffer.assumingMemoryBound(to: UInt8.self)
        // LIMITSCANS: a progressive file may have at most 500 scans (each one re-decodes the whole image, so a
        // small file with thousands of scans would take minutes). STOPONWARNING: libjpeg warns when it had to
        // invent pixels (truncated or corrupt entropy data, even when the file ends in an EOI marker); such a file
        // is refused, decided by the library's error code rather than its message text.
        let flags = Int32(TJFLAG_LIMITSCANS | TJFLAG_STOPONWARNING)
        if tjDecompress2(handle, data, UInt(bytes.count), dst, w, 0, h, format, flags) != 0 {
            let kind = tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue) ? "damaged" : "corrupt"
            throw MistralError.format("\(kind) JPEG data: \(message())")
        }
        if !cmyk {
            return try RGBImage(width: width, height: height, pixels: Array(UnsafeBufferPointer(start: dst, count: count)))
        }
        // Adobe CMYK/YCCK JPEGs store inverted CMYK; PIL's CMYK;I -> RGB is then R = C·K/255 (rounded).
        let pixels = [UInt8](unsafeUninitializedCapacity: width * height * 3) { out, n in
            for i in 0..<(width * height) {
                let k = Int(dst[4 * i + 3])
                for ch in 0..<3 {
                    let t = Int(dst[4 * i + ch]) * k + 128
                    out[3 * i + ch] = UInt8(truncatingIfNeeded: ((t >> 8) + t) >> 8)
                }
            }
            n = width * height * 3
        }
        return try RGBImage(width: width, height: height, pixels: pixels)
    }
}
