/// Writing windows: the flush at a watermark, the end of input, and the
/// watermark of a single-partition input. The per-event rules that fill the
/// windows are in QoSEngine+Events.swift.
extension QoSEngine {
    /// Writes (returns) every window the `watermark` has passed, plus every
    /// pending late delta when `releaseLate` (else they wait in the
    /// partitions' state: docs/semantics.md §3), merged over partitions.
    /// Concurrent plays are sampled for the base windows, and the `overall`
    /// groups' segment metrics summed from `cdn` (`fillOverallSegment`). The windows' group
    /// keys are ids of `interner` as it is on return: a later flush may rebuild it.
    public func flush(watermark: Int64, releaseLate: Bool = true) -> [WindowState<K>] {
        var out: [WindowState<K>] = []
        for p in partitions.values.sorted(by: { $0.id < $1.id }) {
            drainPendingPlay(p)
            let due = p.aggregator.windowsDue(watermark)
            if !due.isEmpty { addConcurrentPlays(p, due) }
            out += p.aggregator.flush(watermark, releaseLate: releaseLate)
        }
        let windows = WindowState.mergedByWindow(out, cap: config.groupsPerWindowMax)
        for w in windows { w.fillOverallSegment(cap: config.groupsPerWindowMax) }
        rebuildInternersIfDue(flushed: windows)
        return windows
    }

    /// The sessions of `p` still playing at the end of a window in `due`
    /// count in its concurrent plays. The session table's order differs
    /// from process to process (`SessionTable.hash`), and a group created
    /// here takes the next slot (or, past the group cap, goes to
    /// `__other__`), so the groups a window lacks are created in session id
    /// order: the files never follow the table's order (docs/architecture.md
    /// "Keys from anyone"). Counting into groups that exist is order-free.
    /// Inlinable, so that a release build specializes it with `flush`.
    @inlinable
    func addConcurrentPlays(_ p: PartitionState<K>, _ due: [WindowState<K>]) {
        var lacking: [(window: Int, session: SessionState, tables: UInt8)] = []
        p.sessions.forEach { s in
            guard let play = s.firstPlayTs else { return }
            let closeAt = s.pendingClose(config).instant
            for (k, w) in due.enumerated() where play < w.end && closeAt > w.end {
                let tables = addConcurrentToExistingGroups(w, s)
                if tables != 0 { lacking.append((k, s, tables)) }
            }
        }
        guard !lacking.isEmpty else { return }
        lacking.sort { $0.window != $1.window ? $0.window < $1.window : $0.session.id < $1.session.id }
        for l in lacking { addConcurrent(due[l.window], l.session, tables: l.tables) }
    }

    /// Whether some partition holds late contributions not yet written.
    public var hasPendingLate: Bool { partitions.values.contains { $0.aggregator.hasPendingLate } }

    /// The earliest end of an unwritten window over all partitions: a flush
    /// at a watermark below it writes nothing new.
    public var nextDueEnd: Int64 {
        if let p = onlyPartition { return p._withUnsafeGuaranteedRef { $0.aggregator.nextDueEnd } }
        var m = Int64.max
        for p in partitions.values where p.aggregator.nextDueEnd < m { m = p.aggregator.nextDueEnd }
        return m
    }

    /// End of input (`qos replay`): the watermark goes to +∞, every session
    /// closes at its own close instant, every window is written.
    public func finish() -> [WindowState<K>] {
        finishing = true
        for p in partitions.values.sorted(by: { $0.id < $1.id }) {
            p.closedSessions = ClosedSessions()
            closeDueSessions(p, watermark: .max)
        }
        return flush(watermark: .max)
    }

    /// The watermark of a single-partition input (replay): its max ts − lateness.
    public var replayWatermark: Int64 {
        if let p = onlyPartition {
            let m = p._withUnsafeGuaranteedRef { $0.watermark(config) }
            return m == .max ? .min : m
        }
        var m = Int64.max
        for p in partitions.values { m = min(m, p.watermark(config)) }
        return m == .max ? .min : m
    }
}
