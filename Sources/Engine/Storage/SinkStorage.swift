#if canImport(Glibc)
import Glibc
#endif

/// Where a sink's files live: a local directory (`LocalStorage`) or an
/// S3-compatible bucket (`S3Storage`, docs/object-storage.md). The epoch
/// commit (`CheckpointStore`), the ledger and the sink identity speak only
/// these calls, so both share one exactly-once logic. Paths are relative to
/// the sink, `/`-separated, without a leading `/` ("" is the sink itself).
public protocol SinkStorage: AnyObject, Sendable {
    /// The sink as the user named it (a directory, or `s3://bucket/prefix`).
    var location: String { get }
    /// Fails with a one-line error naming the fix when the sink cannot be written.
    func checkWritable() throws
    /// Creates a directory and its parents where the storage has directories.
    func makeDirectory(_ rel: String) throws
    /// Writes a file durably; readers skip it by its place (`_staging/`), so
    /// it need not appear atomically.
    func stage(_ rel: String, _ bytes: [UInt8]) throws
    /// Makes the entries of a directory durable (a new file, a rename).
    func syncDirectory(_ rel: String) throws
    /// Writes a file that readers see whole or not at all, durably.
    func publish(_ rel: String, _ bytes: [UInt8]) throws
    /// Like `publish`, without making the directory entry durable at once
    /// (the ledger: an older one only asks less).
    func replace(_ rel: String, _ bytes: [UInt8]) throws
    /// The commit point of an epoch: creates `rel` unless an object with
    /// other bytes is already there (false: another writer committed it).
    func commit(_ rel: String, _ bytes: [UInt8]) throws -> Bool
    /// Creates `rel` durably, seen whole or not at all, unless something is
    /// already there (false, and it is left as it was): of writers racing
    /// to create one file, exactly one gets true.
    func create(_ rel: String, _ bytes: [UInt8]) throws -> Bool
    /// Moves a staged file to its final place; false when the staged file is
    /// gone (moved before: recovery repeats moves).
    func move(_ from: String, to: String) throws -> Bool
    /// A file's bytes, nil when it does not exist.
    func read(_ rel: String) throws -> [UInt8]?
    /// The names in a directory (files and subdirectories), sorted, without
    /// dot names; empty when there is no such directory.
    func list(_ rel: String) throws -> [String]
    /// Removes a file (no error when it is gone).
    func remove(_ rel: String)
    /// Removes a directory once it is empty (nothing where there are no directories).
    func removeEmptyDirectory(_ rel: String)
    /// Removes a directory and everything in it.
    func removeTree(_ rel: String)
    /// Seconds since a file, or a directory's newest file, was written (0 if unknown).
    func ageSeconds(_ rel: String) -> Double
    /// Some visible file ending in `suffix` (outside `_` directories), at most 5 levels down.
    func firstFile(suffix: String) -> String?
    /// Deletes the temporary files `create` left in directory `rel` that
    /// were last written over `seconds` ago: a writer killed between
    /// writing one and placing or removing it. Returns how many went.
    /// Nothing where `create` makes none (object storage).
    func removeStaleTemporaries(_ rel: String, olderThan seconds: Double) -> Int
}

extension SinkStorage {
    /// The full name of a path, for messages.
    public func display(_ rel: String) -> String { rel.isEmpty ? location : "\(location)/\(rel)" }
}

/// The sink as a local directory: atomic publication by rename, durability by fsync.
public final class LocalStorage: SinkStorage {
    public let location: String

    let exclusivePlacement: ExclusivePlacement

    public convenience init(root: String) { self.init(root: root, exclusivePlacement: ExclusivePlacement()) }

    init(root: String, exclusivePlacement: ExclusivePlacement) {
        location = root
        self.exclusivePlacement = exclusivePlacement
    }

    func path(_ rel: String) -> String { rel.isEmpty ? location : "\(location)/\(rel)" }

    public func checkWritable() throws {
        try FileSink.makeDirectories(location)
        let probe = "\(location)/.qos-write-probe"
        let fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw UserError("sink '\(location)' is not writable: \(String(cString: strerror(errno))) — choose another --sink or fix its permissions")
        }
        close(fd)
        unlink(probe)
    }

    public func makeDirectory(_ rel: String) throws { try FileSink.makeDirectories(path(rel)) }

    public func stage(_ rel: String, _ bytes: [UInt8]) throws { try FileSink.writeDurably(bytes, to: path(rel)) }

    public func syncDirectory(_ rel: String) throws { try FileSink.fsyncDirectory(path(rel)) }

    public func publish(_ rel: String, _ bytes: [UInt8]) throws {
        let (dir, name) = LocalStorage.split(path(rel))
        try FileSink.publishLocally(bytes, dir: dir, name: name)
    }

    public func replace(_ rel: String, _ bytes: [UInt8]) throws {
        let (dir, name) = LocalStorage.split(path(rel))
        try FileSink.makeDirectories(dir)
        let tmp = "\(dir)/.\(name).tmp"
        try FileSink.writeDurably(bytes, to: tmp)
        guard rename(tmp, "\(dir)/\(name)") == 0 else { throw StorageError("rename", "\(dir)/\(name)") }
    }

    /// Created only if absent, as on object storage. One process per
    /// instance name writes its manifests (`InstanceLock`), but a lock that
    /// a file system does not honour (another host on NFS) must not let a
    /// second process replace a committed epoch: it gets false. Our own
    /// bytes already there are our own commit.
    public func commit(_ rel: String, _ bytes: [UInt8]) throws -> Bool {
        if try create(rel, bytes) { return true }
        return try read(rel) == bytes
    }

    public func create(_ rel: String, _ bytes: [UInt8]) throws -> Bool {
        let (dir, name) = LocalStorage.split(path(rel))
        try FileSink.makeDirectories(dir)
        let final = "\(dir)/\(name)"
        // A name of this writer's own: racing writers never share one.
        // Hidden from `list`; left behind only by a writer killed before
        // its unlink below, and then deleted by `removeStaleTemporaries`.
        let tmp = "\(dir)/.\(name).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        try FileSink.writeDurably(bytes, to: tmp)
        // link(2) fails with EEXIST when the name is taken: exactly one wins,
        // and the file appears whole.
        var placed = exclusivePlacement.link(tmp, final) == 0
        var code = errno
        if !placed && LocalStorage.refusesHardLinks(code) {
            // No hard links here (a FUSE mount, FAT): a rename that refuses to replace.
            placed = exclusivePlacement.renameNoReplace(tmp, final) == 0
            code = errno
        }
        unlink(tmp)  // gone already after the rename
        if placed {
            try FileSink.fsyncDirectory(dir)
            return true
        }
        if code == EEXIST { return false }
        guard LocalStorage.refusesHardLinks(code) || code == EINVAL else {
            throw StorageError("link", final, errno: code)
        }
        return try createExclusively(final, bytes, dir: dir)
    }

    /// link(2) failing with `code` means the file system has no hard links.
    static func refusesHardLinks(_ code: Int32) -> Bool {
        code == EPERM || code == EOPNOTSUPP || code == ENOTSUP || code == ENOSYS
    }

    /// `create` where neither link(2) nor renameat2(RENAME_NOREPLACE) works:
    /// `O_EXCL` still lets exactly one writer create the file, but a reader
    /// racing the writer may see it before its bytes (the sink identity:
    /// "not a sink id", and a restart reads it whole).
    private func createExclusively(_ final: String, _ bytes: [UInt8], dir: String) throws -> Bool {
        let fd = open(final, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        if fd < 0 {
            if errno == EEXIST { return false }
            throw StorageError("create", final)
        }
        defer { close(fd) }
        try FileSink.writeDurably(bytes, fd: fd, path: final)
        try FileSink.fsyncDirectory(dir)
        return true
    }

    /// The two system calls `create` places a file with; tests replace
    /// them to take the paths of a file system without them.
    struct ExclusivePlacement: Sendable {
        var link: @Sendable (String, String) -> Int32 = { Glibc.link($0, $1) }
        var renameNoReplace: @Sendable (String, String) -> Int32 = { c_renameat2(AT_FDCWD, $0, AT_FDCWD, $1, Engine.renameNoReplace) }
    }

    public func move(_ from: String, to: String) throws -> Bool {
        guard access(path(from), F_OK) == 0 else { return false }
        try FileSink.makeDirectories(LocalStorage.split(path(to)).dir)
        guard rename(path(from), path(to)) == 0 else {
            // Another instance rolling the same manifest forward (its
            // `recover` on an assignment) moved it first: published once.
            if errno == ENOENT && access(path(from), F_OK) != 0 { return false }
            throw StorageError("rename", path(to))
        }
        return true
    }

    public func read(_ rel: String) throws -> [UInt8]? {
        guard access(path(rel), F_OK) == 0 else { return nil }
        return try Inspector.readFile(path(rel))
    }

    public func list(_ rel: String) throws -> [String] { CheckpointStore.listFiles(path(rel)) }

    public func remove(_ rel: String) { unlink(path(rel)) }

    public func removeEmptyDirectory(_ rel: String) { rmdir(path(rel)) }

    public func removeTree(_ rel: String) { CheckpointStore.removeTree(path(rel)) }

    public func ageSeconds(_ rel: String) -> Double { CheckpointStore.ageSeconds(path(rel)) }

    public func removeStaleTemporaries(_ rel: String, olderThan seconds: Double) -> Int {
        let dir = path(rel)
        var removed = 0
        for name in CheckpointStore.listFiles(dir, hidden: true) where LocalStorage.isCreateTemporary(name) {
            let file = "\(dir)/\(name)"
            if CheckpointStore.ageSeconds(file) > seconds && unlink(file) == 0 { removed += 1 }
        }
        return removed
    }

    /// `create`'s temporary names: `.<name>.<pid>.<random>.tmp`.
    static func isCreateTemporary(_ name: String) -> Bool {
        guard name.hasPrefix("."), name.hasSuffix(".tmp") else { return false }
        let parts = name.dropFirst().dropLast(4).split(separator: ".", omittingEmptySubsequences: false)
        return parts.count >= 3 && UInt32(parts[parts.count - 1]) != nil && Int32(parts[parts.count - 2]) != nil
    }

    public func firstFile(suffix: String) -> String? {
        func search(_ dir: String, _ depth: Int) -> String? {
            for name in CheckpointStore.listFiles(dir) where !name.hasPrefix("_") {
                let path = "\(dir)/\(name)"
                if name.hasSuffix(suffix) { return path }
                if depth < 4, Inspector.isDirectory(path), let f = search(path, depth + 1) { return f }
            }
            return nil
        }
        return search(location, 0)
    }

    static func split(_ path: String) -> (dir: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }
}
