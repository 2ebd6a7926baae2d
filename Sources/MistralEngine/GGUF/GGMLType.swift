// Tensor element types of GGUF files (ggml's numbering) and their block layout.

public struct GGMLType: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let f32 = GGMLType(rawValue: 0)
    public static let f16 = GGMLType(rawValue: 1)
    public static let q4_0 = GGMLType(rawValue: 2)
    public static let q4_1 = GGMLType(rawValue: 3)
    public static let q8_0 = GGMLType(rawValue: 8)
    public static let bf16 = GGMLType(rawValue: 30)
    public static let q5_0 = GGMLType(rawValue: 6)
    public static let q5_1 = GGMLType(rawValue: 7)
    public static let q2_K = GGMLType(rawValue: 10)
    public static let q3_K = GGMLType(rawValue: 11)
    public static let q4_K = GGMLType(rawValue: 12)
    public static let q5_K = GGMLType(rawValue: 13)
    public static let q6_K = GGMLType(rawValue: 14)

    /// (name, elements per block, bytes per block) for every type whose layout we know, so sizes of any tensor in a
    /// file can be validated even when its type cannot be computed with yet.
    private static let layouts: [UInt32: (String, Int, Int)] = [
        0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
        7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
        12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
        24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 30: ("BF16", 1, 2),
    ]

    public var isKnown: Bool { GGMLType.layouts[rawValue] != nil }
    public var name: String { GGMLType.layouts[rawValue]?.0 ?? "type\(rawValue)" }
    public var blockSize: Int { GGMLType.layouts[rawValue]?.1 ?? 0 }
    public var blockBytes: Int { GGMLType.layouts[rawValue]?.2 ?? 0 }
    public var description: String { name }

    /// Types the matrix kernels can multiply with.
    public var isComputable: Bool { [.f32, .f16, .bf16, .q4_0, .q4_1, .q8_0, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K].contains(self) }


    /// Bytes of a row of `n` elements, nil when n is not a whole number of blocks or the type is unknown.
    public func rowBytes(_ n: Int) -> Int? {
        guard blockSize > 0, n % blockSize == 0 else { return nil }
        let (bytes, overflow) = (n / blockSize).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }
}
