import QoSCore

/// One checkpoint epoch, in order: flush (windows the watermark passed,
/// and the reject rows held) →
/// plan (encode their files) → snapshot (every owned partition's state and
/// next offset) → commit (files staged, then the manifest written: the
/// commit point) → publish (staged files renamed into place). A crash before
/// the commit point leaves the previous epoch in force; after it, recovery
/// (`CheckpointStore.recover`) finishes the publish, so the visible output
/// is the same as without the crash (README "The daemon").
struct EpochCommit {
    let store: CheckpointStore
    let writer: WindowFileWriter
    /// The source's name and this instance: they tag the epoch's files.
    let stream: String
    /// The source's streams: a partition id's checkpoint is recorded under
    /// its stream's name and own partition number (`StreamPartition`).
    let streams: [String]
    let instance: String
    /// Fault injection for tests: runs after the manifest is committed and
    /// before the files are published (throwing there is a crash at that point).
    var afterCommit: (() throws -> Void)?
    /// Runs with the planned files before the commit (the compactor keeps
    /// their hour directories under the cap: README "Late data and compaction").
    var beforeCommit: (([WindowFileWriter.PlannedFile]) throws -> Void)?
    /// Runs last before the commit point: throws when the epoch's partitions
    /// may be another process's by now (`RecordSource.checkStillAssigned`).
    var fence: (() throws -> Void)?
    /// Alert rules evaluated on the epoch's windows: their firings are an
    /// `alerts` file of this epoch, logged and posted once it is committed.
    var alerts: AlertPipeline?

    struct Outcome {
        var windows: [WindowState<DataSketchesKit>]
        var files: [WindowFileWriter.PlannedFile]
        /// False when nothing changed since the last epoch (no manifest written).
        var committed: Bool
    }

    /// Runs one epoch: windows (`flushed`: already flushed at the end of
    /// input; otherwise those the `watermark` has passed) and every reject
    /// row held since the last epoch (ingestion time `nowMs`).
    /// Late deltas are written only when `releaseLate` (`LateFlushPolicy`);
    /// `lateFrom` is the first epoch whose late contributions they hold.
    /// `formatState`: the record format's own state of a partition
    /// (`RecordFormat.checkpointState`), saved next to the engine's.
    func run(engine: QoSEngine<DataSketchesKit>, book: inout PartitionBook, watermark: Int64, nowMs: Int64,
             flushed: [WindowState<DataSketchesKit>]? = nil, releaseLate: Bool = true, lateFrom: Int? = nil,
             formatState: (Int32) -> [UInt8] = { _ in [] }) throws -> Outcome {
        try store.checkIdentity()
        book.check(enginePartitions: engine.partitions.keys)
        // Flush.
        let windows = flushed ?? engine.flush(watermark: watermark, releaseLate: releaseLate)
        // Plan.
        let range = book.epochRange
        // The epoch's number keeps names unique when a partition's offsets
        // repeat (its log restarted, `PartitionBook.rewind`); a retry of an
        // uncommitted epoch has the same number.
        let tag = "k" + shortHash("\(instance)|\(stream)|\(range)|\(store.epoch + 1)")
        var files = try writer.plan(windows, interner: engine.interner, flush: Int(store.epoch + 1),
                                    sourceRange: "\(stream)[\(range)]", tag: tag, lateFrom: lateFrom,
                                    combineBaseByHour: true)
            + writer.planRejects(engine.takeRejects(nowMs: nowMs), flush: Int(store.epoch + 1),
                                 sourceRange: "\(stream)[\(range)]", tag: tag)
        let fired = alerts?.evaluator.evaluate(windows, names: engine.interner.strings, writer: writer) ?? []
        files += try writer.planAlerts(fired, sourceRange: "\(stream)[\(range)]", tag: tag)
        if files.isEmpty && book.unchangedThisEpoch {
            // Nothing new since the last checkpoint: it still describes our state.
            return Outcome(windows: windows, files: files, committed: false)
        }
        try beforeCommit?(files)
        // Snapshot.
        let parts = book.ids.map { p in
            let sp = StreamPartition(id: p)
            return PartitionCheckpoint(topic: streams[sp.stream], partition: sp.partition, seq: book.nextSeq(p),
                                nextOffset: book[p]!.next, state: engine.snapshot(partition: p),
                                formatState: formatState(p))
        }
        // Commit.
        let manifest = try store.commitManifest(files: files, partitions: parts, fence: fence ?? {})
        book.epochCommitted()
        try afterCommit?()
        // Publish.
        try store.rollForward(manifest)
        alerts?.committed(fired)
        try store.collectGarbage()
        return Outcome(windows: windows, files: files, committed: true)
    }
}
