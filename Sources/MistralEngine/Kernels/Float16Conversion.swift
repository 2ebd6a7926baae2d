// Scalar half/bfloat16 conversions written so LLVM can vectorize the loops that use them (F16C/AVX2).

@inline(__always)
func halfToFloat(_ h: UInt16) -> Float { Float(Float16(bitPattern: h)) }

@inline(__always)
func bf16ToFloat(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

@inline(__always)
func floatToHalf(_ f: Float) -> UInt16 { Float16(f).bitPattern }
