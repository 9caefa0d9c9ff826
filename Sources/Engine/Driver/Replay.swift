#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QoSCore

/// `qos replay`: the engine over NDJSON files (plain, `.zst`, or `-` for
/// stdin), as one partition in file order. A window is written as soon as
/// the watermark passes its end, exactly as the daemon would; at the end
/// of input the watermark goes to +∞ and everything is written.
public struct ReplayOptions {
    public var inputs: [String] = []
    public var sink = Defaults.sink
    public var config = EngineConfig()
    public var zstdLevel = Defaults.zstdLevel
    public var enricher: Enricher = NoEnricher()
    /// How input lines become beacons (Formats/).
    public var format: any RecordFormat = BeaconJSONFormat()
    /// Progress line on stderr (the CLI enables it on a TTY).
    public var progress = false
    /// Also write every output file's rows as JSON lines here (for tests).
    public var jsonDump: String?
    /// Engine clock for the `ts_in_future` check; the wall clock by default.
    public var nowMs: () -> Int64 = wallClockMs
    /// Tests: rebuild the engine's interners at every flush (output must not change).
    public var rebuildInternersAtEveryFlush = false

    public init() {}
}

public struct ReplaySummary: Sendable {
    public var lines: Int64 = 0
    public var bytes: Int64 = 0
    public var counters = EngineCounters()
    /// Sums that stuck at Int64.max during this replay (README "Numeric safety").
    public var saturatedValues: Int64 = 0
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
        if saturatedValues > 0 { s += "sums saturated at Int64.max: \(saturatedValues) (see README \"Numeric safety\")\n" }
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

/// Three stages on their own threads, so replay uses both cores while the
/// engine still sees every line in input order (so output is identical to a
/// single-threaded run): read + decode → sessions + windows → Parquet encode
/// + publish.
public final class ReplayJob {
    let options: ReplayOptions
    let engine: QoSEngine<DataSketchesKit>
    let writer: WindowFileWriter
    var summary = ReplaySummary()
    var flushes = 0
    var rangeStart = ""
    var lastProgress = 0.0
    var dump: JSONDump?
    var output: OutputStage?
    static let batchLines = 4096

    public init(_ options: ReplayOptions) throws {
        guard !options.inputs.isEmpty else { throw UserError("no input files — give one or more NDJSON files, or - for stdin") }
        self.options = options
        engine = QoSEngine(config: options.config, enricher: options.enricher)
        engine.internerRebuild.always = options.rebuildInternersAtEveryFlush
        let tag = shortHash(options.inputs.map { $0.split(separator: "/").last.map(String.init) ?? $0 }.joined(separator: "\n"))
        writer = WindowFileWriter(sink: FileSink(root: options.sink), windowMs: options.config.windowMs,
                                  inputTag: "r" + tag, zstdLevel: options.zstdLevel)
    }

    public func run() throws -> ReplaySummary {
        try writer.sink.checkWritable()
        if let path = options.jsonDump { dump = try JSONDump(path: path, sinkRoot: options.sink) }
        let started = monotonicSeconds()
        let saturatedBefore = SaturationCounter.total
        let decoded = BoundedQueue<DecodedBatch>(capacity: 4)
        let inputs = options.inputs
        let format = options.format
        let reader = Thread { ReplayJob.readAndDecode(inputs, format: format, into: decoded) }
        reader.start()
        let out = OutputStage(writer: writer, dump: dump)
        output = out
        defer { decoded.close(); out.close() }
        var now = options.nowMs()
        while let batch = try decoded.take() {
            try apply(batch, now: now)
            summary.bytes += batch.bytesRead
            now = options.nowMs()
            progress(started)
        }
        try flush(engine.finish(), through: "end")
        out.close()
        let written = try out.wait()
        summary.filesWritten = written
        try dump?.close()
        summary.counters = engine.counters
        summary.saturatedValues = SaturationCounter.total - saturatedBefore
        summary.seconds = monotonicSeconds() - started
        if options.progress { writeStderr("\r\u{1B}[K") }
        return summary
    }

    /// The engine stage: every line of a batch, in order.
    func apply(_ batch: DecodedBatch, now: Int64) throws {
        try batch.bytes.withUnsafeBytes { raw in
            for line in batch.lines {
                if rangeStart.isEmpty { rangeStart = "\(batch.file):\(line.number)" }
                engine.countMessage()
                let message = UnsafeRawBufferPointer(rebasing: raw[line.range])
                let source = SourcePosition.file(name: batch.file, line: line.number)
                for i in line.first..<(line.first + line.count) {
                    engine.ingest(batch.items[i], message: message, partition: 0, source: source, nowMs: now)
                }
                summary.lines += 1
                if engine.replayWatermark >= engine.nextDueEnd || engine.rejectsHeldOverCap {
                    try flush(engine.flush(watermark: engine.replayWatermark), through: "\(batch.file):\(line.number)")
                }
            }
        }
    }

    /// The read + decode stage (its own thread): records of the files'
    /// source, decoded by the input format, in batches that never span two files.
    static func readAndDecode(_ inputs: [String], format: any RecordFormat, into queue: BoundedQueue<DecodedBatch>) {
        do {
            let source = FileRecordSource(paths: inputs)
            var batch: DecodedBatch?
            var lastBytes: Int64 = 0
            var fileFormat = format.forSource(named: inputs.first ?? ""), formatFile = 0
            while !source.atEnd {
                let file = source.fileIndex
                var assigned = false
                _ = try source.poll(maxRecords: batchLines - (batch?.lines.count ?? 0), timeoutMs: 0, onRecord: { r in
                    if batch == nil { batch = DecodedBatch(file: source.currentFile) }
                    guard case .file(_, let number) = r.position else { return }
                    let start = batch!.bytes.count
                    batch!.bytes.append(contentsOf: r.bytes)
                    let first = batch!.items.count
                    if source.fileIndex != formatFile {
                        fileFormat = fileFormat.forSource(named: source.currentFile)
                        formatFile = source.fileIndex
                    }
                    fileFormat.decode(r.bytes) { batch!.items.append($0) }
                    batch!.lines.append((start..<batch!.bytes.count, number, first, batch!.items.count - first))
                }, onEvent: { e in if case .assigned = e { assigned = true } })
                if assigned { try source.startAssigned([0: nil]) }
                if batch?.lines.count == batchLines || source.fileIndex != file {
                    var b = batch ?? DecodedBatch(file: source.currentFile)
                    b.bytesRead = source.bytesRead - lastBytes
                    lastBytes = source.bytesRead
                    queue.put(b)
                    batch = nil
                }
            }
            queue.close()
        } catch {
            queue.close(error)
        }
    }

    /// Writes `windows` and the reject rows held since the last flush.
    func flush(_ windows: [WindowState<DataSketchesKit>], through: String) throws {
        let rejects = engine.takeRejects(nowMs: options.nowMs())
        guard !windows.isEmpty || !rejects.isEmpty else { return }
        flushes += 1
        summary.windowsWritten += windows.filter { !$0.isDelta }.count
        try output?.submit(windows, rejects: rejects, names: engine.interner.strings, flush: flushes,
                           sourceRange: "\(rangeStart)..\(through)")
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

/// The encode + publish stage: flushed windows are encoded to Parquet and
/// published on their own thread, in flush order.
final class OutputStage: @unchecked Sendable {
    struct Job {
        var windows: [WindowState<DataSketchesKit>]; var rejects: [RejectRow]; var names: [String]; var flush: Int; var range: String
    }
    let queue = BoundedQueue<Job>(capacity: 2)
    let writer: WindowFileWriter
    let dump: JSONDump?
    private let done = NSCondition()
    private var finished = false
    private var error: Error?
    private var files = 0

    init(writer: WindowFileWriter, dump: JSONDump?) {
        self.writer = writer
        self.dump = dump
        Thread { [self] in run() }.start()
    }

    func submit(_ windows: [WindowState<DataSketchesKit>], rejects: [RejectRow], names: [String], flush: Int,
                sourceRange: String) throws {
        if let e = done.withLock({ error }) { throw e }
        queue.put(Job(windows: windows, rejects: rejects, names: names, flush: flush, range: sourceRange))
    }

    func close() { queue.close() }

    /// Waits until every submitted flush is published; returns the file count.
    func wait() throws -> Int {
        done.lock()
        defer { done.unlock() }
        while !finished { done.wait() }
        if let error { throw error }
        return files
    }

    private func run() {
        var failure: Error?
        var count = 0
        do {
            while let job = try queue.take() {
                let planned = try writer.plan(job.windows, names: job.names, flush: job.flush, sourceRange: job.range)
                    + writer.planRejects(job.rejects, flush: job.flush, sourceRange: job.range)
                try writer.publish(planned)
                try dump?.record(planned)
                count += planned.count
            }
        } catch {
            failure = error
            queue.close()
        }
        done.lock()
        finished = true
        self.error = failure
        files = count
        done.broadcast()
        done.unlock()
    }
}
