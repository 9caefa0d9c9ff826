/// When coalesced late deltas are written (README "Late data and
/// compaction", docs/semantics.md §3). Late contributions wait in the
/// partitions' state (checkpointed with it) and are released together at
/// most once per `intervalMs`: the clock is cut into intervals aligned to
/// the Unix epoch, and a flush releases them when its clock reading lies in
/// a later interval than the previous release (or than the first reading).
/// So every table's hour directory gets at most one late file per interval,
/// and the decision depends only on the readings given:
/// - `qos run` reads the wall clock (the injected `Clock`: tests drive it);
/// - `qos replay` reads its watermark (event time), so a replay of the same
///   input writes the same late files.
/// End of input and shutdown release everything regardless.
public struct LateFlushPolicy: Sendable {
    public let intervalMs: Int64
    /// The interval of the previous release (or of the first reading).
    private var lastInterval: Int64?
    /// The flush number after the previous release: late files name the
    /// range of flushes (epochs) whose late contributions they hold.
    public private(set) var pendingSince = 1

    public init(intervalMs: Int64) { self.intervalMs = max(1, intervalMs) }

    func interval(_ t: Int64) -> Int64 { t >= 0 ? t / intervalMs : (t + 1) / intervalMs - 1 }

    /// Whether a flush at clock reading `t` releases the late deltas.
    public mutating func due(_ t: Int64) -> Bool {
        guard t != .min, t != .max else { return t == .max }
        let i = interval(t)
        guard let last = lastInterval else { lastInterval = i; return false }
        return i > last
    }

    /// Records that flush number `flush` released the late deltas at `t`.
    public mutating func released(at t: Int64, flush: Int) {
        if t != .min && t != .max { lastInterval = interval(t) }
        pendingSince = flush + 1
    }
}
