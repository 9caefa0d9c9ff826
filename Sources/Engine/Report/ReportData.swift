import Parquet
import QoSCore
import Sketches

/// `qos report` and the daemon's live page: what the sink's tables say over a
/// time range, folded into the numbers one page shows (README, "qos report").
///
/// Every file of a window counts — the base file, its late deltas and the
/// files other instances wrote — and they merge as `qos reaggregate` merges
/// them: counters summed, `viewers_hll` unioned, DDSketches merged, rates and
/// percentiles recomputed from the merged state (docs/semantics.md §3–4). The
/// files are read with `TableReader` (the same checks as `qos reaggregate`)
/// and folded one at a time, so memory holds the merged groups, not the files.
public struct ReportOptions: Sendable {
    public var sink = "output"
    /// The sink as the page names it, when `sink` is a local copy of it (an s3:// sink).
    public var sinkName: String?
    /// Windows whose start lies in [fromMs, toMs).
    public var fromMs: Int64 = .min
    public var toMs: Int64 = .max
    /// A series with more windows than this is drawn at a coarser step.
    public var maxPoints = 600
    /// Rows per breakdown table (the top groups by volume).
    public var maxRows = 100
    public init() {}
}

typealias ReportMetrics = GroupMetrics<DataSketchesKit>

/// One file of the sink, read for the report: small enough to keep for the
/// live page's cache (`LiveReport`), mergeable into a `ReportAccumulator`.
enum ReportFile {
    case metric(MetricTable, start: Int64, end: Int64, rows: [MetricRow<DataSketchesKit>])
    /// `sessions`: closed sessions per player name × version.
    case sessions(start: Int64, groups: [[String]: PlayerAgg])
    /// `rejects`: rows per reason.
    case rejects(start: Int64, byReason: [String: Int64])
    /// `cdn_edge` (CDN access logs), per cdn × pop.
    case edge(start: Int64, end: Int64, groups: [[String]: EdgeAgg])

    var start: Int64 {
        switch self {
        case .metric(_, let s, _, _), .sessions(let s, _), .rejects(let s, _), .edge(let s, _, _): return s
        }
    }
}

/// Closed sessions of one player name × version.
struct PlayerAgg {
    var sessions: Int64 = 0
    /// Closed sessions with a `view_start` (not `missing_start`): the views
    /// VSF and EBVS are rates of (docs/semantics.md §7, `sessions`).
    var views: Int64 = 0
    var played: Int64 = 0
    var vsf: Int64 = 0
    var ebvs: Int64 = 0
    var vpf: Int64 = 0
    var playingMs: Int64 = 0
    var rebufferMs: Int64 = 0
    var startup = DurationSketch()

    mutating func merge(_ o: PlayerAgg) {
        sessions +|= o.sessions; views +|= o.views; played +|= o.played; vsf +|= o.vsf; ebvs +|= o.ebvs; vpf +|= o.vpf
        playingMs +|= o.playingMs; rebufferMs +|= o.rebufferMs
        startup.merge(o.startup)
    }
}

/// CDN access-log numbers of one cdn × pop.
struct EdgeAgg {
    static let additive = ["requests", "http_errors", "http_4xx", "http_5xx", "slow_responses", "bytes_out",
                           "cache_hits", "cache_misses"]
    var sums = [Int64](repeating: 0, count: EdgeAgg.additive.count)
    var serve = DurationSketch()
    var clients = ViewerHLL()

    func sum(_ name: String) -> Int64 { EdgeAgg.additive.firstIndex(of: name).map { sums[$0] } ?? 0 }

    mutating func merge(_ o: EdgeAgg) {
        for i in sums.indices { sums[i] +|= o.sums[i] }
        serve.merge(o.serve)
        clients.merge(o.clients)
    }
}

enum ReportReader {
    /// The tables a report reads, in reading order (`overall` first: it fixes the newest window).
    static let tables = MetricTable.allCases.map(\.name) + ["sessions", "rejects", "cdn_edge"]

    /// Files of `table` whose `dt=/hour=` directory overlaps [from, to) (a
    /// missing table directory has none; one that cannot be listed is an error).
    static func files(sink: String, table: String, fromMs: Int64, toMs: Int64) throws -> [String] {
        let dir = "\(sink)/\(table)"
        guard Inspector.isDirectory(dir) else { return [] }
        return try Inspector.tableFiles(under: dir).filter { path in
            guard let h = hourStart(path) else { return true }
            return h < toMs && h + 3_600_000 > fromMs
        }
    }

    /// The start of the `dt=…/hour=…` directory holding `path`.
    static func hourStart(_ path: String) -> Int64? {
        let parts = path.split(separator: "/")
        guard parts.count >= 3, parts[parts.count - 3].hasPrefix("dt="), parts[parts.count - 2].hasPrefix("hour="),
              let day = UTCTime.parse(String(parts[parts.count - 3].dropFirst(3))),
              let h = Int64(parts[parts.count - 2].dropFirst(5)) else { return nil }
        return day + h * 3_600_000
    }

    /// Reads one file of `table`: one `ReportFile` per window it holds (a
    /// late-delta or compacted file of an hour holds several, README "Late
    /// data and compaction"). `bytes`: the file's contents, already fetched
    /// (an `s3://` object; `path` then only names it in errors).
    static func read(_ path: String, table: String, bytes: [UInt8]? = nil) throws -> [ReportFile] {
        if let mt = MetricTable.allCases.first(where: { $0.name == table }) {
            let (info, rows) = try TableReader.readMetricFile(path, table: mt, bytes: bytes)
            return Dictionary(grouping: rows, by: \.start).sorted { $0.key < $1.key }.map { start, rows in
                .metric(mt, start: start, end: start + info.windowMs, rows: rows)
            }
        }
        let r = try TableReader.open(path, table: table, bytes: bytes)
        let starts = try TableReader.int64s(r, "window_start", path).map { $0 / 1000 }
        let windows = Dictionary(grouping: starts.indices, by: { starts[$0] }).sorted { $0.key < $1.key }
        switch table {
        case "rejects":
            let reasons = try strings(r, "reason", path)
            return windows.map { start, rows in
                var by: [String: Int64] = [:]
                for i in rows { by[reasons[i], default: 0] += 1 }
                return .rejects(start: start, byReason: by)
            }
        case "sessions":
            let names = try strings(r, "player_name", path), versions = try strings(r, "player_version", path)
            let played = try bools(r, "played", path), vsf = try bools(r, "vsf", path)
            let ebvs = try bools(r, "ebvs", path), vpf = try bools(r, "vpf", path)
            let missingStart = try bools(r, "missing_start", path)
            let playing = try TableReader.int64s(r, "playing_ms", path), reb = try TableReader.int64s(r, "rebuffer_ms", path)
            guard case .int64(let startup) = try TableReader.column(r, "startup_ms", path) else {
                throw UserError("'\(path)': column 'startup_ms' is not INT64")
            }
            return windows.map { start, rows in
                var groups: [[String]: PlayerAgg] = [:]
                for i in rows {
                    var g = groups[[names[i], versions[i]], default: PlayerAgg()]
                    g.sessions += 1
                    if !missingStart[i] { g.views += 1 }
                    if played[i] { g.played += 1 }
                    if vsf[i] { g.vsf += 1 }
                    if ebvs[i] { g.ebvs += 1 }
                    if vpf[i] { g.vpf += 1 }
                    g.playingMs +|= playing[i]
                    g.rebufferMs +|= reb[i]
                    if let s = startup[i] { g.startup.add(Double(s)) }
                    groups[[names[i], versions[i]]] = g
                }
                return .sessions(start: start, groups: groups)
            }
        default:  // cdn_edge: read by column name, so a later column set still reads
            let n = r.numRows
            let ends = try TableReader.int64s(r, "window_end", path).map { $0 / 1000 }
            let cdn = try strings(r, "cdn", path), pop = try strings(r, "pop", path)
            var cols: [[Int64]] = []
            for name in EdgeAgg.additive {
                cols.append(r.columnIndex(named: name) == nil ? [Int64](repeating: 0, count: n) : try TableReader.int64s(r, name, path))
            }
            let serve = r.columnIndex(named: "serve_ms_sketch") == nil ? nil : try TableReader.blobs(r, "serve_ms_sketch", path)
            let clients = r.columnIndex(named: "clients_hll") == nil ? nil : try TableReader.blobs(r, "clients_hll", path)
            return try windows.map { start, rows in
                var groups: [[String]: EdgeAgg] = [:]
                for i in rows {
                    var g = EdgeAgg()
                    for c in cols.indices {
                        try TableReader.nonNegative(cols[c][i], EdgeAgg.additive[c], i, path)
                        g.sums[c] = cols[c][i]
                    }
                    if let b = serve?[i] { g.serve = DurationSketch(try TableReader.ddsketch(b, "serve_ms_sketch", i, path)) }
                    if let b = clients?[i] { g.clients = ViewerHLL(try TableReader.hll(b, "clients_hll", i, path)) }
                    groups[[cdn[i], pop[i]], default: EdgeAgg()].merge(g)
                }
                return .edge(start: start, end: rows.first.map { ends[$0] } ?? start, groups: groups)
            }
        }
    }

    static func strings(_ r: ParquetFileReader, _ name: String, _ path: String) throws -> [String] {
        guard let v = try TableReader.column(r, name, path).stringValues else {
            throw UserError("'\(path)': column '\(name)' is not a string column")
        }
        return v.map { $0 ?? "" }
    }

    static func bools(_ r: ParquetFileReader, _ name: String, _ path: String) throws -> [Bool] {
        guard case .boolean(let v) = try TableReader.column(r, name, path) else {
            throw UserError("'\(path)': column '\(name)' is not BOOLEAN")
        }
        return v.map { $0 ?? false }
    }
}

/// Folds report files into the page's numbers.
struct ReportAccumulator {
    var options: ReportOptions
    /// Per window start: its end and its merged `overall` groups.
    var overall: [Int64: (end: Int64, merger: GroupMerger)] = [:]
    /// Window lengths seen (ms) → files.
    var grains: [Int64: Int] = [:]
    /// Breakdowns over the whole range, by table key.
    var breakdowns: [String: GroupMerger] = [:]
    /// Video views per window, for the windows of the last two hours.
    var recentVideoViews: [Int64: [String: Int64]] = [:]
    var newestEnd: Int64 = .min
    var players: [[String]: PlayerAgg] = [:]
    var rejects: [String: Int64] = [:]
    var edge: [[String]: EdgeAgg] = [:]
    /// Per `cdn_edge` window start: its end (a sink of CDN logs alone has no `overall`).
    var edgeWindows: [Int64: Int64] = [:]
    var hasEdge: Bool { !edgeWindows.isEmpty }
    var edgeGrains: [Int64: Int] = [:]
    /// Files with a window in range (a late-delta or compacted file of several windows counts once).
    var files = 0

    /// Breakdown key → (table, dimensions kept).
    static let breakdownSpecs: [(key: String, table: MetricTable, dims: [String])] = [
        ("cdn", .cdn, ["cdn", "pop"]), ("device", .device, ["device_type"]),
        ("player", .device, ["player_name"]), ("geo", .geo, ["country"]), ("video", .video, ["video_id"])]

    init(_ options: ReportOptions) { self.options = options }

    func inRange(_ start: Int64) -> Bool { start >= options.fromMs && start < options.toMs }

    mutating func add(_ f: ReportFile) {
        guard inRange(f.start) else { return }
        switch f {
        case .metric(let t, let s, let e, let rows):
            grains[e - s, default: 0] += 1
            newestEnd = max(newestEnd, e)
            if t == .overall {
                var w = overall[s] ?? (e, GroupMerger(dimCount: 0, keep: []))
                for r in rows { w.merger.add(r, generation: 0) }
                overall[s] = w
            }
            for spec in ReportAccumulator.breakdownSpecs where spec.table == t {
                let keep = spec.dims.compactMap { t.dimensions.firstIndex(of: $0) }
                var m = breakdowns[spec.key] ?? GroupMerger(dimCount: t.dimensions.count, keep: keep)
                for r in rows { m.add(r, generation: Int(s)) }
                breakdowns[spec.key] = m
            }
            if t == .video {
                let cut = newestEnd - 2 * 3_600_000
                if s >= cut {
                    var v = recentVideoViews[s] ?? [:]
                    for r in rows where r.m.views > 0 { v[r.dims[0], default: 0] += r.m.views }
                    recentVideoViews[s] = v
                }
                recentVideoViews = recentVideoViews.filter { $0.key >= cut }
            }
        case .sessions(_, let groups):
            for (k, g) in groups { players[k, default: PlayerAgg()].merge(g) }
        case .rejects(_, let by):
            for (k, n) in by { rejects[k, default: 0] += n }
        case .edge(let s, let e, let groups):
            edgeWindows[s] = max(edgeWindows[s] ?? e, e)
            edgeGrains[e - s, default: 0] += 1
            newestEnd = max(newestEnd, e)
            for (k, g) in groups { edge[k, default: EdgeAgg()].merge(g) }
        }
    }

    /// The window length most files have.
    var grainMs: Int64 {
        (grains.isEmpty ? edgeGrains : grains).max { ($0.value, -$0.key) < ($1.value, -$1.key) }?.key ?? 120_000
    }
}

/// Reads the sink for `qos report`.
public enum ReportBuilder {
    /// Every file of every table in range, folded.
    static func accumulate(_ options: ReportOptions, progress: ((String) -> Void)? = nil) throws -> ReportAccumulator {
        guard Inspector.isDirectory(options.sink) else {
            throw UserError("no sink directory '\(options.sink)' — check --sink")
        }
        guard options.fromMs < options.toMs else { throw UserError("--from must be before --to") }
        var acc = ReportAccumulator(options)
        for t in ReportReader.tables {
            let paths = try ReportReader.files(sink: options.sink, table: t, fromMs: options.fromMs, toMs: options.toMs)
            for (i, p) in paths.enumerated() {
                progress?("\(t): \(i + 1)/\(paths.count) files")
                let pieces = try ReportReader.read(p, table: t).filter { acc.inRange($0.start) }
                if !pieces.isEmpty { acc.files += 1 }
                for f in pieces { acc.add(f) }
            }
        }
        guard !acc.overall.isEmpty || acc.hasEdge else {
            throw UserError("no windows of the overall or cdn_edge table in '\(options.sink)'\(options.fromMs == .min && options.toMs == .max ? "" : " between --from and --to") — check --sink (a qos replay / qos run output) and the range")
        }
        return acc
    }

    /// The page's model for the sink and range.
    public static func model(_ options: ReportOptions, progress: ((String) -> Void)? = nil) throws -> ReportModel {
        ReportModel(try accumulate(options, progress: progress))
    }
}

extension ReportBuilder {
    /// Writes the report page of `options` to `out` (atomically: a
    /// temporary name, then a rename) and says what it wrote.
    public static func write(_ options: ReportOptions, to out: String, progress: ((String) -> Void)? = nil) throws -> String {
        let started = monotonicSeconds()
        let m = try model(options, progress: progress)
        let html = Array(ReportHTML.page(m).utf8)
        let slash = out.lastIndex(of: "/")
        let dir = slash.map { String(out[..<$0]) } ?? "."
        let name = slash.map { String(out[out.index(after: $0)...]) } ?? out
        guard !name.isEmpty else { throw UserError("--out '\(out)' names a directory — give a file name such as report.html") }
        try FileSink(root: dir).publish(html, dir: dir.isEmpty ? "/" : dir, name: name)
        let kb = (html.count + 1023) / 1024
        let secs = Double(Int((monotonicSeconds() - started) * 100)) / 100
        return "wrote \(out) (\(kb) KiB): \(m.windows) windows of \(ReportHTML.duration(m.grainMs)) from \(m.files) files, "
            + "\(CivilTime(epochMs: m.firstStart).iso) → \(CivilTime(epochMs: m.lastEnd).iso), in \(secs) s"
    }
}
