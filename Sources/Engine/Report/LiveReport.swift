#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ObjectStore
import QoSCore

/// The daemon's live page (README, "The daemon", Operations): the report of
/// `qos report` over the last `hours` of the sink, served at `/` on the
/// operations port, with the daemon's counters, plus two JSON endpoints the
/// page polls: `/api/status` (counters) and `/api/windows?table=…&from=…`
/// (the flushed windows of a table, merged per window and group).
///
/// Data source: the sink's published Parquet files, not the engine's
/// in-memory windows. The page then shows what every reader of the sink sees
/// — each window with its late deltas and the shares other instances wrote,
/// exactly once (files appear only after their checkpoint) — and the same
/// numbers as `qos report` and DuckDB. Each file is read once and kept
/// (parsed, merged per file) while it lies in the shown range; after every
/// checkpoint a background thread lists the sink, reads the new files, drops
/// those that left the range or were replaced (compaction), and rebuilds the
/// page's model. The poll loop never waits for it. On an `s3://` sink the
/// listing is a LIST per table and a file is known by its key and ETag: a
/// refresh GETs only the objects it has not read yet
/// (docs/object-storage.md, "The live page").
public final class LiveReport: @unchecked Sendable {
    public let sink: String
    /// Hours of windows shown, back from the newest hour directory.
    public let hours: Int64
    /// The environment an `s3://` sink is reached with.
    let environment: [String: String]
    private var store: S3Storage?
    private let lock = NSLock()
    private var cache: [String: (table: String, files: [ReportFile])] = [:]
    private var model: ReportModel?
    private var status: RunStatus?
    private var lastError: String?
    private var refreshing = false
    private var again = false
    private let queue = DispatchQueue(label: "qos.live-report")

    public init(sink: String, hours: Int64 = 3, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.sink = sink
        self.hours = hours
        self.environment = environment
    }

    /// After every checkpoint: the counters now, the page from the sink in the background.
    public func update(_ s: RunStatus) {
        lock.withLock { status = s }
        let start: Bool = lock.withLock {
            if refreshing { again = true; return false }
            refreshing = true
            return true
        }
        guard start else { return }
        queue.async { [self] in
            while true {
                refresh()
                let more: Bool = lock.withLock {
                    if again { again = false; return true }
                    refreshing = false
                    return false
                }
                if !more { return }
            }
        }
    }

    /// One file of the sink: `id` names this version of it (the path; on
    /// `s3://` the key and ETag), `read` gives nil when it is gone.
    struct Entry {
        var id: String
        var hour: Int64?
        var read: () throws -> [ReportFile]?
    }

    /// The files of `table` (every hour).
    func entries(_ table: String) throws -> [Entry] {
        guard sink.hasPrefix("s3://") else {
            return try ReportReader.files(sink: sink, table: table, fromMs: .min, toMs: .max).map { p in
                Entry(id: p, hour: ReportReader.hourStart(p)) {
                    do { return try ReportReader.read(p, table: table) } catch {
                        // A file compacted away between the listing and the read comes back next time.
                        if access(p, F_OK) != 0 { return nil }
                        throw error
                    }
                }
            }
        }
        let s3: S3Storage
        if let store { s3 = store } else {
            s3 = try S3Storage(location: sink, environment: environment)
            store = s3
        }
        let prefix = s3.dirPrefix(table)
        return try s3.client.list(prefix: prefix).compactMap { o in
            let rel = o.key.dropFirst(prefix.count)
            guard rel.hasSuffix(".parquet"), !rel.split(separator: "/").contains(where: { $0.hasPrefix("_") || $0.hasPrefix(".") })
            else { return nil }
            let address = "s3://\(s3.client.config.bucket)/\(o.key)"
            return Entry(id: "\(address)#\(o.etag.isEmpty ? String(o.size) : o.etag)", hour: ReportReader.hourStart(o.key)) {
                guard let bytes = try s3.client.get(o.key) else { return nil }  // deleted since the listing
                return try ReportReader.read(address, table: table, bytes: bytes)
            }
        }
    }

    /// Reads the new files of the shown range and rebuilds the model.
    public func refresh() {
        var listed: [String: [Entry]] = [:]
        do {
            for t in ReportReader.tables { listed[t] = try entries(t) }
        } catch {
            lock.withLock { lastError = "\(error)" }
            return
        }
        guard let newestHour = listed["overall"]?.compactMap(\.hour).max() else { return }
        let from = newestHour - (hours - 1) * 3_600_000
        var current = lock.withLock { cache }
        var seen = Set<String>()
        var failure: String?
        for t in ReportReader.tables {
            for e in listed[t] ?? [] where e.hour.map({ $0 + 3_600_000 > from }) ?? true {
                seen.insert(e.id)
                guard current[e.id] == nil else { continue }
                do {
                    if let files = try e.read() { current[e.id] = (t, files) }
                } catch {
                    failure = "\(error)"
                }
            }
        }
        current = current.filter { seen.contains($0.key) }
        var o = ReportOptions()
        o.sink = sink
        o.fromMs = from
        let m = LiveReport.model(current, o)
        lock.withLock {
            cache = current
            model = m
            lastError = failure
        }
    }

    static func model(_ files: [String: (table: String, files: [ReportFile])], _ o: ReportOptions) -> ReportModel {
        var acc = ReportAccumulator(o)
        for t in ReportReader.tables {
            for (_, f) in files.filter({ $0.value.table == t }).sorted(by: { $0.key < $1.key }) { f.files.forEach { acc.add($0) } }
        }
        return ReportModel(acc)
    }

    // MARK: - Routes

    /// The answer for a request path, or nil when it is not one of the page's.
    public func route(_ uri: String) -> (status: Int, type: String, body: String)? {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(parts[0])
        let query = LiveReport.query(parts.count > 1 ? String(parts[1]) : "")
        switch path {
        case "/", "/index.html":
            let (m, s, e) = lock.withLock { (model, status, lastError) }
            let live = LiveReport.liveCounters(s)
            guard let m else {
                let empty = ReportModel(ReportAccumulator({ var o = ReportOptions(); o.sink = sink; return o }()))
                let note = "no window written to \(sink) yet — the page fills in after the first flush"
                return (200, "text/html; charset=utf-8", query["fragment"] == "main"
                        ? ReportHTML.main(empty, live: live, error: note) : ReportHTML.page(empty, live: live, error: note))
            }
            let body = query["fragment"] == "main" ? ReportHTML.main(m, live: live, error: e) : ReportHTML.page(m, live: live, error: e)
            return (200, "text/html; charset=utf-8", body)
        case "/api/status":
            let s = lock.withLock { status }
            var out = "{\"counters\":{"
            out += LiveReport.liveCounters(s).counters.map { "\"\($0.id)\":\(ReportHTML.num($0.value))" }.joined(separator: ",")
            out += "},\"watermark_ms\":\(s?.watermarkMs.map(String.init) ?? "null"),\"epoch\":\(s?.epoch ?? 0)}\n"
            return (200, "application/json", out)
        case "/api/windows":
            let table = query["table"] ?? "overall"
            guard let mt = MetricTable.allCases.first(where: { $0.name == table }) else {
                return (400, "application/json",
                        "{\"error\":\(LiveReport.jsonString("unknown table '\(table)' — one of overall, video, geo, device, cdn"))}\n")
            }
            var from = Int64.min
            if let f = query["from"] {
                guard let t = UTCTime.parse(f) else {
                    return (400, "application/json", "{\"error\":\"from: not a time — use epoch ms or 2026-01-01T10:00:00Z\"}\n")
                }
                from = t
            }
            let files = lock.withLock { cache }
            return (200, "application/json", LiveReport.windowsJSON(mt, files.values.flatMap(\.files), from: from))
        default:
            return nil
        }
    }

    /// The counters the terminal view shows.
    static func liveCounters(_ s: RunStatus?) -> ReportHTML.Live {
        guard let s else { return ReportHTML.Live(counters: [], note: "waiting for the first checkpoint") }
        let c = s.counters
        return ReportHTML.Live(counters: [
            ("consumed", "beacons consumed", Double(c.messages)), ("accepted", "accepted", Double(c.accepted)),
            ("rejected", "rejected", Double(c.rejectedTotal)), ("late", "late", Double(c.lateEvents)),
            ("duplicates", "duplicates", Double(c.duplicates)), ("open_sessions", "open sessions", Double(s.openSessions)),
            ("windows_written", "windows written", Double(s.windowsWritten)), ("files_written", "files written", Double(s.filesWritten)),
            ("epoch", "checkpoint epoch", Double(s.epoch)), ("lag", "consumer lag", Double(s.lag.values.reduce(0, +))),
        ], note: "checkpoint \(s.epoch)" + (s.watermarkMs.map { ", watermark \(CivilTime(epochMs: $0).iso)" } ?? ""))
    }

    /// `s` as a JSON string literal (RFC 8259 §7): quotes, backslashes and
    /// control characters escaped — not HTML escaping, which is no JSON.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7f || u.value == 0x2028 || u.value == 0x2029 {
                    out += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    /// `a=1&b=2`, percent-decoded.
    static func query(_ q: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in q.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            out[decode(String(kv[0]))] = kv.count > 1 ? decode(String(kv[1])) : ""
        }
        return out
    }

    static func decode(_ s: String) -> String {
        var bytes: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "%"), it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(v)
                it = it.dropFirst(2)
            } else {
                bytes.append(b == UInt8(ascii: "+") ? 0x20 : b)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static let windowRowsMax = 5000

    /// The windows of `table` starting at or after `from`, each window's
    /// files merged per group (at most `windowRowsMax` rows, oldest first).
    static func windowsJSON(_ table: MetricTable, _ files: [ReportFile], from: Int64) -> String {
        var groups: [Int64: (end: Int64, merger: GroupMerger)] = [:]
        let all = Array(0..<table.dimensions.count)
        for f in files {
            guard case .metric(let t, let s, let e, let rows) = f, t == table, s >= from else { continue }
            var g = groups[s] ?? (e, GroupMerger(dimCount: all.count, keep: all))
            for r in rows { g.merger.add(r, generation: 0) }
            groups[s] = g
        }
        var rows: [String] = []
        var truncated = false
        outer: for s in groups.keys.sorted() {
            let g = groups[s]!
            for r in g.merger.rows(start: s, end: g.end) {
                if rows.count == windowRowsMax { truncated = true; break outer }
                var fields = ["\"window_start\":\(json(CivilTime(epochMs: s).iso))", "\"window_start_ms\":\(s)", "\"window_end_ms\":\(g.end)"]
                for (d, v) in zip(table.dimensions, r.dims) { fields.append("\(json(d)):\(json(v))") }
                let m = r.m
                let v = ReportModel.seriesValues(m)
                let derived = ["views", "unique_viewers", "plays", "startup_p50", "startup_p95", "rebuffer_ratio",
                               "vsf_rate", "ebvs_rate", "vpf_rate", "concurrent_plays"]
                for k in derived { fields.append("\(json(k)):\(v[k].map(ReportHTML.num) ?? "null")") }
                var additive: [(String, Int64)] = [("vsf", m.vsf), ("ebvs", m.ebvs), ("vpf", m.vpf), ("playing_ms", m.playingMs),
                                                   ("rebuffer_ms", m.rebufferMs)]
                // Segment counts exist only in the tables that have their columns.
                if table.hasSegmentMetrics {
                    additive += [("requests", m.segment.requests), ("failed_requests", m.segment.failedRequests)]
                }
                for (k, x) in additive { fields.append("\(json(k)):\(x)") }
                rows.append("{" + fields.joined(separator: ",") + "}")
            }
        }
        return "{\"table\":\(json(table.name)),\"from_ms\":\(from == .min ? "null" : String(from)),\"truncated\":\(truncated),\"rows\":[\n"
            + rows.joined(separator: ",\n") + "]}\n"
    }

    static func json(_ s: String) -> String {
        var d: [UInt8] = []
        BeaconEncoder.quote(s, &d)
        return String(decoding: d, as: UTF8.self)
    }
}
