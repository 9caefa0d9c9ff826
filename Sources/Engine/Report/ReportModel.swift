import QoSCore

/// The numbers one report page shows, computed from a `ReportAccumulator`:
/// plain values, ready for `ReportHTML` (and for the tests, which compare
/// them with DuckDB over the same tables).
public struct ReportModel: Sendable {
    public enum Format: String, Sendable { case count, ms, percent, bytes, text }

    public struct KPI: Sendable {
        public var id: String
        public var label: String
        public var value: Double?
        public var format: Format
        public var note: String
    }

    /// One point of the time series: a window, or a display bucket of
    /// several whole windows merged (see `stepMs`).
    public struct Point: Sendable {
        public var start: Int64
        public var values: [String: Double]
    }

    public struct Chart: Sendable {
        public var id: String
        public var title: String
        public var format: Format
        public var series: [(id: String, label: String)]
    }

    public struct Column: Sendable {
        public var id: String
        public var label: String
        public var format: Format
    }

    public struct Table: Sendable {
        public var id: String
        public var title: String
        public var note: String
        public var columns: [Column]
        /// Cells: a number (nil = not defined, e.g. a rate of zero views) or a text.
        public var rows: [[Cell]]
        /// Groups before the row limit.
        public var groups: Int
    }

    public enum Cell: Sendable {
        case text(String)
        case number(Double?)
    }

    public var sink: String
    public var grainMs: Int64
    /// The series' display step: the window, or a multiple of it when the
    /// range has more than `ReportOptions.maxPoints` windows.
    public var stepMs: Int64
    public var firstStart: Int64
    public var lastEnd: Int64
    public var windows: Int
    public var files: Int
    public var kpis: [KPI] = []
    public var points: [Point] = []
    public var charts: [Chart] = []
    public var tables: [Table] = []

    /// The chart series a group's merged metrics give.
    static func seriesValues(_ m: ReportMetrics) -> [String: Double] {
        var v: [String: Double] = ["views": Double(m.views), "unique_viewers": m.uniqueViewers.rounded(),
                                   "plays": Double(m.plays), "concurrent_plays": Double(m.concurrentPlays)]
        v["startup_p50"] = m.startupSketch.quantile(0.5)
        v["startup_p95"] = m.startupSketch.quantile(0.95)
        v["rebuffer_ratio"] = m.rebufferRatio
        v["vsf_rate"] = ratio(m.vsf, m.views)
        v["ebvs_rate"] = ratio(m.ebvs, m.views)
        v["vpf_rate"] = ratio(m.vpf, m.plays)
        v["failed_rate"] = ratio(m.segment.failedRequests, m.segment.requests)
        return v
    }

    static func ratio(_ a: Int64, _ b: Int64) -> Double? { b > 0 ? Double(a) / Double(b) : nil }

    init(_ acc: ReportAccumulator) {
        // The beacon tables' windows; a sink of CDN logs alone has only `cdn_edge`'s.
        let ends = acc.overall.isEmpty ? acc.edgeWindows : acc.overall.mapValues(\.end)
        let starts = ends.keys.sorted()
        sink = acc.options.sinkName ?? acc.options.sink
        grainMs = acc.grainMs
        firstStart = starts.first ?? 0
        lastEnd = starts.last.flatMap { ends[$0] } ?? 0
        windows = starts.count
        files = acc.files
        // The smallest multiple of the window whose epoch-aligned buckets number at most maxPoints.
        var k = Int64(max(1, (starts.count + acc.options.maxPoints - 1) / max(1, acc.options.maxPoints)))
        let grain = acc.grainMs
        while Set(starts.map { ReportModel.floorDiv($0, grain * k) }).count > max(1, acc.options.maxPoints) { k += 1 }
        stepMs = grainMs * k

        // Per window (merged files), then per display bucket, then in total.
        var total = ReportMetrics()
        var peakConcurrent: Int64 = 0
        var buckets: [(start: Int64, m: ReportMetrics)] = []
        for s in starts {
            var m = ReportMetrics()
            for r in acc.overall[s]?.merger.rows(start: s, end: 0) ?? [] { m = r.m }
            let c = m.concurrentPlays
            peakConcurrent = max(peakConcurrent, c)
            let b = stepMs == grainMs ? s : ReportModel.floorDiv(s, stepMs) * stepMs
            if buckets.last?.start != b { buckets.append((b, ReportMetrics())) }
            let bc = max(buckets[buckets.count - 1].m.concurrentPlays, c)
            m.concurrentPlays = 0
            buckets[buckets.count - 1].m.merge(m)
            buckets[buckets.count - 1].m.concurrentPlays = bc
            total.merge(m)
        }
        points = buckets.map { Point(start: $0.start, values: ReportModel.seriesValues($0.m)) }

        kpis = [
            KPI(id: "views", label: "Views", value: Double(total.views), format: .count, note: "sessions started"),
            KPI(id: "unique_viewers", label: "Unique viewers", value: total.uniqueViewers.rounded(), format: .count,
                note: "HLL estimate over the range"),
            KPI(id: "plays", label: "Plays", value: Double(total.plays), format: .count, note: "sessions that started playing"),
            KPI(id: "startup_p50", label: "Startup p50", value: total.startupSketch.quantile(0.5), format: .ms, note: "median time to first frame"),
            KPI(id: "startup_p95", label: "Startup p95", value: total.startupSketch.quantile(0.95), format: .ms, note: "95th percentile"),
            KPI(id: "rebuffer_ratio", label: "Rebuffer ratio", value: total.rebufferRatio, format: .percent,
                note: "stall time / (playing + stall)"),
            KPI(id: "vsf_rate", label: "VSF rate", value: ReportModel.ratio(total.vsf, total.views), format: .percent,
                note: "video start failures / views"),
            KPI(id: "ebvs_rate", label: "EBVS rate", value: ReportModel.ratio(total.ebvs, total.views), format: .percent,
                note: "exits before video start / views"),
            KPI(id: "vpf_rate", label: "VPF rate", value: ReportModel.ratio(total.vpf, total.plays), format: .percent,
                note: "playback failures / plays"),
            KPI(id: "failed_rate", label: "CDN failed requests", value: ReportModel.ratio(total.segment.failedRequests, total.segment.requests),
                format: .percent, note: "segment requests with status 0 or ≥ 400"),
            KPI(id: "peak_concurrent", label: "Peak concurrent plays", value: Double(peakConcurrent), format: .count,
                note: "largest window-end sample"),
            KPI(id: "rejects", label: "Rejected beacons", value: Double(acc.rejects.values.reduce(0, +)), format: .count,
                note: "rows of the rejects table"),
        ]
        charts = [
            Chart(id: "views", title: "Views, unique viewers and plays", format: .count,
                  series: [("views", "views"), ("unique_viewers", "unique viewers"), ("plays", "plays")]),
            Chart(id: "startup", title: "Startup time", format: .ms, series: [("startup_p50", "p50"), ("startup_p95", "p95")]),
            Chart(id: "rebuffer", title: "Rebuffer ratio", format: .percent, series: [("rebuffer_ratio", "rebuffer ratio")]),
            Chart(id: "failures", title: "Start and playback failures", format: .percent,
                  series: [("vsf_rate", "VSF"), ("ebvs_rate", "EBVS"), ("vpf_rate", "VPF")]),
            Chart(id: "cdn_failed", title: "CDN failed-request rate", format: .percent, series: [("failed_rate", "failed requests")]),
            Chart(id: "concurrent", title: "Concurrent plays", format: .count, series: [("concurrent_plays", "concurrent plays")]),
        ]
        tables = ReportModel.breakdownTables(acc, limit: acc.options.maxRows)
        if acc.overall.isEmpty {
            // CDN access logs alone: no beacon numbers to show, only the PoP view and rejects.
            kpis = []
            charts = []
            tables = tables.filter { $0.id == "cdn_edge" || $0.id == "rejects" }
        }
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }

    static let qoeColumns: [Column] = [
        Column(id: "views", label: "views", format: .count), Column(id: "unique_viewers", label: "unique viewers", format: .count),
        Column(id: "plays", label: "plays", format: .count), Column(id: "startup_p50", label: "startup p50", format: .ms),
        Column(id: "startup_p95", label: "startup p95", format: .ms), Column(id: "rebuffer_ratio", label: "rebuffer ratio", format: .percent),
        Column(id: "vsf_rate", label: "VSF", format: .percent), Column(id: "ebvs_rate", label: "EBVS", format: .percent),
        Column(id: "vpf_rate", label: "VPF", format: .percent)]
    static let segmentColumns: [Column] = [
        Column(id: "requests", label: "segment requests", format: .count), Column(id: "failed_rate", label: "failed", format: .percent),
        Column(id: "slow_rate", label: "slow (> 200 ms)", format: .percent), Column(id: "cache_hit_rate", label: "cache hits", format: .percent),
        Column(id: "download_p95", label: "download p95", format: .ms)]

    static func qoeCells(_ m: ReportMetrics, segments: Bool) -> [Cell] {
        let v = seriesValues(m)
        var cells: [Cell] = qoeColumns.map { .number(v[$0.id]) }
        if segments {
            let s = m.segment
            cells += [.number(Double(s.requests)), .number(ratio(s.failedRequests, s.requests)),
                      .number(ratio(s.slowRequests, s.requests)), .number(ratio(s.cacheHits, s.requests)),
                      .number(s.downloadSketch.quantile(0.95))]
        }
        return cells
    }

    static func breakdownTables(_ acc: ReportAccumulator, limit: Int) -> [Table] {
        var out: [Table] = []
        let titles: [String: (String, String)] = [
            "cdn": ("CDN × PoP", "cdn table; segment numbers from the segment beacons"),
            "device": ("Device type", "device table"),
            "player": ("Player", "device table, by player_name"),
            "geo": ("Country", "geo table"),
            "video": ("Video", "video table")]
        for spec in ReportAccumulator.breakdownSpecs {
            guard let merger = acc.breakdowns[spec.key] else { continue }
            var rows = merger.rows(start: 0, end: 0)
            rows.sort { ($0.m.views, $0.m.segment.requests) > ($1.m.views, $1.m.segment.requests) }
            let idx = spec.dims.compactMap { spec.table.dimensions.firstIndex(of: $0) }
            let segments = spec.table.hasSegmentMetrics
            let cols = spec.dims.map { Column(id: $0, label: $0, format: .text) } + qoeColumns + (segments ? segmentColumns : [])
            let cells = rows.prefix(limit).map { r in idx.map { Cell.text(r.dims[$0]) } + qoeCells(r.m, segments: segments) }
            let (title, source) = titles[spec.key]!
            out.append(Table(id: spec.key, title: title, note: "\(source), whole range; top \(min(limit, rows.count)) of \(rows.count) groups by views",
                             columns: cols, rows: Array(cells), groups: rows.count))
        }
        out.append(trending(acc, limit: limit))
        if !acc.players.isEmpty {
            let rows = acc.players.sorted { ($0.value.sessions, $1.key.joined()) > ($1.value.sessions, $0.key.joined()) }
            let cols = [Column(id: "player_name", label: "player", format: .text), Column(id: "player_version", label: "version", format: .text),
                        Column(id: "sessions", label: "sessions", format: .count), Column(id: "startup_p50", label: "startup p50", format: .ms),
                        Column(id: "rebuffer_ratio", label: "rebuffer ratio", format: .percent),
                        Column(id: "vsf_rate", label: "VSF", format: .percent), Column(id: "ebvs_rate", label: "EBVS", format: .percent),
                        Column(id: "vpf_rate", label: "VPF", format: .percent)]
            let cells: [[Cell]] = rows.prefix(limit).map { k, g in
                [.text(k[0]), .text(k[1]), .number(Double(g.sessions)), .number(g.startup.quantile(0.5)),
                 .number(ratio(g.rebufferMs, g.playingMs +| g.rebufferMs)),
                 .number(ratio(g.vsf, g.views)), .number(ratio(g.ebvs, g.views)), .number(ratio(g.vpf, g.played))]
            }
            out.append(Table(id: "player_version", title: "Player × version",
                             note: "sessions table (closed sessions, in their close's window); VSF and EBVS per closed session with a view_start (as alerts count them), VPF per session that played",
                             columns: cols, rows: cells, groups: rows.count))
        }
        if acc.hasEdge {
            let rows = acc.edge.sorted { ($0.value.sum("requests"), $1.key.joined()) > ($1.value.sum("requests"), $0.key.joined()) }
            let cols = [Column(id: "cdn", label: "cdn", format: .text), Column(id: "pop", label: "pop", format: .text),
                        Column(id: "requests", label: "requests", format: .count), Column(id: "http_error_rate", label: "HTTP errors (> 299)", format: .percent),
                        Column(id: "http_5xx_rate", label: "5xx", format: .percent), Column(id: "slow_rate", label: "slow", format: .percent),
                        Column(id: "cache_hit_ratio", label: "cache hit ratio", format: .percent),
                        Column(id: "serve_p95", label: "serve p95", format: .ms), Column(id: "bytes_out", label: "bytes out", format: .bytes),
                        Column(id: "unique_clients", label: "unique clients", format: .count)]
            let cells: [[Cell]] = rows.prefix(limit).map { k, g in
                let req = g.sum("requests")
                return [.text(k[0]), .text(k[1]), .number(Double(req)), .number(ratio(g.sum("http_errors"), req)),
                        .number(ratio(g.sum("http_5xx"), req)), .number(ratio(g.sum("slow_responses"), req)),
                        .number(ratio(g.sum("cache_hits"), g.sum("cache_hits") +| g.sum("cache_misses"))),
                        .number(g.serve.quantile(0.95)), .number(Double(g.sum("bytes_out"))), .number(g.clients.estimate.rounded())]
            }
            out.append(Table(id: "cdn_edge", title: "CDN edge by PoP (access logs)",
                             note: "cdn_edge table: what the CDN logged, per cdn × pop", columns: cols, rows: cells, groups: rows.count))
        }
        let total = acc.rejects.values.reduce(0, +)
        let rj = acc.rejects.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
        out.append(Table(id: "rejects", title: "Rejects by reason", note: "rejects table (README lists the reasons)",
                         columns: [Column(id: "reason", label: "reason", format: .text), Column(id: "rows", label: "beacons", format: .count),
                                   Column(id: "share", label: "share", format: .percent)],
                         rows: rj.map { [.text($0.key), .number(Double($0.value)), .number(ratio($0.value, total))] }, groups: rj.count))
        return out
    }

    /// Views per video in the last hour (ending at the newest window's end)
    /// against the hour before.
    static func trending(_ acc: ReportAccumulator, limit: Int) -> Table {
        let hourMs: Int64 = 3_600_000
        let cols = [Column(id: "video_id", label: "video_id", format: .text), Column(id: "views_now", label: "views, last hour", format: .count),
                    Column(id: "views_before", label: "views, hour before", format: .count), Column(id: "change", label: "change", format: .count),
                    Column(id: "change_rate", label: "change %", format: .percent)]
        guard acc.newestEnd != .min else {
            return Table(id: "trending", title: "Trending videos", note: "video table: no window yet", columns: cols, rows: [], groups: 0)
        }
        var now: [String: Int64] = [:], before: [String: Int64] = [:]
        for (s, views) in acc.recentVideoViews {
            if s >= acc.newestEnd - hourMs { for (v, n) in views { now[v, default: 0] += n } } else if s >= acc.newestEnd - 2 * hourMs {
                for (v, n) in views { before[v, default: 0] += n }
            }
        }
        let keys = Set(now.keys).union(before.keys)
        let rows = keys.map { ($0, now[$0, default: 0], before[$0, default: 0]) }
            .sorted { ($0.1 - $0.2, $0.1, $1.0) > ($1.1 - $1.2, $1.1, $0.0) }
        let cells: [[Cell]] = rows.prefix(limit).map { v, n, b in
            [.text(v), .number(Double(n)), .number(Double(b)), .number(Double(n - b)), .number(b > 0 ? Double(n - b) / Double(b) : nil)]
        }
        return Table(id: "trending", title: "Trending videos",
                     note: "video table: views in the hour ending \(CivilTime(epochMs: acc.newestEnd).iso) against the hour before, biggest rise first",
                     columns: cols, rows: cells, groups: rows.count)
    }
}
