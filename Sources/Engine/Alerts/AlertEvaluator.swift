import Foundation
import Parquet
import QoSCore

/// The sums a rule's metric is computed from, for one group in one window:
/// a row of a metric table, of `cdn_edge`, or closed sessions added up
/// (docs/semantics.md §7).
public struct AlertSums: Sendable {
    public var views: Int64 = 0, plays: Int64 = 0
    public var vsf: Int64 = 0, ebvs: Int64 = 0, vpf: Int64 = 0
    public var playingMs: Int64 = 0, rebufferMs: Int64 = 0
    public var startup = DataSketchesKit.Quantiles()
    public var requests: Int64 = 0, failedRequests: Int64 = 0, slowRequests: Int64 = 0
    public var httpErrors: Int64 = 0, http5xx: Int64 = 0, slowResponses: Int64 = 0
    public var serve = DataSketchesKit.Quantiles()

    public init() {}

    /// A row of `overall`, `video`, `geo`, `device` or `cdn`.
    public init(_ m: GroupMetrics<DataSketchesKit>) {
        views = m.views; plays = m.plays; vsf = m.vsf; ebvs = m.ebvs; vpf = m.vpf
        playingMs = m.playingMs; rebufferMs = m.rebufferMs; startup = m.startupSketch
        requests = m.segment.requests; failedRequests = m.segment.failedRequests
        slowRequests = m.segment.slowRequests; http5xx = m.segment.http5xx
    }

    /// A row of `cdn_edge`.
    public init(_ m: CdnEdgeMetrics<DataSketchesKit>) {
        requests = m.requests; httpErrors = m.httpErrors; http5xx = m.http5xx
        slowResponses = m.slowResponses; serve = m.serveSketch
    }

    /// One closed session (a row of `sessions`).
    public init(_ s: SessionRow) {
        views = s.hadViewStart ? 1 : 0; plays = s.played ? 1 : 0
        vsf = s.vsf ? 1 : 0; ebvs = s.ebvs ? 1 : 0; vpf = s.vpf ? 1 : 0
        playingMs = s.playingMs; rebufferMs = s.rebufferMs
        if let ms = s.startupMs { startup.add(Double(ms)) }
    }

    public mutating func merge(_ o: AlertSums) {
        views +|= o.views; plays +|= o.plays; vsf +|= o.vsf; ebvs +|= o.ebvs; vpf +|= o.vpf
        playingMs +|= o.playingMs; rebufferMs +|= o.rebufferMs; startup.merge(o.startup)
        requests +|= o.requests; failedRequests +|= o.failedRequests; slowRequests +|= o.slowRequests
        httpErrors +|= o.httpErrors; http5xx +|= o.http5xx; slowResponses +|= o.slowResponses; serve.merge(o.serve)
    }

    /// The `sessions` columns a rule may group or filter by.
    public static let sessionDimensions = ["video_id", "country", "region", "city", "as_org", "device_type", "os",
                                           "browser", "player_name", "player_version", "cdn", "pop"]

    static func sessionDims(_ s: SessionRow) -> [String] {
        [s.videoId, s.country, s.region, s.city, s.asOrg, s.deviceType, s.os, s.browser, s.playerName, s.playerVersion,
         s.cdn, s.pop]
    }
}

/// What a rule can watch (docs/semantics.md §7 lists them with their tables).
public enum AlertMetric: String, CaseIterable, Sendable {
    case views, plays, vsf_rate, ebvs_rate, vpf_rate, rebuffer_ratio, startup_ms_p50, startup_ms_p95
    case requests, failed_request_rate, slow_request_rate
    case http_error_rate, http_5xx_rate, slow_response_rate, serve_ms_p95

    static let beaconTables = MetricTable.allCases.map(\.name) + ["sessions"]
    static let segmentTables = MetricTable.allCases.filter(\.hasSegmentMetrics).map(\.name)

    /// The tables that have it.
    public var tables: [String] {
        switch self {
        case .views, .plays, .vsf_rate, .ebvs_rate, .vpf_rate, .rebuffer_ratio, .startup_ms_p50, .startup_ms_p95:
            AlertMetric.beaconTables
        case .requests: AlertMetric.segmentTables + [TableSchemas.cdnEdgeTable]
        case .failed_request_rate, .slow_request_rate: AlertMetric.segmentTables
        case .http_error_rate, .http_5xx_rate, .slow_response_rate, .serve_ms_p95: [TableSchemas.cdnEdgeTable]
        }
    }

    static func names(table: String) -> String {
        allCases.filter { $0.tables.contains(table) }.map(\.rawValue).joined(separator: ", ")
    }

    /// The metric's volume: its denominator (what `min_volume` counts).
    public var volumeName: String {
        switch self {
        case .views, .vsf_rate, .ebvs_rate: "views"
        case .plays, .vpf_rate, .rebuffer_ratio: "plays"
        case .startup_ms_p50, .startup_ms_p95: "startups"
        default: "requests"
        }
    }

    public func volume(_ s: AlertSums) -> Int64 {
        switch self {
        case .views, .vsf_rate, .ebvs_rate: s.views
        case .plays, .vpf_rate, .rebuffer_ratio: s.plays
        case .startup_ms_p50, .startup_ms_p95: Int64(s.startup.count)
        default: s.requests
        }
    }

    /// nil when the group has nothing to compute it from.
    public func value(_ s: AlertSums) -> Double? {
        func ratio(_ a: Int64, _ b: Int64) -> Double? { b > 0 ? Double(a) / Double(b) : nil }
        switch self {
        case .views: return Double(s.views)
        case .plays: return Double(s.plays)
        case .vsf_rate: return ratio(s.vsf, s.views)
        case .ebvs_rate: return ratio(s.ebvs, s.views)
        case .vpf_rate: return ratio(s.vpf, s.plays)
        case .rebuffer_ratio:
            let d = Double(s.playingMs) + Double(s.rebufferMs)
            return d > 0 ? Double(s.rebufferMs) / d : nil
        case .startup_ms_p50: return s.startup.quantile(0.5)
        case .startup_ms_p95: return s.startup.quantile(0.95)
        case .requests: return Double(s.requests)
        case .failed_request_rate: return ratio(s.failedRequests, s.requests)
        case .slow_request_rate: return ratio(s.slowRequests, s.requests)
        case .http_error_rate: return ratio(s.httpErrors, s.requests)
        case .http_5xx_rate: return ratio(s.http5xx, s.requests)
        case .slow_response_rate: return ratio(s.slowResponses, s.requests)
        case .serve_ms_p95: return s.serve.quantile(0.95)
        }
    }
}

/// One firing: a row of the `alerts` table, a log line and a webhook body.
public struct AlertFiring: Equatable, Sendable {
    public var windowStart: Int64
    public var windowEnd: Int64
    public var rule: String
    public var table: String
    public var metric: String
    /// `threshold` or `relative`.
    public var kind: String
    /// The group: its `by` dimensions and values, in the table's order.
    public var dimensions: [(String, String)]
    public var value: Double
    /// The value the metric crossed: the threshold, or factor × baseline.
    public var limit: Double
    /// Relative rules: the trailing hour's volume-weighted mean.
    public var baseline: Double?
    public var volume: Int64
    public var message: String
    public var webhook: String?

    public static func == (a: AlertFiring, b: AlertFiring) -> Bool {
        a.windowStart == b.windowStart && a.rule == b.rule && a.dimensions.map(\.0) == b.dimensions.map(\.0)
            && a.dimensions.map(\.1) == b.dimensions.map(\.1) && a.value == b.value && a.limit == b.limit
            && a.baseline == b.baseline && a.volume == b.volume && a.message == b.message
    }

    /// `{"cdn":"fastly","pop":"ams"}` (`{}` for a whole table).
    public var dimensionsJSON: String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (i, (k, v)) in dimensions.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            BeaconEncoder.quote(k, &out); out.append(UInt8(ascii: ":")); BeaconEncoder.quote(v, &out)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// The webhook's body: the row as one JSON object.
    public var json: String {
        var out: [UInt8] = []
        func field(_ k: String, _ v: String, quoted: Bool = true) {
            out.append(UInt8(ascii: out.isEmpty ? "{" : ","))
            BeaconEncoder.quote(k, &out); out.append(UInt8(ascii: ":"))
            if quoted { BeaconEncoder.quote(v, &out) } else { out += Array(v.utf8) }
        }
        func number(_ d: Double) -> String { d.isFinite ? "\(d)" : "null" }
        field("window_start", CivilTime(epochMs: windowStart).iso)
        field("window_end", CivilTime(epochMs: windowEnd).iso)
        field("rule", rule); field("table", table); field("metric", metric); field("kind", kind)
        field("dimensions", dimensionsJSON, quoted: false)
        field("value", number(value), quoted: false); field("limit", number(limit), quoted: false)
        field("baseline", baseline.map(number) ?? "null", quoted: false)
        field("volume", "\(volume)", quoted: false); field("message", message)
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}

/// Evaluates the rules on every written window (not late deltas), in window
/// order, and remembers per rule and group what the trailing hour looked
/// like and whether an alert is active — so one incident fires once, not
/// once per window (docs/semantics.md §7). The state lives in memory; a new
/// process rebuilds it from the windows already in the sink before it
/// evaluates its first window (`warmStart`), so a restart neither fires an
/// ongoing incident again nor warms up again (README "Alerts").
public final class AlertEvaluator {
    public let rules: [AlertRule]
    /// Groups a rule keeps state for; past this, new groups are not evaluated.
    public static let groupsPerRuleMax = 10_000

    struct Point { var start: Int64; var value: Double; var volume: Int64 }
    struct GroupState {
        var history: [Point] = []
        var active = false
        var lastTrue: Int64 = .min
    }
    var state: [[String: GroupState]]
    /// Groups not evaluated because a rule's state was full (a count, for tests and logs).
    public private(set) var groupsDropped: Int64 = 0
    /// Whether the state was rebuilt from the sink (done before the first window).
    var warmed = false
    /// Problems met while rebuilding (files that cannot be read are skipped).
    public var onWarning: ((String) -> Void)?

    public init(rules: [AlertRule]) {
        self.rules = rules
        state = rules.map { _ in [:] }
    }

    /// A group's rows of one table in one window: the dimension values (the
    /// table's order) and their sums.
    public typealias Rows = [(dims: [String], sums: AlertSums)]

    /// The firings of `windows` (written ones, oldest first), reading the
    /// tables the rules name. `names`: the interner's strings of the flush.
    public func evaluate(_ windows: [WindowState<DataSketchesKit>], names: [String], writer: WindowFileWriter) -> [AlertFiring] {
        guard !rules.isEmpty else { return [] }
        let tables = Set(rules.map(\.table))
        var out: [AlertFiring] = []
        let written = windows.filter { !$0.isDelta }.sorted { $0.start < $1.start }
        if !warmed, let first = written.first {
            warmed = true
            warmStart(sink: writer.sink, before: first.start)
        }
        for w in written {
            var rows: [String: Rows] = [:]
            for t in MetricTable.allCases where tables.contains(t.name) {
                rows[t.name] = writer.metricRows(w, t, names).map { ($0.dims, AlertSums($0.m)) }
            }
            if tables.contains("sessions") {
                rows["sessions"] = w.sessions.map { (AlertSums.sessionDims($0), AlertSums($0)) }
            }
            if tables.contains(TableSchemas.cdnEdgeTable) {
                rows[TableSchemas.cdnEdgeTable] = zip(w.cdnEdge.keys, w.cdnEdge.metrics).map { ($0.values, AlertSums($1)) }
            }
            out += evaluate(start: w.start, end: w.end, tables: rows)
        }
        return out
    }

    /// The firings of one window, given each table's rows.
    public func evaluate(start: Int64, end: Int64, tables: [String: Rows]) -> [AlertFiring] {
        var out: [AlertFiring] = []
        for (ri, rule) in rules.enumerated() {
            let dims = AlertRule.dimensions(of: rule.table) ?? []
            let byIndex = rule.by.compactMap { dims.firstIndex(of: $0) }
            let filter = rule.filter.map { (i: dims.firstIndex(of: $0.key)!, values: Set($0.value)) }
            let exclude = rule.exclude.map { (i: dims.firstIndex(of: $0.key)!, values: Set($0.value)) }
            var groups: [String: (values: [String], sums: AlertSums)] = [:]
            for row in tables[rule.table] ?? [] where filter.allSatisfy({ $0.values.contains(row.dims[$0.i]) })
                && !exclude.contains(where: { $0.values.contains(row.dims[$0.i]) }) {
                let values = byIndex.map { row.dims[$0] }
                let key = values.joined(separator: "\u{1F}")
                if groups[key] == nil { groups[key] = (values, row.sums) } else { groups[key]!.sums.merge(row.sums) }
            }
            var seen = Set<String>()
            for key in groups.keys.sorted() {
                let g = groups[key]!
                let volume = rule.metric.volume(g.sums)
                guard volume >= rule.minVolume, let value = rule.metric.value(g.sums) else { continue }
                if state[ri][key] == nil {
                    guard state[ri].count < AlertEvaluator.groupsPerRuleMax else {
                        if groupsDropped == 0 {
                            onWarning?("alerts: rule '\(rule.name)' holds state for \(AlertEvaluator.groupsPerRuleMax) groups; "
                                       + "further groups are not evaluated — narrow it with by, where or min_volume")
                        }
                        groupsDropped += 1
                        continue
                    }
                    state[ri][key] = GroupState()
                }
                seen.insert(key)
                var s = state[ri][key]!
                s.history.removeAll { $0.start < start - AlertRule.trailingMs || $0.start >= start }
                var limit: Double
                var baseline: Double?
                var crossed: Bool
                switch rule.condition {
                case .above(let l): limit = l; crossed = value > l
                case .below(let l): limit = l; crossed = value < l
                case .aboveTrailingHour(let f), .belowTrailingHour(let f):
                    let weight = s.history.reduce(0.0) { $0 + Double($1.volume) }
                    let warm = (s.history.first?.start ?? .max) <= start - rule.warmupMs && weight > 0
                    baseline = warm ? s.history.reduce(0.0) { $0 + $1.value * Double($1.volume) } / weight : nil
                    limit = f * (baseline ?? 0)
                    if case .aboveTrailingHour = rule.condition { crossed = warm && value > limit } else { crossed = warm && value < limit }
                    s.history.append(Point(start: start, value: value, volume: volume))
                }
                if crossed {
                    s.lastTrue = start
                    if !s.active {
                        s.active = true
                        out.append(firing(rule, start, end, zip(rule.by, g.values).map { ($0, $1) }, value, limit, baseline, volume))
                    }
                } else if s.active && start - s.lastTrue >= rule.resolveAfterMs {
                    s.active = false
                }
                // A threshold rule keeps state only for its active groups.
                state[ri][key] = !s.active && s.history.isEmpty ? nil : s
            }
            // Groups without traffic this window: their alerts resolve in time; idle state is dropped.
            for (key, var s) in state[ri] where !seen.contains(key) {
                if s.active && start - s.lastTrue >= rule.resolveAfterMs { s.active = false }
                s.history.removeAll { $0.start < start - AlertRule.trailingMs }
                if !s.active && s.history.isEmpty { state[ri][key] = nil } else { state[ri][key] = s }
            }
        }
        return out
    }

    /// Replays the windows of the sink that start in the span the rules can
    /// still remember before `before` (the trailing hour plus the longest
    /// `resolve_after`), oldest first, without emitting. It reads every file
    /// of those hours — base files, late deltas, compacted hours — so a
    /// window's numbers are the sink's (late data included).
    public func warmStart(sink: String, before: Int64) { warmStart(sink: FileSink(root: sink), before: before) }

    /// The same on any sink: a local directory or s3:// (its files read
    /// through `SinkStorage`, so a restart on object storage rebuilds too).
    public func warmStart(sink: FileSink, before: Int64) {
        warmed = true
        let from = before - AlertRule.trailingMs - (rules.map(\.resolveAfterMs).max() ?? 0)
        var windows: [Int64: (end: Int64, tables: [String: Rows])] = [:]
        let storage = sink.storage
        for table in Set(rules.map(\.table)) {
            for rel in Self.files(storage, table: table, fromMs: from, toMs: before) {
                let path = storage.display(rel)
                do {
                    guard let bytes = try storage.read(rel) else { continue }  // compacted away since the listing
                    for (start, end, rows) in try Self.read(path, table: table, bytes: bytes) where start >= from && start < before {
                        windows[start, default: (end, [:])].tables[table, default: []] += rows
                    }
                } catch {
                    onWarning?("alerts: skipped \(path) while rebuilding the rules' state: \(error)")
                }
            }
        }
        for start in windows.keys.sorted() {
            _ = evaluate(start: start, end: windows[start]!.end, tables: windows[start]!.tables)
        }
    }

    /// The files of `table` in the `dt=/hour=` directories overlapping [from, to).
    static func files(sink: String, table: String, fromMs: Int64, toMs: Int64) -> [String] {
        files(LocalStorage(root: sink), table: table, fromMs: fromMs, toMs: toMs).map { "\(sink)/\($0)" }
    }

    /// The same, relative to the sink, on any storage (unlistable: none).
    static func files(_ storage: any SinkStorage, table: String, fromMs: Int64, toMs: Int64) -> [String] {
        func list(_ rel: String) -> [String] { (try? storage.list(rel)) ?? [] }
        var out: [String] = []
        for day in list(table) where day.hasPrefix("dt=") {
            guard let dayMs = UTCTime.parse(String(day.dropFirst(3))), dayMs < toMs, dayMs + 86_400_000 > fromMs else { continue }
            for hour in list("\(table)/\(day)") where hour.hasPrefix("hour=") {
                guard let h = Int64(hour.dropFirst(5)), dayMs + h * 3_600_000 < toMs, dayMs + (h + 1) * 3_600_000 > fromMs else { continue }
                out += list("\(table)/\(day)/\(hour)").filter { $0.hasSuffix(".parquet") }.map { "\(table)/\(day)/\(hour)/\($0)" }
            }
        }
        return out.sorted()
    }

    /// One file's rows as the rules read them, per window (start, end, rows).
    static func read(_ path: String, table: String, bytes: [UInt8]? = nil) throws -> [(Int64, Int64, Rows)] {
        var byStart: [Int64: (end: Int64, rows: Rows)] = [:]
        if let t = MetricTable.allCases.first(where: { $0.name == table }) {
            for r in try TableReader.readMetricFile(path, table: t, bytes: bytes).1 {
                byStart[r.start, default: (r.end, [])].rows.append((r.dims, AlertSums(r.m)))
            }
        } else if table == TableSchemas.cdnEdgeTable {
            for r in try TableReader.readCdnEdgeFile(path, bytes: bytes).1 {
                byStart[r.start, default: (r.end, [])].rows.append((r.key.values, AlertSums(r.m)))
            }
        } else if table == "sessions" {
            let f = try TableReader.readRowFile(path, table: table, bytes: bytes)
            func col(_ name: String) -> ParquetColumnData? { f.schema.firstIndex { $0.name == name }.map { f.columns[$0] } }
            func strings(_ name: String) -> [String] { col(name)?.stringValues?.map { $0 ?? "" } ?? [] }
            func bools(_ name: String) -> [Bool] { if case .boolean(let v)? = col(name) { return v.map { $0 ?? false } }; return [] }
            func ints(_ name: String) -> [Int64?] { if case .int64(let v)? = col(name) { return v }; return [] }
            let dims = AlertSums.sessionDimensions.map(strings)
            let (view, played, vsf, ebvs, vpf) = (bools("had_view_start"), bools("played"), bools("vsf"), bools("ebvs"), bools("vpf"))
            let (playing, rebuffer, startup) = (ints("playing_ms"), ints("rebuffer_ms"), ints("startup_ms"))
            let (starts, ends) = (ints("window_start"), ints("window_end"))
            for i in 0..<f.info.rows {
                var s = AlertSums()
                s.views = view[i] ? 1 : 0; s.plays = played[i] ? 1 : 0
                s.vsf = vsf[i] ? 1 : 0; s.ebvs = ebvs[i] ? 1 : 0; s.vpf = vpf[i] ? 1 : 0
                s.playingMs = playing[i] ?? 0; s.rebufferMs = rebuffer[i] ?? 0
                if let ms = startup[i] { s.startup.add(Double(ms)) }
                let start = (starts[i] ?? 0) / 1000  // µs → ms
                byStart[start, default: ((ends[i] ?? 0) / 1000, [])].rows.append((dims.map { $0[i] }, s))
            }
        }
        return byStart.keys.sorted().map { ($0, byStart[$0]!.end, byStart[$0]!.rows) }
    }

    func firing(_ rule: AlertRule, _ start: Int64, _ end: Int64, _ dims: [(String, String)], _ value: Double,
                _ limit: Double, _ baseline: Double?, _ volume: Int64) -> AlertFiring {
        let f = Self.format
        // Dimension values come from beacons: control characters would break the log line.
        let group = dims.isEmpty ? rule.table : dims.map { "\($0.0)=\(Self.printable($0.1))" }.joined(separator: " ")
        let compared: String
        switch rule.condition {
        case .above(let l): compared = "above \(f(l))"
        case .below(let l): compared = "below \(f(l))"
        case .aboveTrailingHour(let x): compared = "above \(f(x)) × the trailing hour's \(f(baseline ?? 0)) = \(f(limit))"
        case .belowTrailingHour(let x): compared = "below \(f(x)) × the trailing hour's \(f(baseline ?? 0)) = \(f(limit))"
        }
        let message = "\(rule.name): \(rule.metric.rawValue) \(f(value)) \(compared) for \(group) "
            + "(\(rule.metric.volumeName) \(volume)) in the window from \(CivilTime(epochMs: start).iso)"
        return AlertFiring(windowStart: start, windowEnd: end, rule: rule.name, table: rule.table, metric: rule.metric.rawValue,
                           kind: rule.condition.isRelative ? "relative" : "threshold", dimensions: dims, value: value,
                           limit: limit, baseline: baseline, volume: volume, message: message, webhook: rule.webhook)
    }

    /// `s` with control characters (newlines, escapes) shown as `?`.
    static func printable(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return s }
        return String(String.UnicodeScalarView(s.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : $0 }))
    }

    /// A number for people: at most 4 significant digits, no exponent for usual sizes.
    public static func format(_ d: Double) -> String {
        if d == d.rounded() && abs(d) < 1e15 { return String(Int64(d)) }
        return String(format: "%.4g", d)
    }
}

extension WindowFileWriter {
    /// Encodes the firings of one epoch: one `alerts` file per window, in
    /// the same commit as the window's other files (docs/semantics.md §7).
    func planAlerts(_ firings: [AlertFiring], sourceRange: String, tag: String) throws -> [PlannedFile] {
        let byStart = Dictionary(grouping: firings, by: \.windowStart)
        return try byStart.keys.sorted().map { start in
            let rows = byStart[start]!
            let meta = metadata(table: TableSchemas.alertsTable, start: start, end: rows[0].windowEnd, kind: "base",
                                sourceRange: sourceRange)
            return try file(TableSchemas.alertsTable, start, "base", tag, TableSchemas.alertColumns(), rows, meta)
        }
    }
}
