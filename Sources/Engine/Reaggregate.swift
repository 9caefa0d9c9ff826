#if canImport(Glibc)
import Glibc
#endif
import Parquet
import QoSCore

/// `qos reaggregate`: rolls written partitions up to a coarser window and/or
/// fewer dimensions, or compacts a window's files (base + late deltas +
/// other writers) into one, in place.
///
/// Roll-up semantics (README, *Roll-ups*):
/// - every counter is summed and every sketch merged (HLL union, DDSketch
///   bin addition), then the derived columns are recomputed through
///   `TableSchemas`: the result is what the engine computes for the coarser
///   window, except `concurrent_plays` (a point sample: summed over the
///   files and dropped dimensions of one source window, then the max over
///   the source windows) and `late_events` (summed; it depends on when the
///   source windows were written, not only on the beacons);
/// - `sessions` and `rejects` rows are re-windowed by their own time
///   (`closed_at` / `ingested_at`, which lies in their source window).
///
/// Memory holds one output window's groups (metric tables) or rows
/// (`sessions`, `rejects`) plus one input file, whatever the input size:
/// a first pass checks every input file (nothing is written if one is
/// corrupt or from a newer schema), a second pass reads the files of one
/// output window at a time.
public struct ReaggregateOptions: Sendable {
    public var sink = "output"
    /// Tables to process.
    public var tables: [String] = []
    /// Output window; ignored by `compact`.
    public var grainMs: Int64 = 3_600_000
    /// Windows selected by start time (see `ReaggregateJob.range`).
    public var fromMs: Int64 = .min
    public var toMs: Int64 = .max
    /// Dimensions to keep (a subset of the table's); nil keeps all.
    public var dims: [String]?
    /// Output root (files go to `<out>/<table>/dt=…/hour=…/`); nil =
    /// `<sink>/rollup_<grain>`, or `<sink>/rollup_<grain>_by_<dims>` when
    /// dimensions are dropped.
    public var out: String?
    /// Compact each window's files in place instead of rolling up.
    public var compact = false
    /// Missing table directories are skipped instead of being an error.
    public var skipMissingTables = false
    public var zstdLevel = Defaults.zstdLevel
    public var progress = false
    /// After swapping a compacted directory in, wait this long before
    /// deleting the replaced files (readers still listing the old directory).
    public var graceSeconds = 1.0

    public init() {}

    /// `1h`, `10m`, `90s`, `500ms`.
    public static func grainName(_ ms: Int64) -> String {
        for (u, f) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where ms % f == 0 {
            return "\(ms / f)\(u)"
        }
        return "\(ms)ms"
    }

    /// The output root.
    public var outputRoot: String {
        if let out { return out }
        var root = "\(sink)/rollup_\(ReaggregateOptions.grainName(grainMs))"
        if let dims { root += "_by_" + (dims.isEmpty ? "none" : dims.joined(separator: "_")) }
        return root
    }
}

public struct ReaggregateSummary: Sendable {
    public var tables = 0
    public var filesRead = 0
    public var rowsIn = 0
    public var filesWritten = 0
    public var rowsOut = 0
    public var windowsOut = 0
    /// Compaction: files replaced by compacted files.
    public var filesReplaced = 0
    public var compact = false
    /// Compaction fell back to publish-then-unlink (no RENAME_EXCHANGE).
    public var fallbacks = 0
    public var outputRoot = ""
    public var seconds = 0.0
    /// Sums that stuck at Int64.max (`SaturationCounter`) while merging.
    public var saturatedValues: Int64 = 0

    public var text: String {
        let secs = (seconds * 100).rounded() / 100
        if compact {
            var s = "compacted \(windowsOut) windows in \(tables) tables: \(filesReplaced) files → \(filesWritten) files"
            s += " (\(rowsIn) rows → \(rowsOut) rows), \(filesRead) files read, in \(secs) s"
            if fallbacks > 0 { s += "\n\(fallbacks) directories compacted without an atomic directory swap (see --help)" }
            return s + saturationText
        }
        return "read \(filesRead) files (\(rowsIn) rows) from \(tables) tables, wrote \(filesWritten) files "
            + "(\(rowsOut) rows, \(windowsOut) windows) under \(outputRoot) in \(secs) s" + saturationText
    }

    /// As `qos replay`'s summary says it (Driver/Replay.swift).
    var saturationText: String {
        saturatedValues > 0 ? "\nsums saturated at Int64.max: \(saturatedValues) (see README \"Numeric safety\")" : ""
    }
}

/// Parses the `--from` / `--to` forms: epoch milliseconds, `2026-01-01`,
/// `2026-01-01T10:00Z`, `2026-01-01T10:00:00Z` (UTC; the `Z` is optional).
public enum UTCTime {
    public static func parse(_ s: String) -> Int64? {
        if let ms = Int64(s) { return ms }
        let b = Array(s.utf8)
        func num(_ r: Range<Int>) -> Int? {
            guard r.upperBound <= b.count, r.allSatisfy({ b[$0] >= 48 && b[$0] <= 57 }) else { return nil }
            return r.reduce(0) { $0 * 10 + Int(b[$1] - 48) }
        }
        guard b.count >= 10, let y = num(0..<4), b[4] == 45, let mo = num(5..<7), b[7] == 45, let d = num(8..<10),
              (1...12).contains(mo), (1...daysInMonth(y, mo)).contains(d) else { return nil }
        var rest = Array(b[10...])
        if rest.last == 90 || rest.last == 122 { rest.removeLast() }  // Z / z
        var h = 0, mi = 0, sec = 0
        if !rest.isEmpty {
            let t = String(decoding: rest, as: UTF8.self)
            guard t.first == "T" || t.first == "t" || t.first == " " else { return nil }
            let parts = t.dropFirst().split(separator: ":", omittingEmptySubsequences: false)
            guard (2...3).contains(parts.count), parts.allSatisfy({ $0.count == 2 }),
                  let hh = Int(parts[0]), let mm = Int(parts[1]), hh < 24, mm < 60 else { return nil }
            h = hh; mi = mm
            if parts.count == 3 { guard let ss = Int(parts[2]), ss < 60 else { return nil }; sec = ss }
        }
        return (daysFromCivil(y, mo, d) * 86_400 + Int64(h * 3600 + mi * 60 + sec)) * 1000
    }

    /// The first time `--from` / `--to` may name: beacons before it are
    /// rejected (README *Limits and guarantees*, `ts` ≥ 2000-01-01), so an
    /// earlier time is a mistake — typically epoch seconds read as
    /// milliseconds (1767272400 is 1970-01-21).
    public static let earliestMs: Int64 = 946_684_800_000

    /// Days of month `m` of year `y` (Gregorian): 2026-02-30 is not a date.
    static func daysInMonth(_ y: Int, _ m: Int) -> Int {
        switch m {
        case 2: return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// H. Hinnant's days_from_civil.
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int64 {
        let y = Int64(m <= 2 ? y0 - 1 : y0)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = Int64(m > 2 ? m - 3 : m + 9)
        let doy = (153 * mp + 2) / 5 + Int64(d) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

public final class ReaggregateJob {
    let options: ReaggregateOptions
    var summary = ReaggregateSummary()
    var lastProgress = 0.0
    let started = monotonicSeconds()
    var pendingCleanups: [PendingCleanup] = []

    public init(_ options: ReaggregateOptions) throws {
        self.options = options
        guard !options.tables.isEmpty else { throw UserError("no table given — use --table NAME or --all-tables") }
        for t in options.tables where !TableSchemas.tableNames.contains(t) {
            throw UserError("unknown table '\(t)' — one of \(TableSchemas.tableNames.joined(separator: ", "))")
        }
        guard options.compact || options.grainMs > 0 else { throw UserError("--grain must be > 0") }
        guard options.fromMs < options.toMs else { throw UserError("--from must be before --to") }
        for (flag, t, unset) in [("--from", options.fromMs, Int64.min), ("--to", options.toMs, Int64.max)] where t != unset {
            guard t >= UTCTime.earliestMs else {
                throw UserError("\(flag) \(t) is before 2000 — times are epoch milliseconds "
                                + "(epoch seconds? append 000) or a date such as 2026-01-01")
            }
        }
        guard options.compact || options.grainMs <= Self.maxGrainMs else {
            throw UserError("--grain \(ReaggregateOptions.grainName(options.grainMs)) is longer than 366 days — choose at most 366d")
        }
        guard (0...Defaults.zstdLevelMax).contains(options.zstdLevel) else {
            throw UserError("--zstd-level must be 0 (uncompressed) to \(Defaults.zstdLevelMax)")
        }
        if !options.compact { try Self.checkOutputRoot(options) }
        if let dims = options.dims {
            guard !options.compact else { throw UserError("--compact keeps every dimension: drop --dims") }
            for t in options.tables {
                if t == TableSchemas.cdnEdgeTable {
                    for d in dims where !CdnEdgeKey.dimensions.contains(d) {
                        throw UserError("'\(d)' is not a dimension of \(t) (its dimensions: \(CdnEdgeKey.dimensions.joined(separator: ", ")))")
                    }
                    continue
                }
                guard let mt = MetricTable.allCases.first(where: { $0.name == t }) else {
                    throw UserError("--dims applies to the grouped tables, not to '\(t)'")
                }
                for d in dims where !mt.dimensions.contains(d) {
                    throw UserError("'\(d)' is not a dimension of \(t) (its dimensions: \(mt.dimensions.isEmpty ? "none" : mt.dimensions.joined(separator: ", ")))")
                }
            }
        }
    }

    /// The longest `--grain`: a window must end at a time every reader can
    /// hold (a longer one saturated `window_end` at Int64.max µs).
    public static let maxGrainMs: Int64 = 366 * 86_400_000

    /// The window starts a table's input files must have: for a roll-up,
    /// every source window of the output windows overlapping [from, to);
    /// for compaction, the windows starting in [from, to).
    var range: (lo: Int64, hi: Int64) {
        if options.compact { return (options.fromMs, options.toMs) }
        let g = options.grainMs
        let lo = options.fromMs == .min ? Int64.min : floorDiv(options.fromMs, g) * g
        let hi = options.toMs == .max || options.toMs > Int64.max - g ? Int64.max : (floorDiv(options.toMs - 1, g) + 1) * g
        return (lo, hi)
    }

    func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }

    /// Candidate files of a table: Hive hour directories outside the range are skipped.
    func candidates(_ table: String) throws -> [String] {
        let dir = "\(options.sink)/\(table)"
        guard Inspector.isDirectory(dir) else {
            if access(dir, F_OK) == 0 {
                throw UserError("'\(dir)' is not a directory — a sink's table is a directory of dt=…/hour=… directories; move the entry away")
            }
            if options.skipMissingTables { return [] }
            throw UserError("no table directory '\(dir)' — check --sink and --table")
        }
        let (lo, hi) = range
        return try Inspector.tableFiles(under: dir).filter { path in
            guard let h = hourStart(path) else { return true }
            return h < hi && h + 3_600_000 > lo
        }
    }

    /// The start of the `dt=…/hour=…` directory holding `path`.
    func hourStart(_ path: String) -> Int64? {
        let parts = path.split(separator: "/")
        guard parts.count >= 3, parts[parts.count - 3].hasPrefix("dt="), parts[parts.count - 2].hasPrefix("hour="),
              let day = UTCTime.parse(String(parts[parts.count - 3].dropFirst(3))),
              let h = Int64(parts[parts.count - 2].dropFirst(5)) else { return nil }
        return day + h * 3_600_000
    }

    /// The sink must be a directory: a typo, or a file, read as an empty
    /// sink and "read 0 files … from 0 tables" with exit 0.
    func checkSink() throws {
        var st = stat()
        guard stat(options.sink, &st) == 0 else {
            throw UserError("no sink directory '\(options.sink)': \(String(cString: strerror(errno))) — check --sink")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw UserError("--sink '\(options.sink)' is not a directory — give the directory qos replay or qos run writes")
        }
    }

    public func run() throws -> ReaggregateSummary {
        try checkSink()
        // A compaction runs alone on its sink: no daemon publishes into an hour it swaps (`SinkLock`).
        let sinkLock = options.compact && Inspector.isDirectory(options.sink)
            ? try SinkLock(sinkRoot: options.sink, for: .compaction) : nil
        defer { withExtendedLifetime(sinkLock) {} }
        // Alone on the sink now: whatever a killed compaction left is ours to finish.
        if options.compact { try recoverLeftovers() }
        summary.compact = options.compact
        summary.outputRoot = options.outputRoot
        let saturatedBefore = SaturationCounter.total
        // Pass 1: check every input file before anything is written.
        var inputs: [(String, [TableReader.FileInfo])] = []
        let (lo, hi) = range
        for t in options.tables {
            let paths = try candidates(t)
            var infos: [TableReader.FileInfo] = []
            for (i, p) in paths.enumerated() {
                progress("checking \(t): \(i + 1)/\(paths.count) files")
                let info = try TableReader.check(p, table: t)
                guard info.rows > 0, info.windowStarts.contains(where: { $0 >= lo && $0 < hi }) else { continue }
                if !options.compact {
                    let w = info.windowMs
                    guard options.grainMs % w == 0 else {
                        throw UserError("--grain \(ReaggregateOptions.grainName(options.grainMs)) is not a multiple of the "
                            + "\(ReaggregateOptions.grainName(w)) window of '\(p)' — choose a multiple of the source window")
                    }
                    if let dims = options.dims, let missing = dims.first(where: { !info.dims.contains($0) }) {
                        throw UserError("'\(p)' has no '\(missing)' column (it is a roll-up without it) — choose dimensions it has")
                    }
                }
                infos.append(info)
            }
            if Inspector.isDirectory("\(options.sink)/\(t)") { summary.tables += 1 }
            inputs.append((t, infos))
        }
        guard summary.tables > 0 else {
            throw UserError("'\(options.sink)' holds none of the tables \(options.tables.joined(separator: ", ")) — check --sink")
        }
        // Pass 2: one output window at a time.
        do {
            for (t, infos) in inputs {
                if options.compact { try compactTable(t, infos) } else { try rollUpTable(t, infos) }
            }
        } catch {
            if options.compact { try? finishCompaction() }  // what was swapped in stays; delete what it replaced
            throw error
        }
        if options.compact { try finishCompaction() }
        if options.progress { writeStderr("\r\u{1B}[K") }
        summary.seconds = monotonicSeconds() - started
        summary.saturatedValues = SaturationCounter.total - saturatedBefore
        return summary
    }

    func progress(_ s: @autoclosure () -> String) {
        guard options.progress else { return }
        let t = monotonicSeconds()
        guard t - lastProgress >= 0.25 else { return }
        lastProgress = t
        writeStderr("\r\u{1B}[K" + s())
    }

    /// Files of one window in a stable order: by window, base before late
    /// deltas (in flush order) before others, then by path.
    static func ordered(_ infos: [TableReader.FileInfo]) -> [TableReader.FileInfo] {
        func rank(_ k: String) -> Int { k == "base" ? 0 : k.hasPrefix("late") ? 1 : 2 }
        return infos.sorted {
            ($0.windowStart, $0.windowEnd, rank($0.kind), $0.kind, $0.path) < ($1.windowStart, $1.windowEnd, rank($1.kind), $1.kind, $1.path)
        }
    }

    // MARK: - Roll-up

    func rollUpTable(_ table: String, _ infos: [TableReader.FileInfo]) throws {
        let g = options.grainMs
        // A file of several windows (late deltas or a compaction of an hour)
        // goes to every output window its rows fall in; the merge keeps each one's rows.
        var byWindow: [Int64: [TableReader.FileInfo]] = [:]
        let (lo, hi) = range
        for info in infos {
            for start in Set(info.windowStarts.filter { $0 >= lo && $0 < hi }.map { floorDiv($0, g) * g }) {
                byWindow[start, default: []].append(info)
            }
        }
        let sink = FileSink(root: options.outputRoot)
        for (n, start) in byWindow.keys.sorted().enumerated() {
            progress("\(table): window \(n + 1)/\(byWindow.count), \(summary.filesRead) files read")
            let files = ReaggregateJob.ordered(byWindow[start]!)
            let w = Window(start: start, end: start + g, ms: g)
            let source = "reaggregate of \(files.count) files: \(basename(files.first!.path))..\(basename(files.last!.path))"
            let planned: (bytes: [UInt8], rows: Int)
            if let mt = MetricTable.allCases.first(where: { $0.name == table }) {
                let keep = options.dims ?? mt.dimensions.filter { d in files.allSatisfy { $0.dims.contains(d) } }
                planned = try mergeMetricFiles(mt, files, window: w, keep: keep, kind: "rollup", source: source)
            } else if table == TableSchemas.cdnEdgeTable {
                let keep = options.dims ?? CdnEdgeKey.dimensions.filter { d in files.allSatisfy { $0.dims.contains(d) } }
                planned = try mergeCdnEdgeFiles(files, window: w, keep: keep, kind: "rollup", source: source)
            } else {
                planned = try mergeRowFiles(table, files, window: w, kind: "rollup", source: source)
            }
            let name = "\(table)_\(CivilTime(epochMs: start).compact)_\(g / 1000)s_rollup.parquet"
            try sink.publish(planned.bytes, dir: sink.directory(table: table, windowStartMs: start), name: name)
            summary.filesWritten += 1
            summary.rowsOut += planned.rows
            summary.windowsOut += 1
        }
    }

    struct Window { var start: Int64, end: Int64, ms: Int64 }

    func parquetOptions(_ meta: [(key: String, value: String)]) -> ParquetWriterOptions {
        var o = ParquetWriterOptions()
        o.compression = options.zstdLevel > 0 ? .zstd(level: options.zstdLevel) : .uncompressed
        o.keyValueMetadata = meta
        return o
    }

    func metadata(_ table: String, _ w: Window, kind: String, source: String, dims: [String]?) -> [(key: String, value: String)] {
        var m: [(key: String, value: String)] = [
            ("videoqos.spec_version", WindowFileWriter.specVersion),
            ("videoqos.table", table),
            ("videoqos.window_start", CivilTime(epochMs: w.start).iso),
            ("videoqos.window_end", CivilTime(epochMs: w.end).iso),
            ("videoqos.window_ms", String(w.ms)),
            ("videoqos.kind", kind),
            ("videoqos.source", source)]
        if let dims { m.append(("videoqos.dimensions", dims.joined(separator: ","))) }
        return m + [("hll.type", "HLL_8"), ("hll.lg_k", "\(SketchParameters.hllLgK)"),
                    ("ddsketch.relative_accuracy", SketchParameters.ddsketchRelativeAccuracyText), ("ddsketch.key", "ceil")]
    }

    /// Merges metric-table files into one output window's groups and encodes them.
    func mergeMetricFiles(_ table: MetricTable, _ files: [TableReader.FileInfo], window w: Window,
                          keep: [String], kind: String, source: String) throws -> (bytes: [UInt8], rows: Int) {
        let keepIdx = keep.compactMap { table.dimensions.firstIndex(of: $0) }
        var groups = GroupMerger(dimCount: table.dimensions.count, keep: keepIdx)
        var all: [MetricRow<DataSketchesKit>] = []
        for f in files {
            let (_, rows) = try TableReader.readMetricFile(f.path, table: table)
            summary.filesRead += 1
            let mine = rows.filter { $0.start >= w.start && $0.start < w.end }
            summary.rowsIn += mine.count
            all += mine
        }
        // Source windows in order (stable: files keep their order within
        // one): `concurrent_plays` is summed within one and max'ed across.
        let order = all.indices.sorted { (all[$0].start, $0) < (all[$1].start, $1) }
        for i in order { groups.add(all[i], generation: Int(truncatingIfNeeded: all[i].start)) }
        let rows = groups.rows(start: w.start, end: w.end)
        let cols = TableReader.metricColumns(table, keeping: keep)
        let bytes = try OutputColumn.encode(cols, rows,
                                     options: parquetOptions(metadata(table.name, w, kind: kind, source: source, dims: keep)))
        return (bytes, rows.count)
    }

    /// Merges `cdn_edge` files into one output window's groups (counters
    /// summed, sketches merged) and encodes them, rows in dimension order.
    func mergeCdnEdgeFiles(_ files: [TableReader.FileInfo], window w: Window, keep: [String],
                           kind: String, source: String) throws -> (bytes: [UInt8], rows: Int) {
        let keepIdx = keep.compactMap { CdnEdgeKey.dimensions.firstIndex(of: $0) }
        var groups: [[String]: CdnEdgeMetrics<DataSketchesKit>] = [:]
        for f in files {
            let (_, rows) = try TableReader.readCdnEdgeFile(f.path)
            summary.filesRead += 1
            // Only the rows of `w` (a file of an hour holds several windows).
            let mine = rows.filter { $0.start >= w.start && $0.start < w.end }
            summary.rowsIn += mine.count
            for r in mine {
                let values = r.key.values
                var key = [String](repeating: "", count: values.count)
                for i in keepIdx { key[i] = values[i] }
                groups[key, default: CdnEdgeMetrics()].merge(r.m)
            }
        }
        let rows = groups.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { k in
            CdnEdgeRow(start: w.start, end: w.end, key: CdnEdgeKey(cdn: k[0], account: k[1], owner: k[2], pop: k[3]), m: groups[k]!)
        }
        let cols = TableReader.cdnEdgeColumns(keeping: keep)
        let table = TableSchemas.cdnEdgeTable
        let bytes = try OutputColumn.encode(cols, rows,
                                     options: parquetOptions(metadata(table, w, kind: kind, source: source, dims: keep)))
        return (bytes, rows.count)
    }

    /// Concatenates `sessions` / `rejects` files, re-windowed into `w`,
    /// ordered as the engine orders a window's rows (sessions by closed_at
    /// and session_id, rejects by ingested_at, then input order); one column
    /// at a time (`RowTableMerge`), so a day's sessions are not decoded at once.
    func mergeRowFiles(_ table: String, _ files: [TableReader.FileInfo], window w: Window,
                       kind: String, source: String) throws -> (bytes: [UInt8], rows: Int) {
        let meta = metadata(table, w, kind: kind, source: source, dims: nil)
        // Only the rows of `w` (a file of an hour holds several windows);
        // each row's time lies in its source window, hence in `w`.
        let r = try RowTableMerge.merge(table: table, paths: files.map(\.path), window: w.start..<w.end,
                                        rewindow: (w.start, w.end), options: parquetOptions([])) { _, _ in meta }
        summary.filesRead += files.count
        summary.rowsIn += r.rows
        return (r.bytes, r.rows)
    }
}

/// The groups of one output window: dimension values → merged state, with
/// `concurrent_plays` summed within a source window (generation) and
/// max'ed across source windows.
struct GroupMerger {
    let dimCount: Int
    let keep: [Int]
    var index: [[String]: Int] = [:]
    var keys: [[String]] = []
    var metrics: [GroupMetrics<DataSketchesKit>] = []
    var concMax: [Int64] = []
    var concCur: [Int64] = []
    var concGen: [Int] = []

    init(dimCount: Int, keep: [Int]) {
        self.dimCount = dimCount
        self.keep = keep
    }

    mutating func add(_ r: MetricRow<DataSketchesKit>, generation: Int) {
        let key = keep.map { r.dims[$0] }
        let i: Int
        if let j = index[key] { i = j } else {
            i = keys.count
            index[key] = i
            keys.append(key)
            metrics.append(GroupMetrics())
            concMax.append(0); concCur.append(0); concGen.append(generation)
        }
        var m = r.m
        let c = m.concurrentPlays
        m.concurrentPlays = 0
        metrics[i].merge(m)
        if concGen[i] != generation {
            concMax[i] = max(concMax[i], concCur[i])
            concCur[i] = 0
            concGen[i] = generation
        }
        concCur[i] +|= c
    }

    /// The output rows, sorted by dimensions (as the engine writes them).
    func rows(start: Int64, end: Int64) -> [MetricRow<DataSketchesKit>] {
        keys.indices.map { i -> MetricRow<DataSketchesKit> in
            var dims = [String](repeating: "", count: dimCount)
            for (k, d) in keep.enumerated() { dims[d] = keys[i][k] }
            var m = metrics[i]
            m.concurrentPlays = max(concMax[i], concCur[i])
            return MetricRow(start: start, end: end, dims: dims, m: m)
        }.sorted { a, b in keep.map { a.dims[$0] }.lexicographicallyPrecedes(keep.map { b.dims[$0] }) }
    }
}
