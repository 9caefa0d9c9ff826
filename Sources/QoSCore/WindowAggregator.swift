/// Windows and late deltas (docs/semantics.md §3). Every contribution is routed by the
/// `ts` it is attributed to: into the window's base state while the window
/// is unwritten, into its late delta once it has been written.

/// The groups of one metric table in one window.
public struct TableAggregate<K: SketchKit>: Sendable {
    public private(set) var keys: [GroupKey] = []
    public var metrics: [GroupMetrics<K>] = []
    private var index: [GroupKey: Int] = [:]

    public init() {}

    /// The slot of `key`, created on first use; past `cap` groups the
    /// `__other__` group takes new keys.
    @inline(__always) public mutating func slot(_ key: GroupKey, cap: Int) -> Int {
        if let i = index[key] { return i }
        var k = key
        if keys.count >= cap && key != .other {
            k = .other
            if let i = index[k] { return i }
        }
        index[k] = keys.count
        keys.append(k)
        metrics.append(GroupMetrics<K>())
        return keys.count - 1
    }

    /// The slot of `key` if the table has that group (none is created).
    @inline(__always) public func existingSlot(_ key: GroupKey) -> Int? { index[key] }

    /// Whether the group cap was reached: further groups went to `__other__`.
    public var hasOther: Bool { index[.other] != nil }

    public var isEmpty: Bool { keys.isEmpty }

    /// Room for `n` groups without growing (the keys, the metrics and the
    /// index each grow by doubling, rehashing the index every time).
    mutating func reserve(_ n: Int) {
        guard n > keys.capacity else { return }
        keys.reserveCapacity(n)
        metrics.reserveCapacity(n)
        index.reserveCapacity(n)
    }

    /// Renames the ids of every key through `map` (an interner rebuild,
    /// injective on the ids present); every group keeps its slot.
    mutating func remapIDs(_ map: [UInt32]) {
        guard !keys.isEmpty else { return }
        var newIndex = [GroupKey: Int](minimumCapacity: keys.count)
        for i in keys.indices {
            let k = keys[i]
            let n = GroupKey(map[Int(k.a)], map[Int(k.b)], map[Int(k.c)], map[Int(k.d)])
            assert(n.ids.allSatisfy { $0 != .max }, "a group key refers to a dropped string")
            keys[i] = n
            newIndex[n] = i
        }
        index = newIndex
    }
}

/// One row of the `sessions` table: the facts of one closed session.
public struct SessionRow: Sendable, Equatable {
    public var sessionId: String
    public var viewerId: String
    public var videoId: String
    public var country: String, region: String, city: String
    public var asn: Int64?
    public var asOrg: String
    public var deviceType: String, os: String, browser: String
    public var playerName: String, playerVersion: String
    public var cdn: String, pop: String
    public var live: Bool?
    public var videoDurationMs: Int64?
    public var startTs: Int64
    public var endTs: Int64
    public var closeTs: Int64
    public var closeReason: CloseReason
    public var missingStart: Bool
    public var hadViewStart: Bool
    public var played: Bool
    public var startupMs: Int64?
    public var playingMs: Int64
    public var rebufferCount: Int64, rebufferMs: Int64
    public var seekCount: Int64, seekMs: Int64
    public var bitrateMsSum: Int64, bitratePlayedMs: Int64
    public var upshifts: Int64, downshifts: Int64
    public var errors: Int64
    public var fatalErrorCode: String?
    public var vsf: Bool, vpf: Bool, ebvs: Bool, completed: Bool
    public var maxPlayheadMs: Int64
    public var beacons: Int64
    public var durationMs: Int64 { endTs - startTs }
}

/// One row of the `rejects` table.
public struct RejectRow: Sendable, Equatable {
    /// The partition's event-time clock when rejected (see README "Rejects":
    /// replays must produce identical files, so this is not wall-clock
    /// time); `unstamped` until the partition has a clock.
    public var ingestedAt: Int64
    public var reason: String
    public var source: String
    public var payload: [UInt8]

    public init(ingestedAt: Int64, reason: String, source: String, payload: [UInt8]) {
        self.ingestedAt = ingestedAt
        self.reason = reason
        self.source = source
        self.payload = payload
    }

    /// `ingestedAt` of a row rejected before its partition's first accepted beacon.
    public static let unstamped = Int64.min

    /// Memory held by the row (payload, strings, and their headers), for the cap on rejects held.
    public var heldBytes: Int { payload.count + source.utf8.count + reason.utf8.count + 96 }
}

/// All state of one window (or of one window's late delta).
public final class WindowState<K: SketchKit>: @unchecked Sendable {
    public let start: Int64
    public let end: Int64
    public let isDelta: Bool
    public var tables: [TableAggregate<K>]
    /// Unique among the states of one `WindowAggregator` (0 = not from one):
    /// sessions cache their group slots by it.
    var serial: UInt32 = 0
    /// The `sessions` rows of the sessions closed in this window, packed.
    public var sessions = SessionRows()
    /// The `cdn_edge` groups (CDN access logs; CdnEdgeMetrics.swift).
    public var cdnEdge = CdnEdgeAggregate<K>()

    init(start: Int64, end: Int64, isDelta: Bool) {
        self.start = start
        self.end = end
        self.isDelta = isDelta
        self.tables = MetricTable.allCases.map { _ in TableAggregate<K>() }
    }

    public var isEmpty: Bool {
        sessions.isEmpty && tables.allSatisfy { $0.isEmpty } && cdnEdge.isEmpty
    }

    /// The tables of this window (`cdn_edge` included) that reached the
    /// group cap and hold an `__other__` row (README "Limits").
    public var tablesAtGroupCap: Int {
        tables.filter(\.hasOther).count + (cdnEdge.hasOther ? 1 : 0)
    }

    /// Makes the `overall` group's segment metrics the sum of the `cdn`
    /// groups' (docs/architecture.md "Segment metrics added once"). The
    /// engine adds a segment beacon to its `cdn` group only, and every one
    /// has exactly one there (its cdn and pop, or `__other__` past the group
    /// cap), so the sum is what adding each to `overall` as well would
    /// give: counters add up, and a quantile sketch's contents depend on
    /// its values alone (merging is exact). It replaces, so calling it
    /// twice, or on a state that also holds `overall` segment metrics (a
    /// snapshot of version 3 or older), gives the same.
    public func fillOverallSegment(cap: Int) {
        var sum: SegmentMetrics<K>?
        let cdn = tables[MetricTable.cdn.rawValue]
        cdn.metrics.withUnsafeBufferPointer { metrics in
            for m in metrics where m.hasSegment {
                if sum == nil { sum = m.segment } else { sum!.merge(m.segment) }
            }
        }
        let o = MetricTable.overall.rawValue
        if let sum {
            let i = tables[o].slot(GroupKey(), cap: cap)
            tables[o].metrics[i].segment = sum
        } else if let i = tables[o].existingSlot(GroupKey()), tables[o].metrics[i].hasSegment {
            tables[o].metrics[i].segment = SegmentMetrics<K>()
        }
    }

    /// Adds another state of the same window (another partition's share),
    /// taking its groups: `o`'s metric tables are left empty. (A flush
    /// drops the shares it merged.)
    public func absorb(_ o: WindowState<K>, cap: Int) {
        precondition(o !== self, "a window state cannot absorb itself")
        for t in tables.indices {
            // Their groups are moved out one at a time, in their order, and
            // merged from a local. Merged from their array in place, each
            // was copied first (Swift cannot tell that merging into ours
            // leaves theirs unchanged), retaining and releasing every sketch
            // in it (bench/results/speed.md section 65).
            let keys = o.tables[t].keys
            var metrics = o.tables[t].metrics
            o.tables[t] = TableAggregate()
            // Reversed through the buffer, whose swaps move; the array's own
            // swaps copy.
            metrics.withUnsafeMutableBufferPointer { $0.reverse() }
            for k in keys {
                let m = metrics.removeLast()
                let j = tables[t].slot(k, cap: cap)
                tables[t].metrics[j].merge(m)
            }
        }
        sessions += o.sessions
        cdnEdge.merge(o.cdnEdge, cap: cap)
    }

    /// Merges states of the same (window, base/delta) into one, in time
    /// order. The states given are changed: each window's first state takes
    /// in the others (`absorb`).
    public static func mergedByWindow(_ states: [WindowState<K>], cap: Int) -> [WindowState<K>] {
        var byKey: [String: WindowState<K>] = [:]
        var order: [WindowState<K>] = []
        for w in states {
            let key = "\(w.start)/\(w.isDelta)"
            if let into = byKey[key] { into.absorb(w, cap: cap) } else { byKey[key] = w; order.append(w) }
        }
        return order.sorted { ($0.start, $0.isDelta ? 1 : 0) < ($1.start, $1.isDelta ? 1 : 0) }
    }
}

/// Routes contributions to windows and hands out finished windows.
public struct WindowAggregator<K: SketchKit>: @unchecked Sendable {
    public let config: EngineConfig
    /// Windows ending at or before this have been written: new
    /// contributions to them go to late deltas.
    public private(set) var writtenThrough: Int64 = .min
    private(set) var base: [Int64: WindowState<K>] = [:]
    private(set) var deltas: [Int64: WindowState<K>] = [:]
    /// The earliest end of an unwritten base window (`.max` when none):
    /// a flush before the watermark reaches it writes nothing new.
    public private(set) var nextDueEnd: Int64 = .max
    /// Changes whenever a window state may be replaced (flush, restore):
    /// cached references to states are valid only within one generation.
    public private(set) var generation = 0
    /// The serial of the latest state created or inserted (`UInt32.max`: they
    /// ran out, later states get 0 and are not cached).
    private var lastSerial: UInt32 = 0
    /// The state `window(for:)` returned last (most contributions go to
    /// one window), unretained: `base` and `deltas` hold it, and every
    /// change that can drop a state from them (`flush`, `insert`) clears it.
    private var last: Unmanaged<WindowState<K>>?
    /// The one `last` named before it (cleared with it): when sessions move
    /// on to the next window, the state they held played time for
    /// (`state(serial:)`).
    private var beforeLast: Unmanaged<WindowState<K>>?
    /// Groups per table of the latest base window flushed (0 before the first).
    private var groupsLastWritten = [Int](repeating: 0, count: MetricTable.allCases.count)

    public init(config: EngineConfig, writtenThrough: Int64 = .min) {
        self.config = config
        self.writtenThrough = writtenThrough
    }

    @inline(__always) public func isWritten(_ ts: Int64) -> Bool {
        config.windowStart(ts) + config.windowMs <= writtenThrough
    }

    /// Whether an event at `ts`, applied while its partition's watermark is
    /// `watermark`, is late (docs/semantics.md §3): the watermark had passed
    /// its window's end, or the instance wrote the window already (past an
    /// idle partition's watermark). Not whether its files exist yet — that
    /// depends on when flushes ran, and `late_events` must not.
    @inline(__always) public func isLate(_ ts: Int64, watermark: Int64) -> Bool {
        let end = config.windowStart(ts) + config.windowMs
        return end <= watermark || end <= writtenThrough
    }

    /// The state that a contribution at `ts` goes to.
    @inline(__always)
    public mutating func window(for ts: Int64) -> WindowState<K> {
        windowRef(for: ts).takeUnretainedValue()
    }

    /// The same, unretained, for the per-beacon path (read it with
    /// `_withUnsafeGuaranteedRef`): valid until the next `flush` or
    /// `insert`. A retained state cost a retain and a release per
    /// contribution (bench/results/speed.md §11).
    @inline(__always)
    mutating func windowRef(for ts: Int64) -> Unmanaged<WindowState<K>> {
        let start = config.windowStart(ts)
        if let w = last, w._withUnsafeGuaranteedRef({ $0.start }) == start { return w }
        let w = Unmanaged.passUnretained(lookup(start))
        beforeLast = last
        last = w
        return w
    }

    private mutating func lookup(_ start: Int64) -> WindowState<K> {
        let delta = start + config.windowMs <= writtenThrough
        if delta {
            if let w = deltas[start] { return w }
            let w = WindowState<K>(start: start, end: start + config.windowMs, isDelta: true)
            w.serial = nextSerial()
            deltas[start] = w
            return w
        }
        if let w = base[start] { return w }
        let w = WindowState<K>(start: start, end: start + config.windowMs, isDelta: false)
        w.serial = nextSerial()
        // Sized for as many groups as the last window written had: a window
        // of the same traffic fills about as many (bench/results/speed.md section 21).
        for t in w.tables.indices where groupsLastWritten[t] > 0 { w.tables[t].reserve(groupsLastWritten[t]) }
        base[start] = w
        if w.end < nextDueEnd { nextDueEnd = w.end }
        return w
    }

    private mutating func nextSerial() -> UInt32 {
        if lastSerial < .max { lastSerial += 1 }
        return lastSerial == .max ? 0 : lastSerial
    }

    /// The unwritten state whose serial is `serial` (nil: none; 0 matches none).
    func state(serial: UInt32) -> WindowState<K>? {
        guard serial != 0 else { return nil }
        if let w = last, w._withUnsafeGuaranteedRef({ $0.serial }) == serial { return w.takeUnretainedValue() }
        if let w = beforeLast, w._withUnsafeGuaranteedRef({ $0.serial }) == serial { return w.takeUnretainedValue() }
        return base.values.first { $0.serial == serial } ?? deltas.values.first { $0.serial == serial }
    }

    /// Every unwritten state, base windows then deltas, in time order (checkpoints).
    public var allStates: [WindowState<K>] {
        base.values.sorted { $0.start < $1.start } + deltas.values.sorted { $0.start < $1.start }
    }

    /// Puts back a state read from a checkpoint.
    public mutating func insert(_ w: WindowState<K>) {
        generation += 1
        last = nil
        beforeLast = nil
        w.serial = nextSerial()
        if w.isDelta { deltas[w.start] = w } else {
            base[w.start] = w
            if w.end < nextDueEnd { nextDueEnd = w.end }
        }
    }

    /// Unwritten base windows (for point samples such as concurrent plays).
    public var openWindows: [WindowState<K>] { Array(base.values) }

    /// Base windows that `watermark` has passed, in time order.
    public func windowsDue(_ watermark: Int64) -> [WindowState<K>] {
        base.values.filter { $0.end <= watermark }.sorted { $0.start < $1.start }
    }

    /// Whether late contributions wait in deltas (README "Late data and compaction").
    public var hasPendingLate: Bool { deltas.values.contains { !$0.isEmpty } }

    /// Removes and returns every base window that the watermark has passed
    /// and, when `releaseLate`, every pending late delta (otherwise they stay
    /// in the state, checkpointed with it, until a later flush releases them);
    /// afterwards those windows are written.
    public mutating func flush(_ watermark: Int64, releaseLate: Bool = true) -> [WindowState<K>] {
        var out = windowsDue(watermark)
        generation += 1
        last = nil
        beforeLast = nil
        for w in out { base[w.start] = nil }
        if let latest = out.last { groupsLastWritten = latest.tables.map { $0.keys.count } }
        nextDueEnd = base.values.map { $0.end }.min() ?? .max
        if releaseLate {
            out += deltas.values.sorted { $0.start < $1.start }
            deltas.removeAll()
        }
        if watermark > writtenThrough {
            writtenThrough = config.windowStart(watermark)
        }
        return out.filter { !$0.isEmpty }
    }
}
