#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ObjectStore

/// The readers (`qos inspect`, `qos reaggregate`, `qos report`) on an
/// `s3://` sink: the files a command needs are downloaded into a temporary
/// directory with the same layout, and read from there
/// (docs/object-storage.md, "Readers"). Only what the command reads is
/// fetched: the tables it reads are listed one by one, hour directories
/// outside its time range are skipped, and `qos inspect --rows 0` of a file
/// fetches the Parquet footer alone with ranged GETs. Visible means what a
/// listing reader must count: no `_staging/`, `_qos/` or any other `_`/`.`
/// path segment.
public enum S3Reading {
    /// What a command needs of a sink.
    public struct Scope: Sendable {
        /// The tables to fetch (nil: everything under the address, for a table
        /// directory or an unknown layout).
        public var tables: [String]?
        /// Hour directories overlapping [fromMs, toMs) are fetched.
        public var fromMs: Int64 = .min
        public var toMs: Int64 = .max
        /// A single file's metadata only (schema, row groups, key-value metadata).
        public var footerOnly = false

        public init(tables: [String]? = nil, fromMs: Int64 = .min, toMs: Int64 = .max, footerOnly: Bool = false) {
            self.tables = tables
            self.fromMs = fromMs
            self.toMs = toMs
            self.footerOnly = footerOnly
        }
    }

    /// A local copy of what `qos report` reads: every report table, the hours of [from, to).
    public static func localCopy(forReport o: ReportOptions, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> (path: String, cleanup: String?) {
        try localCopy(of: o.sink, scope: Scope(tables: ReportReader.tables, fromMs: o.fromMs, toMs: o.toMs), environment: environment)
    }

    /// A local copy of what `qos reaggregate` reads: its tables, the source
    /// windows of the output windows overlapping [from, to).
    public static func localCopy(forReaggregate o: ReaggregateOptions,
                                 environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (path: String, cleanup: String?) {
        let (lo, hi) = try ReaggregateJob(o).range
        return try localCopy(of: o.sink, scope: Scope(tables: o.tables, fromMs: lo, toMs: hi), environment: environment)
    }

    /// A local path holding what `location` names within `scope`: itself
    /// when it is not `s3://`; else a file or directory in a new temporary
    /// directory, `cleanup`, that `removeCopy` deletes.
    public static func localCopy(of location: String, scope: Scope = Scope(),
                                 environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> (path: String, cleanup: String?) {
        guard location.hasPrefix("s3://") else { return (location, nil) }
        let storage = try S3Storage(location: location, environment: environment)
        let client = storage.client
        let base = NSTemporaryDirectory() + "qos-s3-\(UUID().uuidString)"
        try FileSink.makeDirectories(base)
        do {
            let prefix = client.config.prefix
            if prefix.hasSuffix(".parquet") {
                let name = String(prefix.split(separator: "/").last!)
                try (scope.footerOnly ? copyFooter : copyObject)(client, prefix, location, "\(base)/\(name)")
                return ("\(base)/\(name)", base)
            }
            let root = prefix.isEmpty ? "" : prefix + "/"
            let listed = try scope.tables.map { tables in
                try tables.flatMap { try client.list(prefix: root + $0 + "/") }
            } ?? client.list(prefix: root)
            for o in listed {
                let rel = String(o.key.dropFirst(root.count))
                let parts = rel.split(separator: "/")
                guard !parts.isEmpty, rel.hasSuffix(".parquet"),
                      !parts.contains(where: { $0.hasPrefix("_") || $0.hasPrefix(".") }) else { continue }
                if let h = ReportReader.hourStart(rel), !(h < scope.toMs && h + 3_600_000 > scope.fromMs) { continue }
                guard let bytes = try client.get(o.key) else { continue }  // deleted since the listing
                let dir = parts.count > 1 ? base + "/" + parts.dropLast().joined(separator: "/") : base
                try FileSink.makeDirectories(dir)
                try FileSink.writeDurably(bytes, to: "\(base)/\(rel)")
            }
        } catch {
            removeCopy(base)
            throw error
        }
        return (base, base)
    }

    static func copyObject(_ client: S3Client, _ key: String, _ location: String, _ path: String) throws {
        guard let bytes = try client.get(key) else { throw missing(location) }
        try FileSink.writeDurably(bytes, to: path)
    }

    /// The Parquet footer alone, by ranged GETs (the leading magic, the last
    /// 8 bytes: metadata length and magic, then the metadata), written at
    /// its offsets into a sparse file of the object's size: a reader of the
    /// metadata reads the same bytes as from the whole file.
    static func copyFooter(_ client: S3Client, _ key: String, _ location: String, _ path: String) throws {
        guard let size = try client.list(prefix: key).first(where: { $0.key == key })?.size else { throw missing(location) }
        let magic = Array("PAR1".utf8)
        func notParquet(_ why: String) -> UserError {
            UserError("'\(location)' is not a readable Parquet file: \(why)")
        }
        guard size >= 12 else { throw notParquet("\(size) bytes, too short for Parquet") }
        guard let head = try client.get(key, range: 0..<4), let tail = try client.get(key, range: (size - 8)..<size),
              head.count == 4, tail.count == 8 else { throw missing(location) }
        guard head == magic, Array(tail[4...]) == magic else { throw notParquet("no PAR1 magic at its start and end") }
        let length = Int64(tail[0]) | Int64(tail[1]) << 8 | Int64(tail[2]) << 16 | Int64(tail[3]) << 24
        guard length > 0, length <= size - 12 else { throw notParquet("footer length \(length) in a file of \(size) bytes") }
        let footerStart = size - 8 - length
        guard let footer = try client.get(key, range: footerStart..<(size - 8)), footer.count == Int(length) else {
            throw missing(location)
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw StorageError("create", path) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw StorageError("truncate", path) }
        for (bytes, at) in [(head, Int64(0)), (footer, footerStart), (tail, size - 8)] {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(at)) }
            guard n == bytes.count else { throw StorageError("write", path) }
        }
    }

    static func missing(_ location: String) -> UserError {
        UserError("'\(location)' does not exist — check the key (qos inspect takes a .parquet object or a table prefix)")
    }

    public static func removeCopy(_ cleanup: String?) {
        if let cleanup { CheckpointStore.removeTree(cleanup) }
    }
}
