/// Metric accumulators (docs/semantics.md §4). Every field is additive or a mergeable
/// sketch, so the state of a group in a window can be merged with the state
/// of the same group from another file (late delta, another instance) and
/// rolled up to coarser windows. Derived columns are computed on output.
/// Sums saturate at Int64.max (`+|`, see `SaturationCounter`).
public struct GroupMetrics<K: SketchKit>: Sendable, Equatable {
    public var views: Int64 = 0
    public var viewers = K.Distinct()
    public var plays: Int64 = 0
    public var startupMsSum: Int64 = 0
    public var startupMsCount: Int64 = 0
    public var startupSketch = K.Quantiles()
    public var vsf: Int64 = 0
    public var ebvs: Int64 = 0
    public var vpf: Int64 = 0
    public var playingMs: Int64 = 0
    public var rebufferCount: Int64 = 0
    public var rebufferMs: Int64 = 0
    public var seekCount: Int64 = 0
    public var seekMs: Int64 = 0
    public var bitrateMsSum: Int64 = 0
    public var bitratePlayedMs: Int64 = 0
    public var upshifts: Int64 = 0
    public var downshifts: Int64 = 0
    public var sessionsEnded: Int64 = 0
    public var sessionMsSum: Int64 = 0
    public var sessionSketch = K.Quantiles()
    public var completed: Int64 = 0
    /// Point sample at the window's end; sum across files of one window,
    /// max across windows on roll-up.
    public var concurrentPlays: Int64 = 0
    public var missingStart: Int64 = 0
    public var lateEvents: Int64 = 0
    public var duplicates: Int64 = 0
    /// Held by the groups of the tables with segment columns only (overall,
    /// cdn: `MetricTable.hasSegmentMetrics`), so the rest carry 8 bytes for
    /// it, not 232 (docs/architecture.md "Window shares in memory").
    var segmentSlot = SegmentSlot<K>()

    /// The segment metrics; a group that never had any reads zeros and
    /// empty sketches.
    public var segment: SegmentMetrics<K> {
        get { segmentSlot.box?.value ?? SegmentMetrics<K>() }
        set { segmentSlot.box = SegmentSlot.Box(newValue) }
        _modify { yield &segmentSlot.unique().value }
    }

    /// Whether any segment beacon (or a file's segment column) reached this group.
    public var hasSegment: Bool { segmentSlot.box != nil }

    public init() {}

    /// Merges the state of the same group and window from another file.
    public mutating func merge(_ o: GroupMetrics<K>) {
        views +|= o.views; viewers.merge(o.viewers); plays +|= o.plays
        startupMsSum +|= o.startupMsSum; startupMsCount +|= o.startupMsCount; startupSketch.merge(o.startupSketch)
        vsf +|= o.vsf; ebvs +|= o.ebvs; vpf +|= o.vpf
        playingMs +|= o.playingMs; rebufferCount +|= o.rebufferCount; rebufferMs +|= o.rebufferMs
        seekCount +|= o.seekCount; seekMs +|= o.seekMs
        bitrateMsSum +|= o.bitrateMsSum; bitratePlayedMs +|= o.bitratePlayedMs
        upshifts +|= o.upshifts; downshifts +|= o.downshifts
        sessionsEnded +|= o.sessionsEnded; sessionMsSum +|= o.sessionMsSum; sessionSketch.merge(o.sessionSketch)
        completed +|= o.completed; concurrentPlays +|= o.concurrentPlays
        missingStart +|= o.missingStart; lateEvents +|= o.lateEvents; duplicates +|= o.duplicates
        if let theirs = o.segmentSlot.box { segment.merge(theirs.value) }
    }

    // Derived columns.
    public var uniqueViewers: Double { viewers.estimate }
    public var watchMs: Int64 { startupMsSum +| playingMs +| rebufferMs +| seekMs }
    /// Conviva's rebuffering ratio; nil when nothing was played or stalled.
    /// The denominator is summed in Double so it cannot overflow.
    public var rebufferRatio: Double? {
        let d = Double(playingMs) + Double(rebufferMs)
        return d > 0 ? Double(rebufferMs) / d : nil
    }
    public var avgBitrateKbps: Double? {
        bitratePlayedMs > 0 ? Double(bitrateMsSum) / Double(bitratePlayedMs) : nil
    }
}

/// Where a group keeps its segment metrics: nothing until the first one,
/// then a box of its own. Copies of a group share the box until one of
/// them changes it (copy on write), and two slots compare by the metrics
/// they read as, so a group whose box holds no segment yet equals one
/// without a box.
struct SegmentSlot<K: SketchKit>: Sendable, Equatable {
    /// Changed only through `unique()`, i.e. when no other slot holds it:
    /// a box shared between copies (and threads) is only read.
    final class Box: @unchecked Sendable {
        var value: SegmentMetrics<K>
        init(_ value: SegmentMetrics<K>) { self.value = value }
    }
    var box: Box?

    /// The box, made first or copied first so that this slot alone holds it.
    @inline(__always) mutating func unique() -> Box {
        if box == nil {
            box = Box(SegmentMetrics<K>())
        } else if !isKnownUniquelyReferenced(&box) {
            box = Box(box!.value)
        }
        return box!
    }

    static func == (a: SegmentSlot, b: SegmentSlot) -> Bool {
        if a.box === b.box { return true }
        return (a.box?.value ?? SegmentMetrics<K>()) == (b.box?.value ?? SegmentMetrics<K>())
    }
}

/// Segment (CDN) metrics, from `segment` beacons.
public struct SegmentMetrics<K: SketchKit>: Sendable, Equatable {
    public var requests: Int64 = 0
    public var failedRequests: Int64 = 0
    public var http4xx: Int64 = 0
    public var http5xx: Int64 = 0
    public var slowRequests: Int64 = 0
    public var cacheHits: Int64 = 0
    public var bytes: Int64 = 0
    public var downloadMsSum: Int64 = 0
    public var downloadSketch = K.Quantiles()
    public var ttfbSketch = K.Quantiles()
    public var throughputSketch = K.Quantiles()

    public init() {}

    public mutating func merge(_ o: SegmentMetrics<K>) {
        requests +|= o.requests; failedRequests +|= o.failedRequests
        http4xx +|= o.http4xx; http5xx +|= o.http5xx; slowRequests +|= o.slowRequests
        cacheHits +|= o.cacheHits; bytes +|= o.bytes; downloadMsSum +|= o.downloadMsSum
        downloadSketch.merge(o.downloadSketch); ttfbSketch.merge(o.ttfbSketch)
        throughputSketch.merge(o.throughputSketch)
    }

    /// Adds one segment request (docs/semantics.md §4: a missing status counts as success).
    public mutating func add(_ b: Beacon, slowMs: Int64) {
        requests += 1
        if let s = b.httpStatus {
            if s == 0 || s >= 400 { failedRequests += 1 }
            if s >= 400 && s < 500 { http4xx += 1 }
            if s >= 500 && s < 600 { http5xx += 1 }
        }
        if let d = b.downloadMs {
            if d > slowMs { slowRequests += 1 }
            downloadMsSum +|= d
            downloadSketch.add(Double(d))
            if let n = b.bytes, d > 0 { throughputSketch.add(Double(n) * 8 / Double(d)) }
        }
        if let t = b.ttfbMs { ttfbSketch.add(Double(t)) }
        if let n = b.bytes { bytes +|= n }
        if b.cacheHit { cacheHits += 1 }
    }
}
