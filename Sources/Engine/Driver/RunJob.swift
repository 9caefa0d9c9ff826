#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Kafka
import QoSCore

/// `qos run`: a consumer-group member that turns a topic of beacons into
/// windowed Parquet partitions with exactly-once output (see Checkpoint.swift).
/// One thread polls (librdkafka 2.0.x rule); every flush is a checkpoint
/// epoch: files staged, manifest committed (offsets + partition states),
/// files published, then offsets committed to Kafka for lag monitoring only.
public struct RunOptions {
    public var brokers = Defaults.brokers
    /// The topics and their formats (each format resolved).
    public var topics = [TopicSpec(name: Defaults.topic, format: RecordFormats.defaultName)]
    /// What the topics' formats take from the configuration.
    public var formatSettings = FormatSettings()
    /// The first topic's name; setting it consumes that one topic of beacons.
    public var topic: String {
        get { topics[0].name }
        set { topics = [TopicSpec(name: newValue, format: RecordFormats.defaultName)] }
    }
    public var group = Defaults.group
    public var sink = Defaults.sink
    /// Where an `s3://` sink's endpoint, region and credentials come from (docs/object-storage.md).
    public var environment = ProcessInfo.processInfo.environment
    public var config = EngineConfig()
    public var zstdLevel = Defaults.zstdLevel
    public var enricher: Enricher = NoEnricher()
    /// librdkafka properties passed through unchanged (`kafka.*` keys).
    public var kafka: [String: String] = [:]
    /// Who fetches the records (docs/kafka-fetch.md).
    public var fetchPath = KafkaFetchPath.native
    public var instance = RunOptions.defaultInstance()
    /// A partition idle this long (wall clock) does not hold the watermark back.
    public var idleTimeoutMs = Defaults.idleTimeoutMs
    /// Checkpoint at least this often even when no window is due (bounds replay after a crash).
    public var checkpointIntervalMs = Defaults.checkpointIntervalMs
    /// A window that becomes due sooner than this after the previous
    /// checkpoint waits for it (wall clock): while catching up, several
    /// windows then share one checkpoint instead of one each. Window latency
    /// grows by at most this much.
    public var checkpointMinIntervalMs = Defaults.checkpointMinIntervalMs
    /// Late deltas wait this long (wall clock) at most, then are written as
    /// one file per table and hour directory (`LateFlushPolicy`).
    public var lateFlushIntervalMs = Defaults.lateFlushIntervalMs
    /// When the daemon compacts an hour directory (`Compactor`).
    public var compaction = CompactionPolicy()
    /// At shutdown, compact every hour directory holding more than one file (`qos demo`).
    public var compactOnShutdown = false
    /// Tests (the SIGKILL interop test): sleep this long before and after each
    /// compaction's swap, so kills land inside compactions.
    public var compactionPauseMs = 0
    public var pollBatch = 5000
    /// Batch mode: once this instance owns every partition and has read each to its end, treat
    /// that as the end of input (close every session, write every window,
    /// like `qos replay`), checkpoint and stop.
    public var untilCaughtUp = false
    /// Start even when the checkpoint state does not cover the sink's
    /// published output or came from another Kafka cluster (README "The daemon").
    public var acceptStateLoss = false
    /// Stop after this many seconds (nil: until SIGTERM/SIGINT).
    public var durationSeconds: Double?
    /// With `durationSeconds`: called once when they are up (`qos demo`
    /// stops its producers there); the run then goes on until it has read
    /// every partition to its end (as `untilCaughtUp` sees it), at most
    /// `drainLimitSeconds` more. Drained, it ends the input as
    /// `untilCaughtUp` does — every session closes, every window is
    /// written, the last one partial; cut short, it stops as at
    /// `durationSeconds`. A machine slower than the producers still
    /// counts everything they produced.
    public var afterDuration: (() -> Void)?
    /// The longest a drain after `afterDuration` may take (monotonic seconds
    /// from its return); what is still unread then stays in the topics.
    public var drainLimitSeconds: Double = 60
    /// Called after every checkpoint (for `qos demo`'s live view and /metrics).
    public var onCheckpoint: ((RunStatus) -> Void)?
    /// Structured log lines on stderr (logfmt: `ts=… level=… msg="…"`).
    public var log: Logger = .stderr
    /// Alert rules evaluated on every written window (README "Alerts"); nil: none.
    public var alerts: AlertPipeline?

    public init() {}

    public static func defaultInstance() -> String {
        let host = String(decoding: hostName().utf8.prefix(180).map { isInstanceByte($0) ? $0 : UInt8(ascii: "-") }, as: UTF8.self)
        return "\(host)-\(getpid())"
    }

    /// An instance id names directories and objects of the sink
    /// (`_qos/manifests/<instance>/`, `_staging/<instance>/`, the ledger):
    /// one path component of at most 200 letters, digits, '.', '_' and '-',
    /// never "." or ".." — `../x` wrote manifests outside the sink.
    public static func isValidInstance(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 200 && s != "." && s != ".."
            && s.utf8.allSatisfy(isInstanceByte)
    }

    private static func isInstanceByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"): true
        default: false
        }
    }
}

/// A snapshot of the daemon's progress.
public struct RunStatus: Sendable {
    public var counters = EngineCounters()
    /// Alert firings since the process started, by rule name (README "Alerts").
    public var alertsFired: [String: Int64] = [:]
    public var openSessions = 0
    public var windowsWritten = 0
    public var filesWritten = 0
    public var epoch: Int64 = 0
    public var watermarkMs: Int64?
    public var partitions: [Int32] = []
    public var lag: [Int32: Int64] = [:]
    public var lastFlushMs = 0.0
    /// The drain after `durationSeconds` (`RunOptions.afterDuration`) hit
    /// `drainLimitSeconds` with partitions not read to their end.
    public var drainCutShort = false
    /// Sums that stuck at Int64.max since the process started (README "Numeric safety").
    public var saturatedValues: Int64 = 0
    /// Window tables written with an `__other__` row: the group cap was
    /// reached and further groups were folded into it (README "Limits").
    public var tablesAtGroupCap: Int64 = 0
    /// Time from the watermark passing a window's end (detected after a poll)
    /// to its files being visible (including any wait for
    /// `checkpointMinIntervalMs`): max and mean over the run.
    public var windowLatencyMsMax = 0.0
    public var windowLatencyMsSum = 0.0
    public var windowLatencyCount = 0
    public var lastWindows: [WindowState<DataSketchesKit>] = []
    public var interner: StringInterner?
    /// Strings held by the engine's dimension and value interners (bounded: see README).
    /// Late-delta files written, compactions done and the files they replaced,
    /// and the most files in one hour directory per table (README "Late data and compaction").
    public var lateFilesWritten = 0
    public var compactions = 0
    public var compactedFiles = 0
    public var hourDirFilesMax: [String: Int] = [:]
    public var internedDimensions = 0
    public var internedValues = 0
    /// zstd message sets librdkafka was told a buffer size for
    /// (`ZstdFrameSizeHint`, docs/architecture.md "Kafka: zstd message sets").
    public var kafkaZstdFramesSized = 0
    /// Kafka moved a partition's position (docs/architecture.md "When Kafka
    /// moves a position"): offsets skipped because retention deleted them
    /// first, and partitions whose log restarted below their next offset.
    public var kafkaOffsetsSkipped: Int64 = 0
    public var kafkaLogRestarts = 0
}

/// Set by the signal handlers; checked between polls.
nonisolated(unsafe) public var runStopRequested: sig_atomic_t = 0

/// `qos run` over Kafka: opens the checkpoint state, connects the consumer
/// (`KafkaRecordSource`: assignment, revocation, offset commit) and runs the
/// shared `StreamDriver` until stopped.
public final class RunJob {
    let o: RunOptions
    let driver: StreamDriver

    public init(_ options: RunOptions) throws {
        var options = options
        if let publish = options.onCheckpoint {  // the Kafka client's own counts join the driver's
            options.onCheckpoint = { var s = $0; s.kafkaZstdFramesSized = ZstdFrameSizeHint.framesSized; publish(s) }
        }
        o = options
        driver = try StreamDriver(options)
    }

    /// Connects, checks the topic, and consumes until stopped. Returns the final status.
    public func run() throws -> RunStatus {
        // Held until run returns: no second process of this instance id on this sink.
        let lock = o.sink.hasPrefix("s3://") ? nil : try InstanceLock(sinkRoot: o.sink, instance: o.instance)
        // And no `qos reaggregate --compact` meanwhile (it swaps hour directories under the daemon).
        let sinkLock = o.sink.hasPrefix("s3://") ? nil : try SinkLock(sinkRoot: o.sink, for: .daemon)
        defer { withExtendedLifetime((lock, sinkLock)) {} }
        let store: CheckpointStore = driver.store
        try store.openState(accept: o.acceptStateLoss, log: o.log.warn)  // rolls forward, like recover()
        let source: KafkaRecordSource
        do {
            // Short fetch waits: catch-up is not held back by brokers (librdkafka's
            // mock cluster among them) that wait the full fetch.wait.max.ms per fetch.
            var extra = ["fetch.wait.max.ms": "20"]
            extra.merge(o.kafka) { _, user in user }
            source = try KafkaRecordSource(brokers: o.brokers, group: o.group, topics: o.topics.map(\.name), properties: extra,
                                           logHandler: { m in
                                               guard m.level <= 3 else { return }  // librdkafka errors only
                                               writeStderr(logfmt(level: .warn, message: "kafka: \(m.facility): \(m.message)"))
                                           }, fetchPath: o.fetchPath)
            for t in o.topics {
                try store.checkCluster(source.clusterId(), topic: t.name, accept: o.acceptStateLoss, log: o.log.warn)
            }
        } catch let e as KafkaError {
            throw UserError(e.message)
        }
        let fetching = source.consumer.fetchesNatively ? "native"
            : o.fetchPath == .native ? "librdkafka (the kafka properties ask for TLS, SASL, a rack or an isolation level the native path does not follow)"
            : "librdkafka"
        o.log("qos run: consuming \(o.topics.map(\.description).joined(separator: ", ")) from \(o.brokers) as \(o.instance) in group \(o.group), sink \(o.sink), fetch path \(fetching)")
        let status: RunStatus
        do {
            status = try driver.run(source)
        } catch let e as KafkaError {
            throw UserError(e.message)
        }
        source.close()
        let c = driver.engine.counters
        o.log("qos run: stopped after checkpoint epoch \(store.epoch): \(c.messages) messages, accepted \(c.accepted), "
              + "rejected \(c.rejectedTotal), duplicates \(c.duplicates), late \(c.lateEvents), sessions closed \(c.sessionsClosed); "
              + "window latency mean \(Int(status.windowLatencyMsSum / Double(max(status.windowLatencyCount, 1)))) ms, "
              + "max \(Int(status.windowLatencyMsMax)) ms over \(status.windowLatencyCount) flushes")
        return status
    }
}
