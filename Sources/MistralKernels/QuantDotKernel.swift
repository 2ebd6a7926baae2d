// The one shape every quantized matrix kernel has, whatever its weight type and instruction set:
//     y[t * yStride + r] = Σ_c W[r, c] · x[t, c]   for r in rows, t in tokens,
// with W's rows in the file's blocks (rowBytes apart) and x quantized to the type's ActivationFormat.
// A kernel keeps one weight row's unpacked values in registers while it serves up to 4 tokens, so a prompt
// batch costs one weight unpack per 4 tokens; with one token it is the decode matrix-vector product.

public typealias QuantDotKernel = (_ w: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>,
                                   _ x: ActivationView, _ tokens: Range<Int>,
                                   _ y: UnsafeMutablePointer<Float>, _ yStride: Int) -> Void

/// A weight type's kernel on one instruction set, with the activation format it expects.
public struct QuantKernel: @unchecked Sendable {  // a plain function value, immutable
    public let format: ActivationFormat
    public let dot: QuantDotKernel
    public init(_ format: ActivationFormat, _ dot: @escaping QuantDotKernel) {
        self.format = format
        self.dot = dot
    }
}

/// Weight types by their ggml numbers (this module cannot see the engine's GGMLType).
public enum QuantType: UInt32, Sendable, CaseIterable {
    case q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14

    public var blockSize: Int { rawValue >= 10 ? 256 : 32 }
    public var blockBytes: Int {
        switch self {
        case .q4_0: 18
        case .q4_1: 20
        case .q5_0: 22
        case .q5_1: 24
        case .q8_0: 34
        case .q2_K: 84
        case .q3_K: 110
        case .q4_K: 144
        case .q5_K: 176
        case .q6_K: 210
        }
    }
    public var activationFormat: ActivationFormat { rawValue >= 10 ? .q8_K : .q8_0 }
}

/// f16 bits to f32 (F16C's vcvtph2ps under x86-64-v3).
@inline(__always) public func kernelHalf(_ p: UnsafeRawPointer) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self)))
}

/// Tokens per register tile, as a type so each kernel is compiled once per width with its branches folded.
public protocol TokenTile { static var width: Int { get } }
public enum OneToken: TokenTile { public static var width: Int { 1 } }
public enum FourTokens: TokenTile { public static var width: Int { 4 } }
public enum EightTokens: TokenTile { public static var width: Int { 8 } }

/// Calls body(row, firstToken, FourTokens) over groups of 4 tokens, then body(row, token, OneToken) for the rest.
@inline(__always)
public func forEachTile(_ rows: Range<Int>, _ tokens: Range<Int>, four: (Int, Int) -> Void, one: (Int, Int) -> Void) {
    var t = tokens.lowerBound
    while t &+ 4 <= tokens.upperBound {
        for r in rows { four(r, t) }
        t &+= 4
    }
    while t < tokens.upperBound {
        for r in rows { one(r, t) }
        t &+= 1
    }
}
