import Parquet
import QoSCore

/// One output column: its Parquet field, its documentation, and how to
/// read its values off a batch of rows. `schemas/tables/*.json` is
/// generated from these lists (`qos schemas`), and a test keeps them equal.
///
/// A column's accessor reads its row through a pointer (`$0.pointee.…`):
/// handed a row by value, Swift copies it for the call, retaining and
/// releasing every array and sketch the row holds, once per cell (a
/// metric row holds a dozen; bench/results/speed.md section 47).
public struct OutputColumn<Row> {
    /// A row lent to an accessor in place, valid during the call.
    public typealias Lent = UnsafePointer<Row>

    public let field: ParquetField
    public let doc: String
    let build: (UnsafeBufferPointer<Row>) -> ParquetColumnData
    /// The row's estimated PLAIN size in this column (`parquetEstimatedSize`),
    /// or nil when it is the same for every row: `fixedSize`.
    let size: ((Lent) -> Int)?
    let fixedSize: Int

    init(field: ParquetField, doc: String, size: ((Lent) -> Int)? = nil,
         build: @escaping (UnsafeBufferPointer<Row>) -> ParquetColumnData) {
        self.field = field
        self.doc = doc
        self.build = build
        self.size = size
        self.fixedSize = size == nil ? parquetEstimatedSize(field.physical, byteCount: 0) : 0
    }

    /// `f` of each row, the rows lent in place (never copied).
    @inline(__always)
    static func cells<T>(_ rows: UnsafeBufferPointer<Row>, _ f: (Lent) -> T) -> [T] {
        guard let base = rows.baseAddress else { return [] }
        return (0..<rows.count).map { f(base + $0) }
    }

    /// The estimated size of a row over `columns`: the fixed-size columns'
    /// sum once, then only the columns whose size depends on the row.
    static func rowSize(_ columns: [OutputColumn]) -> (Lent) -> Int {
        let fixed = columns.reduce(0) { $0 + $1.fixedSize }
        let variable = columns.compactMap(\.size)
        return { row in variable.reduce(fixed) { $0 + $1(row) } }
    }

    /// `rows` as a Parquet file over `columns`, one column chunk's values at
    /// a time: not every column of every row at once (a `sessions` row is
    /// ≈ 1 KB as whole columns, a metric row's serialized sketches several KB).
    /// The bytes equal those of writing whole columns.
    static func encode(_ columns: [OutputColumn], _ rows: [Row], options: ParquetWriterOptions) throws -> [UInt8] {
        let rowSize = OutputColumn.rowSize(columns)
        return try rows.withUnsafeBufferPointer { all in
            try writeParquet(schema: columns.map(\.field), rowCount: all.count,
                             rowSize: { rowSize(all.baseAddress! + $0) }, options: options) { i, range in
                columns[i].build(UnsafeBufferPointer(rebasing: all[range]))
            }
        }
    }

    static func int(_ name: String, _ doc: String, _ f: @escaping (Lent) -> Int64) -> OutputColumn {
        OutputColumn(field: .int64(name, optional: false), doc: doc) { .int64(cells($0, f)) }
    }
    static func optInt(_ name: String, _ doc: String, _ f: @escaping (Lent) -> Int64?) -> OutputColumn {
        OutputColumn(field: .int64(name), doc: doc) { .int64(cells($0, f)) }
    }
    static func double(_ name: String, _ doc: String, _ f: @escaping (Lent) -> Double?) -> OutputColumn {
        OutputColumn(field: .double(name), doc: doc) { .double(cells($0, f)) }
    }
    static func string(_ name: String, _ doc: String, _ f: @escaping (Lent) -> String) -> OutputColumn {
        OutputColumn(field: .string(name, optional: false), doc: doc, size: { 4 + f($0).utf8.count }) {
            .byteArray(cells($0) { Array(f($0).utf8) })
        }
    }
    /// A string column read as UTF-8 bytes (`bytes`) and sized by
    /// `byteCount`, without building a String per row: the `sessions`
    /// table's ids, kept as bytes (`SessionRows`).
    static func utf8(_ name: String, _ doc: String, byteCount: @escaping (Lent) -> Int,
                     bytes: @escaping (Lent) -> [UInt8]) -> OutputColumn {
        OutputColumn(field: .string(name, optional: false), doc: doc, size: { 4 + byteCount($0) }) {
            .byteArray(cells($0, bytes))
        }
    }
    /// A string column whose cells are UTF-8 arrays the rows already hold
    /// (`SessionRows.nameBytes`): each cell shares its array, no copy per row.
    static func sharedUTF8(_ name: String, _ doc: String, _ f: @escaping (Lent) -> [UInt8]) -> OutputColumn {
        OutputColumn(field: .string(name, optional: false), doc: doc, size: { 4 + f($0).count }) {
            .byteArray(cells($0, f))
        }
    }
    static func optString(_ name: String, _ doc: String, _ f: @escaping (Lent) -> String?) -> OutputColumn {
        OutputColumn(field: .string(name), doc: doc, size: { 4 + (f($0)?.utf8.count ?? 0) }) {
            .byteArray(cells($0) { f($0).map { Array($0.utf8) } })
        }
    }
    static func bool(_ name: String, _ doc: String, _ f: @escaping (Lent) -> Bool) -> OutputColumn {
        OutputColumn(field: .boolean(name, optional: false), doc: doc) { .boolean(cells($0, f)) }
    }
    static func optBool(_ name: String, _ doc: String, _ f: @escaping (Lent) -> Bool?) -> OutputColumn {
        OutputColumn(field: .boolean(name), doc: doc) { .boolean(cells($0, f)) }
    }
    static func time(_ name: String, _ doc: String, _ f: @escaping (Lent) -> Int64) -> OutputColumn {
        OutputColumn(field: .timestamp(name, optional: false), doc: doc) { .int64(cells($0) { f($0) *| 1000 }) }
    }
    static func blob(_ name: String, _ doc: String, _ f: @escaping (Lent) -> [UInt8]) -> OutputColumn {
        OutputColumn(field: .blob(name, optional: false), doc: doc, size: { 4 + f($0).count }) { .byteArray(cells($0, f)) }
    }
    /// A sketch column: its serialized bytes, sized without serializing.
    static func sketch<S: SerializedSketch>(_ name: String, _ doc: String, _ f: @escaping (Lent) -> S) -> OutputColumn {
        OutputColumn(field: .blob(name, optional: false), doc: doc, size: { 4 + f($0).serializedCount }) {
            .byteArray(cells($0) { f($0).serialized() })
        }
    }
}

/// A row of a grouped metric table.
public struct MetricRow<K: SketchKit> {
    public var start: Int64
    public var end: Int64
    public var dims: [String]
    public var m: GroupMetrics<K>
}

/// A `sessions` or `rejects` row with its window.
public struct WindowedRow<R> {
    public var start: Int64
    public var end: Int64
    public var row: R
}

/// A `sessions` row with its window, by reference: the packed rows of a
/// window (`WindowState.sessions`, shared, not copied) with the window's
/// bounds, and the row's index, so writing a file does not copy every row
/// (16 bytes a row; bench/results/speed.md "Memory per session").
public struct SessionRowAt {
    public final class Rows {
        public let rows: SessionRows
        public let start: Int64, end: Int64
        public init(_ rows: SessionRows, start: Int64, end: Int64) { self.rows = rows; self.start = start; self.end = end }
    }
    public let all: Rows
    public let index: Int
    public init(_ all: Rows, index: Int) { self.all = all; self.index = index }
    public var start: Int64 { all.start }
    public var end: Int64 { all.end }
    var rows: SessionRows { _read { yield all.rows } }
    var p: SessionRows.Packed { _read { yield all.rows.packed[index] } }
    func name(_ id: UInt32) -> String { all.rows.name(id) }
    func nameUTF8(_ id: UInt32) -> [UInt8] { all.rows.nameUTF8(id) }
}

/// A `cdn_edge` row: one group of CDN access-log records in one window.
public struct CdnEdgeRow<K: SketchKit> {
    public var start: Int64
    public var end: Int64
    public var key: CdnEdgeKey
    public var m: CdnEdgeMetrics<K>
}

public enum TableSchemas {
    /// Every table name, in output order.
    public static let tableNames = MetricTable.allCases.map(\.name) + ["sessions", "rejects", cdnEdgeTable]

    /// The table of CDN access logs (docs/semantics.md "CDN access logs").
    public static let cdnEdgeTable = "cdn_edge"

    /// The alert firings (docs/semantics.md §7); not a metric table, so not in `tableNames`.
    public static let alertsTable = "alerts"
    /// Every table with a schema file (`qos schemas`).
    public static let schemaTables = tableNames + [alertsTable]

    static func ratio(_ a: Int64, _ b: Int64) -> Double? { b > 0 ? Double(a) / Double(b) : nil }

    static func windowColumns<R>(_ start: @escaping (UnsafePointer<R>) -> Int64,
                                 _ end: @escaping (UnsafePointer<R>) -> Int64) -> [OutputColumn<R>] {
        [.time("window_start", "Start of the event-time window (inclusive), UTC.", start),
         .time("window_end", "End of the event-time window (exclusive), UTC.", end)]
    }

    /// The columns of a grouped metric table (docs/semantics.md §4).
    public static func metricColumns<K: SketchKit>(_ table: MetricTable, _: K.Type) -> [OutputColumn<MetricRow<K>>] {
        typealias C = OutputColumn<MetricRow<K>>
        var cols: [C] = windowColumns({ $0.pointee.start }, { $0.pointee.end })
        for (i, d) in table.dimensions.enumerated() {
            cols.append(.string(d, "Dimension `\(d)`; `unknown` when not known, `__other__` past the group cap.") { $0.pointee.dims[i] })
        }
        cols += sessionMetricColumns(K.self)
        if table.hasSegmentMetrics { cols += segmentColumns(K.self) }
        return cols
    }

    static func sessionMetricColumns<K: SketchKit>(_: K.Type) -> [OutputColumn<MetricRow<K>>] {
        typealias C = OutputColumn<MetricRow<K>>
        let q: (String, Double) -> C = { name, p in
            .double(name, "Startup time quantile \(p) from startup_ms_sketch (null when empty).") { $0.pointee.m.startupSketch.quantile(p) }
        }
        return [
            .int("views", "Sessions whose first view_start is in the window.") { $0.pointee.m.views },
            .double("unique_viewers", "Estimate of distinct viewer_id over those views (from viewers_hll).") { $0.pointee.m.viewers.estimate },
            .sketch("viewers_hll", "DataSketches HLL_8 lgK \(SketchParameters.hllLgK), compact serialization.") { $0.pointee.m.viewers },
            .int("plays", "Sessions whose first play_start is in the window.") { $0.pointee.m.plays },
            .int("startup_ms_sum", "Σ startup time (first play_start − view_start, 0…5 min).") { $0.pointee.m.startupMsSum },
            .int("startup_ms_count", "Sessions with a startup time.") { $0.pointee.m.startupMsCount },
            .sketch("startup_ms_sketch", "DDSketch (\(SketchParameters.ddsketchAccuracyPercent) % accuracy, ceil keys), ddsketch.proto bytes.") { $0.pointee.m.startupSketch },
            q("startup_ms_p50", 0.5), q("startup_ms_p90", 0.9), q("startup_ms_p95", 0.95), q("startup_ms_p99", 0.99),
            .int("vsf", "Video start failures: first fatal error before play_start, after view_start.") { $0.pointee.m.vsf },
            .double("vsf_rate", "vsf / views (null when no views).") { ratio($0.pointee.m.vsf, $0.pointee.m.views) },
            .int("ebvs", "Exits before video start, in the window of the close.") { $0.pointee.m.ebvs },
            .double("ebvs_rate", "ebvs / views (null when no views).") { ratio($0.pointee.m.ebvs, $0.pointee.m.views) },
            .int("vpf", "Video playback failures: first fatal error after play_start.") { $0.pointee.m.vpf },
            .double("vpf_rate", "vpf / plays (null when no plays).") { ratio($0.pointee.m.vpf, $0.pointee.m.plays) },
            .int("playing_ms", "Σ played_ms.") { $0.pointee.m.playingMs },
            .int("rebuffer_count", "Stalls after play_start, outside seeks.") { $0.pointee.m.rebufferCount },
            .int("rebuffer_ms", "Stall time, in the window of the stall's end.") { $0.pointee.m.rebufferMs },
            .double("rebuffer_ratio", "rebuffer_ms / (playing_ms + rebuffer_ms).") { $0.pointee.m.rebufferRatio },
            .int("seek_count", "seek_start events (while no seek is open).") { $0.pointee.m.seekCount },
            .int("seek_ms", "Seek latency, in the window of the seek's end.") { $0.pointee.m.seekMs },
            .int("watch_ms", "startup_ms_sum + playing_ms + rebuffer_ms + seek_ms.") { $0.pointee.m.watchMs },
            .int("bitrate_ms_sum", "Σ bitrate_kbps × played_ms over beacons with a known bitrate.") { $0.pointee.m.bitrateMsSum },
            .int("bitrate_played_ms", "Σ played_ms over beacons with a known bitrate.") { $0.pointee.m.bitratePlayedMs },
            .double("avg_bitrate_kbps", "bitrate_ms_sum / bitrate_played_ms.") { $0.pointee.m.avgBitrateKbps },
            .int("upshifts", "bitrate_change to a higher bitrate.") { $0.pointee.m.upshifts },
            .int("downshifts", "bitrate_change to a lower bitrate.") { $0.pointee.m.downshifts },
            .int("sessions_ended", "Sessions whose close instant is in the window.") { $0.pointee.m.sessionsEnded },
            .int("session_ms_sum", "Σ session duration (latest − earliest ts) of those sessions.") { $0.pointee.m.sessionMsSum },
            .sketch("session_ms_sketch", "DDSketch of session durations.") { $0.pointee.m.sessionSketch },
            .int("completed", "Closed sessions that ended or reached 90 % of the duration.") { $0.pointee.m.completed },
            .int("concurrent_plays", "Sessions playing at the window's end (point sample; max on roll-up).") { $0.pointee.m.concurrentPlays },
            .int("missing_start", "Sessions opened without view_start.") { $0.pointee.m.missingStart },
            .int("late_events", "Beacons applied after their partition's watermark passed their window's end (docs/semantics.md §3).") { $0.pointee.m.lateEvents },
            .int("duplicates", "Beacons dropped as duplicate (session_id, seq).") { $0.pointee.m.duplicates },
        ]
    }

    static func segmentColumns<K: SketchKit>(_: K.Type) -> [OutputColumn<MetricRow<K>>] {
        typealias C = OutputColumn<MetricRow<K>>
        return [
            .int("requests", "segment beacons.") { $0.pointee.m.segment.requests },
            .int("failed_requests", "http_status 0 or ≥ 400.") { $0.pointee.m.segment.failedRequests },
            .int("http_4xx", "http_status 400–499.") { $0.pointee.m.segment.http4xx },
            .int("http_5xx", "http_status 500–599.") { $0.pointee.m.segment.http5xx },
            .int("slow_requests", "download_ms above the slow threshold (200 ms).") { $0.pointee.m.segment.slowRequests },
            .int("cache_hits", "cache = HIT.") { $0.pointee.m.segment.cacheHits },
            .int("bytes", "Σ bytes.") { $0.pointee.m.segment.bytes },
            .int("download_ms_sum", "Σ download_ms.") { $0.pointee.m.segment.downloadMsSum },
            .sketch("download_ms_sketch", "DDSketch of download_ms.") { $0.pointee.m.segment.downloadSketch },
            .double("download_ms_p50", "Median download_ms.") { $0.pointee.m.segment.downloadSketch.quantile(0.5) },
            .double("download_ms_p95", "95th percentile download_ms.") { $0.pointee.m.segment.downloadSketch.quantile(0.95) },
            .sketch("ttfb_ms_sketch", "DDSketch of ttfb_ms.") { $0.pointee.m.segment.ttfbSketch },
            .double("ttfb_ms_p95", "95th percentile ttfb_ms.") { $0.pointee.m.segment.ttfbSketch.quantile(0.95) },
            .sketch("throughput_kbps_sketch", "DDSketch of bytes × 8 / download_ms.") { $0.pointee.m.segment.throughputSketch },
            .double("throughput_kbps_p50", "Median throughput.") { $0.pointee.m.segment.throughputSketch.quantile(0.5) },
        ]
    }

    /// The `cdn_edge` table (docs/semantics.md "CDN access logs").
    public static func cdnEdgeColumns<K: SketchKit>(_: K.Type) -> [OutputColumn<CdnEdgeRow<K>>] {
        typealias C = OutputColumn<CdnEdgeRow<K>>
        func q(_ name: String, _ what: String, _ p: Double, _ f: @escaping (C.Lent) -> K.Quantiles) -> C {
            .double(name, "\(what) quantile \(p) (null when the sketch is empty).") { f($0).quantile(p) }
        }
        return windowColumns({ $0.pointee.start }, { $0.pointee.end }) + [
            .string("cdn", "The input format: edgecast, cloudfront, fastly or akamai.") { $0.pointee.key.cdn },
            .string("account", "CDN customer account (EdgeCast: first segment of rewritten_path); \"\" when none.") { $0.pointee.key.account },
            .string("owner", "Content owner (EdgeCast: GUID from rewritten_path); \"\" when none.") { $0.pointee.key.owner },
            .string("pop", "Edge location that served the request; \"\" when absent.") { $0.pointee.key.pop },
            .int("requests", "Access-log records.") { $0.pointee.m.requests },
            .int("http_errors", "Status > 299 (3xx counts).") { $0.pointee.m.httpErrors },
            .int("http_2xx", "Status 200–299.") { $0.pointee.m.http2xx },
            .int("http_3xx", "Status 300–399.") { $0.pointee.m.http3xx },
            .int("http_4xx", "Status 400–499.") { $0.pointee.m.http4xx },
            .int("http_5xx", "Status 500–599.") { $0.pointee.m.http5xx },
            .int("slow_responses", "Serve time above slow_response_ms (default 200 ms).") { $0.pointee.m.slowResponses },
            .int("bytes_out", "Σ bytes sent edge → client.") { $0.pointee.m.bytesOut },
            .int("cache_hits", "Records the CDN served from cache.") { $0.pointee.m.cacheHits },
            .int("cache_misses", "Records the CDN fetched (miss, pass).") { $0.pointee.m.cacheMisses },
            .int("incomplete_responses", "Records whose last byte was not served (where the format says).") { $0.pointee.m.incompleteResponses },
            .sketch("serve_ms_sketch", "DDSketch of the serve time, ms.") { $0.pointee.m.serveSketch },
            q("serve_ms_p50", "Serve time", 0.5, { $0.pointee.m.serveSketch }),
            q("serve_ms_p95", "Serve time", 0.95, { $0.pointee.m.serveSketch }),
            q("serve_ms_p99", "Serve time", 0.99, { $0.pointee.m.serveSketch }),
            .sketch("ttfb_ms_sketch", "DDSketch of the time to first byte, ms (empty when the format has none).") { $0.pointee.m.ttfbSketch },
            q("ttfb_ms_p50", "Time to first byte", 0.5, { $0.pointee.m.ttfbSketch }),
            q("ttfb_ms_p95", "Time to first byte", 0.95, { $0.pointee.m.ttfbSketch }),
            q("ttfb_ms_p99", "Time to first byte", 0.99, { $0.pointee.m.ttfbSketch }),
            .sketch("clients_hll", "DataSketches HLL_8 lgK \(SketchParameters.hllLgK) of client IPs, compact serialization.") { $0.pointee.m.clients },
            .double("unique_clients", "Estimate of distinct client IPs (from clients_hll).") { $0.pointee.m.clients.estimate },
        ]
    }

    /// The `sessions` table: one row per closed session, in its close's window.
    public static func sessionColumns() -> [OutputColumn<SessionRowAt>] {
        typealias C = OutputColumn<SessionRowAt>
        return windowColumns({ $0.pointee.start }, { $0.pointee.end }) + [
            .utf8("session_id", "Session id.", byteCount: { Int($0.pointee.p.idLength) },
                  bytes: { $0.pointee.rows.withIdBytes($0.pointee.index) { Array($0) } }),
            .utf8("viewer_id", "Viewer id (session_id when the beacons had none).", byteCount: { Int($0.pointee.p.viewerLength) },
                  bytes: { $0.pointee.rows.withIdBytes($0.pointee.index, viewer: true) { Array($0) } }),
            .sharedUTF8("video_id", "Video id.") { $0.pointee.nameUTF8($0.pointee.p.videoId) },
            .sharedUTF8("country", "ISO 3166-1 alpha-2.") { $0.pointee.nameUTF8($0.pointee.p.country) },
            .sharedUTF8("region", "ISO 3166-2 subdivision.") { $0.pointee.nameUTF8($0.pointee.p.region) },
            .sharedUTF8("city", "City (GeoIP).") { $0.pointee.nameUTF8($0.pointee.p.city) },
            .optInt("asn", "Autonomous system number (GeoIP ASN database).") { $0.pointee.p.asnValue },
            .sharedUTF8("as_org", "Autonomous system organisation.") { $0.pointee.nameUTF8($0.pointee.p.asOrg) },
            .sharedUTF8("device_type", "desktop, mobile, tablet, tv, console, bot or unknown.") { $0.pointee.nameUTF8($0.pointee.p.deviceType) },
            .sharedUTF8("os", "Operating system family.") { $0.pointee.nameUTF8($0.pointee.p.os) },
            .sharedUTF8("browser", "Browser family.") { $0.pointee.nameUTF8($0.pointee.p.browser) },
            .sharedUTF8("player_name", "Player name.") { $0.pointee.nameUTF8($0.pointee.p.playerName) },
            .sharedUTF8("player_version", "Player version.") { $0.pointee.nameUTF8($0.pointee.p.playerVersion) },
            .sharedUTF8("cdn", "CDN.") { $0.pointee.nameUTF8($0.pointee.p.cdn) },
            .sharedUTF8("pop", "CDN point of presence.") { $0.pointee.nameUTF8($0.pointee.p.pop) },
            .optBool("live", "Live stream.") { $0.pointee.p.liveValue },
            .optInt("video_duration_ms", "Content duration (absent for live/unknown).") { $0.pointee.p.videoDurationValue },
            .time("started_at", "Earliest beacon ts.") { $0.pointee.p.startTs },
            .time("last_beacon_at", "Latest beacon ts.") { $0.pointee.p.endTs },
            .time("closed_at", "Close instant (decides the window).") { $0.pointee.p.closeTs },
            .string("close_reason", "ended, exit, error, timeout or max_length.") { $0.pointee.p.closeReason.name },
            .int("duration_ms", "last_beacon_at − started_at.") { $0.pointee.p.durationMs },
            .bool("missing_start", "Opened without view_start.") { $0.pointee.p.missingStart },
            .bool("had_view_start", "A view_start was seen.") { $0.pointee.p.hadViewStart },
            .bool("played", "A play_start was seen.") { $0.pointee.p.played },
            .optInt("startup_ms", "Startup time, when defined.") { $0.pointee.p.startupValue },
            .int("playing_ms", "Σ played_ms.") { $0.pointee.p.playingMs },
            .int("rebuffer_count", "Counted stalls.") { $0.pointee.p.rebufferCount },
            .int("rebuffer_ms", "Stall time.") { $0.pointee.p.rebufferMs },
            .int("seek_count", "Seeks.") { $0.pointee.p.seekCount },
            .int("seek_ms", "Seek time.") { $0.pointee.p.seekMs },
            .int("bitrate_ms_sum", "Σ bitrate × played_ms.") { $0.pointee.p.bitrateMsSum },
            .int("bitrate_played_ms", "Σ played_ms with a known bitrate.") { $0.pointee.p.bitratePlayedMs },
            .double("avg_bitrate_kbps", "Time-weighted bitrate.") { ratio($0.pointee.p.bitrateMsSum, $0.pointee.p.bitratePlayedMs) },
            .int("upshifts", "Bitrate upshifts.") { $0.pointee.p.upshifts },
            .int("downshifts", "Bitrate downshifts.") { $0.pointee.p.downshifts },
            .int("errors", "error beacons.") { $0.pointee.p.errors },
            .optString("fatal_error_code", "error_code of the first fatal error.") { $0.pointee.rows.optionalName($0.pointee.p.fatalErrorCode) },
            .bool("vsf", "Video start failure.") { $0.pointee.p.vsf },
            .bool("vpf", "Video playback failure.") { $0.pointee.p.vpf },
            .bool("ebvs", "Exit before video start.") { $0.pointee.p.ebvs },
            .bool("completed", "Completed.") { $0.pointee.p.completed },
            .int("max_playhead_ms", "Largest playhead_ms.") { $0.pointee.p.maxPlayheadMs },
            .int("beacons", "Beacons applied (duplicates excluded).") { $0.pointee.p.beacons },
        ]
    }

    /// The `rejects` table.
    public static func rejectColumns() -> [OutputColumn<WindowedRow<RejectRow>>] {
        windowColumns({ $0.pointee.start }, { $0.pointee.end }) + [
            .time("ingested_at", "The partition's event-time clock (max ts seen) when rejected; before its first accepted beacon, that beacon's ts, or the engine clock at the flush if none came yet.") { $0.pointee.row.ingestedAt },
            .string("reason", "Reject reason code (README lists them).") { $0.pointee.row.reason },
            .string("source", "topic/partition/offset or file:line.") { $0.pointee.row.source },
            .blob("payload", "First 4 KiB of the raw payload.") { $0.pointee.row.payload },
        ]
    }

    /// The `alerts` table: one row per firing of an alert rule (docs/semantics.md §7).
    public static func alertColumns() -> [OutputColumn<AlertFiring>] {
        windowColumns({ $0.pointee.windowStart }, { $0.pointee.windowEnd }) + [
            .string("rule", "The rule's name.") { $0.pointee.rule },
            .string("table", "The table the rule reads.") { $0.pointee.table },
            .string("metric", "The metric compared.") { $0.pointee.metric },
            .string("kind", "threshold (above/below) or relative (x times the trailing hour).") { $0.pointee.kind },
            .string("dimensions", "The group: a JSON object of its dimension values ({} for the whole table).") { $0.pointee.dimensionsJSON },
            .double("value", "The metric in this window.") { $0.pointee.value },
            .double("limit", "The value crossed: the threshold, or factor × baseline.") { $0.pointee.limit },
            .double("baseline", "Relative rules: the group's trailing-hour mean, weighted by volume (null for thresholds).") { $0.pointee.baseline },
            .int("volume", "The metric's volume in this window (views, plays, startups or requests).") { $0.pointee.volume },
            .string("message", "The line logged for this firing.") { $0.pointee.message },
        ]
    }

    /// The schema of `table` as JSON (for `schemas/tables/<table>.json`).
    public static func schemaJSON(_ table: String) -> String {
        let fields: [(ParquetField, String)]
        if let t = MetricTable.allCases.first(where: { $0.name == table }) {
            fields = metricColumns(t, DataSketchesKit.self).map { ($0.field, $0.doc) }
        } else if table == "sessions" {
            fields = sessionColumns().map { ($0.field, $0.doc) }
        } else if table == cdnEdgeTable {
            fields = cdnEdgeColumns(DataSketchesKit.self).map { ($0.field, $0.doc) }
        } else if table == alertsTable {
            fields = alertColumns().map { ($0.field, $0.doc) }
        } else {
            fields = rejectColumns().map { ($0.field, $0.doc) }
        }
        var out = "{\n  \"table\": \"\(table)\",\n  \"columns\": [\n"
        out += fields.map { f, doc in
            var d: [UInt8] = []
            BeaconEncoder.quote(doc, &d)
            return "    {\"name\": \"\(f.name)\", \"parquet_type\": \"\(physicalName(f.physical))\", "
                + "\"logical_type\": \(logicalName(f.logical)), \"nullable\": \(f.optional), "
                + "\"description\": \(String(decoding: d, as: UTF8.self))}"
        }.joined(separator: ",\n")
        return out + "\n  ]\n}\n"
    }

    static func physicalName(_ p: ParquetPhysicalType) -> String {
        switch p {
        case .boolean: return "BOOLEAN"
        case .int32: return "INT32"
        case .int64: return "INT64"
        case .double: return "DOUBLE"
        case .byteArray: return "BYTE_ARRAY"
        }
    }

    static func logicalName(_ l: ParquetLogicalType) -> String {
        switch l {
        case .none: return "null"
        case .string: return "\"STRING\""
        case .timestampMicrosUTC: return "\"TIMESTAMP(MICROS,UTC)\""
        }
    }
}
