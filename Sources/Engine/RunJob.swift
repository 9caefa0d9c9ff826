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
    public var topic = Defaults.topic
    public var group = Defaults.group
    public var sink = Defaults.sink
    public var config = EngineConfig()
    public var zstdLevel = Defaults.zstdLevel
    public var enricher: Enricher = NoEnricher()
    /// librdkafka properties passed through unchanged (`kafka.*` keys).
    public var kafka: [String: String] = [:]
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
    /// Called after every checkpoint (for `qos demo`'s live view and /metrics).
    public var onCheckpoint: ((RunStatus) -> Void)?
    /// Structured log lines on stderr (logfmt: `ts=… level=… msg="…"`).
    public var log: Logger = .stderr

    public init() {}

    public static func defaultInstance() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return "\(String(cString: buf))-\(getpid())"
    }
}

/// A snapshot of the daemon's progress.
public struct RunStatus: Sendable {
    public var counters = EngineCounters()
    public var openSessions = 0
    public var windowsWritten = 0
    public var filesWritten = 0
    public var epoch: Int64 = 0
    public var watermarkMs: Int64?
    public var partitions: [Int32] = []
    public var lag: [Int32: Int64] = [:]
    public var lastFlushMs = 0.0
    /// Sums that stuck at Int64.max since the process started (README "Numeric safety").
    public var saturatedValues: Int64 = 0
    /// Time from the watermark passing a window's end (detected after a poll)
    /// to its files being visible (including any wait for
    /// `checkpointMinIntervalMs`): max and mean over the run.
    public var windowLatencyMsMax = 0.0
    public var windowLatencyMsSum = 0.0
    public var windowLatencyCount = 0
    public var lastWindows: [WindowState<DataSketchesKit>] = []
    public var interner: StringInterner?
    /// Strings held by the engine's dimension and value interners (bounded: see README).
    public var internedDimensions = 0
    public var internedValues = 0
}

/// glibc's mallopt (malloc.h is not part of the Glibc module).
@_silgen_name("mallopt")
func qosMallopt(_ param: Int32, _ value: Int32) -> Int32

/// Set by the signal handlers; checked between polls.
nonisolated(unsafe) public var runStopRequested: sig_atomic_t = 0

public final class RunJob {
    let o: RunOptions
    let engine: SessionEngine<DataSketchesKit>
    let writer: WindowFileWriter
    let store: CheckpointStore
    var consumer: KafkaConsumer!
    var tracker: WatermarkTracker
    /// Partitions we own: checkpoint sequence, next offset, first offset of this epoch.
    var owned: [Int32: (seq: Int64, next: Int64, epochStart: Int64)] = [:]
    var status = RunStatus()
    var lastCheckpointWall: Int64 = 0
    /// When the watermark was first seen past the next due window end (monotonic s).
    var windowDueSince: Double?
    var lastErrorLog: [String: Int64] = [:]
    var caughtUpSince: Double?
    /// Rotates `nudgeFetcher` over the partitions.
    var nudgeCursor = 0
    var touched = Set<Int32>()
    var partitionCount = 0
    var finished = false

    public init(_ options: RunOptions) throws {
        o = options
        let sink = FileSink(root: options.sink)
        try sink.checkWritable()
        engine = SessionEngine(config: options.config, enricher: options.enricher)
        writer = WindowFileWriter(sink: sink, windowMs: options.config.windowMs, inputTag: "k",
                                  zstdLevel: options.zstdLevel)
        store = try CheckpointStore(sink: sink, instance: options.instance)
        tracker = WatermarkTracker(latenessMs: options.config.latenessMs, idleTimeoutMs: options.idleTimeoutMs)
    }

    /// Connects, checks the topic, and consumes until stopped. Returns the final status.
    public func run() throws -> RunStatus {
        #if canImport(Glibc)
        // Checkpoints build buffers of several MiB each time. Served from the heap (and kept
        // there) instead of fresh mmaps, they cost no page faults; ~4 % of catch-up CPU.
        _ = qosMallopt(-3 /* M_MMAP_THRESHOLD */, 32 << 20)
        _ = qosMallopt(-1 /* M_TRIM_THRESHOLD */, 256 << 20)
        #endif
        try store.openState(accept: o.acceptStateLoss, log: o.log.warn)  // rolls forward, like recover()
        do {
            // Short fetch waits: catch-up is not held back by brokers (librdkafka's
            // mock cluster among them) that wait the full fetch.wait.max.ms per fetch.
            var extra = ["fetch.wait.max.ms": "20"]
            extra.merge(o.kafka) { _, user in user }
            consumer = try KafkaConsumer(brokers: o.brokers, groupId: o.group, topics: [o.topic], extra: extra,
                                         logHandler: { m in
                                             guard m.level <= 3 else { return }  // librdkafka errors only
                                             writeStderr(logfmt(level: .warn, message: "kafka: \(m.facility): \(m.message)"))
                                         })
            // Throws the one-line "unreachable" / "topic does not exist" errors itself.
            partitionCount = try consumer.checkTopics(timeoutMs: 10_000)[o.topic] ?? 0
            try store.checkCluster(consumer.clusterId() ?? "", topic: o.topic, accept: o.acceptStateLoss, log: o.log.warn)
        } catch let e as KafkaError {
            throw UserError(e.message)
        }
        o.log("qos run: consuming \(o.topic) from \(o.brokers) as \(o.instance) in group \(o.group), sink \(o.sink)")
        let started = monotonicSeconds()
        lastCheckpointWall = wallClockMs()
        while runStopRequested == 0 && !finished {
            if let d = o.durationSeconds, monotonicSeconds() - started >= d { break }
            try step()
        }
        if !finished { try checkpoint(reason: "shutdown") }
        consumer.close()
        let c = engine.counters
        o.log("qos run: stopped after checkpoint epoch \(store.epoch): \(c.messages) messages, accepted \(c.accepted), "
              + "rejected \(c.rejectedTotal), duplicates \(c.duplicates), late \(c.lateEvents), sessions closed \(c.sessionsClosed); "
              + "window latency mean \(Int(status.windowLatencyMsSum / Double(max(status.windowLatencyCount, 1)))) ms, "
              + "max \(Int(status.windowLatencyMsMax)) ms over \(status.windowLatencyCount) flushes")
        return status
    }

    /// One poll and whatever it makes due. Messages are decoded and applied
    /// straight from librdkafka's buffers; other events are handled after the
    /// poll (rebalance events always come last).
    func step() throws {
        var events: [KafkaEvent] = []
        var now = wallClockMs()
        let n: Int
        do {
            n = try consumer.poll(maxMessages: o.pollBatch, timeoutMs: 100,
                                  onMessage: { ingest($0, now) }, onEvent: { events.append($0) })
        } catch let e as KafkaError {
            endRun()
            throw UserError(e.message)
        }
        endRun()
        now = wallClockMs()
        if n == 0 { nudgeFetcher() }
        if o.untilCaughtUp, try checkCaughtUp(messages: n) { return try finish() }
        for e in events {
            switch e {
            case .message: break  // messages arrive through onMessage
            case .assigned(let tps): observeTouched(now); try assign(tps, now)
            case .revoked(let tps, let lost): observeTouched(now); try revoke(tps, lost: lost)
            case .error(let err): logError(err, now)
            }
        }
        observeTouched(now)
        if engine.rejectsHeldOverCap {
            try checkpoint(reason: "rejects held")  // writes them: memory stays bounded, nothing is dropped
        } else if let wm = tracker.value(wallMs: now), wm >= engine.nextDueEnd {
            if windowDueSince == nil { windowDueSince = monotonicSeconds() }
            if now - lastCheckpointWall >= o.checkpointMinIntervalMs { try checkpoint(reason: "window") }
        } else if now - lastCheckpointWall >= o.checkpointIntervalMs {
            try checkpoint(reason: "interval")
        }
    }

    /// Messages come in runs from one partition: its `owned` entry is read
    /// once per run and written back at the run's end (`endRun`).
    var current: (partition: Int32, own: (seq: Int64, next: Int64, epochStart: Int64)?)?

    func ingest(_ m: KafkaRecord, _ now: Int64) {
        if current?.partition != m.partition {
            endRun()
            current = (m.partition, owned[m.partition])
            if current!.own != nil { touched.insert(m.partition) }
        }
        guard let own = current!.own, m.offset >= own.next else { return }
        engine.ingest(message: m.payload, partition: m.partition,
                      source: .kafka(topic: m.topic, partition: m.partition, offset: m.offset), nowMs: now)
        current!.own!.next = m.offset + 1
    }

    func endRun() {
        if let r = current, let own = r.own { owned[r.partition] = own }
        current = nil
    }

    /// Feeds the watermark tracker once per poll for each partition that had
    /// messages (not once per message).
    func observeTouched(_ now: Int64) {
        for p in touched {
            let maxTs = engine.partition(p).maxTs
            tracker.observe(partition: p, ts: maxTs == .min ? nil : maxTs, wallMs: now)
        }
        touched.removeAll(keepingCapacity: true)
    }

    /// New partitions: load their newest checkpoint (rolling forward any
    /// unfinished publish), then start from its offsets.
    func assign(_ tps: [TopicPartition], _ now: Int64) throws {
        let latest = CheckpointStore.latest(try store.recover(), topic: o.topic)
        var start: [TopicPartition: Int64] = [:]
        for tp in tps where tp.topic == o.topic {
            if let ck = latest[tp.partition] {
                do { try engine.restore(partition: tp.partition, from: ck.state) } catch let e as StateError {
                    throw CheckpointError.corrupt(path: ck.source, detail: "partition \(tp.partition): \(e.message)")
                }
                owned[tp.partition] = (ck.seq, ck.nextOffset, ck.nextOffset)
                start[tp] = ck.nextOffset
                let maxTs = engine.partition(tp.partition).maxTs
                if maxTs != .min { tracker.restore(partition: tp.partition, maxTs: maxTs, wallMs: now) }
            } else {
                engine.forget(partition: tp.partition)
                owned[tp.partition] = (0, 0, 0)
                start[tp] = KafkaOffset.beginning
                tracker.observe(partition: tp.partition, ts: nil, wallMs: now)
            }
        }
        try consumer.completeAssign(startOffsets: start, otherwise: KafkaOffset.beginning)
        o.log("qos run: assigned partitions \(tps.map(\.partition).sorted()) at offsets \(start.values.sorted())")
    }

    /// Partitions taken away: checkpoint them (and everything else) before
    /// they are released, unless the group already gave them away.
    func revoke(_ tps: [TopicPartition], lost: Bool) throws {
        let ids = tps.filter { $0.topic == o.topic }.map(\.partition)
        if lost {
            for p in ids { engine.forget(partition: p); owned[p] = nil; tracker.remove(partition: p) }
            try checkpoint(reason: "lost")
        } else {
            try checkpoint(reason: "revoke")
            for p in ids { engine.forget(partition: p); owned[p] = nil; tracker.remove(partition: p) }
        }
        try consumer.completeRevoke()
        o.log("qos run: revoked partitions \(ids.sorted())\(lost ? " (lost)" : "")")
    }

    /// Caught up: no messages in this poll and every owned partition's next
    /// offset at its high watermark, for a second in a row.
    /// librdkafka 2.0 stops fetching a partition whose local queue is over
    /// queued.min.messages or queued.max.messages.kbytes and decides again
    /// only when its broker thread wakes up (network I/O or a request from
    /// the application, else after about a second): while catching up, the
    /// consumer queue runs dry with every partition waiting. An empty poll
    /// while a partition is behind asks for that partition's watermarks,
    /// which wakes its broker's thread (catch-up of 5 M beacons in 64
    /// partitions: 27 s → 16 s wall).
    func nudgeFetcher() {
        let ids = owned.keys.sorted()
        guard !ids.isEmpty else { return }
        for i in 0..<ids.count {
            let p = ids[(nudgeCursor + i) % ids.count]
            let tp = TopicPartition(o.topic, p)
            guard let hi = consumer.cachedWatermarks(tp)?.high, let own = owned[p], own.next < hi else { continue }
            nudgeCursor = (nudgeCursor + i + 1) % ids.count
            _ = try? consumer.queryWatermarks(tp, timeoutMs: 500)
            return
        }
    }

    func checkCaughtUp(messages: Int) throws -> Bool {
        // Only an instance that owns every partition of the topic may end the input.
        let idle = !owned.isEmpty && owned.count == partitionCount && messages == 0
        guard idle else { caughtUpSince = nil; return false }
        for (p, own) in owned {
            // The high watermark of the partition's latest fetch response
            // (librdkafka keeps fetching while idle, so it is at most
            // fetch.wait.max.ms old); asking the broker for each of 64
            // partitions took over a second, which delayed the last windows.
            let tp = TopicPartition(o.topic, p)
            let hi = try consumer.cachedWatermarks(tp)?.high ?? consumer.queryWatermarks(tp, timeoutMs: 5000).high
            if own.next < hi { caughtUpSince = nil; return false }
        }
        let t = monotonicSeconds()
        if caughtUpSince == nil { caughtUpSince = t }
        return t - caughtUpSince! >= 1
    }

    /// End of input (batch mode): every session closes, every window is written.
    func finish() throws {
        try checkpoint(reason: "end of input", windows: engine.finish())
        finished = true
        o.log("qos run: caught up; wrote every window (end of input)")
    }

    /// One epoch: flush what the watermark allows, stage, commit, publish.
    func checkpoint(reason: String, windows flushed: [WindowState<DataSketchesKit>]? = nil) throws {
        try store.checkIdentity()
        let t0 = monotonicSeconds()
        let now = wallClockMs()
        let wm = tracker.value(wallMs: now) ?? .min
        let windows = flushed ?? engine.flush(watermark: wm)
        let ids = owned.keys.sorted()
        let range = ids.map { "\($0):\(owned[$0]!.epochStart)-\(owned[$0]!.next)" }.joined(separator: ",")
        let tag = "k" + shortHash("\(o.instance)|\(o.topic)|\(range)")
        let files = try writer.plan(windows, interner: engine.interner, flush: Int(store.epoch + 1),
                                    sourceRange: "\(o.topic)[\(range)]", tag: tag)
            + writer.planRejects(engine.takeRejects(nowMs: now), flush: Int(store.epoch + 1),
                                 sourceRange: "\(o.topic)[\(range)]", tag: tag)
        let unchanged = ids.allSatisfy { owned[$0]!.epochStart == owned[$0]!.next }
        if files.isEmpty && unchanged {
            // Nothing new since the last checkpoint: it still describes our state.
            lastCheckpointWall = now
            return update(windows, files, wm, t0)
        }
        let parts = ids.map { p in
            PartitionCheckpoint(topic: o.topic, partition: p, seq: owned[p]!.seq + 1,
                                nextOffset: owned[p]!.next, state: engine.snapshot(partition: p))
        }
        try store.commit(files: files, partitions: parts)
        for p in ids { owned[p] = (owned[p]!.seq + 1, owned[p]!.next, owned[p]!.next) }
        if store.epoch % 20 == 0 { store.collectGarbage(try store.manifests()) }
        let offsets = Dictionary(uniqueKeysWithValues: ids.filter { owned[$0]!.next > 0 }
            .map { (TopicPartition(o.topic, $0), owned[$0]!.next) })
        if !offsets.isEmpty { try? consumer.commit(offsets, async: true) }
        lastCheckpointWall = now
        update(windows, files, wm, t0)
    }

    func update(_ windows: [WindowState<DataSketchesKit>], _ files: [WindowFileWriter.PlannedFile],
                _ wm: Int64, _ t0: Double) {
        status.counters = engine.counters
        status.openSessions = engine.partitions.values.reduce(0) { $0 + $1.sessions.count }
        status.windowsWritten += windows.filter { !$0.isDelta }.count
        status.filesWritten += files.count
        status.epoch = store.epoch
        status.watermarkMs = wm == .min ? nil : wm
        status.partitions = owned.keys.sorted()
        status.lag = Dictionary(uniqueKeysWithValues: consumer.lag().map { ($0.key.partition, $0.value) })
        status.lastFlushMs = (monotonicSeconds() - t0) * 1000
        let saturated = SaturationCounter.total
        if saturated != status.saturatedValues {
            o.log("qos run: \(saturated - status.saturatedValues) sums saturated at Int64.max in this flush "
                  + "(\(saturated) in all) — a value past the beacon bounds; see README \"Numeric safety\"")
            status.saturatedValues = saturated
        }
        if windows.contains(where: { !$0.isDelta }) {
            let latencyMs = (monotonicSeconds() - min(windowDueSince ?? t0, t0)) * 1000
            status.windowLatencyMsMax = max(status.windowLatencyMsMax, latencyMs)
            status.windowLatencyMsSum += latencyMs
            status.windowLatencyCount += 1
            windowDueSince = nil
        }
        if windows.contains(where: { !$0.isDelta }) {
            // The windows' ids are those of this flush's interner (a later flush may rebuild it).
            status.lastWindows = windows.filter { !$0.isDelta }
            status.interner = engine.interner
        }
        status.internedDimensions = engine.interner.count
        status.internedValues = engine.values.count
        o.onCheckpoint?(status)
    }

    /// Broker trouble is logged (once per kind per 10 s), never fatal: librdkafka retries.
    /// An offset reset is different: the checkpointed offset is no longer
    /// retained, messages were skipped — logged every time, as data loss.
    func logError(_ e: KafkaError, _ now: Int64) {
        if e.kind == .offsetReset {
            o.log.error("qos run: DATA LOSS: \(e.message) — Kafka no longer retains the checkpointed offset; raise the topic's retention")
            return
        }
        let key = "\(e.kind)"
        if now - (lastErrorLog[key] ?? 0) >= 10_000 {
            lastErrorLog[key] = now
            o.log.warn("qos run: kafka: \(e.message) (retrying)")
        }
    }
}
