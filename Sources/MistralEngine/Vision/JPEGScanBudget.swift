// Decode-time budget of a JPEG: a progressive file re-reads the whole coefficient array once per scan, so a small
// file that declares a large image and many scans can take minutes. Counting the scans is one pass over the bytes
// (marker segments are skipped by their lengths), done before anything is decoded.

enum JPEGScanBudget {
    /// Most pixels x scans a JPEG may ask for: 100-megapixel images with up to 21 scans, or 12-megapixel photos with
    /// up to 178; libjpeg's progressive script has 10 and a baseline file 1. About 20 s on one core at worst.
    static let maxPixelScans = 1 << 31

    /// Start-of-scan markers in `b`, stopping at EOI or at the first malformed marker (libjpeg reports those).
    static func scanCount(_ b: UnsafeRawBufferPointer) -> Int {
        let n = b.count
        var i = 2, scans = 0
        while i + 1 < n {
            guard b[i] == 0xFF else { return scans }
            let m = b[i + 1]
            if m == 0xFF { i += 1; continue }                                  // fill byte before a marker
            if m == 0xD9 { return scans }                                      // EOI
            if m == 0x01 || (0xD0...0xD7).contains(m) { i += 2; continue }     // TEM, RSTn: no length field
            guard i + 3 < n else { return scans }
            let length = Int(b[i + 2]) << 8 | Int(b[i + 3])
            guard length >= 2 else { return scans }
            i += 2 + length
            if m == 0xDA {
                scans += 1
                // entropy-coded data: up to the next 0xFF that is neither a stuffed 0x00 nor an RSTn marker
                while i + 1 < n && !(b[i] == 0xFF && b[i + 1] != 0 && !(0xD0...0xD7).contains(b[i + 1])) { i += 1 }
            }
        }
        return scans
    }

    /// Throws when decoding width x height pixels over the file's scans would exceed the budget.
    static func check(_ b: UnsafeRawBufferPointer, width: Int, height: Int) throws {
        let scans = scanCount(b)
        let (work, overflow) = (width * height).multipliedReportingOverflow(by: max(scans, 1))
        guard !overflow, work <= maxPixelScans else {
            throw MistralError.format("JPEG of \(width)x\(height) pixels has \(scans) scans: more decoding work than the budget of \(maxPixelScans) pixel-scans")
        }
    }
}
