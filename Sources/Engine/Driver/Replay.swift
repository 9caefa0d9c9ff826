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
    /// Where an `s3://` sink's endpoint, region and credentials come from (docs/object-storage.md).
    public var environment = ProcessInfo.processInfo.environment
    public var config = EngineConfig()
    public var zstdLevel = Defaults.zstdLevel
    /// Late deltas are written at most once per this much event time (the
    /// watermark), so replays of one input write the same files (`LateFlushPolicy`).
    public var lateFlushIntervalMs = Defaults.lateFlushIntervalMs
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
    /// Engine threads: 1 is one engine in input order; N > 1 shards the
    /// sessions by a hash of their id over N engines and merges their flushes
    /// (`ShardRouter`, docs/architecture.md "Sharding").
    public var workers = 1
    /// Threads that decode the input when its format decodes each record
    /// alone (beacon JSON); other formats decode on one. By default one per
    /// core, up to 4 (docs/architecture.md "Threads").
    public var decoders = ReplayOptions.defaultDecoders
    public static var defaultDecoders: Int { Swift.min(4, Swift.max(1, ProcessInfo.processInfo.activeProcessorCount)) }

    public init() {}
}

public struct ReplaySummary: Sendable {
    public var lines: Int64 = 0
    public var bytes: Int64 = 0
    public var counters = EngineCounters()
    /// Sums that stuck at Int64.max during this replay (README "Numeric safety").
    public var saturatedValues: Int64 = 0
    /// Window tables written with an `__other__` row (the group cap was reached).
    public var tablesAtGroupCap: Int64 = 0
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
        if tablesAtGroupCap > 0 {
            s += "group cap reached in \(tablesAtGroupCap) window tables: their further groups are in __other__ rows "
            s += "(raise group_cap or roll up with fewer dimensions)\n"
        }
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

/// This machine's host name (instance ids, compaction leases).
func hostName() -> String {
    var buf = [CChar](repeating: 0, count: 256)
    gethostname(&buf, 255)
    return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// `qos replay` on the driver of `qos run` (`StreamDriver`), three threads
/// joined by bounded queues: the files' records are read and decoded on the
/// decode thread (`DecodeStage` over `FileRecordSource`), applied to the
/// engine in input order on this one, and each flush is encoded and
/// published on a third (`DirectPublish`); the engine sees every line in
/// input order, so output does not depend on the threading.
public final class ReplayJob {
    let options: ReplayOptions
    let driver: StreamDriver
    var lastProgress = 0.0

    public init(_ options: ReplayOptions) throws {
        guard !options.inputs.isEmpty else { throw UserError("no input files — give one or more NDJSON files, or - for stdin") }
        self.options = options
        var o = RunOptions()
        o.sink = options.sink
        o.environment = options.environment
        o.config = options.config
        o.zstdLevel = options.zstdLevel
        o.enricher = options.enricher
        o.lateFlushIntervalMs = options.lateFlushIntervalMs
        o.untilCaughtUp = true
        o.log = .silent
        let tag = shortHash(options.inputs.map { $0.split(separator: "/").last.map(String.init) ?? $0 }.joined(separator: "\n"))
        driver = try StreamDriver(o, format: options.format, clock: FunctionClock(options.nowMs), directTag: tag)
        driver.engine.internerRebuild.always = options.rebuildInternersAtEveryFlush
    }

    public func run() throws -> ReplaySummary {
        let direct = driver.direct!
        if let path = options.jsonDump { direct.dump = try JSONDump(path: path, sinkRoot: options.sink) }
        let started = monotonicSeconds()
        let saturatedBefore = SaturationCounter.total
        let files = FileRecordSource(paths: options.inputs)
        let stage = DecodeStage(files, format: options.format, finite: true, decoders: options.decoders)
        defer { stage.close(); direct.close() }
        var summary = ReplaySummary()
        if options.workers > 1 {
            try driver.attach(stage)  // the formats; the router polls the stage itself
            let router = ShardRouter(workers: options.workers, config: options.config, enricher: options.enricher,
                                     direct: direct, wall: driver.clock, lateFlushIntervalMs: options.lateFlushIntervalMs,
                                     rebuildInternersAlways: options.rebuildInternersAtEveryFlush)
            summary.windowsWritten = try router.run(stage) { progress(started, router.clock.counters.messages, nil) }
            summary.filesWritten = try direct.finish()
            summary.counters = router.counters
        } else {
            try driver.attach(stage)
            while !driver.finished {
                try driver.step()
                progress(started, driver.engine.counters.messages, driver.status.windowsWritten)
            }
            summary.counters = driver.engine.counters
            summary.windowsWritten = driver.status.windowsWritten
            summary.filesWritten = driver.status.filesWritten
        }
        try direct.dump?.close()
        stage.close()
        summary.lines = summary.counters.messages
        summary.bytes = files.bytesRead
        summary.saturatedValues = SaturationCounter.total - saturatedBefore
        summary.tablesAtGroupCap = direct.tablesAtGroupCap
        summary.seconds = monotonicSeconds() - started
        if options.progress { writeStderr("\r\u{1B}[K") }
        return summary
    }

    /// `windows`: base windows written so far, when known (not while shards run ahead).
    func progress(_ started: Double, _ lines: Int64, _ windows: Int?) {
        guard options.progress else { return }
        let t = monotonicSeconds()
        guard t - lastProgress >= 0.5 else { return }
        lastProgress = t
        let rate = Double(lines) / max(t - started, 1e-9)
        writeStderr("\r\u{1B}[K\(lines) beacons, \(Int(rate)) beacons/s" + (windows.map { ", \($0) windows written" } ?? ""))
    }
}

/// A wall clock read from a function (replay's `nowMs`), with the system's monotonic clock.
final class FunctionClock: Clock {
    let now: () -> Int64
    init(_ now: @escaping () -> Int64) { self.now = now }
    func wallMs() -> Int64 { now() }
    func monotonicSeconds() -> Double { Engine.monotonicSeconds() }
}
