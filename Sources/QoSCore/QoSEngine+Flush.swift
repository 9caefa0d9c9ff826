/// Writing windows: the flush at a watermark, the end of input, and the
/// watermark of a single-partition input. The per-event rules that fill the
/// windows are in QoSEngine+Events.swift.
extension QoSEngine {
    /// Writes (returns) every window the `watermark` has passed, plus every
    /// pending late delta when `releaseLate` (else they wait in the
    /// partitions' state: docs/semantics.md §3), merged over partitions.
    /// Concurrent plays are sampled for the base windows. The windows' group
    /// keys are ids of `interner` as it is on return: a later flush may rebuild it.
    public func flush(watermark: Int64, releaseLate: Bool = true) -> [WindowState<K>] {
        var out: [WindowState<K>] = []
        for p in partitions.values.sorted(by: { $0.id < $1.id }) {
            let due = p.aggregator.windowsDue(watermark)
            if !due.isEmpty {
                p.sessions.forEach { s in
                    guard let play = s.firstPlayTs else { return }
                    let closeAt = s.pendingClose(config).instant
                    for w in due where play < w.end && closeAt > w.end { addConcurrent(w, s) }
                }
            }
            out += p.aggregator.flush(watermark, releaseLate: releaseLate)
        }
        let windows = WindowState.mergedByWindow(out, cap: config.groupsPerWindowMax)
        rebuildInternersIfDue(flushed: windows)
        return windows
    }

    /// Whether some partition holds late contributions not yet written.
    public var hasPendingLate: Bool { partitions.values.contains { $0.aggregator.hasPendingLate } }

    /// The earliest end of an unwritten window over all partitions: a flush
    /// at a watermark below it writes nothing new.
    public var nextDueEnd: Int64 {
        var m = Int64.max
        for p in partitions.values where p.aggregator.nextDueEnd < m { m = p.aggregator.nextDueEnd }
        return m
    }

    /// End of input (`qos replay`): the watermark goes to +∞, every session
    /// closes at its own close instant, every window is written.
    public func finish() -> [WindowState<K>] {
        for p in partitions.values.sorted(by: { $0.id < $1.id }) {
            closeDueSessions(p, watermark: .max)
        }
        return flush(watermark: .max)
    }

    /// The watermark of a single-partition input (replay): its max ts − lateness.
    public var replayWatermark: Int64 {
        var m = Int64.max
        for p in partitions.values { m = min(m, p.watermark(config)) }
        return m == .max ? .min : m
    }
}
