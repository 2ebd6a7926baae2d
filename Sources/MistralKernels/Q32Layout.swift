// Where each 32-value-block type keeps its fields, as a type so every fast kernel is compiled once per
// weight type with its branches folded.

public protocol Q32Layout {
    /// Bytes per block.
    static var bytes: Int { get }
    /// An f16 m at byte 2 (value q·d + m); otherwise value (q - offset)·d.
    static var min: Bool { get }
    /// 8 (Q4_0), 16 (Q5_0), 0 otherwise.
    static var offset: Float { get }
    /// Byte offset of the u32 of fifth bits (bit j = value j), 0 when none.
    static var qh: Int { get }
    /// Byte offset of the 16 nibble bytes, or of Q8_0's 32 signed bytes.
    static var qs: Int { get }
    /// Q8_0: qs are signed bytes.
    static var int8: Bool { get }
}

public enum Q4_0Layout: Q32Layout {
    public static var bytes: Int { 18 }
    public static var min: Bool { false }
    public static var offset: Float { 8 }
    public static var qh: Int { 0 }
    public static var qs: Int { 2 }
    public static var int8: Bool { false }
}

public enum Q4_1Layout: Q32Layout {
    public static var bytes: Int { 20 }
    public static var min: Bool { true }
    public static var offset: Float { 0 }
    public static var qh: Int { 0 }
    public static var qs: Int { 4 }
    public static var int8: Bool { false }
}

public enum Q5_0Layout: Q32Layout {
    public static var bytes: Int { 22 }
    public static var min: Bool { false }
    public static var offset: Float { 16 }
    public static var qh: Int { 2 }
    public static var qs: Int { 6 }
    public static var int8: Bool { false }
}

public enum Q5_1Layout: Q32Layout {
    public static var bytes: Int { 24 }
    public static var min: Bool { true }
    public static var offset: Float { 0 }
    public static var qh: Int { 4 }
    public static var qs: Int { 8 }
    public static var int8: Bool { false }
}

public enum Q8_0Layout: Q32Layout {
    public static var bytes: Int { 34 }
    public static var min: Bool { false }
    public static var offset: Float { 0 }
    public static var qh: Int { 0 }
    public static var qs: Int { 2 }
    public static var int8: Bool { true }
}
