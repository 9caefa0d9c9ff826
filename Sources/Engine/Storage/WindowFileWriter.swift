import Parquet
import QoSCore

/// Turns flushed windows into Parquet files: one per table per on-time
/// window (`base`; the daemon puts the on-time windows of one hour that one
/// epoch flushes into one file per table), and one per table per hour directory for the late
/// deltas of one flush (`late<from>-<to>`: every changed window of that hour,
/// `window_start` a column; from/to are the flushes whose late contributions
/// it holds). File names are deterministic: table, window (the hour for late
/// files), kind and a tag of the input, so a replay of the same input writes
/// the same names and bytes.
public struct WindowFileWriter {
    public static let specVersion = "1"
    public let sink: FileSink
    public var parquet = ParquetWriterOptions()
    public let windowMs: Int64
    /// Identifies the input (files or topic) in names and metadata.
    public let inputTag: String

    public init(sink: FileSink, windowMs: Int64, inputTag: String, zstdLevel: Int = Defaults.zstdLevel) {
        // A file's name holds its window's start and size in whole seconds.
        precondition(windowMs > 0 && windowMs % 1000 == 0, "window \(windowMs) ms is not a whole number of seconds")
        self.sink = sink
        self.windowMs = windowMs
        self.inputTag = inputTag
        parquet.compression = zstdLevel > 0 ? .zstd(level: zstdLevel) : .uncompressed
    }

    /// A file to publish: its bytes and where it goes.
    public struct PlannedFile {
        public var table: String
        public var dir: String
        public var name: String
        public var bytes: [UInt8]
        public var rows: Int
        public var schema: [ParquetField]
        /// The values, when given; files the writer plans leave it empty
        /// (the bytes hold them: `columnData`), so a planned file waiting for
        /// its publish holds its encoded bytes only.
        public var columns: [ParquetColumnData]
        public var path: String { "\(dir)/\(name)" }

        /// Every column's values: `columns`, or decoded from `bytes`.
        public func columnData() throws -> [ParquetColumnData] {
            if !columns.isEmpty || schema.isEmpty { return columns }
            let r = try ParquetFileReader(bytes: bytes)
            return try schema.indices.map { try r.column($0) }
        }
    }

    /// Encodes every table of `windows`. `flush` numbers the flush (late
    /// delta names), `sourceRange` goes into the metadata.
    public func plan(_ windows: [WindowState<DataSketchesKit>], interner: StringInterner,
                     flush: Int, sourceRange: String, tag: String? = nil, lateFrom: Int? = nil,
                     combineBaseByHour: Bool = false) throws -> [PlannedFile] {
        try plan(windows, names: interner.strings, flush: flush, sourceRange: sourceRange, tag: tag, lateFrom: lateFrom,
                 combineBaseByHour: combineBaseByHour)
    }

    /// As above, with the interner's strings as a snapshot (so another
    /// thread can encode while the engine interns new values).
    ///
    /// `combineBaseByHour`: on-time windows of one hour directory flushed
    /// together (a daemon catching up flushes many per epoch) go into one
    /// file per table, named by the first window and holding each window's
    /// rows (`window_start` a column, metadata `videoqos.windows`), as late
    /// files do: a fraction of the files, and fewer compactions of the hour
    /// (docs/architecture.md "Compaction"). Off (`qos replay`, which flushes
    /// as windows become due), each on-time window gets its own files.
    public func plan(_ windows: [WindowState<DataSketchesKit>], names: [String],
                     flush: Int, sourceRange: String, tag: String? = nil, lateFrom: Int? = nil,
                     combineBaseByHour: Bool = false) throws -> [PlannedFile] {
        var out: [PlannedFile] = []
        let tag = tag ?? inputTag
        let base = windows.filter { !$0.isDelta }
        let baseGroups = combineBaseByHour ? byHour(base).map { ($0, $0[0].start) } : base.map { ([$0], $0.start) }
        for (group, nameStart) in baseGroups {
            out += try files(group, names: names, kind: "base", tag: tag, sourceRange: sourceRange, nameStart: nameStart)
        }
        // Late deltas: one file per table per hour directory, named by the hour.
        let kind = "late\(CivilTime.pad(min(lateFrom ?? flush, flush), 6))-\(CivilTime.pad(flush, 6))"
        for group in byHour(windows.filter(\.isDelta)) {
            let hour = group[0].start - floorMod(group[0].start, 3_600_000)
            out += try files(group, names: names, kind: kind, tag: tag, sourceRange: sourceRange, nameStart: hour)
        }
        return out
    }

    /// `windows` grouped by hour directory, the groups and each group's
    /// windows by start.
    func byHour(_ windows: [WindowState<DataSketchesKit>]) -> [[WindowState<DataSketchesKit>]] {
        let sorted = windows.sorted { $0.start < $1.start }
        let groups = Dictionary(grouping: sorted) { sink.directory(table: "", windowStartMs: $0.start) }
        return groups.values.sorted { $0[0].start < $1[0].start }
    }

    /// One file per table for `group` (windows of one hour directory, by
    /// start): every window's rows, in window order.
    func files(_ group: [WindowState<DataSketchesKit>], names: [String], kind: String, tag: String,
               sourceRange: String, nameStart: Int64) throws -> [PlannedFile] {
        var out: [PlannedFile] = []
        let first = group[0].start, last = group[group.count - 1].end
        let meta = { (table: String) in
            metadata(table: table, start: first, end: last, kind: kind, sourceRange: sourceRange, windows: group.count)
        }
        for t in MetricTable.allCases {
            let rows = group.flatMap { w in w.tables[t.rawValue].isEmpty ? [] : metricRows(w, t, names) }
            guard !rows.isEmpty else { continue }
            let cols = TableSchemas.metricColumns(t, DataSketchesKit.self)
            out.append(try file(t.name, first, kind, tag, cols, rows, meta(t.name), nameStart: nameStart))
        }
        var rows: [SessionRowAt] = []
        for w in group where !w.sessions.isEmpty {
            // Sort indices, not the (large) rows.
            let order = sessionOrder(w.sessions)
            let all = SessionRowAt.Rows(w.sessions, start: w.start, end: w.end)
            rows += order.map { SessionRowAt(all, index: $0) }
        }
        if !rows.isEmpty {
            out.append(try file("sessions", first, kind, tag, TableSchemas.sessionColumns(), rows, meta("sessions"),
                                nameStart: nameStart))
        }
        let edge = group.flatMap { w in
            w.cdnEdge.sortedSlots.map { CdnEdgeRow(start: w.start, end: w.end, key: w.cdnEdge.keys[$0], m: w.cdnEdge.metrics[$0]) }
        }
        if !edge.isEmpty {
            let t = TableSchemas.cdnEdgeTable
            out.append(try file(t, first, kind, tag, TableSchemas.cdnEdgeColumns(DataSketchesKit.self), edge, meta(t),
                                nameStart: nameStart))
        }
        return out
    }

    /// The order of a window's `sessions` rows in its file: by close
    /// instant, then session id (as `String`s compare).
    func sessionOrder(_ rows: SessionRows) -> [Int] {
        let p = rows.packed
        return p.indices.sorted { a, b in
            let (x, y) = (p[a].closeTs, p[b].closeTs)
            return x != y ? x < y : rows.sessionIdLess(a, b)
        }
    }

    func floorMod(_ a: Int64, _ m: Int64) -> Int64 { let r = a % m; return r >= 0 ? r : r + m }

    /// Encodes the reject rows that flush number `flush` took from the
    /// engine: one file per window of their `ingested_at` (so the file's
    /// `dt=/hour=` is the hour of its rows' `ingested_at` whenever the window
    /// divides an hour), rows in the order given, kind `flushNNNNNN`.
    public func planRejects(_ rows: [RejectRow], flush: Int, sourceRange: String,
                            tag: String? = nil) throws -> [PlannedFile] {
        var byStart: [Int64: [WindowedRow<RejectRow>]] = [:]
        for r in rows {
            let m = r.ingestedAt % windowMs
            let start = m >= 0 ? r.ingestedAt - m : r.ingestedAt - m - windowMs
            byStart[start, default: []].append(WindowedRow(start: start, end: start + windowMs, row: r))
        }
        let kind = "flush\(CivilTime.pad(flush, 6))"
        return try byStart.keys.sorted().map { start in
            let meta = metadata(table: "rejects", start: start, end: start + windowMs, kind: kind, sourceRange: sourceRange)
            return try file("rejects", start, kind, tag ?? inputTag, TableSchemas.rejectColumns(), byStart[start]!, meta)
        }
    }

    /// Publishes planned files, each atomically, in order; each directory
    /// is synced once, after its last file (`FileSink.publish(all:)`).
    public func publish(_ files: [PlannedFile]) throws {
        try sink.publish(all: files.map { (bytes: $0.bytes, dir: $0.dir, name: $0.name) })
    }

    func metricRows(_ w: WindowState<DataSketchesKit>, _ t: MetricTable,
                    _ names: [String]) -> [MetricRow<DataSketchesKit>] {
        let agg = w.tables[t.rawValue]
        let n = t.dimensions.count
        let dims = agg.keys.map { k in k.ids.prefix(n).map { names[Int($0)] } }
        let order = dims.indices.sorted { dims[$0].lexicographicallyPrecedes(dims[$1]) }
        return order.map { i in MetricRow(start: w.start, end: w.end, dims: dims[i], m: agg.metrics[i]) }
    }

    func file<R>(_ table: String, _ start: Int64, _ kind: String, _ tag: String,
                 _ cols: [OutputColumn<R>], _ rows: [R], _ meta: [(key: String, value: String)],
                 nameStart: Int64? = nil) throws -> PlannedFile {
        var opts = parquet
        opts.keyValueMetadata = meta
        let bytes = try OutputColumn.encode(cols, rows, options: opts)
        let name = "\(table)_\(CivilTime(epochMs: nameStart ?? start).compact)_\(windowMs / 1000)s_\(kind)_\(tag).parquet"
        return PlannedFile(table: table, dir: sink.directory(table: table, windowStartMs: start),
                           name: name, bytes: bytes, rows: rows.count, schema: cols.map(\.field), columns: [])
    }

    /// File metadata; a file of several windows (`windows` > 1: late deltas
    /// of an hour) names the first start and the last end and says how many.
    func metadata(table: String, start: Int64, end: Int64, kind: String,
                  sourceRange: String, windows: Int = 1) -> [(key: String, value: String)] {
        var m: [(key: String, value: String)] = [("videoqos.spec_version", WindowFileWriter.specVersion),
         ("videoqos.table", table),
         ("videoqos.window_start", CivilTime(epochMs: start).iso),
         ("videoqos.window_end", CivilTime(epochMs: end).iso),
         ("videoqos.window_ms", String(windowMs)),
         ("videoqos.kind", kind),
         ("videoqos.source", sourceRange)]
        if windows > 1 { m.append(("videoqos.windows", String(windows))) }
        return m + [("hll.type", "HLL_8"), ("hll.lg_k", "\(SketchParameters.hllLgK)"),
         ("ddsketch.relative_accuracy", SketchParameters.ddsketchRelativeAccuracyText), ("ddsketch.key", "ceil")]
    }
}

/// FNV-1a 64 of a string, as 8 hex digits (short, stable input tags).
public func shortHash(_ s: String) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    let hex = String(h & 0xFFFF_FFFF, radix: 16)
    return String(repeating: "0", count: 8 - hex.count) + hex
}
