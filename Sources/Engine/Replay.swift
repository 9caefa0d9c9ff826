#if canImport(Glibc)
import Glibc
#endif
import QoSCore

/// `qos replay`: the engine over NDJSON files (plain, `.zst`, or `-` for
/// stdin), as one partition in file order. A window is written as soon as
/// the watermark passes its end, exactly as the daemon would; at the end
/// of input the watermark goes to +∞ and everything is written.
public struct ReplayOptions {
    public var inputs: [String] = []
    public var sink = "output"
    public var config = EngineConfig()
    public var zstdLevel = 3
    public var enricher: Enricher = NoEnricher()
    /// Progress line on stderr (the CLI enables it on a TTY).
    public var progress = false
    /// Also write every output file's rows as JSON lines here (for tests).
    public var jsonDump: String?
    /// Engine clock for the `ts_in_future` check; the wall clock by default.
    public var nowMs: () -> Int64 = wallClockMs

    public init() {}
}

public struct ReplaySummary: Sendable {
    public var lines: Int64 = 0
    public var bytes: Int64 = 0
    public var counters = EngineCounters()
    public var windowsWritten = 0
    public var filesWritten = 0
    public var seconds = 0.0

    /// The human summary printed at the end.
    public var text: String {
        var s = "replayed \(lines) lines (\(bytes / 1_048_576) MiB) in \(fmt(seconds)) s"
        s += " — \(fmt(Double(lines) / max(seconds, 1e-9) / 1000)) k lines/s\n"
        s += "accepted \(counters.accepted), rejected \(counters.rejectedTotal), duplicates \(counters.duplicates), "
        s += "late \(counters.lateEvents), sessions \(counters.sessionsClosed)\n"
        for (reason, n) in counters.rejected.sorted(by: { $0.key < $1.key }) { s += "  rejected \(reason): \(n)\n" }
        s += "windows written \(windowsWritten), files written \(filesWritten)"
        return s
    }

    func fmt(_ x: Double) -> String {
        let r = (x * 10).rounded() / 10
        return r == r.rounded() ? String(Int(r)) : String(r)
    }
}

/// Writes to standard error, unbuffered.
public func writeStderr(_ s: String) {
    var s = s
    s.withUTF8 { b in _ = write(2, b.baseAddress, b.count) }
}

public func wallClockMs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

public final class ReplayJob {
    let options: ReplayOptions
    let engine: SessionEngine<DataSketchesKit>
    let writer: WindowFileWriter
    var summary = ReplaySummary()
    var flushes = 0
    var rangeStart = ""
    var lastProgress = 0.0
    var dump: JSONDump?

    public init(_ options: ReplayOptions) throws {
        guard !options.inputs.isEmpty else { throw UserError("no input files — give one or more NDJSON files, or - for stdin") }
        self.options = options
        engine = SessionEngine(config: options.config, enricher: options.enricher)
        let tag = shortHash(options.inputs.map { $0.split(separator: "/").last.map(String.init) ?? $0 }.joined(separator: "\n"))
        writer = WindowFileWriter(sink: FileSink(root: options.sink), windowMs: options.config.windowMs,
                                  inputTag: "r" + tag, zstdLevel: options.zstdLevel)
    }

    public func run() throws -> ReplaySummary {
        try writer.sink.checkWritable()
        if let path = options.jsonDump { dump = try JSONDump(path: path, sinkRoot: options.sink) }
        let started = monotonicSeconds()
        var now = options.nowMs()
        for path in options.inputs {
            let source = try ByteSource(path: path)
            var reader = LineReader(source)
            let name = path == "-" ? "stdin" : path
            if rangeStart.isEmpty { rangeStart = "\(name):1" }
            try reader.forEachLine { line, number in
                if number & 4095 == 0 { now = options.nowMs(); progress(started) }
                engine.ingest(message: line, partition: 0, source: .file(name: name, line: number), nowMs: now)
                summary.lines += 1
                if engine.replayWatermark >= engine.nextDueEnd {
                    try flush(engine.flush(watermark: engine.replayWatermark), through: "\(name):\(number)")
                }
            }
            summary.bytes += reader.bytesRead
        }
        try flush(engine.finish(), through: "end")
        try dump?.close()
        summary.counters = engine.counters
        summary.seconds = monotonicSeconds() - started
        if options.progress { writeStderr("\r\u{1B}[K") }
        return summary
    }

    func flush(_ windows: [WindowState<DataSketchesKit>], through: String) throws {
        guard !windows.isEmpty else { return }
        flushes += 1
        let files = try writer.plan(windows, interner: engine.interner, flush: flushes,
                                    sourceRange: "\(rangeStart)..\(through)")
        try writer.publish(files)
        try dump?.record(files)
        summary.windowsWritten += windows.filter { !$0.isDelta }.count
        summary.filesWritten += files.count
    }

    func progress(_ started: Double) {
        guard options.progress else { return }
        let t = monotonicSeconds()
        guard t - lastProgress >= 0.5 else { return }
        lastProgress = t
        let rate = Double(summary.lines) / max(t - started, 1e-9)
        writeStderr("\r\u{1B}[K\(summary.lines) beacons, \(Int(rate)) beacons/s, \(summary.windowsWritten) windows written")
    }
}
