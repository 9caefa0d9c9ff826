import Parquet
import QoSCore
import Sketches

/// Reads the files the sink wrote back into rows, for `qos reaggregate`.
///
/// A metric-table file (`overall`, `video`, `geo`, `device`, `cdn`, or a
/// roll-up of one with fewer dimensions) becomes `MetricRow`s: window,
/// dimension values and the mergeable state (`GroupMetrics`) — the
/// additive counters and the sketches (`viewers_hll` through
/// `HLLSketch(bytes:)`, the `*_sketch` columns through `DDSketch(protobuf:)`).
/// Derived columns (rates, ratios, estimates, percentiles, `watch_ms`) are
/// ignored: they are recomputed from the state on write (`TableSchemas`).
/// A `sessions` / `rejects` / `alerts` file is read as its raw columns.
///
/// Every check names the file: not a regular file, not Parquet / corrupt,
/// not a VideoQoS file, a newer `videoqos.spec_version`, a schema this
/// version does not write, a negative counter, a sketch that cannot be merged.
public enum TableReader {
    typealias M = GroupMetrics<DataSketchesKit>

    /// Additive Int64 columns and where they live in `GroupMetrics`.
    static var additiveColumns: [(name: String, path: WritableKeyPath<M, Int64>)] {
        [("views", \.views), ("plays", \.plays), ("startup_ms_sum", \.startupMsSum),
         ("startup_ms_count", \.startupMsCount), ("vsf", \.vsf), ("ebvs", \.ebvs), ("vpf", \.vpf),
         ("playing_ms", \.playingMs), ("rebuffer_count", \.rebufferCount), ("rebuffer_ms", \.rebufferMs),
         ("seek_count", \.seekCount), ("seek_ms", \.seekMs), ("bitrate_ms_sum", \.bitrateMsSum),
         ("bitrate_played_ms", \.bitratePlayedMs), ("upshifts", \.upshifts), ("downshifts", \.downshifts),
         ("sessions_ended", \.sessionsEnded), ("session_ms_sum", \.sessionMsSum), ("completed", \.completed),
         ("concurrent_plays", \.concurrentPlays), ("missing_start", \.missingStart),
         ("late_events", \.lateEvents), ("duplicates", \.duplicates),
         ("requests", \.segment.requests), ("failed_requests", \.segment.failedRequests),
         ("http_4xx", \.segment.http4xx), ("http_5xx", \.segment.http5xx),
         ("slow_requests", \.segment.slowRequests), ("cache_hits", \.segment.cacheHits),
         ("bytes", \.segment.bytes), ("download_ms_sum", \.segment.downloadMsSum)]
    }

    /// DDSketch columns.
    static var quantileColumns: [(name: String, path: WritableKeyPath<M, DurationSketch>)] {
        [("startup_ms_sketch", \.startupSketch), ("session_ms_sketch", \.sessionSketch),
         ("download_ms_sketch", \.segment.downloadSketch), ("ttfb_ms_sketch", \.segment.ttfbSketch),
         ("throughput_kbps_sketch", \.segment.throughputSketch)]
    }

    /// Columns recomputed on write (never read).
    static let derivedColumns: Set<String> = [
        "unique_viewers", "startup_ms_p50", "startup_ms_p90", "startup_ms_p95", "startup_ms_p99",
        "vsf_rate", "ebvs_rate", "vpf_rate", "rebuffer_ratio", "watch_ms", "avg_bitrate_kbps",
        "download_ms_p50", "download_ms_p95", "ttfb_ms_p95", "throughput_kbps_p50"]

    /// The highest `videoqos.spec_version` this version reads.
    public static let maxSpecVersion = Int(WindowFileWriter.specVersion) ?? 1

    /// The columns of `table` restricted to the dimensions `dims` (a subset
    /// of the table's, in the table's order): what a roll-up writes.
    static func metricColumns(_ table: MetricTable, keeping dims: [String]) -> [OutputColumn<MetricRow<DataSketchesKit>>] {
        let dropped = Set(table.dimensions).subtracting(dims)
        return TableSchemas.metricColumns(table, DataSketchesKit.self).filter { !dropped.contains($0.field.name) }
    }

    /// A file's footer-level facts, checked.
    public struct FileInfo: Sendable {
        public var path: String
        public var table: String
        public var windowStart: Int64
        public var windowEnd: Int64
        /// `base`, `lateNNNNNN`, `flushNNNNNN` (rejects), `rollup`, `compact`, … (`videoqos.kind`).
        public var kind: String
        public var rows: Int
        /// The table's dimensions present in the file (metric tables).
        public var dims: [String]
        /// The length of its windows and their starts (ms): one window, or
        /// several for a late-delta or compacted file of an hour.
        public var windowMs: Int64 = 0
        public var windowStarts: [Int64] = []
        public var isMultiWindow: Bool { windowStarts.count > 1 }
    }

    /// Opens `path` and checks that it is a VideoQoS file of `table` that
    /// this version can read. `bytes`: the file's, already read (an object
    /// of an s3:// sink); `path` then only names it.
    static func open(_ path: String, table: String, bytes: [UInt8]? = nil) throws -> ParquetFileReader {
        let r: ParquetFileReader
        // Only a regular file: a FIFO would block, a link to /dev/zero fill memory.
        do { r = try ParquetFileReader(bytes: bytes ?? Inspector.readRegularFile(path)) } catch let e as ParquetError {
            throw UserError("'\(path)' is not a readable Parquet file (\(e.description)) — move it out of the table directory or restore it")
        }
        guard let v = r.metadataValue(forKey: "videoqos.spec_version") else {
            throw UserError("'\(path)' is not a VideoQoS file (no videoqos.spec_version metadata) — move it out of the table directory")
        }
        guard let n = Int(v), n >= 1 else {
            throw UserError("'\(path)' has an invalid videoqos.spec_version '\(v)'")
        }
        guard n <= maxSpecVersion else {
            throw UserError("'\(path)' was written by a newer VideoQoS (videoqos.spec_version=\(n), this qos reads up to \(maxSpecVersion)) — upgrade qos")
        }
        if let t = r.metadataValue(forKey: "videoqos.table"), t != table {
            throw UserError("'\(path)' belongs to table '\(t)', not '\(table)' — move it to its own table directory")
        }
        return r
    }

    static func checkSchema(_ r: ParquetFileReader, _ expected: [ParquetField], _ path: String, _ table: String) throws {
        guard r.schema != expected else { return }
        let have = r.schema.map(\.name), want = expected.map(\.name)
        let detail: String
        if let extra = have.first(where: { !want.contains($0) }) {
            detail = "unexpected column '\(extra)'"
        } else if let missing = want.first(where: { !have.contains($0) }) {
            detail = "missing column '\(missing)'"
        } else if let i = expected.indices.first(where: { expected[$0] != r.schema[$0] }) {
            detail = "column '\(expected[i].name)' has another type or position"
        } else {
            detail = "different schema"
        }
        throw UserError("'\(path)' does not have the \(table) schema of this qos version (\(detail))")
    }

    static func int64s(_ r: ParquetFileReader, _ name: String, _ path: String) throws -> [Int64] {
        guard case .int64(let v) = try column(r, name, path) else {
            throw UserError("'\(path)': column '\(name)' is not INT64")
        }
        return try v.map {
            guard let x = $0 else { throw UserError("'\(path)': null in non-null column '\(name)'") }
            return x
        }
    }

    /// An HLL sketch of the sink's lg_k: a union with a smaller one is
    /// downsampled to it (DataSketches' rule, Sketches/HLLUnion.swift), so one
    /// such file would lower the precision of every estimate it enters while
    /// the output's metadata still says lg_k=12 — refused, as a DDSketch of
    /// another accuracy is.
    static func hll(_ b: [UInt8], _ name: String, _ row: Int, _ path: String) throws -> HLLSketch {
        let h: HLLSketch
        do { h = try HLLSketch(bytes: b) } catch {
            throw UserError("'\(path)': row \(row): \(name) is not a DataSketches HLL sketch (\(error))")
        }
        guard h.lgK == SketchParameters.hllLgK else {
            throw UserError("'\(path)': row \(row): \(name) has lg_k \(h.lgK), not \(SketchParameters.hllLgK) — it cannot be merged")
        }
        return h
    }

    /// A `*_sketch` cell: a DDSketch protobuf with our relative accuracy
    /// (another accuracy's bins cannot be merged into ours).
    static func ddsketch(_ b: [UInt8], _ name: String, _ row: Int, _ path: String) throws -> DDSketch {
        let s: DDSketch
        do { s = try DDSketch(protobuf: b) } catch {
            throw UserError("'\(path)': row \(row): \(name) is not a DDSketch protobuf (\(error))")
        }
        guard s.canMerge(Self.referenceSketch) else {
            throw UserError("'\(path)': \(name) has relative accuracy \(s.relativeAccuracy), not \(SketchParameters.ddsketchRelativeAccuracyText) — it cannot be merged")
        }
        return s
    }

    static let referenceSketch = DDSketch(relativeAccuracy: SketchParameters.ddsketchRelativeAccuracy)

    /// Counters count things: a negative one was not written by qos, and
    /// summed it would quietly lower every total it enters.
    static func nonNegative(_ x: Int64, _ name: String, _ row: Int, _ path: String) throws {
        guard x >= 0 else {
            throw UserError("'\(path)': row \(row): \(name) is negative (\(x)) — not a file written by qos; move it out of the table directory")
        }
    }

    static func blobs(_ r: ParquetFileReader, _ name: String, _ path: String) throws -> [[UInt8]] {
        guard case .byteArray(let v) = try column(r, name, path) else {
            throw UserError("'\(path)': column '\(name)' is not BYTE_ARRAY")
        }
        return try v.map {
            guard let x = $0 else { throw UserError("'\(path)': null in non-null column '\(name)'") }
            return x
        }
    }

    static func column(_ r: ParquetFileReader, _ name: String, _ path: String) throws -> ParquetColumnData {
        do { return try r.column(named: name) } catch let e as ParquetError {
            throw UserError("'\(path)' is corrupt: column '\(name)': \(e.description)")
        }
    }

    /// The windows of a file's rows (ms): one for a base or roll-up file,
    /// several of one length for a late-delta or compacted file of an hour
    /// (README "Late data and compaction").
    struct Windows {
        var start: Int64 = 0, end: Int64 = 0, ms: Int64 = 0
        var starts: [Int64] = []
    }

    static func window(_ starts: [Int64], _ ends: [Int64], _ path: String) throws -> Windows {
        guard let s = starts.first, let e = ends.first else { return Windows() }
        let ms = e - s
        var seen = Set<Int64>()
        for (a, b) in zip(starts, ends) {
            guard b - a == ms, ms > 0, a % 1000 == 0, b % 1000 == 0 else {
                throw UserError("'\(path)' holds rows of windows of different lengths (or an empty window) — not a file written by qos")
            }
            seen.insert(a / 1000)
        }
        let sorted = seen.sorted()
        return Windows(start: sorted.first!, end: sorted.last! + ms / 1000, ms: ms / 1000, starts: sorted)
    }

    /// Reads a metric-table file: its facts and its rows (`dims` hold every
    /// dimension of the table, "" for those the file does not have).
    public static func readMetricFile(_ path: String, table: MetricTable, bytes: [UInt8]? = nil) throws -> (FileInfo, [MetricRow<DataSketchesKit>]) {
        let r = try open(path, table: table.name, bytes: bytes)
        let names = Set(r.schema.map(\.name))
        let dims = table.dimensions.filter { names.contains($0) }
        try checkSchema(r, metricColumns(table, keeping: dims).map(\.field), path, table.name)
        let startCol = try int64s(r, "window_start", path)
        let w = try window(startCol, int64s(r, "window_end", path), path)
        let n = r.numRows
        var rows = [MetricRow<DataSketchesKit>](repeating: MetricRow(start: w.start, end: w.end, dims: [], m: M()), count: n)
        for i in 0..<n { rows[i].start = startCol[i] / 1000; rows[i].end = rows[i].start + w.ms }
        var dimValues: [[String]] = []
        for d in table.dimensions {
            guard dims.contains(d) else { dimValues.append([String](repeating: "", count: n)); continue }
            guard let v = try column(r, d, path).stringValues, !v.contains(where: { $0 == nil }) else {
                throw UserError("'\(path)': dimension column '\(d)' is not a non-null string")
            }
            dimValues.append(v.map { $0! })
        }
        for i in 0..<n { rows[i].dims = dimValues.map { $0[i] } }
        for (name, kp) in additiveColumns where names.contains(name) {
            for (i, x) in try int64s(r, name, path).enumerated() {
                try nonNegative(x, name, i, path)
                rows[i].m[keyPath: kp] = x
            }
        }
        for (i, b) in try blobs(r, "viewers_hll", path).enumerated() {
            rows[i].m.viewers = ViewerHLL(try hll(b, "viewers_hll", i, path))
        }
        for (name, kp) in quantileColumns where names.contains(name) {
            for (i, b) in try blobs(r, name, path).enumerated() {
                rows[i].m[keyPath: kp] = DurationSketch(try ddsketch(b, name, i, path))
            }
        }
        let info = FileInfo(path: path, table: table.name, windowStart: w.start, windowEnd: w.end,
                            kind: r.metadataValue(forKey: "videoqos.kind") ?? "", rows: n, dims: dims,
                            windowMs: w.ms, windowStarts: w.starts)
        return (info, rows)
    }

    /// The columns of a `sessions` or `rejects` file.
    public struct RowFile {
        public var info: FileInfo
        public var schema: [ParquetField]
        public var columns: [ParquetColumnData]
    }

    /// The schema of a row table.
    static func rowSchema(_ table: String) -> [ParquetField] {
        table == "sessions" ? TableSchemas.sessionColumns().map(\.field)
            : table == TableSchemas.alertsTable ? TableSchemas.alertColumns().map(\.field) : TableSchemas.rejectColumns().map(\.field)
    }

    /// Reads a `sessions` / `rejects` / `alerts` file column by column.
    public static func readRowFile(_ path: String, table: String, bytes: [UInt8]? = nil) throws -> RowFile {
        let r = try open(path, table: table, bytes: bytes)
        let schema = rowSchema(table)
        try checkSchema(r, schema, path, table)
        let cols = try schema.map { try column(r, $0.name, path) }
        let w = try window(int64s(r, "window_start", path), int64s(r, "window_end", path), path)
        for (f, c) in zip(schema, cols) where !f.optional {
            let hasNull: Bool
            switch c {
            case .boolean(let v): hasNull = v.contains { $0 == nil }
            case .int32(let v): hasNull = v.contains { $0 == nil }
            case .int64(let v): hasNull = v.contains { $0 == nil }
            case .double(let v): hasNull = v.contains { $0 == nil }
            case .byteArray(let v): hasNull = v.contains { $0 == nil }
            }
            if hasNull { throw UserError("'\(path)': null in non-null column '\(f.name)'") }
        }
        let info = FileInfo(path: path, table: table, windowStart: w.start, windowEnd: w.end,
                            kind: r.metadataValue(forKey: "videoqos.kind") ?? "", rows: r.numRows, dims: [],
                            windowMs: w.ms, windowStarts: w.starts)
        return RowFile(info: info, schema: schema, columns: cols)
    }

    /// The `cdn_edge` columns restricted to the dimensions `dims` (a roll-up's).
    static func cdnEdgeColumns(keeping dims: [String]) -> [OutputColumn<CdnEdgeRow<DataSketchesKit>>] {
        let dropped = Set(CdnEdgeKey.dimensions).subtracting(dims)
        return TableSchemas.cdnEdgeColumns(DataSketchesKit.self).filter { !dropped.contains($0.field.name) }
    }

    /// Reads a `cdn_edge` file: its facts and its rows (a dimension the
    /// file does not have reads as ""). Derived columns (percentiles,
    /// `unique_clients`) are ignored and recomputed on write.
    public static func readCdnEdgeFile(_ path: String, bytes: [UInt8]? = nil) throws -> (FileInfo, [CdnEdgeRow<DataSketchesKit>]) {
        let table = TableSchemas.cdnEdgeTable
        let r = try open(path, table: table, bytes: bytes)
        let names = Set(r.schema.map(\.name))
        let dims = CdnEdgeKey.dimensions.filter { names.contains($0) }
        try checkSchema(r, cdnEdgeColumns(keeping: dims).map(\.field), path, table)
        let startCol = try int64s(r, "window_start", path)
        let w = try window(startCol, int64s(r, "window_end", path), path)
        let n = r.numRows
        var dimValues: [[String]] = []
        for d in CdnEdgeKey.dimensions {
            guard dims.contains(d) else { dimValues.append([String](repeating: "", count: n)); continue }
            guard let v = try column(r, d, path).stringValues, !v.contains(where: { $0 == nil }) else {
                throw UserError("'\(path)': dimension column '\(d)' is not a non-null string")
            }
            dimValues.append(v.map { $0! })
        }
        var rows = (0..<n).map { i in
            CdnEdgeRow(start: startCol[i] / 1000, end: startCol[i] / 1000 + w.ms, key: CdnEdgeKey(cdn: dimValues[0][i], account: dimValues[1][i],
                                                         owner: dimValues[2][i], pop: dimValues[3][i]),
                       m: CdnEdgeMetrics<DataSketchesKit>())
        }
        let counterNames = CdnEdgeMetrics<DataSketchesKit>.counterColumns
        let counters = try counterNames.map { try int64s(r, $0, path) }
        for (name, values) in zip(counterNames, counters) {
            for (i, x) in values.enumerated() { try nonNegative(x, name, i, path) }
        }
        for i in 0..<n {
            var k = 0
            rows[i].m.visitCounters { $0 = counters[k][i]; k += 1 }
        }
        for (i, b) in try blobs(r, "clients_hll", path).enumerated() {
            rows[i].m.clients = ViewerHLL(try hll(b, "clients_hll", i, path))
        }
        for (name, kp) in [("serve_ms_sketch", \CdnEdgeMetrics<DataSketchesKit>.serveSketch),
                           ("ttfb_ms_sketch", \CdnEdgeMetrics<DataSketchesKit>.ttfbSketch)] {
            for (i, b) in try blobs(r, name, path).enumerated() {
                rows[i].m[keyPath: kp] = DurationSketch(try ddsketch(b, name, i, path))
            }
        }
        let info = FileInfo(path: path, table: table, windowStart: w.start, windowEnd: w.end,
                            kind: r.metadataValue(forKey: "videoqos.kind") ?? "", rows: n, dims: dims,
                            windowMs: w.ms, windowStarts: w.starts)
        return (info, rows)
    }

    /// Reads any table's file and returns only its facts (validating every value).
    public static func check(_ path: String, table: String) throws -> FileInfo {
        if table == TableSchemas.cdnEdgeTable { return try readCdnEdgeFile(path).0 }
        if let t = MetricTable.allCases.first(where: { $0.name == table }) {
            return try readMetricFile(path, table: t).0
        }
        return try readRowFile(path, table: table).info
    }
}

extension ParquetColumnData {
    /// `self` followed by `other` (same physical type).
    mutating func append(_ other: ParquetColumnData) {
        switch (self, other) {
        case (.boolean(var a), .boolean(let b)): a += b; self = .boolean(a)
        case (.int32(var a), .int32(let b)): a += b; self = .int32(a)
        case (.int64(var a), .int64(let b)): a += b; self = .int64(a)
        case (.double(var a), .double(let b)): a += b; self = .double(a)
        case (.byteArray(var a), .byteArray(let b)): a += b; self = .byteArray(a)
        default: preconditionFailure("appending columns of different types")
        }
    }

    /// The values at `order`.
    func permuted(_ order: [Int]) -> ParquetColumnData {
        switch self {
        case .boolean(let v): return .boolean(order.map { v[$0] })
        case .int32(let v): return .int32(order.map { v[$0] })
        case .int64(let v): return .int64(order.map { v[$0] })
        case .double(let v): return .double(order.map { v[$0] })
        case .byteArray(let v): return .byteArray(order.map { v[$0] })
        }
    }

    /// No values, of physical type `p`.
    static func empty(_ p: ParquetPhysicalType) -> ParquetColumnData {
        switch p {
        case .boolean: return .boolean([])
        case .int32: return .int32([])
        case .int64: return .int64([])
        case .double: return .double([])
        case .byteArray: return .byteArray([])
        }
    }
}
