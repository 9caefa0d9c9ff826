/// The `cdn_edge` table's state (docs/semantics.md "CDN access logs"): per
/// window × cdn × account × owner × pop, additive counters and mergeable
/// sketches of CDN access-log records, so late deltas, other partitions'
/// shares and roll-ups merge like the beacon tables.

/// A `cdn_edge` group's dimension values.
public struct CdnEdgeKey: Hashable, Sendable, Comparable {
    public var cdn: String
    public var account: String
    public var owner: String
    public var pop: String

    public init(cdn: String, account: String, owner: String, pop: String) {
        self.cdn = cdn; self.account = account; self.owner = owner; self.pop = pop
    }

    /// The group that takes new keys past the group cap.
    public static let other = CdnEdgeKey(cdn: "__other__", account: "__other__", owner: "__other__", pop: "__other__")

    public var values: [String] { [cdn, account, owner, pop] }

    public static func < (a: CdnEdgeKey, b: CdnEdgeKey) -> Bool { a.values.lexicographicallyPrecedes(b.values) }

    /// The table's dimension columns, in order.
    public static let dimensions = ["cdn", "account", "owner", "pop"]
}

/// The metrics of one `cdn_edge` group in one window.
public struct CdnEdgeMetrics<K: SketchKit>: Sendable, Equatable {
    public var requests: Int64 = 0
    /// Status > 299 (3xx counts, as in the original CDN-quality pipeline).
    public var httpErrors: Int64 = 0
    public var http2xx: Int64 = 0
    public var http3xx: Int64 = 0
    public var http4xx: Int64 = 0
    public var http5xx: Int64 = 0
    /// Serve time above the slow threshold (`EngineConfig.slowResponseMs`).
    public var slowResponses: Int64 = 0
    public var bytesOut: Int64 = 0
    public var cacheHits: Int64 = 0
    public var cacheMisses: Int64 = 0
    /// Records whose format says the last byte was not served.
    public var incompleteResponses: Int64 = 0
    public var serveSketch = K.Quantiles()
    public var ttfbSketch = K.Quantiles()
    public var clients = K.Distinct()

    public init() {}

    /// Adds one record.
    public mutating func add(_ r: CdnLogRecord, slowMs: Double) {
        requests +|= 1
        let s = r.status
        if s > 299 { httpErrors +|= 1 }
        switch s {
        case 200...299: http2xx +|= 1
        case 300...399: http3xx +|= 1
        case 400...499: http4xx +|= 1
        case 500...599: http5xx +|= 1
        default: break
        }
        if let ms = r.serveMs {
            if ms > slowMs { slowResponses +|= 1 }
            serveSketch.add(ms)
        }
        if let t = r.ttfbMs { ttfbSketch.add(t) }
        bytesOut +|= r.bytesOut
        switch r.cache {
        case .hit: cacheHits +|= 1
        case .miss: cacheMisses +|= 1
        case .other: break
        }
        if r.incomplete == true { incompleteResponses +|= 1 }
        if !r.clientIP.isEmpty { clients.insert(r.clientIP) }
    }

    public mutating func merge(_ o: CdnEdgeMetrics<K>) {
        var o = o
        var i = 0
        var mine: [Int64] = []
        o.visitCounters { mine.append($0) }
        visitCounters { $0 +|= mine[i]; i += 1 }
        serveSketch.merge(o.serveSketch)
        ttfbSketch.merge(o.ttfbSketch)
        clients.merge(o.clients)
    }

    /// The counters in column (and checkpoint) order: the one list the
    /// merge, the checkpoint codec and the file reader walk.
    @inline(__always) public mutating func visitCounters(_ f: (inout Int64) throws -> Void) rethrows {
        try f(&requests); try f(&httpErrors); try f(&http2xx); try f(&http3xx); try f(&http4xx); try f(&http5xx)
        try f(&slowResponses); try f(&bytesOut); try f(&cacheHits); try f(&cacheMisses); try f(&incompleteResponses)
    }

    /// The counters' column names, in `visitCounters` order.
    public static var counterColumns: [String] {
        ["requests", "http_errors", "http_2xx", "http_3xx", "http_4xx", "http_5xx", "slow_responses",
         "bytes_out", "cache_hits", "cache_misses", "incomplete_responses"]
    }
}

/// The `cdn_edge` groups of one window (or late delta).
public struct CdnEdgeAggregate<K: SketchKit>: Sendable {
    public private(set) var keys: [CdnEdgeKey] = []
    public var metrics: [CdnEdgeMetrics<K>] = []
    private var index: [CdnEdgeKey: Int] = [:]

    public init() {}

    public var isEmpty: Bool { keys.isEmpty }

    /// Whether the group cap was reached: further groups went to `__other__`.
    public var hasOther: Bool { index[.other] != nil }

    /// The slot of `key`, created on first use; past `cap` groups the
    /// `__other__` group takes new keys.
    public mutating func slot(_ key: CdnEdgeKey, cap: Int) -> Int {
        if let i = index[key] { return i }
        var k = key
        if keys.count >= cap && key != .other {
            k = .other
            if let i = index[k] { return i }
        }
        index[k] = keys.count
        keys.append(k)
        metrics.append(CdnEdgeMetrics<K>())
        return keys.count - 1
    }

    /// Adds another share of the same window.
    public mutating func merge(_ o: CdnEdgeAggregate<K>, cap: Int) {
        for (i, k) in o.keys.enumerated() {
            let j = slot(k, cap: cap)
            metrics[j].merge(o.metrics[i])
        }
    }

    /// Slot indices in dimension order (the order rows are written).
    public var sortedSlots: [Int] { keys.indices.sorted { keys[$0] < keys[$1] } }
}
