#if canImport(Glibc)
import Glibc
#endif
import Parquet
import QoSCore

/// When the daemon compacts an hour directory of a table (README "Late data
/// and compaction").
public struct CompactionPolicy: Sendable, Equatable {
    /// Files a table's hour directory may hold: an epoch that would publish
    /// past it compacts the directory first (`compact_files`).
    public var maxFiles = Defaults.compactFiles
    /// An hour closed this long (event time: the watermark past its end)
    /// is compacted to one file (`compact_after`).
    public var afterMs = Defaults.compactAfterMs
    /// A lease older than this is taken over (its holder is presumed dead).
    public var leaseMs: Int64 = 600_000
    /// Replaced files stay this long (wall clock) for readers holding an older listing.
    public var graceMs: Int64 = 30_000
    public init() {}
}

/// Compaction inside the daemon (docs/architecture.md, "Compaction"): every
/// Parquet file of one table's `dt=…/hour=…` directory becomes one file
/// holding every window of the hour (`window_start` a column; kind
/// `compact`), swapped in with the whole directory in one
/// `renameat2(RENAME_EXCHANGE)`, so a reader lists either every old file or
/// the compacted one, never both and never neither.
///
/// Steps for one directory, each durable before the next:
///   1. take the directory's lease `<sink>/_qos/compact/<table>~<dt>~<hour>.lease`
///      (created with link(2): exactly one instance gets it);
///   2. build `<sink>/_qos/compact/<token>/`: the compacted file, hard links
///      to any non-Parquet entry, and a marker `.qos-compact-<token>` naming
///      every entry the live directory had;
///   3. exchange it with the live directory (the commit point: the marker is
///      now in the live directory);
///   4. entries another instance published into the old directory meanwhile
///      move into the live one; the old directory goes to `trash/` and is
///      deleted after `graceMs`; the lease is removed.
/// Recovery (a crash anywhere, `recover`): a token whose marker is in the
/// live directory swapped — finish step 4; otherwise its staging directory
/// is deleted and the live directory was never touched.
public final class Compactor {
    public let sink: FileSink
    public let instance: String
    public let policy: CompactionPolicy
    var parquet: ParquetWriterOptions
    let log: Logger
    /// Hour directories (relative to the sink) that may need compaction:
    /// every one found at start or published into since.
    var dirs = Set<String>()
    /// Directories whose compaction was not done, with their file count
    /// then: not tried again (nor logged again, every epoch) until a file
    /// comes or goes — e.g. an hour holding windows of two lengths after
    /// `window` changed, which one file cannot hold.
    var notCompacted: [String: Int] = [:]
    public private(set) var compactions = 0
    public private(set) var filesReplaced = 0
    /// False once the file system refused RENAME_EXCHANGE (then nothing is compacted).
    public private(set) var supported = true
    /// Tests: runs before / after the exchange (throwing there is a crash at that point).
    public var beforeSwap: ((String) throws -> Void)?
    public var afterSwap: ((String) throws -> Void)?
    var serial = 0

    /// Tests (the SIGKILL interop test): sleeps `ms` before and after each swap.
    public func pauseAroundSwaps(ms: Int) {
        let us = UInt32(min(max(ms, 0), 10_000) * 1000)
        beforeSwap = { _ in usleep(us) }
        afterSwap = { _ in usleep(us) }
    }
    let host: String
    var dir: String { "\(sink.root)/_qos/compact" }

    public init(sink: FileSink, instance: String, policy: CompactionPolicy,
                parquet: ParquetWriterOptions = ParquetWriterOptions(), log: Logger = .silent) throws {
        self.sink = sink
        self.instance = instance
        self.policy = policy
        self.parquet = parquet
        self.log = log
        host = hostName()
        // Compaction swaps directories (RENAME_EXCHANGE): an object store has
        // none, so an s3:// sink keeps one file per epoch and hour (docs/object-storage.md).
        if sink.isRemote {
            supported = false
            return
        }
        try FileSink.makeDirectories("\(sink.root)/_qos/compact/trash")
    }

    // MARK: - Scheduling

    /// At start: finishes or rolls back compactions a crash interrupted
    /// (whose lease is ours, expired, or held by a dead process of this
    /// host), and remembers every hour directory of the sink.
    public func recover(nowMs: Int64) {
        guard !sink.isRemote else { return }
        for name in Compactor.entries(dir) where name.hasSuffix(".lease") {
            guard let l = readLease("\(dir)/\(name)"), mayTakeOver(l, nowMs) else { continue }
            finish(l, nowMs: nowMs)
            unlink("\(dir)/\(name)")
        }
        // A lease being written or moved aside when its process died.
        for name in Compactor.entries(dir) where name.hasPrefix(".") && (name.hasSuffix(".tmp") || name.contains(".stale.")) {
            unlink("\(dir)/\(name)")
        }
        emptyTrash(nowMs: nowMs)
        for table in TableSchemas.schemaTables {  // with `alerts`
            for dt in CheckpointStore.listFiles("\(sink.root)/\(table)") where dt.hasPrefix("dt=") {
                for hour in CheckpointStore.listFiles("\(sink.root)/\(table)/\(dt)") where hour.hasPrefix("hour=") {
                    dirs.insert("\(table)/\(dt)/\(hour)")
                }
            }
        }
    }

    /// Before an epoch's commit: every hour directory its `files` go to that
    /// would hold more than `maxFiles` is compacted first, so the epoch's
    /// publish leaves at most 1 + its own files there.
    public func beforeCommit(_ files: [WindowFileWriter.PlannedFile], nowMs: Int64) throws {
        guard !sink.isRemote else { return }
        var incoming: [String: Int] = [:]
        for f in files { incoming[relative(f.dir), default: 0] += 1 }
        for (d, n) in incoming.sorted(by: { $0.key < $1.key }) {
            dirs.insert(d)
            let have = count(d)
            if have > 0 && have + n > policy.maxFiles { try compact(d, nowMs: nowMs) }
            if 1 + n > policy.maxFiles {
                log.warn("qos run: one epoch writes \(n) files into \(d), more than compact_files=\(policy.maxFiles) − 1: "
                         + "the directory holds more until the next epoch compacts it (raise compact_files or lower checkpoint_min_interval)")
            }
        }
    }

    /// After an epoch: hours closed for `afterMs` (the watermark, event
    /// time, past their end) become one file; a directory over the cap (an
    /// epoch wrote more than it) is compacted; replaced files past the grace
    /// period are deleted.
    public func afterEpoch(watermark: Int64, nowMs: Int64) throws {
        guard !sink.isRemote else { return }
        for d in dirs.sorted() {
            let n = count(d)
            if notCompacted[d] == n { continue }
            notCompacted[d] = nil
            if n > policy.maxFiles {
                if try !compact(d, nowMs: nowMs) { notCompacted[d] = n }
                continue
            }
            guard let end = hourEnd(d), watermark != .min, end <= watermark - policy.afterMs else { continue }
            if n > 1, try !compact(d, nowMs: nowMs) { notCompacted[d] = n }
            if count(d) <= 1 { dirs.remove(d); notCompacted[d] = nil }  // closed and single: until a late file comes
        }
        emptyTrash(nowMs: nowMs)
    }

    /// Compacts every known hour directory holding more than one file (`qos demo` at its end).
    public func compactAll(nowMs: Int64) throws {
        for d in dirs.sorted() where count(d) > 1 { try compact(d, nowMs: nowMs) }
    }

    /// Files per hour directory, for `/metrics`: the most in one directory, per table.
    public func filesPerHourDirMax() -> [String: Int] {
        var out: [String: Int] = [:]
        for d in dirs {
            let t = String(d.split(separator: "/")[0])
            out[t] = max(out[t] ?? 0, count(d))
        }
        return out
    }

    // MARK: - One directory

    /// Compacts the hour directory `rel` (relative to the sink); false when
    /// it did not (nothing to do, lease held elsewhere, or an error, logged).
    /// Throws only the simulated crash of a test hook (`CompactionCrash`).
    @discardableResult
    public func compact(_ rel: String, nowMs: Int64) throws -> Bool {
        guard supported else { return false }
        let parts = rel.split(separator: "/").map(String.init)
        guard parts.count == 3 else { return false }
        let key = parts.joined(separator: "~")
        let live = "\(sink.root)/\(rel)"
        guard let lease = acquire(key: key, live: rel, nowMs: nowMs) else { return false }
        let staging = "\(dir)/\(lease.token)"
        do {
            let before = Compactor.entries(live).filter { !$0.hasPrefix(".") }
            let inputs = before.filter { $0.hasSuffix(".parquet") }
            guard inputs.count > 1 else { release(key); return false }
            let merged = try Compactor.merge(table: parts[0], paths: inputs.map { "\(live)/\($0)" }, options: parquet)
            CheckpointStore.removeTree(staging)
            try FileSink.makeDirectories(staging)
            let name = "\(parts[0])_\(CivilTime(epochMs: merged.hour).compact)_\(merged.windowMs / 1000)s_compact_"
                + "\(shortHash(inputs.joined(separator: "\n"))).parquet"
            try FileSink.writeDurably(merged.bytes, to: "\(staging)/\(name)")
            for e in before where !inputs.contains(e) {
                guard link("\(live)/\(e)", "\(staging)/\(e)") == 0 || errno == ENOENT else { throw StorageError("link", "\(staging)/\(e)") }
            }
            try FileSink.writeDurably(Array(before.joined(separator: "\n").utf8), to: "\(staging)/\(marker(lease.token))")
            try FileSink.fsyncDirectory(staging)
            try beforeSwap?(rel)
            guard c_renameat2(AT_FDCWD, staging, AT_FDCWD, live, renameExchange) == 0 else {
                let code = errno, reason = String(cString: strerror(code))
                Compactor.removeAll(staging)
                release(key)
                // Only a kernel or file system without the exchange turns compaction off;
                // anything else (permissions, a read-only mount) skips this directory.
                guard Compactor.exchangeUnsupported(code) else {
                    log.warn("qos run: compaction of \(rel) skipped: renameat2(RENAME_EXCHANGE) failed (\(reason))")
                    return false
                }
                supported = false
                log.warn("qos run: cannot compact \(rel): renameat2(RENAME_EXCHANGE) failed (\(reason)) — "
                         + "compaction is off (it needs Linux ≥ 3.15 and a local file system); run qos reaggregate --compact offline")
                return false
            }
            try FileSink.fsyncDirectory(String(live[..<live.lastIndex(of: "/")!]))
            try afterSwap?(rel)
            finish(lease, nowMs: nowMs)
            release(key)
            compactions += 1
            filesReplaced += inputs.count
            return true
        } catch let e as CompactionCrash {
            throw e  // a test's crash: lease and staging stay for `recover`
        } catch {
            // The live directory is untouched unless the exchange happened;
            // `finish` completes whichever state it is in.
            finish(lease, nowMs: nowMs)
            release(key)
            log.warn("qos run: compaction of \(rel) skipped: \(error)")
            return false
        }
    }

    /// Tests simulate a crash by throwing `CompactionCrash` from a hook: the
    /// compactor stops where it is (lease and staging left behind).
    public struct CompactionCrash: Error { public init() {} }

    func marker(_ token: String) -> String { ".qos-compact-\(token)" }

    /// Completes step 4 of a lease's compaction if its exchange happened,
    /// else deletes its staging directory. Idempotent.
    func finish(_ l: Lease, nowMs: Int64) {
        let live = "\(sink.root)/\(l.live)"
        let staging = "\(dir)/\(l.token)"
        guard access(staging, F_OK) == 0 else { return }
        let markerPath = "\(live)/\(marker(l.token))"
        guard access(markerPath, F_OK) == 0 else {
            Compactor.removeAll(staging)  // never swapped: roll back
            return
        }
        // Swapped: `staging` is the old directory. Adopt what others published into it.
        let known = Set((try? Inspector.readFile(markerPath)).map { String(decoding: $0, as: UTF8.self) }?
            .split(separator: "\n").map(String.init) ?? [])
        var moved = false
        for e in Compactor.entries(staging) where !e.hasPrefix(".") && !known.contains(e) && access("\(live)/\(e)", F_OK) != 0 {
            if rename("\(staging)/\(e)", "\(live)/\(e)") == 0 { moved = true }
        }
        if moved { try? FileSink.fsyncDirectory(live) }
        let expiry = nowMs + policy.graceMs
        if rename(staging, "\(dir)/trash/\(expiry)~\(l.token)") != 0 { Compactor.removeAll(staging) }
    }

    func emptyTrash(nowMs: Int64) {
        for e in Compactor.entries("\(dir)/trash") {
            guard let t = Int64(e.split(separator: "~")[0]), t <= nowMs else { continue }
            Compactor.removeAll("\(dir)/trash/\(e)")
        }
    }

    // MARK: - Leases

    struct Lease { var instance: String, host: String, pid: Int32, expiryMs: Int64, token: String, live: String }

    func readLease(_ path: String) -> Lease? {
        guard let b = try? Inspector.readFile(path) else { return nil }
        let f = String(decoding: b, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard f.count >= 6, let pid = Int32(f[2]), let exp = Int64(f[3]) else { return nil }
        return Lease(instance: f[0], host: f[1], pid: pid, expiryMs: exp, token: f[4], live: f[5])
    }

    /// Ours (a crash of this instance), expired, or its holder a dead process on this host.
    func mayTakeOver(_ l: Lease, _ nowMs: Int64) -> Bool {
        if l.instance == instance || l.expiryMs <= nowMs { return true }
        return l.host == host && l.pid != getpid() && kill(l.pid, 0) != 0 && errno == ESRCH
    }

    /// Whether `renameat2(RENAME_EXCHANGE)` failing with `code` means the
    /// kernel or the file system cannot exchange at all.
    static func exchangeUnsupported(_ code: Int32) -> Bool {
        code == EINVAL || code == ENOSYS || code == EOPNOTSUPP || code == EXDEV
    }

    func acquire(key: String, live: String, nowMs: Int64) -> Lease? {
        let path = "\(dir)/\(key).lease"
        let me = Compactor.safe(instance)
        for _ in 0..<2 {
            serial += 1
            let l = Lease(instance: instance, host: host, pid: getpid(), expiryMs: nowMs + policy.leaseMs,
                          token: "\(key)~\(me)~\(nowMs)-\(serial)", live: live)
            let tmp = "\(dir)/.\(key).\(me).tmp"
            let text = [l.instance, l.host, String(l.pid), String(l.expiryMs), l.token, l.live, ""].joined(separator: "\n")
            do {
                try FileSink.writeDurably(Array(text.utf8), to: tmp)
            } catch {
                // Not another holder: a storage error (permissions, space), said once per
                // directory state (`notCompacted`), as the other skips are.
                log.warn("qos run: compaction of \(live) skipped: cannot write its lease: \(error)")
                return nil
            }
            defer { unlink(tmp) }
            if link(tmp, path) == 0 {
                try? FileSink.fsyncDirectory(dir)
                return l
            }
            guard errno == EEXIST, let held = readLease(path), mayTakeOver(held, nowMs) else { return nil }
            finish(held, nowMs: nowMs)
            // Take over: move the stale lease aside (one taker succeeds); a
            // lease renewed in between goes back.
            let stale = "\(dir)/.\(key).stale.\(me)"
            guard rename(path, stale) == 0 else { return nil }
            if readLease(stale)?.token != held.token { _ = link(stale, path); unlink(stale); return nil }
            unlink(stale)
        }
        return nil
    }

    func release(_ key: String) {
        unlink("\(dir)/\(key).lease")
    }

    // MARK: - Helpers

    func relative(_ path: String) -> String { String(path.dropFirst(sink.root.count + 1)) }

    /// `.parquet` files in an hour directory (what a reader lists).
    public func count(_ rel: String) -> Int {
        CheckpointStore.listFiles("\(sink.root)/\(rel)").filter { $0.hasSuffix(".parquet") }.count
    }

    /// The end (ms) of the hour of `table/dt=YYYY-MM-DD/hour=HH`.
    func hourEnd(_ rel: String) -> Int64? {
        let p = rel.split(separator: "/")
        guard p.count == 3, p[1].hasPrefix("dt="), p[2].hasPrefix("hour="),
              let day = UTCTime.parse(String(p[1].dropFirst(3))), let h = Int64(p[2].dropFirst(5)) else { return nil }
        return day + (h + 1) * 3_600_000
    }

    static func safe(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "-" })
    }

    /// Every entry of `dir` but `.` and `..` (dot files included).
    static func entries(_ dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { out.append(name) }
        }
        return out.sorted()
    }

    /// Removes a directory of files (dot files included).
    static func removeAll(_ path: String) {
        for e in entries(path) { unlink("\(path)/\(e)") }
        rmdir(path)
    }

    // MARK: - Merging

    struct Merged { var bytes: [UInt8], rows: Int, hour: Int64, windowMs: Int64 }

    /// Every row of `paths` (files of one table and hour) in one file: a
    /// metric table's groups merged per window (counters summed, sketches
    /// merged, derived columns recomputed), `sessions`, `rejects` and
    /// `alerts` rows concatenated one column at a time (`RowTableMerge`);
    /// ordered by window as the engine orders each window.
    static func merge(table: String, paths: [String], options: ParquetWriterOptions) throws -> Merged {
        var opts = options
        if let mt = MetricTable.allCases.first(where: { $0.name == table }) {
            var byWindow: [Int64: GroupMerger] = [:]
            var dims: [String]?
            var ms: Int64 = 0
            for p in paths {
                let (info, rows) = try TableReader.readMetricFile(p, table: mt)
                guard dims == nil || dims! == info.dims else {
                    throw UserError("files of '\(p.split(separator: "/").dropLast().joined(separator: "/"))' have different dimensions")
                }
                try sameWindowLength(&ms, info, p)
                dims = info.dims
                let keep = info.dims.compactMap { mt.dimensions.firstIndex(of: $0) }
                for r in rows {
                    if byWindow[r.start] == nil { byWindow[r.start] = GroupMerger(dimCount: mt.dimensions.count, keep: keep) }
                    byWindow[r.start]!.add(r, generation: 0)
                }
            }
            let starts = byWindow.keys.sorted()
            let rows = starts.flatMap { byWindow[$0]!.rows(start: $0, end: $0 + ms) }
            let keep = dims ?? mt.dimensions
            let cols = TableReader.metricColumns(mt, keeping: keep)
            opts.keyValueMetadata = metadata(table, starts, ms, paths.count, dims: keep == mt.dimensions ? nil : keep)
            let bytes = try OutputColumn.encode(cols, rows, options: opts)
            return Merged(bytes: bytes, rows: rows.count, hour: hourOf(starts.first ?? 0), windowMs: ms)
        }
        if table == TableSchemas.cdnEdgeTable {
            return try mergeCdnEdge(paths: paths, options: opts)
        }
        let r = try RowTableMerge.merge(table: table, paths: paths, options: opts) { starts, ms in
            metadata(table, starts, ms, paths.count, dims: nil)
        }
        return Merged(bytes: r.bytes, rows: r.rows, hour: hourOf(r.windowStarts.first ?? 0), windowMs: r.windowMs)
    }

    /// `cdn_edge` files of one hour in one file: groups merged per window
    /// (counters summed, sketches merged), rows by window, then dimensions.
    static func mergeCdnEdge(paths: [String], options: ParquetWriterOptions) throws -> Merged {
        var opts = options
        var byWindow: [Int64: [[String]: CdnEdgeMetrics<DataSketchesKit>]] = [:]
        var dims: [String]?
        var ms: Int64 = 0
        for p in paths {
            let (info, rows) = try TableReader.readCdnEdgeFile(p)
            guard dims == nil || dims! == info.dims else {
                throw UserError("files of '\(p.split(separator: "/").dropLast().joined(separator: "/"))' have different dimensions")
            }
            try sameWindowLength(&ms, info, p)
            dims = info.dims
            for r in rows { byWindow[r.start, default: [:]][r.key.values, default: CdnEdgeMetrics()].merge(r.m) }
        }
        let starts = byWindow.keys.sorted()
        let rows = starts.flatMap { start in
            let groups = byWindow[start]!
            return groups.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { k in
                CdnEdgeRow(start: start, end: start + ms, key: CdnEdgeKey(cdn: k[0], account: k[1], owner: k[2], pop: k[3]),
                           m: groups[k]!)
            }
        }
        let keep = dims ?? CdnEdgeKey.dimensions
        let cols = TableReader.cdnEdgeColumns(keeping: keep)
        opts.keyValueMetadata = metadata(TableSchemas.cdnEdgeTable, starts, ms, paths.count,
                                         dims: keep == CdnEdgeKey.dimensions ? nil : keep)
        let bytes = try OutputColumn.encode(cols, rows, options: opts)
        return Merged(bytes: bytes, rows: rows.count, hour: hourOf(starts.first ?? 0), windowMs: ms)
    }

    /// One merged file has one window length: rows of a 1 h window merged
    /// by `window_start` into the 2-minute window starting with it would
    /// count the hour inside two minutes. `ms` is 0 before the first file.
    static func sameWindowLength(_ ms: inout Int64, _ info: TableReader.FileInfo, _ path: String) throws {
        guard info.windowMs != 0 else { return }  // no rows
        guard ms == 0 || info.windowMs == ms else {
            throw UserError("'\(path)' holds \(info.windowMs / 1000) s windows, the other files of its directory "
                            + "\(ms / 1000) s ones — cannot merge windows of different lengths into one file")
        }
        ms = info.windowMs
    }

    static func hourOf(_ ms: Int64) -> Int64 { let r = ms % 3_600_000; return ms - (r >= 0 ? r : r + 3_600_000) }

    static func metadata(_ table: String, _ starts: [Int64], _ ms: Int64, _ inputs: Int,
                         dims: [String]?) -> [(key: String, value: String)] {
        var m: [(key: String, value: String)] = [
            ("videoqos.spec_version", WindowFileWriter.specVersion),
            ("videoqos.table", table),
            ("videoqos.window_start", CivilTime(epochMs: starts.first ?? 0).iso),
            ("videoqos.window_end", CivilTime(epochMs: (starts.last ?? 0) + ms).iso),
            ("videoqos.window_ms", String(ms)),
            ("videoqos.kind", "compact"),
            ("videoqos.source", "compaction of \(inputs) files"),
            ("videoqos.windows", String(starts.count))]
        if let dims { m.append(("videoqos.dimensions", dims.joined(separator: ","))) }
        return m + [("hll.type", "HLL_8"), ("hll.lg_k", "\(SketchParameters.hllLgK)"),
                    ("ddsketch.relative_accuracy", SketchParameters.ddsketchRelativeAccuracyText), ("ddsketch.key", "ceil")]
    }
}
