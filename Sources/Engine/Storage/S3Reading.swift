#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ObjectStore

/// The readers (`qos inspect`, `qos reaggregate`, `qos report`) on an
/// `s3://` sink: the visible files under the address are downloaded into a
/// temporary directory with the same layout, and read from there
/// (docs/object-storage.md, "Readers"). Visible means what a listing reader
/// must count: no `_staging/`, `_qos/` or any other `_`/`.` path segment.
public enum S3Reading {
    /// A local path holding what `location` names: itself when it is not
    /// `s3://`; else a file or directory in a new temporary directory,
    /// `cleanup`, that `removeCopy` deletes.
    public static func localCopy(of location: String, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> (path: String, cleanup: String?) {
        guard location.hasPrefix("s3://") else { return (location, nil) }
        let storage = try S3Storage(location: location, environment: environment)
        let client = storage.client
        let base = NSTemporaryDirectory() + "qos-s3-\(UUID().uuidString)"
        try FileSink.makeDirectories(base)
        let prefix = client.config.prefix
        if prefix.hasSuffix(".parquet") {
            guard let bytes = try client.get(prefix) else {
                throw UserError("'\(location)' does not exist — check the key (qos inspect takes a .parquet object or a table prefix)")
            }
            let name = String(prefix.split(separator: "/").last!)
            try FileSink.writeDurably(bytes, to: "\(base)/\(name)")
            return ("\(base)/\(name)", base)
        }
        let objects = try client.list(prefix: prefix.isEmpty ? "" : prefix + "/")
        for o in objects {
            let rel = String(o.key.dropFirst(prefix.isEmpty ? 0 : prefix.count + 1))
            let parts = rel.split(separator: "/")
            guard !parts.isEmpty, !parts.contains(where: { $0.hasPrefix("_") || $0.hasPrefix(".") }) else { continue }
            guard let bytes = try client.get(o.key) else { continue }  // deleted since the listing
            let dir = parts.count > 1 ? base + "/" + parts.dropLast().joined(separator: "/") : base
            try FileSink.makeDirectories(dir)
            try FileSink.writeDurably(bytes, to: "\(base)/\(rel)")
        }
        return (base, base)
    }

    public static func removeCopy(_ cleanup: String?) {
        if let cleanup { CheckpointStore.removeTree(cleanup) }
    }
}
