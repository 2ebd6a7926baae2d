// Speed of each quantized kernel on each instruction-set path this CPU has (a benchmark, not a test):
//     swift run -c release KernelBench [rows] [cols] [threads] [types, e.g. Q4_0,Q6_K]
// Random blocks (valid f16 scales) of a rows x cols matrix; decode = 1 token (weights streamed from memory:
// GB/s of weight bytes), batch4 / batch8 = 4 / 8 tokens (a batched decode step of 4 / 8 sessions: GB/s of weight
// bytes, with the matrix larger than the caches still from memory), prompt = 64 tokens (GMAC/s). Best of 5.
import Glibc
import MistralEngine
import MistralKernels

let args = CommandLine.arguments
let rows = args.count > 1 ? Int(args[1]) ?? 8192 : 8192
let cols = args.count > 2 ? Int(args[2]) ?? 5120 : 5120
let threads = args.count > 3 ? Int(args[3]) ?? 1 : 1
let only: Set<String>? = args.count > 4 ? Set(args[4].split(separator: ",").map { $0.uppercased() }) : nil

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

struct XorShift {
    var s: UInt64 = 0x9E37_79B9_7F4A_7C15
    mutating func next() -> UInt64 {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17
        return s
    }
}
var rng = XorShift()
@MainActor func rnd() -> UInt64 { rng.next() }

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }

/// Offsets of the f16 scale fields inside one block of each type.
@MainActor func halfFields(_ t: QuantType) -> [Int] {
    switch t {
    case .q4_0, .q5_0, .q8_0: [0]
    case .q4_1, .q5_1: [0, 2]
    case .q2_K: [80, 82]
    case .q3_K: [108]
    case .q4_K, .q5_K: [0, 2]
    case .q6_K: [208]
    }
}

let pool = try WorkerPool(threadCount: threads)
let nTok = 64
let x = UnsafeMutablePointer<Float>.allocate(capacity: nTok * cols)
for i in 0..<nTok * cols { x[i] = Float(Int(rnd() % 2001) - 1000) / 1000 }
let y = UnsafeMutablePointer<Float>.allocate(capacity: nTok * rows)
let acts = try ActivationBatch(rows: nTok, cols: cols)
print("rows \(rows) cols \(cols) threads \(threads); paths: \(KernelPath.available.map(\.rawValue).joined(separator: ", "))")
print("type   path     decode GB/s   decode ms   batch4 GB/s   batch8 GB/s   prompt64 GMAC/s")
for qt in QuantType.allCases {
    let type = GGMLType(rawValue: qt.rawValue)
    guard let rb = type.rowBytes(cols), only?.contains(type.name.uppercased()) ?? true else { continue }
    let bytes = rows * rb
    let data = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    for i in stride(from: 0, to: bytes, by: 8) { data.storeBytes(of: rnd(), toByteOffset: i, as: UInt64.self) }
    for b in 0..<(bytes / qt.blockBytes) {
        for off in halfFields(qt) {
            data.storeBytes(of: Float16(Float(rnd() % 1000 + 1) * 1e-5).bitPattern, toByteOffset: b * qt.blockBytes + off, as: UInt16.self)
        }
    }
    guard let w = try? WeightMatrix(data: data, type: type, rows: rows, cols: cols) else { data.deallocate(); continue }
    // the file layout on every path, then the row-interleaved one on each path that repacks this type
    var variants: [(KernelPath, WeightMatrix, String)] = KernelPath.available.map { ($0, w, $0.rawValue) }
    let packed = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    defer { packed.deallocate() }
    if Interleave.supports(qt), let m = try? w.interleavedCopy(into: packed) {
        for path in KernelPath.available where path != .generic {
            KernelDispatch.use(path)
            if KernelDispatch.prefersInterleaved(qt) { variants.append((path, m, "\(path.rawValue)-il")) }
        }
    }
    for (path, w, label) in variants {
        KernelDispatch.use(path)
        guard KernelDispatch.kernel(type) != nil else { continue }
        var best1 = Double.infinity, best4 = Double.infinity, best8 = Double.infinity, best64 = Double.infinity
        for _ in 0..<5 {
            var t0 = now()
            MatMul.multiply(w, x: x, n: 1, y: y, yStride: rows, acts: acts, pool: pool)
            best1 = min(best1, now() - t0)
            if path == .generic { continue }
            t0 = now()
            MatMul.multiply(w, x: x, n: 4, y: y, yStride: rows, acts: acts, pool: pool)
            best4 = min(best4, now() - t0)
            t0 = now()
            MatMul.multiply(w, x: x, n: 8, y: y, yStride: rows, acts: acts, pool: pool)
            best8 = min(best8, now() - t0)
            t0 = now()
            MatMul.multiply(w, x: x, n: nTok, y: y, yStride: rows, acts: acts, pool: pool)
            best64 = min(best64, now() - t0)
        }
        let gmac = best64.isFinite ? Double(rows * cols * nTok) / best64 / 1e9 : 0
        print("\(pad(type.name, 6)) \(pad(label, 9)) "
              + "\(String(format1: Double(bytes) / best1 / 1e9)) \(String(format1: best1 * 1e3)) "
              + "\(String(format1: best4.isFinite ? Double(bytes) / best4 / 1e9 : 0)) "
              + "\(String(format1: best8.isFinite ? Double(bytes) / best8 / 1e9 : 0)) \(String(format1: gmac))")
    }
    data.deallocate()
}

extension String {
    init(format1 v: Double) {
        let r = (v * 100).rounded() / 100
        self = pad("\(r)", 12)
    }
}
