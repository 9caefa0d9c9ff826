#if canImport(Glibc)
import Glibc
#endif
import Parquet
import QoSCore

// `qos reaggregate --compact`: a window's files (base, late deltas, files of
// other writers) become one file, in place.
//
// Readers must never see a window missing or counted twice, but a window is
// several directory entries and no syscall replaces several entries at once.
// A directory, though, is one entry: for each `dt=…/hour=…` directory with
// work, we build a staging directory (outside the table tree, under
// `<sink>/.qos-compact/`) holding the compacted files plus hard links to
// every other entry of the live directory, then swap the two directories
// with one `renameat2(RENAME_EXCHANGE)`. A reader that resolves the hour
// directory before the swap lists the old files, after it the new ones;
// never a mix. A reader that listed the old directory and opens one of the
// replaced files after the swap gets "file not found" (the compacted file
// has a new name, so it cannot be read together with the deltas it
// contains): an error to retry, never a wrong number. The replaced files
// are deleted after a grace period (readers still reading the old listing).
// Files that a writer published into the old directory during the swap are
// moved into the new one right after it.
//
// Without RENAME_EXCHANGE (not Linux, or a file system that refuses it, or
// no hard links) the fallback publishes each compacted file atomically and
// then unlinks the replaced files: between those syscalls a reader can count
// the late-delta rows twice. The summary says when that happened.

@_silgen_name("renameat2")
func c_renameat2(_ olddirfd: Int32, _ oldpath: UnsafePointer<CChar>, _ newdirfd: Int32,
                         _ newpath: UnsafePointer<CChar>, _ flags: UInt32) -> Int32

let renameExchange: UInt32 = 2  // RENAME_EXCHANGE (linux/fs.h)
let renameNoReplace: UInt32 = 1  // RENAME_NOREPLACE (linux/fs.h)

extension ReaggregateJob {
    func compactTable(_ table: String, _ infos: [TableReader.FileInfo]) throws {
        // A directory holding a file of several windows (late deltas of an
        // hour, the daemon's compaction) is compacted whole, into one file
        // of every window of the hour, as the daemon does (Compactor.swift) —
        // per window length: a file of another length in the same directory
        // (a roll-up copied there, a sink whose `window` changed between
        // runs) covers other windows, so its rows are never folded into the
        // rows that share their `window_start` (README *Roll-ups and compaction*).
        let hourGroups = Dictionary(grouping: infos.filter { info in
            infos.contains { $0.isMultiWindow && dirname($0.path) == dirname(info.path) && $0.windowMs == info.windowMs }
        }) { HourKey(dir: dirname($0.path), windowMs: $0.windowMs) }
        let hourKeys = hourGroups.keys.sorted { ($0.dir, $0.windowMs) < ($1.dir, $1.windowMs) }
        for (d, key) in hourKeys.enumerated() where hourGroups[key]!.count > 1 {
            let files = hourGroups[key]!
            let dir = key.dir
            let staging = "\(options.sink)/.qos-compact/\(table)-\(getpid())-h\(d)"
            try removeTree(staging)
            try FileSink.makeDirectories(staging)
            progress("compacting \(table): hour directory \(dir)")
            let names = files.map { basename($0.path) }.sorted()
            let merged = try Compactor.merge(table: table, paths: files.map(\.path), options: parquetOptions([]))
            let name = "\(table)_\(CivilTime(epochMs: merged.hour).compact)_\(merged.windowMs / 1000)s_compact_\(shortHash(names.joined(separator: "\n"))).parquet"
            try FileSink(root: options.sink).publish(merged.bytes, dir: staging, name: name)
            summary.filesRead += files.count
            summary.rowsIn += files.reduce(0) { $0 + $1.rows }
            summary.filesWritten += 1
            summary.rowsOut += merged.rows
            summary.windowsOut += Set(files.flatMap(\.windowStarts)).count
            summary.filesReplaced += files.count
            try swapIn(live: dir, staging: staging, compacted: [name], replaced: Set(names))
        }
        // Windows with more than one file, grouped by their directory.
        var byDir: [String: [[TableReader.FileInfo]]] = [:]
        let windows = Dictionary(grouping: infos.filter { hourGroups[HourKey(dir: dirname($0.path), windowMs: $0.windowMs)] == nil }) {
            WindowKey(dir: dirname($0.path), start: $0.windowStart, end: $0.windowEnd)
        }
        for (k, files) in windows where files.count > 1 { byDir[k.dir, default: []].append(ReaggregateJob.ordered(files)) }
        var n = 0
        let total = byDir.values.reduce(0) { $0 + $1.count }
        for (d, dir) in byDir.keys.sorted().enumerated() {
            let staging = "\(options.sink)/.qos-compact/\(table)-\(getpid())-\(d)"
            try removeTree(staging)
            try FileSink.makeDirectories(staging)
            var replaced = Set<String>()
            var written: [String] = []
            for files in byDir[dir]!.sorted(by: { $0[0].windowStart < $1[0].windowStart }) {
                n += 1
                progress("compacting \(table): window \(n)/\(total), \(summary.filesRead) files read")
                let f0 = files[0]
                let w = Window(start: f0.windowStart, end: f0.windowEnd, ms: f0.windowEnd - f0.windowStart)
                let names = files.map { basename($0.path) }
                let source = "compaction of " + names.joined(separator: ",")
                let planned: (bytes: [UInt8], rows: Int)
                if let mt = MetricTable.allCases.first(where: { $0.name == table }) {
                    let keep = mt.dimensions.filter { d in files.allSatisfy { $0.dims.contains(d) } }
                    guard files.allSatisfy({ $0.dims == keep }) else {
                        throw UserError("files of one window in '\(dir)' have different dimensions — cannot compact them")
                    }
                    planned = try mergeMetricFiles(mt, files, window: w, keep: keep, kind: "compact", source: source)
                } else if table == TableSchemas.cdnEdgeTable {
                    let keep = CdnEdgeKey.dimensions.filter { d in files.allSatisfy { $0.dims.contains(d) } }
                    guard files.allSatisfy({ $0.dims == keep }) else {
                        throw UserError("files of one window in '\(dir)' have different dimensions — cannot compact them")
                    }
                    planned = try mergeCdnEdgeFiles(files, window: w, keep: keep, kind: "compact", source: source)
                } else {
                    planned = try mergeRowFiles(table, files, window: w, kind: "compact", source: source)
                }
                // A new name for every compaction: a reader holding an old listing
                // can never read this file together with the files it replaces.
                let name = "\(table)_\(CivilTime(epochMs: w.start).compact)_\(w.ms / 1000)s_compact_\(shortHash(names.joined(separator: "\n"))).parquet"
                try FileSink(root: options.sink).publish(planned.bytes, dir: staging, name: name)
                written.append(name)
                replaced.formUnion(names)
                summary.filesWritten += 1
                summary.rowsOut += planned.rows
                summary.windowsOut += 1
                summary.filesReplaced += files.count
            }
            try swapIn(live: dir, staging: staging, compacted: written, replaced: replaced)
        }
    }

    /// After every swap: waits `--grace` once, then deletes the replaced files.
    func finishCompaction() throws {
        if !pendingCleanups.isEmpty && options.graceSeconds > 0 {
            usleep(UInt32(min(options.graceSeconds, 60) * 1_000_000))
        }
        for c in pendingCleanups {
            try adoptNewcomers(old: c.old, live: c.live, known: c.known)
            try removeTree(c.old)
            unlink(c.old + ".swap")
        }
        pendingCleanups.removeAll()
        rmdir("\(options.sink)/.qos-compact")
    }

    /// Finishes or rolls back what a killed compaction left under
    /// `<sink>/.qos-compact/` (called holding the sink lock alone, so its
    /// process is gone). A staging directory whose `.swap` marker names
    /// compacted files now in the live directory was swapped: it holds the
    /// old directory, whose newcomers are adopted before it is deleted.
    /// Any other was never swapped (the live directory is untouched): it
    /// is deleted.
    func recoverLeftovers() throws {
        let root = "\(options.sink)/.qos-compact"
        guard Inspector.isDirectory(root) else { return }
        for name in try Inspector.listDirectory(root) where Inspector.isDirectory("\(root)/\(name)") {
            let staging = "\(root)/\(name)", marker = staging + ".swap"
            if access(marker, F_OK) == 0 {
                let lines = String(decoding: try Inspector.readRegularFile(marker), as: UTF8.self)
                    .split(separator: "\n").map(String.init)
                if let live = lines.first {
                    let known = Set(lines.filter { $0.hasPrefix("K ") }.map { String($0.dropFirst(2)) })
                    let compacted = lines.filter { $0.hasPrefix("C ") }.map { String($0.dropFirst(2)) }
                    if !compacted.isEmpty && compacted.allSatisfy({ access("\(live)/\($0)", F_OK) == 0 }) {
                        try adoptNewcomers(old: staging, live: live, known: known)
                    }
                }
            }
            try removeTree(staging)
            guard !Inspector.isDirectory(staging) else {
                throw UserError("cannot remove '\(staging)' left by a killed compaction: \(String(cString: strerror(errno))) — remove it by hand")
            }
            unlink(marker)
        }
        for name in try Inspector.listDirectory(root) where name.hasSuffix(".swap") { unlink("\(root)/\(name)") }
    }

    struct WindowKey: Hashable { var dir: String, start: Int64, end: Int64 }

    /// The files of one window length in one hour directory.
    struct HourKey: Hashable { var dir: String, windowMs: Int64 }

    /// A swapped-out hour directory, deleted after the grace period.
    struct PendingCleanup { var old: String, live: String, known: Set<String> }

    /// Makes `compacted` (in `staging`) replace `replaced` in `live`.
    func swapIn(live: String, staging: String, compacted: [String], replaced: Set<String>) throws {
        let before = try entries(live)
        var linked: [String] = []
        var canSwap = true
        for name in before where !replaced.contains(name) {
            if link("\(live)/\(name)", "\(staging)/\(name)") == 0 { linked.append(name); continue }
            if errno == ENOENT { continue }  // removed meanwhile (a writer's temporary file)
            if errno == EEXIST { throw UserError("cannot compact '\(live)': '\(name)' exists twice") }
            canSwap = false
            break
        }
        try FileSink.fsyncDirectory(staging)
        // What the next run needs if this one is killed after the swap: the
        // live directory, the entries it had, the compacted names (README
        // *Roll-ups and compaction*; `recoverLeftovers`).
        let marker = staging + ".swap"
        if canSwap {
            let lines = [live] + before.map { "K " + $0 } + compacted.map { "C " + $0 }
            try FileSink.writeDurably(Array(lines.joined(separator: "\n").utf8), to: marker)
            try FileSink.fsyncDirectory(parentDir(staging))
        }
        if canSwap && c_renameat2(AT_FDCWD, staging, AT_FDCWD, live, renameExchange) == 0 {
            // `staging` now holds the old directory.
            try FileSink.fsyncDirectory(parentDir(live))
            try adoptNewcomers(old: staging, live: live, known: Set(before))
            pendingCleanups.append(PendingCleanup(old: staging, live: live, known: Set(before)))
            return
        }
        // Fallback: publish each compacted file, then unlink what it replaces.
        unlink(marker)  // nothing was swapped
        summary.fallbacks += 1
        for name in linked { unlink("\(staging)/\(name)") }
        for name in compacted {
            guard rename("\(staging)/\(name)", "\(live)/\(name)") == 0 else {
                throw UserError("cannot publish '\(live)/\(name)': \(String(cString: strerror(errno)))")
            }
        }
        try FileSink.fsyncDirectory(live)
        for name in replaced { unlink("\(live)/\(name)") }
        try FileSink.fsyncDirectory(live)
        try removeTree(staging)
    }

    /// Moves entries that a writer added to the old directory during the swap into the live one.
    func adoptNewcomers(old: String, live: String, known: Set<String>) throws {
        for name in try entries(old) where !known.contains(name) {
            if access("\(live)/\(name)", F_OK) == 0 { continue }
            _ = rename("\(old)/\(name)", "\(live)/\(name)")
        }
        try FileSink.fsyncDirectory(live)
    }

    /// Names in `dir` (files only; `.` and `..` excluded).
    func entries(_ dir: String) throws -> [String] {
        guard let d = opendir(dir) else {
            throw UserError("cannot list '\(dir)': \(String(cString: strerror(errno)))")
        }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." || Inspector.isDirectory("\(dir)/\(name)") { continue }
            out.append(name)
        }
        return out.sorted()
    }

    /// Removes a staging directory and the files in it (no subdirectories).
    func removeTree(_ dir: String) throws {
        guard Inspector.isDirectory(dir) else { return }
        for name in try entries(dir) { unlink("\(dir)/\(name)") }
        rmdir(dir)
    }

    func dirname(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/") else { return "." }
        return String(path[..<i])
    }

    func basename(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: i)...])
    }

    func parentDir(_ path: String) -> String { dirname(path) }
}
