// mistral-cli: generate text, chat, tokenize, inspect a model and measure speed with libmistral's engine.
// Each command declares its options (Command below); anything else on its command line is a usage error (exit 2).
import Glibc
import MistralEngine
import Synchronization

struct UsageError: Error {
    let message: String
    var command: Command?
}

/// One subcommand: its usage line, the options it takes and what they do.
struct Command {
    let name: String
    let synopsis: String
    let summary: String
    /// Options taking a value, and their help lines.
    let values: [(names: [String], help: String)]
    /// Options without a value.
    let switches: [(names: [String], help: String)]
    /// How many TEXT/MODEL operands the command takes at most.
    let maxOperands: Int

    var usageLine: String { "usage: mistral-cli \(name) \(synopsis)" }

    var help: String {
        var lines = [usageLine, "", summary, "", "options:"]
        for (names, text) in values + switches + [(["-h", "--help"], "show this help and exit")] {
            let flag = names.joined(separator: ", ")
            lines.append("  " + flag + String(repeating: " ", count: max(1, 24 - flag.count)) + text)
        }
        return lines.joined(separator: "\n")
    }
}

let loadOptions: [(names: [String], help: String)] = [
    (["-m", "--model"], "MODEL: a GGUF file, a Hugging Face or Mistral native folder, or a tekken.json"),
    (["--tokenizer"], "tekken.json to use instead of the model's own tokenizer"),
    (["--weights"], "q8_0|q4_0: re-quantize float weights while loading"),
    (["--mmproj"], "llama.cpp mmproj GGUF with the vision encoder of a GGUF model"),
]
let sessionOptionList: [(names: [String], help: String)] = [
    (["-t", "--threads"], "worker threads (default: every online CPU)"),
    (["-c", "--ctx-size"], "context positions (default: min(trained context, 4096))"),
    (["--kv"], "f16|f32|q8_0: how the KV cache stores keys and values (default f16)"),
    (["--seed"], "RNG seed"),
]
let samplingOptions: [(names: [String], help: String)] = [
    (["-n", "--n-predict"], "most tokens to generate (default 256; <= 0: until the end or a full context)"),
    (["--temp"], "temperature, >= 0 (0 = greedy)"),
    (["--top-k"], "keep the K most likely tokens (0 = off, default 40)"),
    (["--top-p"], "nucleus sampling, in (0, 1] (default 0.95)"),
    (["--min-p"], "drop tokens below P x the most likely one's probability, in [0, 1] (default 0.05)"),
    (["--repeat-penalty"], "penalty for recent tokens, > 0 (1 = off)"),
    (["--stop"], "stop before this text (repeatable)"),
]
let constraintOptions: [(names: [String], help: String)] = [
    (["--grammar"], "GBNF grammar (llama.cpp's syntax) the output must follow"),
    (["--grammar-file"], "the same, from a file"),
    (["--json-schema"], "JSON schema the output must follow (converted to a grammar)"),
    (["--json-schema-file"], "the same, from a file"),
]
let verboseSwitch = (names: ["-v", "--verbose"], help: "after each answer, a summary on stderr: tokens and tok/s of prompt and generation")

let commands: [Command] = [
    Command(name: "generate", synopsis: "-m MODEL -p PROMPT [options]",
            summary: "Continues PROMPT (parsed for special tokens such as <|im_start|> unless --no-special).",
            values: loadOptions + [(["-p", "--prompt"], "the text to continue")] + sessionOptionList + samplingOptions
                + constraintOptions,
            switches: [(["--ignore-eos"], "never stop at end-of-generation tokens"),
                       (["--no-special"], "treat control-token text in PROMPT as plain text"), verboseSwitch],
            maxOperands: 0),
    Command(name: "chat", synopsis: "-m MODEL [--system TEXT] [--image FILE]... [options]",
            summary: """
            Reads one user turn per line from stdin and streams each answer; the conversation stays in the session.
            Ctrl-C during an answer stops that answer and returns to the prompt (the conversation is kept);
            Ctrl-C or end of input at the prompt ends the chat. Mistral V7 models default to temperature 0.15.
            """,
            values: loadOptions + [(["--system"], "system prompt"),
                                   (["--image"], "PNG/JPEG shown with the first turn (repeatable)"),
                                   (["--template"], "mistral-v7|mistral-v3|chatml (default: the model's own)")]
                + sessionOptionList + samplingOptions,
            switches: [(["--ignore-eos"], "never stop at end-of-generation tokens"),
                       (["--context-shift"], "when the context fills up, keep the system prompt and drop the oldest turns (or, inside a long answer, the oldest positions) instead of starting over"),
                       verboseSwitch],
            maxOperands: 0),
    Command(name: "tokenize", synopsis: "-m MODEL [--bos] [--no-special] TEXT",
            summary: "Prints the token ids of TEXT.",
            values: [loadOptions[0], loadOptions[1]],
            switches: [(["--bos"], "prepend the BOS token"), (["--no-special"], "treat control-token text as plain text")],
            maxOperands: 1),
    Command(name: "info", synopsis: "[-m] MODEL [-c N_CTX] [--kv f16|f32|q8_0] [--weights q8_0|q4_0] [-t THREADS]",
            summary: """
            Prints the model's metadata and the memory it and a session with N_CTX positions will need, read from \
            the files' headers (no weights are loaded).
            """,
            values: loadOptions + [sessionOptionList[0], sessionOptionList[1], sessionOptionList[2]],
            switches: [], maxOperands: 1),
    Command(name: "bench", synopsis: "-m MODEL [-t THREADS] [--pp N] [--tg N] [--depth D] [--reps R] [--kv f16|f32|q8_0]",
            summary: "Prompt-processing and decode tokens/s, best of R repetitions, as one JSON line.",
            values: loadOptions + [sessionOptionList[0], sessionOptionList[1], sessionOptionList[2],
                                   (["--pp"], "prompt tokens per timed batch (default 128)"),
                                   (["--tg"], "decode steps timed (default 64)"),
                                   (["--depth"], "context tokens before the decode steps (default 0)"),
                                   (["--reps"], "repetitions (default 3)")],
            switches: [], maxOperands: 0),
]

func generalUsage() -> String {
    (["usage:"] + commands.map { "  mistral-cli \($0.name) \($0.synopsis)" }
        + ["", "`mistral-cli COMMAND --help` describes a command's options."]).joined(separator: "\n")
}

/// The options of one command line, checked against the command's declared options.
struct Arguments {
    var values: [String: [String]] = [:]
    var switches: Set<String> = []
    var operands: [String] = []
    var wantsHelp = false

    init(_ args: ArraySlice<String>, for command: Command) throws {
        var canonical: [String: String] = [:]  // every alias -> its first name
        var takesValue = Set<String>()
        for (names, _) in command.values { for n in names { canonical[n] = names[0]; takesValue.insert(names[0]) } }
        for (names, _) in command.switches { for n in names { canonical[n] = names[0] } }
        var it = args.makeIterator()
        var onlyOperands = false
        while let a = it.next() {
            if onlyOperands || !a.hasPrefix("-") || a == "-" {
                operands.append(a)
                continue
            }
            if a == "--" { onlyOperands = true; continue }
            if a == "-h" || a == "--help" { wantsHelp = true; continue }
            var flag = a, inline: String?
            if a.hasPrefix("--"), let eq = a.firstIndex(of: "=") {
                flag = String(a[..<eq])
                inline = String(a[a.index(after: eq)...])
            }
            guard let name = canonical[flag] else {
                throw UsageError(message: "unknown option '\(flag)' for \(command.name)", command: command)
            }
            if takesValue.contains(name) {
                guard let v = inline ?? it.next() else {
                    throw UsageError(message: "option \(flag) needs a value", command: command)
                }
                values[name, default: []].append(v)
            } else {
                if inline != nil { throw UsageError(message: "option \(flag) takes no value", command: command) }
                switches.insert(name)
            }
        }
        if !wantsHelp && operands.count > command.maxOperands {
            throw UsageError(message: "unexpected argument '\(operands[command.maxOperands])'", command: command)
        }
    }

    func string(_ name: String) -> String? { values[name]?.last }

    /// A number option: parsed, then checked with `valid` (described by `expect`).
    func number<T: LosslessStringConvertible>(_ name: String, default d: T, _ expect: String = "a number",
                                              valid: (T) -> Bool = { _ in true }) throws -> T {
        guard let s = values[name]?.last else { return d }
        guard let v = T(s), valid(v) else { throw UsageError(message: "\(name) expects \(expect), got '\(s)'") }
        return v
    }
}

/// Unbuffered writes to a file descriptor (stdio's FILE globals are not concurrency-safe in Swift 6).
func write(_ fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { buf in
        guard let base = buf.baseAddress else { return }
        var done = 0
        while done < buf.count {
            let n = Glibc.write(fd, base + done, buf.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            done += n
        }
    }
}

func writeOut(_ bytes: [UInt8]) { write(1, bytes) }
func writeErr(_ s: String) { write(2, Array(s.utf8)) }
func printErr(_ s: String) { writeErr(s + "\n") }

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

// MARK: loading

/// Last percentage drawn by the load progress bar.
let progressShown = Atomic<Int>(-1)

/// A progress bar on stderr while loading, only when stderr is a terminal; erased when the load ends.
func progressBar(_ label: String) -> LoadProgressCallback? {
    guard isatty(2) != 0 else { return nil }
    return { fraction in
        if fraction >= 1 {
            if progressShown.exchange(-1, ordering: .relaxed) >= 0 { writeErr("\r\u{1b}[K") }
            return true
        }
        let pct = max(0, min(99, Int((fraction * 100).rounded(.down))))
        if progressShown.exchange(pct, ordering: .relaxed) != pct {
            let filled = pct * 30 / 100
            writeErr("\rloading \(label) [" + String(repeating: "#", count: filled)
                     + String(repeating: ".", count: 30 - filled) + "] \(pct)%")
        }
        return true
    }
}

func modelPath(_ a: Arguments) throws -> String {
    guard let path = a.string("-m") ?? a.operands.first else { throw UsageError(message: "missing -m MODEL") }
    return path
}

func loadOptions(_ a: Arguments) throws -> ModelLoadOptions {
    var o = ModelLoadOptions()
    o.tokenizerPath = a.string("--tokenizer")
    o.mmprojPath = a.string("--mmproj")
    switch a.string("--weights")?.lowercased() {
    case nil: break
    case "q8_0": o.convertTo = .q8_0
    case "q4_0": o.convertTo = .q4_0
    case let w?: throw UsageError(message: "--weights takes q8_0 or q4_0, not '\(w)'")
    }
    return o
}

func loadModel(_ a: Arguments) throws -> Model {
    let path = try modelPath(a)
    var o = try loadOptions(a)
    o.progress = progressBar(path)
    defer { if progressShown.exchange(-1, ordering: .relaxed) >= 0 { writeErr("\r\u{1b}[K") } }
    return try Model(path: path, options: o)
}

func sessionOptions(_ a: Arguments) throws -> SessionOptions {
    var o = SessionOptions()
    o.threads = try a.number("-t", default: 0, "an integer in 0...512") { (0...512).contains($0) }
    o.nCtx = try a.number("-c", default: 0, "an integer in 0...\(1 << 22)") { (0...(1 << 22)).contains($0) }
    o.seed = try a.number("--seed", default: o.seed, "an unsigned integer")
    switch a.string("--kv") ?? "f16" {
    case "f16": o.kvType = .f16
    case "f32": o.kvType = .f32
    case "q8_0": o.kvType = .q8_0
    case let other: throw UsageError(message: "--kv must be f16, f32 or q8_0, got '\(other)'")
    }
    return o
}

func kvName(_ t: KVCacheType) -> String { t == .f16 ? "f16" : t == .f32 ? "f32" : "q8_0" }

func generateOptions(_ a: Arguments, defaultTemperature: Float) throws -> GenerateOptions {
    var o = GenerateOptions()
    o.maxTokens = try a.number("-n", default: 256, "an integer")
    o.sampling.temperature = try a.number("--temp", default: defaultTemperature, "a number >= 0") { $0.isFinite && $0 >= 0 }
    o.sampling.topK = try a.number("--top-k", default: o.sampling.topK, "an integer >= 0") { $0 >= 0 }
    o.sampling.topP = try a.number("--top-p", default: o.sampling.topP, "a number in (0, 1]") { $0 > 0 && $0 <= 1 }
    o.sampling.minP = try a.number("--min-p", default: o.sampling.minP, "a number in [0, 1]") { $0 >= 0 && $0 <= 1 }
    o.sampling.repeatPenalty = try a.number("--repeat-penalty", default: o.sampling.repeatPenalty, "a number > 0") {
        $0.isFinite && $0 > 0
    }
    o.seed = try a.number("--seed", default: 0, "an unsigned integer")
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

// MARK: generation

/// Counts and times of one answer, for --verbose.
struct TurnStats {
    var promptTokens = 0, reused = 0, generated = 0
    var prefillSeconds = 0.0, decodeSeconds = 0.0
    var stop = ""

    func line(session: Session) -> String {
        func rate(_ n: Int, _ s: Double) -> String { s > 0 && n > 0 ? String(format1: Double(n) / s) : "-" }
        return "[prompt \(promptTokens) tokens (\(reused) reused), \(rate(promptTokens - reused, prefillSeconds)) tok/s; "
            + "generated \(generated) tokens, \(rate(generated, decodeSeconds)) tok/s; "
            + "context \(session.nPast)/\(session.nCtx); stop: \(stop)]"
    }
}

extension String {
    /// One decimal, without Foundation.
    init(format1 x: Double) {
        let tenths = (x * 10).rounded()
        guard tenths.isFinite, abs(tenths) < 1e15 else { self = "\(x)"; return }
        let t = Int(tenths)
        self = "\(t / 10).\(abs(t % 10))"
    }
}

/// Samples after the context the session holds, timing the decode; `onText` returns false to stop.
func answer(_ session: Session, _ o: GenerateOptions, stats: inout TurnStats,
            onText: ([UInt8], Int32) -> Bool) throws {
    let t0 = now()
    defer {
        stats.decodeSeconds = now() - t0
        stats.generated = session.lastGenerated
        stats.stop = "\(session.lastStopReason)"
    }
    try session.generate(prompt: [], options: o, onText: onText)
}

func runGenerate(_ a: Arguments) throws {
    guard let prompt = a.string("-p") else { throw UsageError(message: "missing -p PROMPT") }
    let sessionOpts = try sessionOptions(a)
    let o = try generateOptions(a, defaultTemperature: SamplingParams().temperature)
    let model = try loadModel(a)
    let special = !a.switches.contains("--no-special")
    let ids = model.tokenizer.tokenize(prompt, addBos: model.tokenizer.addBosByDefault, parseSpecial: special)
    let session = try Session(model: model, options: sessionOpts)
    var stats = TurnStats(promptTokens: ids.count)
    do {
        let t0 = now()
        try session.eval(ids)
        stats.prefillSeconds = now() - t0
        try answer(session, o, stats: &stats) { text, _ in
            writeOut(text)
            return true
        }
    } catch let e as MistralError where e.status == .contextFull {
        writeOut(Array("\n".utf8))
        printErr("note: \(e.message)")
        if a.switches.contains("-v") { printErr(stats.line(session: session)) }
        return
    }
    writeOut(Array("\n".utf8))
    if a.switches.contains("-v") { printErr(stats.line(session: session)) }
}

/// Set by SIGINT while `chat` answers; the token callback sees it and stops the answer.
let interrupted = Atomic<Bool>(false)
/// True while `chat` waits at its prompt, where SIGINT ends the program (exit status 130, as a shell's).
let atPrompt = Atomic<Bool>(false)

/// SIGINT during an answer sets `interrupted` instead of killing the process; at the prompt it exits. Only
/// async-signal-safe calls (atomics, write, _exit) in the handler.
func installChatInterruptHandler() {
    _ = interrupted.load(ordering: .relaxed)  // initialised before the handler can run
    _ = atPrompt.load(ordering: .relaxed)
    var action = sigaction()
    action.__sigaction_handler.sa_handler = { _ in
        if atPrompt.load(ordering: .relaxed) {
            var newline: UInt8 = 10
            _ = Glibc.write(2, &newline, 1)
            _exit(130)
        }
        interrupted.store(true, ordering: .relaxed)
    }
    sigemptyset(&action.sa_mask)
    action.sa_flags = 0
    sigaction(SIGINT, &action, nil)
}

/// Interactive chat: each line on stdin is a user turn; the answer streams to stdout. The whole conversation is
/// re-rendered every turn, and the session evaluates only what it does not already hold.
func runChat(_ a: Arguments) throws {
    let sessionOpts = try sessionOptions(a)
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
    let session = try Session(model: model, options: sessionOpts)
    var o = try generateOptions(a, defaultTemperature: template.recommendedTemperature)
    var messages: [ChatMessage] = []
    if let system = a.string("--system") { messages.append(ChatMessage(role: "system", content: system)) }
    let contextShift = a.switches.contains("--context-shift")
    if contextShift {
        o.contextShift = true
        o.nKeep = keptPrefix(messages, template: template, tokenizer: model.tokenizer)
    }
    // --image files go with the first user turn; their rows are computed once and reused by every later turn.
    var pending = try (a.values["--image"] ?? []).map { try ImageFile.load(path: $0) }
    var imageRows: [Float] = []
    var imageTags: [UInt64] = []
    installChatInterruptHandler()
    while true {
        interrupted.store(false, ordering: .relaxed)
        atPrompt.store(true, ordering: .relaxed)
        write(2, Array("> ".utf8))
        let input = readLine(strippingNewline: true)
        atPrompt.store(false, ordering: .relaxed)
        guard let line = input else {
            writeErr("\n")
            break
        }
        if line.trimmingCharacters(in: " \t") == "" { continue }
        var grids: [ImageTokenGrid] = []
        if !pending.isEmpty {
            grids = try pending.map { try model.imageGrid(width: $0.width, height: $0.height) }
            imageRows += try model.embedImages(pending, threads: session.threadCount)
            for g in grids { for r in 0..<g.count { imageTags.append(UInt64(imageTags.count + r + 1)) } }
            pending = []
        }
        messages.append(ChatMessage(role: "user", content: line, images: grids))
        var ids = try template.render(messages, tokenizer: model.tokenizer, addGenerationPrompt: true)
        if contextShift {
            let room = o.maxTokens > 0 ? min(o.maxTokens, session.nCtx / 2) : session.nCtx / 4
            var dropped = 0
            while ids.count + room > session.nCtx, let cut = oldestTurn(messages) {
                if messages[cut].contains(where: { !$0.images.isEmpty }) {
                    imageRows.removeAll()
                    imageTags.removeAll()
                }
                messages.removeSubrange(cut)
                dropped += 1
                ids = try template.render(messages, tokenizer: model.tokenizer, addGenerationPrompt: true)
            }
            if dropped > 0 {
                let (kept, moved) = try shiftToMatch(session, ids)
                printErr("[context shift: dropped the \(dropped) oldest turn(s); kept the first \(kept) positions"
                         + (moved > 0 ? ", dropped \(moved) after them and re-rotated the rest]" : ", recomputing the rest]"))
            }
        }
        var reply: [UInt8] = []
        var stats = TurnStats(promptTokens: ids.count)
        do {
            let before = session.history
            let t0 = now()
            try imageRows.withUnsafeBufferPointer {
                try session.evalPrompt(ids, imageToken: imageTags.isEmpty ? nil : model.imageTokenId,
                                       imageRows: $0.baseAddress, imageTags: imageTags, reusePrefix: true)
            }
            stats.prefillSeconds = now() - t0
            stats.reused = zip(before, ids).prefix { $0 == $1 }.count
            try answer(session, o, stats: &stats) { text, _ in
                if interrupted.load(ordering: .relaxed) { return false }
                reply += text
                writeOut(text)
                return true
            }
        } catch let e as MistralError where e.status == .cancelled && interrupted.load(ordering: .relaxed) {
            stats.stop = "interrupted"
            writeErr("\n[interrupted]")
        } catch let e as MistralError where e.status == .contextFull {
            printErr("\n[context full: starting a new conversation]")
            try session.reset()
            messages.removeAll()
            imageRows.removeAll()
            imageTags.removeAll()
            continue
        }
        writeOut(Array("\n".utf8))
        if a.switches.contains("-v") { printErr(stats.line(session: session)) }
        // An interrupted answer stays in the conversation as far as it got.
        messages.append(ChatMessage(role: "assistant", content: String(decoding: reply, as: UTF8.self)))
    }
}

/// Positions a context shift keeps: what the conversation's start (BOS, system prompt) renders to on its own.
func keptPrefix(_ messages: [ChatMessage], template: ChatTemplate, tokenizer: any Tokenizer) -> Int {
    let probe = messages + [ChatMessage(role: "user", content: "x")]
    guard let full = try? template.render(probe, tokenizer: tokenizer, addGenerationPrompt: true),
          let other = try? template.render(messages + [ChatMessage(role: "user", content: "y z")], tokenizer: tokenizer,
                                           addGenerationPrompt: true) else { return 0 }
    return zip(full, other).prefix { $0 == $1 }.count
}

/// The messages of the oldest user turn and the answers and tool results after it (never the system prompt, never
/// the last user turn).
func oldestTurn(_ messages: [ChatMessage]) -> Range<Int>? {
    guard let first = messages.firstIndex(where: { $0.role == "user" }) else { return nil }
    guard let next = messages[(first + 1)...].firstIndex(where: { $0.role == "user" }) else { return nil }
    return first..<next
}

/// After turns were dropped from the conversation: when the session's context is the new prompt with a block of
/// positions removed after their common prefix, removes that block by a context shift (the rest moves down with
/// its keys re-rotated instead of being recomputed). Returns the positions dropped (0 when nothing matched; the
/// prompt is then evaluated from the common prefix on), with the common prefix kept.
func shiftToMatch(_ session: Session, _ ids: [Int32]) throws -> (kept: Int, dropped: Int) {
    let held = session.history
    let a = zip(held, ids).prefix { $0 == $1 }.count
    guard a < held.count else { return (a, 0) }
    for k in 1...(held.count - a) {
        let tail = held[(a + k)...]
        guard !tail.isEmpty, tail.count <= ids.count - a else { continue }
        if tail.elementsEqual(ids[a..<(a + tail.count)]) {
            try session.shift(keep: a, discard: k)
            return (a, k)
        }
    }
    return (a, 0)
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
    guard let text = a.operands.last else { throw UsageError(message: "missing TEXT") }
    let model = try loadModel(a)
    let ids = model.tokenizer.tokenize(text, addBos: a.switches.contains("--bos"),
                                       parseSpecial: !a.switches.contains("--no-special"))
    writeOut(Array(("[" + ids.map(String.init).joined(separator: ", ") + "]\n").utf8))
}

// MARK: info

/// A byte count as an integer when it is one Int can hold (a hostile file's sizes may not be).
func wholeNumber(_ x: Double) -> String { x.isFinite && abs(x) < 9e15 ? "\(Int(x))" : "\(x)" }

func mib(_ bytes: Double) -> String {
    bytes >= 1_073_741_824 ? String(format1: bytes / 1_073_741_824) + " GiB" : String(format1: bytes / 1_048_576) + " MiB"
}

/// Metadata and the memory estimate, from the headers only (the tokenizer is loaded, the weights are not).
func runInfo(_ a: Arguments) throws {
    let path = try modelPath(a)
    if a.string("-m") != nil && !a.operands.isEmpty {
        throw UsageError(message: "give MODEL once (-m MODEL or MODEL)")
    }
    let load = try loadOptions(a)
    let e = try MemoryEstimate(path: path, load: load, session: try sessionOptions(a))
    var vocabOnly = load
    vocabOnly.vocabOnly = true
    let model = try Model(path: path, options: vocabOnly)
    var lines = ["model: \(path)", "format: \(e.format)"]
    if let c = e.config {
        lines += ["architecture: \(c.arch)",
                  "layers: \(c.nLayer), embedding: \(c.nEmbd), feed-forward: \(c.nFF)",
                  "attention: \(c.nHead) heads, \(c.nKVHead) KV heads, head dim \(c.headDim), rope theta \(c.ropeBase)",
                  "trained context: \(c.nCtxTrain)"]
    }
    lines += ["vocabulary: \(model.vocabSize) tokens, BOS \(model.tokenizer.bosId.map(String.init) ?? "none"), "
              + "EOS \(model.tokenizer.eosId.map(String.init) ?? "none")",
              "chat template: \(model.chatTemplate?.name ?? "not recognised")",
              "vision encoder: \(e.visionBytes > 0 ? "yes" : (model.visionConfig != nil ? "yes (not counted)" : "no"))"]
    if e.config != nil {
        let kv = kvName((try sessionOptions(a)).kvType)
        lines += ["memory for n_ctx \(e.nCtx), KV \(kv)\(load.convertTo.map { ", weights as \($0.name)" } ?? ""):",
                  "  weights:          \(mib(e.weightsBytes))",
                  "  KV cache:         \(mib(e.kvBytes)) (\(wholeNumber(e.kvBytesPerPosition)) bytes per position)",
                  "  scratch:          \(mib(e.scratchBytes))",
                  "  tokenizer:        \(mib(e.tokenizerBytes))"]
        if e.visionBytes > 0 { lines.append("  vision encoder:   \(mib(e.visionBytes))") }
        lines.append("  total:            \(mib(e.totalBytes))")
    }
    writeOut(Array((lines.joined(separator: "\n") + "\n").utf8))
}

// MARK: bench

/// Prompt processing (pp tokens in one eval) and decode (tg tokens one at a time), best of `reps`.
/// pp: tokens/s of one `pp`-token prompt batch. tg: tokens/s of `tg` single-token decode steps after `depth`
/// context tokens (prefilled untimed in chunks of 512). Best of `reps`; one JSON line.
func runBench(_ a: Arguments) throws {
    let pp: Int = try a.number("--pp", default: 128, "an integer in 0...\(1 << 20)") { (0...(1 << 20)).contains($0) }
    let tg: Int = try a.number("--tg", default: 64, "an integer in 0...\(1 << 20)") { (0...(1 << 20)).contains($0) }
    let depth: Int = try a.number("--depth", default: 0, "an integer in 0...\(1 << 22)") { (0...(1 << 22)).contains($0) }
    let reps: Int = try a.number("--reps", default: 3, "an integer in 1...1000") { (1...1000).contains($0) }
    var o = try sessionOptions(a)
    let model = try loadModel(a)
    o.nCtx = max(o.nCtx, max(pp, depth + 1) + tg + 1)
    o.nBatch = max(pp, 512)
    let session = try Session(model: model, options: o)
    let vocab = Int32(model.vocabSize)
    let prompt = (0..<max(pp, depth)).map { Int32(($0 * 7919 + 13) % Int(vocab)) }
    var bestPP = 0.0, bestTG = 0.0
    for _ in 0..<reps {
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
        + "\"kv\": \"\(kvName(o.kvType))\"}\n").utf8))
}

// MARK: main

let argv = CommandLine.arguments
guard argv.count >= 2 else {
    printErr(generalUsage())
    exit(2)
}
switch argv[1] {
case "-h", "--help":
    writeOut(Array((generalUsage() + "\n").utf8))
    exit(0)
case "help":
    if argv.count > 2, let c = commands.first(where: { $0.name == argv[2] }) {
        writeOut(Array((c.help + "\n").utf8))
    } else {
        writeOut(Array((generalUsage() + "\n").utf8))
    }
    exit(0)
default:
    break
}
guard let command = commands.first(where: { $0.name == argv[1] }) else {
    printErr("error: unknown command '\(argv[1])'\n\(generalUsage())")
    exit(2)
}
do {
    let args = try Arguments(argv.dropFirst(2), for: command)
    if args.wantsHelp {
        writeOut(Array((command.help + "\n").utf8))
        exit(0)
    }
    switch command.name {
    case "generate": try runGenerate(args)
    case "chat": try runChat(args)
    case "tokenize": try runTokenize(args)
    case "info": try runInfo(args)
    default: try runBench(args)
    }
} catch let e as UsageError {
    printErr("error: \(e.message)\n\((e.command ?? command).usageLine)\n(`mistral-cli \(command.name) --help` lists the options)")
    exit(2)
} catch let e as MistralError {
    printErr("error: \(e)")
    exit(1)
}
