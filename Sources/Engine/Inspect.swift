#if canImport(Glibc)
import Glibc
#endif
import Parquet
import QoSCore
import Sketches

/// `qos inspect`: a file's schema, row groups and first rows, or a KPI
/// summary of a table directory (all its files merged).
public enum Inspector {
    /// The bytes of any file (a configuration, `/proc` text, a pipe such as
    /// `--config <(…)`). A table's files are read with `readRegularFile`.
    /// `atMost`: more bytes than this is an error (a path such as
    /// `/dev/zero` given for a small file would otherwise fill memory; a
    /// pipe, e.g. `--config <(…)`, is read like a file).
    public static func readFile(_ path: String, atMost limit: Int = .max) throws -> [UInt8] {
        let fd = Glibc.open(path, O_RDONLY)
        guard fd >= 0 else { throw UserError("cannot open '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { throw UserError("cannot read '\(path)': \(String(cString: strerror(errno)))") }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
            if out.count > limit { throw UserError("'\(path)' is larger than \(limit) bytes") }
        }
    }

    /// The bytes of a table's file, which must be a regular file (after
    /// symbolic links): a FIFO would block the reader forever and
    /// `/dev/zero` or `/dev/urandom` would fill memory. Checked by `stat`
    /// before opening (opening a FIFO blocks, opening a device may act),
    /// then opened non-blocking and checked again with `fstat` (the entry
    /// may have changed in between); at most the size `fstat` saw is read.
    public static func readRegularFile(_ path: String) throws -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw UserError("cannot open '\(path)': \(String(cString: strerror(errno)))") }
        try requireRegular(st, path)
        let fd = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw UserError("cannot open '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fstat(fd, &st) == 0 else { throw UserError("cannot stat '\(path)': \(String(cString: strerror(errno)))") }
        try requireRegular(st, path)
        let size = Int(st.st_size)
        var out = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, size - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw UserError("cannot read '\(path)': \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }  // truncated meanwhile: the Parquet checks report it
            done += n
        }
        if done < size { out.removeSubrange(done...) }
        return out
    }

    static func requireRegular(_ st: stat, _ path: String) throws {
        let kind: String
        switch st.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: kind = "a directory"
        case S_IFIFO: kind = "a FIFO"
        case S_IFCHR: kind = "a character device"
        case S_IFBLK: kind = "a block device"
        case S_IFSOCK: kind = "a socket"
        default: kind = "not a regular file"
        }
        throw UserError("'\(path)' is \(kind), not a regular file — a table holds only the files qos wrote; move it out of the table directory")
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Every visible `.parquet` file under `dir` (skipping `.` and `_` names),
    /// sorted; a directory it cannot list is skipped. Whatever reports
    /// numbers uses `tableFiles`, which refuses to skip.
    public static func parquetFiles(under dir: String) -> [String] {
        var out: [String] = []
        for name in CheckpointStore.listFiles(dir) where !name.hasPrefix("_") {  // listFiles skips dot names
            let path = "\(dir)/\(name)"
            if isDirectory(path) { out += parquetFiles(under: path) } else if name.hasSuffix(".parquet") { out.append(path) }
        }
        return out.sorted()
    }

    /// Directory levels `tableFiles` descends (a table has two: `dt=…/hour=…`).
    static let maxDepth = 8

    /// Every visible `.parquet` entry under `dir` (skipping `.` and `_`
    /// names), sorted. A directory that cannot be listed (permissions, I/O)
    /// is an error naming it: skipping it would leave its hour out of every
    /// sum without a word. A missing `dir` has no files.
    public static func tableFiles(under dir: String) throws -> [String] {
        guard access(dir, F_OK) == 0 else { return [] }
        return try tableFiles(dir, depth: 0).sorted()
    }

    static func tableFiles(_ dir: String, depth: Int) throws -> [String] {
        guard depth <= maxDepth else {
            throw UserError("'\(dir)' lies more than \(maxDepth) directories deep in the table (a symbolic link loop?) — move it out")
        }
        var out: [String] = []
        for name in try listDirectory(dir) where !name.hasPrefix("_") && !name.hasPrefix(".") {
            let path = "\(dir)/\(name)"
            if isDirectory(path) { out += try tableFiles(path, depth: depth + 1) } else if name.hasSuffix(".parquet") { out.append(path) }
        }
        return out
    }

    /// The names in `dir` (`.` and `..` excluded), sorted; an error naming
    /// `dir` when it cannot be listed.
    public static func listDirectory(_ dir: String) throws -> [String] {
        guard let d = opendir(dir) else {
            throw UserError("cannot list directory '\(dir)': \(String(cString: strerror(errno))) — its files would be "
                            + "left out; fix its permissions or run as its owner")
        }
        defer { closedir(d) }
        var out: [String] = []
        while true {
            errno = 0
            guard let e = readdir(d) else {
                if errno != 0 { throw UserError("cannot list directory '\(dir)': \(String(cString: strerror(errno)))") }
                break
            }
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { out.append(name) }
        }
        return out.sorted()
    }

    static func openReader(_ path: String) throws -> ParquetFileReader {
        do { return try ParquetFileReader(bytes: readRegularFile(path)) } catch let e as ParquetError {
            throw UserError("'\(path)' is not a readable Parquet file: \(e.description)")
        }
    }

    /// Schema, metadata, row groups and the first `rows` rows of one file.
    public static func describeFile(_ path: String, rows: Int) throws -> String {
        let r = try openReader(path)
        var s = "file: \(path)\nrows: \(r.numRows), row groups: \(r.rowGroups.count), created by: \(r.createdBy ?? "?")\n"
        s += "schema:\n"
        for f in r.schema {
            s += "  \(f.name): \(f.physical)\(f.logical == .none ? "" : " (\(f.logical))")\(f.optional ? " nullable" : "")\n"
        }
        s += "metadata:\n" + r.keyValueMetadata.map { "  \($0.key) = \($0.value)\n" }.joined()
        for (i, g) in r.rowGroups.enumerated() { s += "row group \(i): \(g.numRows) rows, \(g.totalByteSize) bytes\n" }
        let n = min(rows, r.numRows)
        // No rows asked: the footer alone is read (an s3:// file is then fetched by ranged GETs).
        let columns = n == 0 ? [] : try r.schema.map { try TableReader.column(r, $0.name, path) }  // errors name the file
        if n > 0 { s += "first \(n) rows:\n" }
        for row in 0..<n {
            let cells = zip(r.schema, columns).map { f, c in "\(f.name)=\(cell(c, row, f))" }
            s += "  " + cells.joined(separator: " ") + "\n"
        }
        return s
    }

    static func cell(_ c: ParquetColumnData, _ i: Int, _ f: ParquetField) -> String {
        switch c {
        case .boolean(let v): return v[i].map { String($0) } ?? "null"
        case .int32(let v): return v[i].map { String($0) } ?? "null"
        case .int64(let v):
            guard let x = v[i] else { return "null" }
            return f.logical == .timestampMicrosUTC ? CivilTime(epochMs: x / 1000).iso : String(x)
        case .double(let v): return v[i].map { String($0) } ?? "null"
        case .byteArray(let v):
            guard let b = v[i] else { return "null" }
            return f.logical == .string ? String(decoding: b, as: UTF8.self) : "<\(b.count) bytes>"
        }
    }

    // MARK: - Table summary

    /// KPIs of one table's directory (or a `dt=…` / `hour=…` directory in
    /// it): every file read and checked as `qos reaggregate` reads it (a
    /// file of another table or schema, a newer `videoqos.spec_version`, a
    /// corrupt page or sketch, a negative counter is a one-line error
    /// naming the file), counters summed (saturating at Int64.max, said in
    /// the text), sketches merged. A sink (or roll-up) root, or a directory
    /// holding several tables' files, is refused: their sum would mean
    /// nothing (README *Commands*, `qos inspect`).
    public static func summarizeDirectory(_ dir: String) throws -> String {
        try refuseSeveralTables(dir)
        let files = try tableFiles(under: dir)
        let table = try tableOfDirectory(dir, files: files)
        guard !files.isEmpty else { throw UserError("no .parquet files under '\(dir)'") }
        var s = TableSummary(table: table)
        for path in files { try s.add(path) }
        return s.text(dir, files: files.count)
    }

    /// The table whose files `dir` holds: named by the directory's path
    /// (`…/overall/dt=…`), else by the files' `videoqos.table` (a copy of a
    /// table's directory under another name).
    static func tableOfDirectory(_ dir: String, files: [String]) throws -> String {
        // `<table>`, `<table>/dt=…` or `<table>/dt=…/hour=…`.
        let named = ReaggregateJob.resolvedPath(dir).split(separator: "/").map(String.init)
            .reversed().first { !$0.hasPrefix("dt=") && !$0.hasPrefix("hour=") }
        if let named, TableSchemas.schemaTables.contains(named) { return named }
        var found: [String: String] = [:]  // table → first file
        for path in files {
            let t = try openReader(path).metadataValue(forKey: "videoqos.table")
            guard let t else { continue }  // refused by `TableReader.open` below
            if found[t] == nil { found[t] = path }
        }
        guard found.count <= 1 else {
            throw UserError("'\(dir)' holds files of several tables (" + found.keys.sorted().map { "\($0): '\(found[$0]!)'" }
                .joined(separator: ", ") + ") — inspect one table's directory")
        }
        guard let t = found.keys.first else {
            throw UserError("'\(dir)' is not a table directory (no file says which table it belongs to) — inspect a table directory such as <sink>/overall")
        }
        guard TableSchemas.schemaTables.contains(t) else {
            throw UserError("'\(found[t]!)' belongs to an unknown table '\(t)' — this qos reads \(TableSchemas.schemaTables.joined(separator: ", "))")
        }
        return t
    }

    /// A sink or roll-up root holds tables: their sum means nothing.
    static func refuseSeveralTables(_ dir: String) throws {
        let tables = try listDirectory(dir).filter { TableSchemas.schemaTables.contains($0) && isDirectory("\(dir)/\($0)") }
        let trimmed = dir.hasSuffix("/") && dir.count > 1 ? String(dir.dropLast()) : dir
        if !tables.isEmpty {
            throw UserError("'\(dir)' is not a table directory: it holds the table\(tables.count == 1 ? "" : "s") "
                            + "\(tables.joined(separator: ", ")) (a sink or roll-up root) — inspect one table, e.g. qos inspect \(trimmed)/\(tables.contains("overall") ? "overall" : tables[0])")
        }
    }

    static func format2(_ x: Double) -> String {
        let r = (x * 100).rounded() / 100
        return String(r)
    }

    /// A duration in whole ms, or the number as is when it is beyond Int64.
    static func ms(_ x: Double?) -> String {
        guard let x else { return "n/a" }
        return abs(x) < 9e18 ? "\(Int(x)) ms" : "\(x) ms"
    }
}

/// The running sums of one table's files for `Inspector.summarizeDirectory`.
struct TableSummary {
    let table: String
    var rows = 0
    /// Column → sum, saturating; `saturated` names the sums that stuck.
    var sums: [String: Int64] = [:]
    var saturated = Set<String>()
    var viewers = HLLSketch(lgK: SketchParameters.hllLgK)
    var startup = DDSketch(relativeAccuracy: SketchParameters.ddsketchRelativeAccuracy)
    var clients = HLLSketch(lgK: SketchParameters.hllLgK)
    var serve = DDSketch(relativeAccuracy: SketchParameters.ddsketchRelativeAccuracy)
    /// (window start, length) → files holding rows of it.
    var filesPerWindow: [WindowID: Int] = [:]
    var filesPerHour: [String: Int] = [:]

    struct WindowID: Hashable { var start: Int64, ms: Int64 }

    init(table: String) { self.table = table }

    mutating func add(_ name: String, _ x: Int64) {
        let (r, o) = sums[name, default: 0].addingReportingOverflow(x)
        if o {
            sums[name] = x < 0 ? .min : .max
            saturated.insert(name)
        } else if !saturated.contains(name) {
            sums[name] = r
        }
    }

    mutating func add(_ path: String) throws {
        let info: TableReader.FileInfo
        if let mt = MetricTable.allCases.first(where: { $0.name == table }) {
            let (i, rows) = try TableReader.readMetricFile(path, table: mt)
            info = i
            let present = Set(TableReader.metricColumns(mt, keeping: i.dims).map(\.field.name))
            let columns = TableReader.additiveColumns.filter { present.contains($0.name) }
            for r in rows {
                for (name, kp) in columns { add(name, r.m[keyPath: kp]) }
                viewers.merge(r.m.viewers.hll)
                startup.merge(r.m.startupSketch.sketch)
            }
        } else if table == TableSchemas.cdnEdgeTable {
            let (i, rows) = try TableReader.readCdnEdgeFile(path)
            info = i
            let names = CdnEdgeMetrics<DataSketchesKit>.counterColumns
            for r in rows {
                var m = r.m
                var values: [Int64] = []
                m.visitCounters { values.append($0) }
                for (name, v) in zip(names, values) { add(name, v) }
                clients.merge(r.m.clients.hll)
                serve.merge(r.m.serveSketch.sketch)
            }
        } else {
            let f = try TableReader.readRowFile(path, table: table)
            info = f.info
            for (field, c) in zip(f.schema, f.columns) where field.physical == .int64 && field.logical == .none {
                guard case .int64(let v) = c else { continue }
                for x in v { add(field.name, x ?? 0) }
            }
        }
        rows += info.rows
        for start in info.windowStarts { filesPerWindow[WindowID(start: start, ms: info.windowMs), default: 0] += 1 }
        let parts = path.split(separator: "/")
        if parts.count >= 3, parts[parts.count - 3].hasPrefix("dt="), parts[parts.count - 2].hasPrefix("hour=") {
            filesPerHour["\(parts[parts.count - 3])/\(parts[parts.count - 2])", default: 0] += 1
        }
    }

    func text(_ dir: String, files: Int) -> String {
        var out = "\(dir): \(files) files, \(rows) rows, \(filesPerWindow.count) windows\n"
        if table == TableSchemas.cdnEdgeTable { out += cdnEdgeText() } else if sums["views"] != nil || MetricTable.allCases.contains(where: { $0.name == table }) {
            out += kpiText()
        } else {
            out += sums.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value)\n" }.joined()
        }
        if !saturated.isEmpty {
            out += "  sums saturated at Int64.max (the true sum is larger): \(saturated.sorted().joined(separator: ", ")) "
                + "(see README \"Numeric safety\")\n"
        }
        return out + layoutText()
    }

    func pct(_ a: Int64, _ b: Int64) -> String {
        b > 0 ? Inspector.format2(100 * Double(a) / Double(b)) + " %" : "n/a"
    }

    /// The sum of two sums, saturating (a ratio's denominator).
    func plus(_ a: Int64, _ b: Int64) -> Int64 {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? (b < 0 ? .min : .max) : r
    }

    func cdnEdgeText() -> String {
        let s = sums
        let req = s["requests", default: 0]
        var out = "  CDN requests \(req), unique clients ≈ \(Int(clients.estimate.rounded())), bytes out \(s["bytes_out", default: 0])\n"
        out += "  http errors (> 299) \(pct(s["http_errors", default: 0], req)), 4xx \(s["http_4xx", default: 0]), "
        out += "5xx \(s["http_5xx", default: 0]), slow \(pct(s["slow_responses", default: 0], req))\n"
        out += "  cache hits \(pct(s["cache_hits", default: 0], req)), misses \(pct(s["cache_misses", default: 0], req)), "
        out += "incomplete \(s["incomplete_responses", default: 0])\n"
        out += "  serve p50 \(serve.quantile(0.5).map { "\(Inspector.format2($0)) ms" } ?? "n/a"), "
        out += "p95 \(serve.quantile(0.95).map { "\(Inspector.format2($0)) ms" } ?? "n/a")\n"
        return out
    }

    func kpiText() -> String {
        let s = sums
        let v = s["views", default: 0], p = s["plays", default: 0]
        var out = "  views \(v), unique viewers ≈ \(Int(viewers.estimate.rounded())), plays \(p)\n"
        out += "  startup p50 \(Inspector.ms(startup.quantile(0.5))), p95 \(Inspector.ms(startup.quantile(0.95)))\n"
        let play = s["playing_ms", default: 0], reb = s["rebuffer_ms", default: 0]
        out += "  rebuffer ratio \(pct(reb, plus(play, reb))), VSF \(pct(s["vsf", default: 0], v)), "
        out += "EBVS \(pct(s["ebvs", default: 0], v)), VPF \(pct(s["vpf", default: 0], p))\n"
        out += "  sessions ended \(s["sessions_ended", default: 0]), completed \(s["completed", default: 0]), "
        out += "late events \(s["late_events", default: 0]), duplicates \(s["duplicates", default: 0])\n"
        if let req = s["requests"] {
            out += "  segment requests \(req), failed \(pct(s["failed_requests", default: 0], req)), "
            out += "cache hits \(pct(s["cache_hits", default: 0], req))\n"
        }
        return out
    }

    /// How many files hold each window and each hour directory (README "Late
    /// data and compaction": a compacted hour has one file per window), and
    /// the window lengths when there are several.
    func layoutText() -> String {
        var out = ""
        var lengths: [Int64: Int] = [:]
        for w in filesPerWindow.keys { lengths[w.ms, default: 0] += 1 }
        if lengths.count > 1 {
            out += "  window lengths: " + lengths.sorted { $0.key < $1.key }
                .map { "\(ReaggregateOptions.grainName($0.key)) (\($0.value) window\($0.value == 1 ? "" : "s"))" }
                .joined(separator: ", ") + " — windows of different lengths overlap: a sum over every file counts their time twice\n"
        }
        var byCount: [Int: Int] = [:]
        for n in filesPerWindow.values { byCount[n, default: 0] += 1 }
        out += "  files per window: " + byCount.sorted { $0.key < $1.key }
            .map { "\($0.value) window\($0.value == 1 ? "" : "s") in \($0.key) file\($0.key == 1 ? "" : "s")" }.joined(separator: ", ") + "\n"
        out += "  files per hour directory:\n"
        out += filesPerHour.sorted { $0.key < $1.key }.map { "    \($0.key): \($0.value)\n" }.joined()
        return out
    }
}
