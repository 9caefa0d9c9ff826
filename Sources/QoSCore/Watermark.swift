/// The instance watermark (docs/semantics.md §3): min over the partitions this instance
/// reads of (max `ts` seen − allowed lateness), where a partition idle for
/// the idle timeout (wall clock) does not hold it back. When every partition
/// is idle the watermark is the max over them, so an idle instance still
/// writes its windows (the Flink trap of an idleness rule that never fires).
public struct WatermarkTracker: Sendable, Equatable {
    public struct Partition: Sendable, Equatable {
        public var maxTs: Int64
        public var lastActiveWallMs: Int64
    }

    public var latenessMs: Int64
    public var idleTimeoutMs: Int64
    public private(set) var partitions: [Int32: Partition] = [:]

    public init(latenessMs: Int64, idleTimeoutMs: Int64 = 30_000) {
        self.latenessMs = latenessMs
        self.idleTimeoutMs = idleTimeoutMs
    }

    /// Records activity (a message) on `partition`; `ts` is nil for a
    /// message without a usable timestamp (it still counts as activity).
    public mutating func observe(partition: Int32, ts: Int64?, wallMs: Int64) {
        var p = partitions[partition] ?? Partition(maxTs: .min, lastActiveWallMs: wallMs)
        if let ts, ts > p.maxTs { p.maxTs = ts }
        p.lastActiveWallMs = wallMs
        partitions[partition] = p
    }

    /// Sets a partition's event-time maximum (restoring from a checkpoint).
    public mutating func restore(partition: Int32, maxTs: Int64, wallMs: Int64) {
        partitions[partition] = Partition(maxTs: maxTs, lastActiveWallMs: wallMs)
    }

    public mutating func remove(partition: Int32) { partitions[partition] = nil }

    /// The watermark, or nil when there is none yet. A partition that was
    /// assigned (`observe(ts: nil)`) but has not delivered a timestamp holds
    /// the watermark back until it has been idle for the idle timeout: its
    /// data may simply not have been fetched yet.
    public func value(wallMs: Int64) -> Int64? {
        var active: Int64?
        var all: Int64?
        for p in partitions.values {
            let idle = wallMs - p.lastActiveWallMs >= idleTimeoutMs
            if p.maxTs == .min {
                if !idle { return nil }
                continue
            }
            let wm = p.maxTs - latenessMs
            all = max(all ?? wm, wm)
            if !idle { active = min(active ?? wm, wm) }
        }
        return active ?? all
    }
}
