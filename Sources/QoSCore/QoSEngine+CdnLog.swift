/// CDN access-log records (docs/semantics.md "CDN access logs"): they share
/// the partition's clock, watermark, windows, late deltas and checkpoints
/// with beacons, and go to the `cdn_edge` table only.
extension QoSEngine {
    /// Applies one CDN log record: admission by its (whole-second) time as
    /// for a beacon's `ts`, the watermark, then its `cdn_edge` group in the
    /// window of its time (a late delta once that window is written).
    public func apply(_ r: CdnLogRecord, partition pid: Int32, source: SourcePosition,
                      raw: UnsafeRawBufferPointer? = nil, nowMs: Int64) {
        let p = partition(pid)
        let ts = r.timeMs
        guard admit(ts, field: "timestamp", p, source: source, raw: Self.bytes(of: r, in: raw), nowMs: nowMs) else { return }
        // The watermark moved: sessions of this partition (if it also
        // carries beacons) close as they would at a beacon.
        let wm = p.watermark(config)
        closeDueSessions(p, watermark: wm)
        counters.accepted += 1
        if p.aggregator.isLate(ts, watermark: wm) { counters.lateEvents += 1 }
        let w = p.aggregator.window(for: ts)
        let key = CdnEdgeKey(cdn: r.cdn, account: r.account, owner: r.owner, pop: r.pop)
        let slot = w.cdnEdge.slot(key, cap: config.groupsPerWindowMax)
        w.cdnEdge.metrics[slot].add(r, slowMs: Double(config.slowResponseMs))
    }

    /// The bytes of `message` that hold `r` (its `span`), for the payload of
    /// its reject row; the whole message when the parser set no span.
    static func bytes(of r: CdnLogRecord, in message: UnsafeRawBufferPointer?) -> UnsafeRawBufferPointer? {
        guard let message, !r.span.isEmpty, r.span.upperBound <= message.count else { return message }
        return UnsafeRawBufferPointer(rebasing: message[r.span])
    }
}
