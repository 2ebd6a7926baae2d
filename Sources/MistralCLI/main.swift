// mistral-cli: generate text, tokenize, and measure speed with libmistral's engine.
//   mistral-cli generate -m MODEL -p PROMPT [-n N] [--temp T] [--seed S] [-t THREADS] [-c N_CTX] [--top-k K]
//                        [--top-p P] [--min-p P] [--repeat-penalty R] [--stop STR]... [--ignore-eos] [--no-special]
//                        [--grammar GBNF | --grammar-file FILE | --json-schema JSON | --json-schema-file FILE]
//   mistral-cli chat -m MODEL [--system TEXT] [--image FILE]... [--template NAME]
//   mistral-cli tokenize -m MODEL [--bos] [--no-special] TEXT
//   mistral-cli bench -m MODEL [-t THREADS] [--pp N] [--tg N] [--depth D] [--reps R] [--kv f16|f32|q8_0]
import Glibc
import MistralEngine

struct UsageError: Error { let message: String }

func usage() -> String {
    """
    usage:
      mistral-cli generate -m MODEL -p PROMPT [-n N] [--temp T] [--seed S] [-t THREADS] [-c N_CTX]
                           [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--stop STR]...
                           [--ignore-eos] [--no-special]
                           [--grammar GBNF | --grammar-file FILE | --json-schema JSON | --json-schema-file FILE]
      mistral-cli chat -m MODEL [--system TEXT] [--image FILE]... [--mmproj MMPROJ.gguf] [--template mistral-v7|mistral-v3|chatml]
                       [-n N] [--temp T] [-t THREADS] ...
      mistral-cli tokenize -m MODEL [--bos] [--no-special] TEXT
      mistral-cli bench -m MODEL [-t THREADS] [--pp N] [--tg N] [--depth D] [--reps R] [--kv f16|f32|q8_0]
    MODEL: a GGUF file, a Hugging Face or Mistral native folder, or a tekken.json (tokenize only).
    Loading: --tokenizer tekken.json, --weights q8_0|q4_0 (re-quantize float weights while loading).
    generate prompts are parsed for special tokens (e.g. <|im_start|>) unless --no-special is given; chat renders
    the model's chat template (Mistral V7 defaults to temperature 0.15) and keeps the conversation in the session.
    """
}

/// Minimal argument reader: flags with values, boolean switches, positionals.
struct Arguments {
    var values: [String: [String]] = [:]
    var switches: Set<String> = []
    var positionals: [String] = []

    init(_ args: ArraySlice<String>, switches known: Set<String>) throws {
        var it = args.makeIterator()
        while let a = it.next() {
            if a.hasPrefix("-") && a.count > 1 {
                if known.contains(a) {
                    switches.insert(a)
                } else {
                    guard let v = it.next() else { throw UsageError(message: "option \(a) needs a value") }
                    values[a, default: []].append(v)
                }
            } else {
                positionals.append(a)
            }
        }
    }

    func string(_ names: String...) -> String? { names.lazy.compactMap { values[$0]?.last }.first }

    func number<T: LosslessStringConvertible>(_ names: String..., default d: T) throws -> T {
        guard let s = names.lazy.compactMap({ values[$0]?.last }).first else { return d }
        guard let v = T(s) else { throw UsageError(message: "\(names[0]) expects a number, got '\(s)'") }
        return v
    }
}

/// Unbuffered writes to a file descriptor (stdio's FILE globals are not concurrency-safe in Swift 6).
func write(_ fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { buf in
        var done = 0
        while done < buf.count {
            let n = Glibc.write(fd, buf.baseAddress! + done, buf.count - done)
            if n <= 0 { return }
            done += n
        }
    }
}

func writeOut(_ bytes: [UInt8]) { write(1, bytes) }
func printErr(_ s: String) { write(2, Array((s + "\n").utf8)) }

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func loadModel(_ a: Arguments) throws -> Model {
    guard let path = a.string("-m", "--model") else { throw UsageError(message: "missing -m MODEL") }
    var o = ModelLoadOptions()
    o.tokenizerPath = a.string("--tokenizer")
    o.mmprojPath = a.string("--mmproj")
    switch a.string("--weights")?.lowercased() {
    case nil: break
    case "q8_0": o.convertTo = .q8_0
    case "q4_0": o.convertTo = .q4_0
    case let w?: throw UsageError(message: "--weights takes q8_0 or q4_0, not '\(w)'")
    }
    return try Model(path: path, options: o)
}

func sessionOptions(_ a: Arguments) throws -> SessionOptions {
    var o = SessionOptions()
    o.threads = try a.number("-t", "--threads", default: 0)
    o.nCtx = try a.number("-c", "--ctx-size", default: 0)
    o.seed = try a.number("--seed", default: o.seed)
    switch a.values["--kv"]?.last ?? "f16" {
    case "f16": o.kvType = .f16
    case "f32": o.kvType = .f32
    case "q8_0": o.kvType = .q8_0
    case let other: throw UsageError(message: "--kv must be f16, f32 or q8_0, got '\(other)'")
    }
    return o
}

func generateOptions(_ a: Arguments, defaultTemperature: Float) throws -> GenerateOptions {
    var o = GenerateOptions()
    o.maxTokens = try a.number("-n", "--n-predict", default: 256)
    o.sampling.temperature = try a.number("--temp", default: defaultTemperature)
    o.sampling.topK = try a.number("--top-k", default: o.sampling.topK)
    o.sampling.topP = try a.number("--top-p", default: o.sampling.topP)
    o.sampling.minP = try a.number("--min-p", default: o.sampling.minP)
    o.sampling.repeatPenalty = try a.number("--repeat-penalty", default: o.sampling.repeatPenalty)
    o.seed = try a.number("--seed", default: 0)
    o.stopStrings = a.values["--stop"] ?? []
    o.ignoreEOS = a.switches.contains("--ignore-eos")
    // constrained output: a GBNF grammar (text or file) or a JSON schema (text or file)
    let grammarText = try a.string("--grammar") ?? a.string("--grammar-file").map(readTextFile)
    let schemaText = try a.string("--json-schema") ?? a.string("--json-schema-file").map(readTextFile)
    if grammarText != nil && schemaText != nil { throw UsageError(message: "give a grammar or a JSON schema, not both") }
    if let grammarText { o.grammar = try GBNF.parse(grammarText) }
    if let schemaText { o.grammar = try GBNF.parse(try JSONSchemaGrammar.convert(schemaText)) }
    return o
}

/// A whole text file (the CLI has no Foundation).
func readTextFile(_ path: String) throws -> String {
    guard let f = fopen(path, "rb") else { throw UsageError(message: "cannot open '\(path)'") }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
        guard bytes.count <= 16 << 20 else { throw UsageError(message: "'\(path)' is larger than 16 MiB") }
    }
    guard let text = String(validating: bytes, as: UTF8.self) else { throw UsageError(message: "'\(path)' is not UTF-8") }
    return text
}

func runGenerate(_ a: Arguments) throws {
    let model = try loadModel(a)
    guard let prompt = a.string("-p", "--prompt") else { throw UsageError(message: "missing -p PROMPT") }
    let special = !a.switches.contains("--no-special")
    let ids = model.tokenizer.tokenize(prompt, addBos: model.tokenizer.addBosByDefault, parseSpecial: special)
    let session = try Session(model: model, options: try sessionOptions(a))
    let o = try generateOptions(a, defaultTemperature: SamplingParams().temperature)
    do {
        try session.generate(prompt: ids, options: o) { text, _ in
            writeOut(text)
            return true
        }
    } catch let e as MistralError where e.status == .contextFull {
        writeOut(Array("\n".utf8))
        printErr("note: \(e.message)")
        return
    }
    writeOut(Array("\n".utf8))
}

/// Interactive chat: each line on stdin is a user turn; the answer streams to stdout. The whole conversation is
/// re-rendered every turn, and the session evaluates only what it does not already hold.
func runChat(_ a: Arguments) throws {
    let model = try loadModel(a)
    let template: ChatTemplate
    if let name = a.string("--template") {
        guard let t = ChatTemplate(name: name) else { throw UsageError(message: "unknown --template '\(name)'") }
        template = t
    } else {
        guard let t = model.chatTemplate else {
            throw UsageError(message: "the model's chat template is not recognised; pass --template mistral-v7|mistral-v3|chatml")
        }
        template = t
    }
    let session = try Session(model: model, options: try sessionOptions(a))
    let o = try generateOptions(a, defaultTemperature: template.recommendedTemperature)
    var messages: [ChatMessage] = []
    if let system = a.string("--system") { messages.append(ChatMessage(role: "system", content: system)) }
    // --image files go with the first user turn; their rows are computed once and reused by every later turn.
    var pending = try (a.values["--image"] ?? []).map { try ImageFile.load(path: $0) }
    var imageRows: [Float] = []
    var imageTags: [UInt64] = []
    while true {
        write(2, Array("> ".utf8))
        guard let line = readLine(strippingNewline: true) else { break }
        if line.trimmingCharacters(in: " \t") == "" { continue }
        var grids: [ImageTokenGrid] = []
        if !pending.isEmpty {
            grids = try pending.map { try model.imageGrid(width: $0.width, height: $0.height) }
            imageRows += try model.embedImages(pending, threads: session.threadCount)
            for g in grids { for r in 0..<g.count { imageTags.append(UInt64(imageTags.count + r + 1)) } }
            pending = []
        }
        messages.append(ChatMessage(role: "user", content: line, images: grids))
        let ids = try template.render(messages, tokenizer: model.tokenizer, addGenerationPrompt: true)
        var answer: [UInt8] = []
        do {
            try imageRows.withUnsafeBufferPointer {
                try session.evalPrompt(ids, imageToken: imageTags.isEmpty ? nil : model.imageTokenId,
                                       imageRows: $0.baseAddress, imageTags: imageTags, reusePrefix: true)
            }
            try session.generate(prompt: [], options: o) { text, _ in
                answer += text
                writeOut(text)
                return true
            }
        } catch let e as MistralError where e.status == .contextFull {
            printErr("\n[context full: starting a new conversation]")
            try session.reset()
            messages.removeAll()
            imageRows.removeAll()
            imageTags.removeAll()
            continue
        }
        writeOut(Array("\n".utf8))
        messages.append(ChatMessage(role: "assistant", content: String(decoding: answer, as: UTF8.self)))
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}

func runTokenize(_ a: Arguments) throws {
    let model = try loadModel(a)
    guard let text = a.positionals.last else { throw UsageError(message: "missing TEXT") }
    let ids = model.tokenizer.tokenize(text, addBos: a.switches.contains("--bos"),
                                       parseSpecial: !a.switches.contains("--no-special"))
    writeOut(Array(("[" + ids.map(String.init).joined(separator: ", ") + "]\n").utf8))
}

/// Prompt processing (pp tokens in one eval) and decode (tg tokens one at a time), best of `reps`.
/// pp: tokens/s of one `pp`-token prompt batch. tg: tokens/s of `tg` single-token decode steps after `depth`
/// context tokens (prefilled untimed in chunks of 512). Best of `reps`; one JSON line.
func runBench(_ a: Arguments) throws {
    let model = try loadModel(a)
    let pp: Int = try a.number("--pp", default: 128)
    let tg: Int = try a.number("--tg", default: 64)
    let depth: Int = try a.number("--depth", default: 0)
    let reps: Int = try a.number("--reps", default: 3)
    guard pp >= 0, tg >= 0, depth >= 0, pp <= 1 << 20, tg <= 1 << 20, depth <= 1 << 22 else {
        throw UsageError(message: "--pp, --tg and --depth must be non-negative and reasonable")
    }
    var o = try sessionOptions(a)
    o.nCtx = max(o.nCtx, max(pp, depth + 1) + tg + 1)
    o.nBatch = max(pp, 512)
    let session = try Session(model: model, options: o)
    let vocab = Int32(model.vocabSize)
    let prompt = (0..<max(pp, depth)).map { Int32(($0 * 7919 + 13) % Int(vocab)) }
    var bestPP = 0.0, bestTG = 0.0
    for _ in 0..<max(reps, 1) {
        if pp > 0 {
            try session.reset()
            let t0 = now()
            try session.eval(Array(prompt[0..<pp]))
            bestPP = max(bestPP, Double(pp) / (now() - t0))
        }
        if tg > 0 {
            try session.reset()
            try session.eval(depth > 0 ? Array(prompt[0..<depth]) : [prompt.first ?? 1])
            let t0 = now()
            var token: Int32 = 1
            for i in 0..<tg {
                token = Int32((Int(token) * 31 + i) % Int(vocab))
                try session.eval([token])
            }
            bestTG = max(bestTG, Double(tg) / (now() - t0))
        }
    }
    writeOut(Array(("{\"threads\": \(session.threadCount), \"pp\": \(pp), \"pp_tps\": \(bestPP), \"tg\": \(tg), "
        + "\"tg_tps\": \(bestTG), \"depth\": \(depth), \"kernels\": \"\(KernelDispatch.path.rawValue)\", "
        + "\"kv\": \"\(o.kvType == .f16 ? "f16" : o.kvType == .f32 ? "f32" : "q8_0")\"}\n").utf8))
}

let argv = CommandLine.arguments
guard argv.count >= 2 else {
    printErr(usage())
    exit(2)
}
let switches: Set<String> = ["--ignore-eos", "--no-special", "--bos", "-h", "--help"]
do {
    let args = try Arguments(argv.dropFirst(2), switches: switches)
    switch argv[1] {
    case "generate": try runGenerate(args)
    case "tokenize": try runTokenize(args)
    case "chat": try runChat(args)
    case "bench": try runBench(args)
    case "-h", "--help", "help": writeOut(Array((usage() + "\n").utf8))
    default: throw UsageError(message: "unknown command '\(argv[1])'")
    }
} catch let e as UsageError {
    printErr("error: \(e.message)\n\(usage())")
    exit(2)
} catch let e as MistralError {
    printErr("error: \(e)")
    exit(1)
}
