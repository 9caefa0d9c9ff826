#if canImport(Glibc)
import Glibc
#endif

/// The file sink (docs/semantics.md §5): Hive-style partitions
/// `<root>/<table>/dt=YYYY-MM-DD/hour=HH/<file>.parquet` (UTC), and atomic
/// publication — write `.name.tmp` (readers skip dot files), fsync, rename,
/// fsync the directory — so readers never see a partial file. A sink on
/// object storage (`s3://bucket/prefix`, `FileSink.named`) has the same
/// layout; its files go through `remote` (docs/object-storage.md).
public struct FileSink: Sendable {
    public let root: String
    /// The store of an `s3://` sink; nil for a local directory.
    public let remote: (any SinkStorage)?

    /// A local directory.
    public init(root: String) {
        self.root = root
        remote = nil
    }

    public init(storage: any SinkStorage) {
        root = storage.location
        remote = storage
    }

    /// The sink named by `--sink`: a local directory, or `s3://bucket/prefix`
    /// reached per the AWS environment variables (docs/object-storage.md).
    public static func named(_ location: String, environment: [String: String]) throws -> FileSink {
        guard location.hasPrefix("s3://") else { return FileSink(root: location) }
        return FileSink(storage: try S3Storage(location: location, environment: environment))
    }

    public var isRemote: Bool { remote != nil }

    /// Where the epoch commit reads and writes the sink.
    public var storage: any SinkStorage { remote ?? LocalStorage(root: root) }

    /// The partition directory of a window starting at `startMs`.
    public func directory(table: String, windowStartMs: Int64) -> String {
        let c = CivilTime(epochMs: windowStartMs)
        return "\(root)/\(table)/dt=\(c.date)/hour=\(c.hour2)"
    }

    /// Checks that the sink can be written before any work starts.
    public func checkWritable() throws {
        if let remote { return try remote.checkWritable() }
        try FileSink.makeDirectories(root)
        let probe = "\(root)/.qos-write-probe"
        let fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw UserError("sink '\(root)' is not writable: \(String(cString: strerror(errno))) — choose another --sink or fix its permissions")
        }
        close(fd)
        unlink(probe)
    }

    /// Writes `bytes` to `dir/name` atomically and durably.
    public func publish(_ bytes: [UInt8], dir: String, name: String) throws {
        if let remote {
            precondition(dir == root || dir.hasPrefix(root + "/"), "a remote sink publishes under its root")
            return try remote.publish(dir == root ? name : "\(dir.dropFirst(root.count + 1))/\(name)", bytes)
        }
        try FileSink.publishLocally(bytes, dir: dir, name: name)
    }

    /// Several files, each published as `publish` does; a local sink syncs
    /// each directory once, after every file of the batch in it was
    /// renamed, not once per file (a replay's flush writes dozens of files
    /// into a few directories: bench/results/speed.md §18). Each file is
    /// still visible only complete (its bytes synced before its rename);
    /// the new entries are durable when this returns.
    public func publish(all files: [(bytes: [UInt8], dir: String, name: String)]) throws {
        if remote != nil {
            for f in files { try publish(f.bytes, dir: f.dir, name: f.name) }
            return
        }
        var dirs: [String] = []
        for f in files {
            if !dirs.contains(f.dir) {
                try FileSink.makeDirectories(f.dir)
                dirs.append(f.dir)
            }
            try FileSink.placeLocally(f.bytes, dir: f.dir, name: f.name)
        }
        for d in dirs { try FileSink.fsyncDirectory(d) }
    }

    static func publishLocally(_ bytes: [UInt8], dir: String, name: String) throws {
        try FileSink.makeDirectories(dir)
        try placeLocally(bytes, dir: dir, name: name)
        try FileSink.fsyncDirectory(dir)
    }

    /// Writes `dir/name` under a temporary name, syncs it and renames it
    /// into place; the directory is not synced (the caller does).
    private static func placeLocally(_ bytes: [UInt8], dir: String, name: String) throws {
        let tmp = "\(dir)/.\(name).tmp"
        try FileSink.writeDurably(bytes, to: tmp)
        guard rename(tmp, "\(dir)/\(name)") == 0 else { throw StorageError("rename", "\(dir)/\(name)") }
    }

    static func writeDurably(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw StorageError("create", path) }
        defer { close(fd) }
        try writeDurably(bytes, fd: fd, path: path)
    }

    /// Writes all of `bytes` to the open file `fd` and syncs it; `path`
    /// names it in errors.
    static func writeDurably(_ bytes: [UInt8], fd: Int32, path: String) throws {
        var off = 0
        try bytes.withUnsafeBytes { b in
            while off < b.count {
                let n = write(fd, b.baseAddress! + off, b.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw StorageError("write", path)
                }
                off += n
            }
        }
        guard fsync(fd) == 0 else { throw StorageError("fsync", path) }
    }

    /// Makes a directory's entries (a rename, a new file) durable. An error is
    /// not ignored: without it, a published file could vanish after a crash.
    static func fsyncDirectory(_ dir: String) throws {
        let fd = open(dir, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw StorageError("open directory", dir) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StorageError("fsync directory", dir) }
    }

    /// `mkdir -p`.
    static func makeDirectories(_ path: String) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw StorageError("create directory", current)
            }
        }
    }
}

/// UTC calendar fields of an epoch-millisecond instant (proleptic
/// Gregorian, days-from-civil inverse by H. Hinnant's algorithm).
public struct CivilTime: Sendable {
    public let year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int

    public init(epochMs: Int64) {
        let secs = epochMs >= 0 ? epochMs / 1000 : (epochMs - 999) / 1000
        var days = secs >= 0 ? secs / 86_400 : (secs - 86_399) / 86_400
        let rem = Int(secs - days * 86_400)
        hour = rem / 3600; minute = rem % 3600 / 60; second = rem % 60
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let doe = days - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        day = Int(doy - (153 * mp + 2) / 5 + 1)
        month = Int(mp < 10 ? mp + 3 : mp - 9)
        year = Int(yoe + era * 400) + (month <= 2 ? 1 : 0)
    }

    static func pad(_ v: Int, _ w: Int = 2) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, w - s.count)) + s
    }

    public var date: String { "\(CivilTime.pad(year, 4))-\(CivilTime.pad(month))-\(CivilTime.pad(day))" }
    public var hour2: String { CivilTime.pad(hour) }
    /// `20260101T0002Z`, or `20260101T000230Z` when the time has seconds (a
    /// window shorter than a minute or not on one: every window its own name).
    public var compact: String {
        let seconds = second == 0 ? "" : CivilTime.pad(second)
        return "\(CivilTime.pad(year, 4))\(CivilTime.pad(month))\(CivilTime.pad(day))T\(CivilTime.pad(hour))\(CivilTime.pad(minute))\(seconds)Z"
    }
    /// ISO 8601 with seconds, `2026-01-01T00:02:00Z`.
    public var iso: String { "\(date)T\(hour2):\(CivilTime.pad(minute)):\(CivilTime.pad(second))Z" }
}
