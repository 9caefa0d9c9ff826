import QoSCore

/// The one pipeline of `qos run` and `qos replay` over any `RecordSource`:
/// decode → sessions and windows → encode → publish. Records are decoded by
/// a `RecordFormat` — in the source's poll callback (`qos run`: librdkafka
/// 2.0.x rule, one thread polls) or ahead on the `DecodeStage` thread
/// (`qos replay`) — and applied to the session engine on the driver's
/// thread. Epochs: for `qos run` every flush is a checkpoint epoch
/// (`EpochCommit`) under the checkpoint policy; for `qos replay`
/// (`direct`) a flush follows any record that makes a window due and is
/// published without checkpoints (`DirectPublish`). The driver owns the
/// partitions' bookkeeping (`PartitionBook`), the watermark over
/// partitions, and the policy; the source only delivers records and
/// ownership changes. Time comes from an injected `Clock`, so tests drive
/// rebalances, idleness and the policy in-process (DriverTests).
public final class StreamDriver {
    let o: RunOptions
    /// Overrides the topics' formats for every stream (tests).
    let formatOverride: (any RecordFormat)?
    /// The format of each of the source's streams, in stream order.
    var formats: [any RecordFormat] = []
    /// Each owned partition's own instance of its stream's format (a CDN
    /// log parser keeps state across the messages of a partition).
    var partitionFormats: [Int32: any RecordFormat] = [:]
    let clock: any Clock
    let engine: QoSEngine<DataSketchesKit>
    let writer: WindowFileWriter
    /// `qos run`'s checkpoints (nil for a direct driver).
    let store: CheckpointStore!
    var epochCommit: EpochCommit!
    /// `qos replay`'s epochs: published directly after any record that makes a window due (nil for `qos run`).
    let direct: DirectPublish?
    /// `direct`, unretained, for the check after every record: loading
    /// `direct` there cost a retain and a release per record
    /// (bench/results/speed.md §11). `direct` keeps it alive.
    private let directRef: Unmanaged<DirectPublish>?
    /// A publish that failed inside the poll callback, thrown after the poll.
    var failure: Error?
    /// How long the input must stay at its end before it counts as ended (`untilCaughtUp`).
    let endQuietSeconds: Double
    /// Late deltas (README "Late data and compaction"): released by the wall
    /// clock in `qos run`, by the watermark in `qos replay`.
    var lateFlush: LateFlushPolicy
    /// Keeps hour directories small (`qos run`; nil for a direct driver).
    public let compactor: Compactor!
    var source: (any RecordSource)!
    /// The source when it is a decode stage: its records come decoded.
    var decoding: DecodeStage?
    var tracker: WatermarkTracker
    var book = PartitionBook()
    var status = RunStatus()
    var lastCheckpointWall: Int64 = 0
    /// Gives the heap's free pages back after an epoch now and then (`HeapTrim`).
    var heapTrim: HeapTrim
    /// When the watermark was first seen past the next due window end (monotonic s).
    var windowDueSince: Double?
    var lastErrorLog: [String: Int64] = [:]
    /// Partitions whose position Kafka moved, until their records tell how (`PositionMoves`).
    var moves = PositionMoves()
    var caughtUpSince: Double?
    /// Records the last poll returned (a drain ends on a quiet poll at the end).
    var lastPolled = 0
    var touched = Set<Int32>()
    public private(set) var finished = false

    /// `format`: one format for every stream, instead of each topic's from `options.topics`.
    public convenience init(_ options: RunOptions, format: (any RecordFormat)? = nil,
                            clock: any Clock = SystemClock()) throws {
        try self.init(options, format: format, clock: clock, directTag: nil)
    }

    /// With a `directTag`, a direct driver (`qos replay`): no checkpoint
    /// state, files tagged `r<directTag>`, and the input ended as soon as
    /// it is at its end.
    init(_ options: RunOptions, format: (any RecordFormat)?, clock: any Clock, directTag: String?) throws {
        o = options
        self.formatOverride = format
        self.clock = clock
        let sink = try FileSink.named(options.sink, environment: options.environment)
        try sink.checkWritable()
        engine = QoSEngine(config: options.config, enricher: options.enricher)
        writer = WindowFileWriter(sink: sink, windowMs: options.config.windowMs, inputTag: directTag.map { "r" + $0 } ?? "k",
                                  zstdLevel: options.zstdLevel)
        lateFlush = LateFlushPolicy(intervalMs: options.lateFlushIntervalMs)
        heapTrim = HeapTrim(nowSeconds: clock.monotonicSeconds())
        if directTag != nil {
            store = nil
            let direct = DirectPublish(writer: writer)
            self.direct = direct
            directRef = .passUnretained(direct)
            endQuietSeconds = 0
            compactor = nil
        } else {
            store = try CheckpointStore(sink: sink, instance: options.instance)
            epochCommit = EpochCommit(store: store, writer: writer, stream: options.topic, streams: [options.topic],
                                      instance: options.instance)
            direct = nil
            directRef = nil
            endQuietSeconds = 1
            let compactor = try Compactor(sink: sink, instance: options.instance, policy: options.compaction,
                                          parquet: writer.parquet, log: options.log)
            compactor.recover(nowMs: clock.wallMs())
            if options.compactionPauseMs > 0 { compactor.pauseAroundSwaps(ms: options.compactionPauseMs) }
            epochCommit.beforeCommit = { try compactor.beforeCommit($0, nowMs: clock.wallMs()) }
            epochCommit.alerts = options.alerts
            self.compactor = compactor
        }
        tracker = WatermarkTracker(latenessMs: options.config.latenessMs, idleTimeoutMs: options.idleTimeoutMs)
    }

    /// Reads from `source` from now on; the checkpoint interval starts now.
    /// Throws when a stream has no format (a topic not in `options.topics`).
    public func attach(_ source: any RecordSource) throws {
        self.source = source
        decoding = source as? DecodeStage
        formats = try source.streams.map { name in
            if let formatOverride { return formatOverride }
            guard let t = o.topics.first(where: { $0.name == name }) else {
                throw UserError("no input format for stream '\(name)' — list it in topics")
            }
            return try RecordFormats.named(t.format ?? RecordFormats.defaultName, settings: o.formatSettings)
        }
        if direct == nil {
            epochCommit = EpochCommit(store: store, writer: writer, stream: source.name, streams: source.streams,
                                      instance: o.instance, afterCommit: epochCommit.afterCommit, beforeCommit: epochCommit.beforeCommit,
                                      fence: { [source] in try source.checkStillAssigned() }, alerts: epochCommit.alerts)
        }
        lastCheckpointWall = clock.wallMs()
    }

    /// Consumes until stopped (signal, `durationSeconds` — then drained
    /// first when `afterDuration` is set —, or end of input in
    /// `untilCaughtUp` mode), then checkpoints. Returns the final status.
    public func run(_ source: any RecordSource) throws -> RunStatus {
        try attach(source)
        let started = clock.monotonicSeconds()
        var drainStarted: Double?
        while runStopRequested == 0 && !finished {
            let t = clock.monotonicSeconds()
            if let d = o.durationSeconds, t - started >= d {
                guard let stopInput = o.afterDuration else { break }
                if let since = drainStarted {
                    // Drained: nothing more comes, so the input ends here (every window written).
                    if try checkCaughtUp(records: lastPolled) { try finish(); break }
                    if t - since >= o.drainLimitSeconds {
                        status.drainCutShort = true
                        o.log.warn("the drain after the run's duration reached its limit (\(Int(o.drainLimitSeconds)) s) "
                                   + "before every partition was read: what is unread stays in the topics")
                        break
                    }
                } else {
                    stopInput()
                    drainStarted = clock.monotonicSeconds()
                }
            }
            try step()
        }
        if !finished { try checkpoint(reason: "shutdown") }
        return status
    }

    /// One poll and whatever it makes due. Records are decoded and applied
    /// straight from the source's buffers; ownership changes are handled
    /// after the poll (they always come last).
    public func step() throws {
        var events: [SourceEvent] = []
        var now = clock.wallMs()
        let n = if let decoding {
            try decoding.pollDecoded(onRecord: { ingestDecoded($0, $1, now) }, onEvent: { events.append($0) })
        } else {
            try source.poll(maxRecords: o.pollBatch, timeoutMs: 100,
                            onRecord: { ingest($0, now) }, onEvent: { if !noteMove($0) { events.append($0) } })
        }
        endRun()
        lastPolled = n
        if let e = failure { throw e }
        now = clock.wallMs()
        if n == 0 { source.idle(next: book.nextOffsets) }
        if o.untilCaughtUp, try checkCaughtUp(records: n) { return try finish() }
        for e in events {
            switch e {
            case .assigned(let ps): observeTouched(now); try assign(ps, now)
            case .revoked(let ps, let lost): observeTouched(now); try revoke(ps, lost: lost)
            case .error(let err): logError(err, now)
            }
        }
        observeTouched(now)
        guard direct == nil else { return }  // flushed after each record (`afterRecord`)
        if engine.rejectsHeldOverCap {
            try checkpoint(reason: "rejects held")  // writes them: memory stays bounded, nothing is dropped
        } else if let wm = tracker.value(wallMs: now), wm >= engine.nextDueEnd {
            if windowDueSince == nil { windowDueSince = clock.monotonicSeconds() }
            if now - lastCheckpointWall >= o.checkpointMinIntervalMs { try checkpoint(reason: "window") }
        } else if now - lastCheckpointWall >= o.checkpointIntervalMs {
            try checkpoint(reason: "interval")
        }
    }

    /// Records come in runs from one partition: its book entry is read once
    /// per run and written back at the run's end (`endRun`).
    var current: (partition: Int32, next: Int64?, format: any RecordFormat)?

    @inline(__always)
    func ingest(_ r: RawRecord, _ now: Int64) {
        if current?.partition != r.partition {
            endRun()
            let next = book[r.partition]?.next
            current = (r.partition, next, format(of: r.partition))
            if next != nil { touched.insert(r.partition) }
        }
        if !moves.isEmpty, let next = current!.next, let verdict = moves.decide(r.partition, offset: r.offset, next: next) {
            positionMoved(r.partition, from: next, to: r.offset, verdict)
        }
        // Not owned, or before the partition's checkpoint: already counted.
        guard let next = current!.next, r.offset >= next else { return }
        current!.format.ingest(r.bytes, into: engine, partition: r.partition, position: r.position, nowMs: now)
        current!.next = r.offset + 1
    }

    func format(of partition: Int32) -> any RecordFormat {
        if let f = partitionFormats[partition] { return f }
        let stream = StreamPartition(id: partition).stream
        let f = formats[stream].forSource(named: source.streams[stream])
        partitionFormats[partition] = f
        return f
    }

    /// `ingest` for a record the decode stage decoded ahead (`qos replay`),
    /// then the direct driver's flush hook.
    @inline(__always)
    func ingestDecoded(_ r: RawRecord, _ items: DecodedItems, _ now: Int64) {
        if current?.partition != r.partition {
            endRun()
            let next = book[r.partition]?.next
            current = (r.partition, next, format(of: r.partition))
            if next != nil { touched.insert(r.partition) }
        }
        guard let next = current!.next, r.offset >= next else { return }
        engine.countMessage()
        items.forEach(beacon: { b, hash in
            engine.ingest(beacon: &b, idHash: hash, message: r.bytes, partition: r.partition, source: r.position, nowMs: now)
        }, other: { item in
            engine.ingest(item, message: r.bytes, partition: r.partition, source: r.position, nowMs: now)
        }, ahead: { hash, session in
            engine.prefetchSession(partition: r.partition, idHash: hash, session: session)
        })
        current!.next = r.offset + 1
        if let directRef { afterRecord(r.position, directRef) }
    }

    /// A direct driver's flush hook, after every record: an epoch as soon as
    /// the partitions' watermark (max event time − lateness, the least over
    /// partitions) passes a window's end, or the held rejects reach their cap.
    @inline(__always)
    func afterRecord(_ position: SourcePosition, _ ref: Unmanaged<DirectPublish>) {
        if ref._withUnsafeGuaranteedRef({ $0.rangeStart.isEmpty }) {
            ref.takeUnretainedValue().rangeStart = position.description
        }
        let wm = engine.replayWatermark
        guard wm >= engine.nextDueEnd || engine.rejectsHeldOverCap, failure == nil else { return }
        let direct = ref.takeUnretainedValue()  // retained only when an epoch is due
        do {
            let release = lateFlush.due(wm)
            try directEpoch(direct, engine.flush(watermark: wm, releaseLate: release), through: position.description,
                            releasedLateAt: release ? wm : nil)
        } catch {
            failure = error
        }
    }

    /// `releasedLateAt`: the watermark at which this flush released the late
    /// deltas (`LateFlushPolicy`), nil when it held them back.
    func directEpoch(_ direct: DirectPublish, _ windows: [WindowState<DataSketchesKit>], through: String,
                     releasedLateAt: Int64?) throws {
        if try direct.run(engine: engine, windows: windows, nowMs: clock.wallMs(), through: through,
                          lateFrom: lateFlush.pendingSince) {
            status.windowsWritten += windows.filter { !$0.isDelta }.count
        }
        if let t = releasedLateAt { lateFlush.released(at: t, flush: direct.flushes) }
    }

    func endRun() {
        if let r = current, let next = r.next { book.advance(r.partition, to: next) }
        current = nil
    }

    /// Feeds the watermark tracker once per poll for each partition that had
    /// records (not once per record).
    func observeTouched(_ now: Int64) {
        for p in touched {
            let maxTs = engine.partition(p).maxTs
            tracker.observe(partition: p, ts: maxTs == .min ? nil : maxTs, wallMs: now)
        }
        touched.removeAll(keepingCapacity: true)
    }

    /// New partitions: load their newest checkpoint (rolling forward any
    /// unfinished publish), then start from its offsets.
    func assign(_ partitions: [Int32], _ now: Int64) throws {
        let manifests = direct == nil ? try store.recover() : []
        let latest = source.streams.map { CheckpointStore.latest(manifests, topic: $0) }
        var start: [Int32: Int64?] = [:]
        for p in partitions {
            let sp = StreamPartition(id: p)
            // A fresh format instance for the partition, given its checkpoint's state below.
            partitionFormats[p] = nil
            if let ck = latest[sp.stream][sp.partition] {
                do {
                    try engine.restore(partition: p, from: ck.state)
                    try restoreFormatState(of: p, from: ck.formatState)
                } catch let e as StateError where e.isNewerFormat {
                    throw CheckpointError.newerFormat(path: ck.source, detail: "partition \(p): \(e.message)")
                } catch let e as StateError {
                    throw CheckpointError.corrupt(path: ck.source, detail: "partition \(p): \(e.message)")
                }
                book.own(p, seq: ck.seq, next: ck.nextOffset)
                start[p] = ck.nextOffset
                let maxTs = engine.partition(p).maxTs
                if maxTs != .min { tracker.restore(partition: p, maxTs: maxTs, wallMs: now) }
            } else {
                engine.forget(partition: p)
                _ = engine.partition(p)  // an empty state: the engine's partitions stay the book's
                book.own(p, seq: 0, next: 0)
                start[p] = .some(nil)
                tracker.observe(partition: p, ts: nil, wallMs: now)
            }
        }
        try source.startAssigned(start)
        book.check(enginePartitions: engine.partitions.keys)
        let offsets = start.keys.sorted().map { p in start[p]!.map(String.init) ?? "start" }
        o.log("qos run: assigned partitions \(describe(partitions)) at offsets [\(offsets.joined(separator: ", "))]")
    }

    /// A format's checkpoint state, named by the format: a topic whose
    /// format is changed between runs does not hand one format's bytes to
    /// another (empty when the format keeps none).
    static func formatStateBytes(_ format: any RecordFormat) -> [UInt8] {
        let state = format.checkpointState()
        guard !state.isEmpty else { return [] }
        var w = StateWriter(capacity: state.count + 16)
        w.string(format.name)
        w.blob(state)
        return w.bytes
    }

    /// Gives a checkpoint's `formatStateBytes` to the partition's (fresh)
    /// format, unless they are another format's: then they are dropped.
    func restoreFormatState(of p: Int32, from bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        var r = StateReader(bytes)
        let name = try r.string(), state = try r.blob()
        guard r.atEnd else { throw StateError(message: "format state: trailing bytes") }
        let format = format(of: p)
        guard name == format.name else {
            o.log("qos run: partition \(p) was read as \(name) before, now as \(format.name): its \(name) state is dropped")
            return
        }
        try format.restoreState(state)
    }

    /// Partitions taken away: checkpoint them (and everything else) before
    /// they are released, unless the group already gave them away.
    func revoke(_ partitions: [Int32], lost: Bool) throws {
        if lost {
            release(partitions)
            try checkpoint(reason: "lost")
        } else {
            try checkpoint(reason: "revoke")
            release(partitions)
        }
        try source.completeRevoke()
        book.check(enginePartitions: engine.partitions.keys)
        o.log("qos run: revoked partitions \(describe(partitions))\(lost ? " (lost)" : "")")
    }

    /// Partition ids as the source's streams know them: `[0, 1]`, or with
    /// several streams `beacons[0, 1] cdnlogs[0]`.
    func describe(_ ids: [Int32]) -> String {
        let streams = source.streams
        if streams.count == 1 { return "\(ids.sorted())" }
        let byStream = Dictionary(grouping: ids.map(StreamPartition.init(id:)), by: \.stream)
        return byStream.keys.sorted().map { "\(streams[$0])\(byStream[$0]!.map(\.partition).sorted())" }.joined(separator: " ")
    }

    func release(_ partitions: [Int32]) {
        for p in partitions {
            engine.forget(partition: p); book.release(p); tracker.remove(partition: p); partitionFormats[p] = nil
            moves.forget(p)
        }
    }

    /// Caught up: no records in this poll and every owned partition's next
    /// offset at its end, for a second in a row.
    func checkCaughtUp(records: Int) throws -> Bool {
        // Only an owner of every partition of the stream may end the input.
        let idle = !book.isEmpty && book.count == source.partitionCount && records == 0
        guard idle else { caughtUpSince = nil; return false }
        // A moved partition with records left is not at its end, whatever its next offset says.
        for p in moves.pending.keys.sorted() where book[p] != nil {
            let end = try source.endOffset(p)
            if try source.startOffset(p) < end { caughtUpSince = nil; return false }
            if let verdict = moves.decideEmpty(p, end: end, next: book[p]!.next) {
                positionMoved(p, from: book[p]!.next, to: end, verdict)
                // Skipped offsets: no record will move the next offset past them, so the end does.
                if end > book[p]!.next { book.advance(p, to: end) }
            }
        }
        for p in book.ids where try book[p]!.next < source.endOffset(p) {
            caughtUpSince = nil
            return false
        }
        let t = clock.monotonicSeconds()
        if caughtUpSince == nil { caughtUpSince = t }
        return t - caughtUpSince! >= endQuietSeconds
    }

    /// End of input (batch mode): every session closes, every window is written.
    func finish() throws {
        if let direct {
            try directEpoch(direct, engine.finish(), through: "end", releasedLateAt: .max)
            status.filesWritten = try direct.finish()
            status.counters = engine.counters
            finished = true
            return
        }
        try checkpoint(reason: "end of input", windows: engine.finish())
        finished = true
        o.log("qos run: caught up; wrote every window (end of input)")
    }

    /// One epoch (`EpochCommit`), then the durable offsets go back to the source.
    func checkpoint(reason: String, windows flushed: [WindowState<DataSketchesKit>]? = nil) throws {
        if let direct {
            let wm = engine.replayWatermark
            let release = flushed != nil || lateFlush.due(wm)
            try directEpoch(direct, flushed ?? engine.flush(watermark: wm, releaseLate: release), through: reason,
                            releasedLateAt: release ? wm : nil)
            return
        }
        // The formats' states must be at the engine's record: decoded in line, not ahead.
        assert(decoding == nil, "a checkpointing driver must not decode ahead of the engine")
        let t0 = clock.monotonicSeconds()
        let now = clock.wallMs()
        let wm = tracker.value(wallMs: now) ?? .min
        let release = flushed != nil || reason == "shutdown" || lateFlush.due(now)
        do {  // the epoch's buffers are freed at the end of this scope
            let outcome = try epochCommit.run(engine: engine, book: &book, watermark: wm, nowMs: now, flushed: flushed,
                                              releaseLate: release, lateFrom: lateFlush.pendingSince,
                                              formatState: { [partitionFormats] in
                                                  partitionFormats[$0].map(StreamDriver.formatStateBytes) ?? [] })
            if release { lateFlush.released(at: now, flush: Int(store.epoch)) }
            if outcome.committed {
                source.commit(book.nextOffsets.filter { $0.value > 0 })
            }
            try compactor.afterEpoch(watermark: wm, nowMs: clock.wallMs())
            if reason == "shutdown" && o.compactOnShutdown { try compactor.compactAll(nowMs: clock.wallMs()) }
            lastCheckpointWall = now
            update(outcome.windows, outcome.files, wm, t0)
        }
        heapTrim.afterEpoch(nowSeconds: clock.monotonicSeconds())
    }

    func update(_ windows: [WindowState<DataSketchesKit>], _ files: [WindowFileWriter.PlannedFile],
                _ wm: Int64, _ t0: Double) {
        status.counters = engine.counters
        status.alertsFired = epochCommit.alerts?.firedByRule ?? [:]
        status.openSessions = engine.partitions.values.reduce(0) { $0 + $1.sessions.count }
        status.windowsWritten += windows.filter { !$0.isDelta }.count
        status.filesWritten += files.count
        status.lateFilesWritten += files.filter { $0.name.contains("_late") }.count
        status.compactions = compactor.compactions
        status.compactedFiles = compactor.filesReplaced
        status.hourDirFilesMax = compactor.filesPerHourDirMax()
        status.epoch = store.epoch
        status.watermarkMs = wm == .min ? nil : wm
        status.partitions = book.ids
        status.lag = source.lag()
        status.lastFlushMs = (clock.monotonicSeconds() - t0) * 1000
        let saturated = SaturationCounter.total
        if saturated != status.saturatedValues {
            o.log("qos run: \(saturated - status.saturatedValues) sums saturated at Int64.max in this flush "
                  + "(\(saturated) in all) — values at or past the beacon bounds; see README \"Numeric safety\"")
            status.saturatedValues = saturated
        }
        let atCap = windows.reduce(0) { $0 + $1.tablesAtGroupCap }
        if atCap > 0 {
            status.tablesAtGroupCap += Int64(atCap)
            o.log("qos run: \(atCap) window tables of this flush reached group_cap (\(engine.config.groupsPerWindowMax) groups); "
                  + "their further groups are in __other__ rows — raise group_cap or roll up with fewer dimensions")
        }
        if windows.contains(where: { !$0.isDelta }) {
            let latencyMs = (clock.monotonicSeconds() - min(windowDueSince ?? t0, t0)) * 1000
            status.windowLatencyMsMax = max(status.windowLatencyMsMax, latencyMs)
            status.windowLatencyMsSum += latencyMs
            status.windowLatencyCount += 1
            windowDueSince = nil
            // The windows' ids are those of this flush's interner (a later flush may rebuild it).
            status.lastWindows = windows.filter { !$0.isDelta }
            status.interner = engine.interner
        }
        status.internedDimensions = engine.interner.count
        status.internedValues = engine.values.count
        o.onCheckpoint?(status)
    }

    /// Source trouble is logged (once per kind per 10 s), never fatal: the source retries.
    /// Data loss is different (Kafka: the checkpointed offset is no longer
    /// retained, records were skipped): logged every time. A position move
    /// that names its partition is `noteMove`'s.
    func logError(_ e: SourceError, _ now: Int64) {
        if e.dataLoss {
            o.log.error("qos run: DATA LOSS: \(e.message) — the checkpointed offset is not in the partition: retention "
                        + "deleted it (raise the topic's retention), or the topic was recreated or its log truncated "
                        + "(then its records below the checkpointed offset are skipped as already counted)")
            return
        }
        if now - (lastErrorLog[e.kind] ?? 0) >= 10_000 {
            lastErrorLog[e.kind] = now
            o.log.warn("qos run: kafka: \(e.message) (retrying)")
        }
    }
}
