#if canImport(Glibc)
import Glibc
#endif
import Parquet
import QoSCore

/// Exactly-once publication (docs/semantics.md §5, docs/architecture.md, "The epoch commit"): a flush epoch
/// of one instance is
///   1. its files written and fsynced under `<sink>/_staging/<instance>/<epoch>/`
///      (readers skip `_` directories),
///   2. one manifest written atomically under `<sink>/_qos/manifests/<instance>/`:
///      per partition the next offset, a per-partition sequence number and
///      the partition's state snapshot; and the staged → final file list.
///      The manifest's rename is the commit point.
///   3. the staged files renamed to their final paths, then the staging
///      directory removed (published).
/// Recovery rolls every manifest forward (renames are idempotent) and
/// deletes staging directories that no manifest names: their epoch never
/// committed, so its files must never become visible. Every step goes
/// through `SinkStorage`: on object storage the manifest's conditional PUT is
/// the commit point and a rename is a COPY then a DELETE (docs/object-storage.md).
public struct PartitionCheckpoint: Sendable {
    public var topic: String
    public var partition: Int32
    /// Increases with every checkpoint of this partition, across instances.
    public var seq: Int64
    /// The next offset to consume.
    public var nextOffset: Int64
    public var state: [UInt8]
    /// The record format's own state for this partition
    /// (`RecordFormat.checkpointState`; empty for most formats and in
    /// manifests before version 3).
    public var formatState: [UInt8] = []
    /// Not stored per partition: the Kafka cluster id and the path of the
    /// manifest this checkpoint was read from.
    public var clusterId = ""
    public var source = ""
}

public struct Manifest: Sendable {
    public var instance: String
    public var epoch: Int64
    /// The sink's identity (`<sink>/_qos/sink-id`) and the Kafka cluster id
    /// the offsets belong to ("" in version-1 manifests).
    public var sinkId = ""
    public var clusterId = ""
    public var partitions: [PartitionCheckpoint]
    /// (staged path, final path), relative to the sink.
    public var files: [(staged: String, final: String)]

    /// Version 3: the magic, the body's size and the body as one zstd frame
    /// (partition snapshots shrink ≈ 7×: less to write, fsync and upload
    /// every epoch), each partition with its format state. Versions 2 and 3
    /// end with a CRC32C of the bytes before it; versions 1 (no checksum or
    /// identities) and 2 (uncompressed), written by older versions, are
    /// still read.
    static let magic = Array("QOSMANI3".utf8)
    static let magicV2 = Array("QOSMANI2".utf8)
    static let magicV1 = Array("QOSMANI1".utf8)

    init(instance: String, epoch: Int64, sinkId: String = "", clusterId: String = "",
         partitions: [PartitionCheckpoint], files: [(staged: String, final: String)]) {
        self.instance = instance
        self.epoch = epoch
        self.sinkId = sinkId
        self.clusterId = clusterId
        self.partitions = partitions
        self.files = files
    }

    /// zstd level of the body: level 1 already shrinks snapshots ≈ 7× at
    /// ≈ 300 MB/s; higher levels cost far more for little.
    static let compressionLevel = 1
    /// Largest body a manifest may declare (guards the allocation).
    static let bodyLimit = 1 << 40

    func encode() throws -> [UInt8] {
        // The body, as the pieces between the partitions' snapshots and the
        // snapshots themselves (each as `StateWriter.blob` writes one: its
        // length, then its bytes), compressed piece by piece: the body is
        // never copied whole (docs/architecture.md "The daemon's heap").
        var parts: [[UInt8]] = []
        var head = StateWriter()
        func blob(_ b: [UInt8]) {
            head.uint(UInt64(b.count))
            parts.append(head.bytes)
            parts.append(b)
            head = StateWriter()
        }
        head.string(instance); head.int(epoch); head.string(sinkId); head.string(clusterId)
        head.uint(UInt64(partitions.count))
        for p in partitions {
            head.string(p.topic); head.int(Int64(p.partition)); head.int(p.seq); head.int(p.nextOffset)
            blob(p.state)
            blob(p.formatState)
        }
        head.uint(UInt64(files.count))
        for f in files { head.string(f.staged); head.string(f.final) }
        parts.append(head.bytes)
        var w = StateWriter()
        for b in Manifest.magic { w.uint(UInt64(b)) }
        w.uint(UInt64(parts.reduce(0) { $0 + $1.count }))
        w.blob(try zstdCompress(parts: parts, level: Manifest.compressionLevel))
        w.seal()
        return w.bytes
    }

    /// Verifies the CRC32C (version 2) and decodes. `path` only labels the
    /// partitions' `source`; callers name the file in their errors.
    static func decode(_ bytes: [UInt8], path: String = "") throws -> Manifest {
        let v3 = bytes.starts(with: magic)
        let sealed = v3 || bytes.starts(with: magicV2)
        guard sealed || bytes.starts(with: magicV1) else {
            throw StateError.newerFormat(bytes, family: "QOSMANI", known: 3, what: "a manifest") ?? StateError(message: "not a manifest")
        }
        guard !sealed || CRC32C.verifySealed(bytes) else { throw StateError.checksumMismatch }
        var r = StateReader(bytes, end: sealed ? bytes.count - 4 : bytes.count)
        for _ in magic { _ = try r.uint() }
        if v3 {
            let size = try r.count(bodyLimit), frame = try r.blob()
            guard r.atEnd else { throw StateError(message: "trailing bytes in manifest") }
            let body: [UInt8]
            do {
                body = try zstdDecompress(frame, range: 0..<frame.count, expectedSize: size, limit: bodyLimit, what: "manifest")
            } catch {
                throw StateError(message: "\(error)")
            }
            r = StateReader(body)
        }
        var m = Manifest(instance: try r.string(), epoch: try r.int(), partitions: [], files: [])
        if sealed { m.sinkId = try r.string(); m.clusterId = try r.string() }
        for _ in 0..<(try r.count()) {
            m.partitions.append(PartitionCheckpoint(topic: try r.string(), partition: Int32(truncatingIfNeeded: try r.int()),
                                                    seq: try r.int(), nextOffset: try r.int(), state: try r.blob(),
                                                    formatState: v3 ? try r.blob() : [],
                                                    clusterId: m.clusterId, source: path))
        }
        for _ in 0..<(try r.count()) { m.files.append((try r.string(), try r.string())) }
        guard r.atEnd else { throw StateError(message: "trailing bytes in manifest") }
        return m
    }
}

/// What collecting superseded manifests needs of one: whose it is, its
/// epoch and its partitions' checkpoint sequences, without their states.
struct ManifestSummary {
    let instance: String
    let epoch: Int64
    /// Per partition (`topic/partition`), the sequence of its checkpoint here.
    let seqs: [(partition: String, seq: Int64)]

    init(_ m: Manifest) {
        instance = m.instance
        epoch = m.epoch
        seqs = m.partitions.map { ("\($0.topic)/\($0.partition)", $0.seq) }
    }
}

public final class CheckpointStore {
    public let sink: FileSink
    /// The sink's files: a local directory or an object store (`SinkStorage`).
    let storage: any SinkStorage
    public let instance: String
    public private(set) var epoch: Int64
    /// Set by `openState` / `checkCluster` (StateGuard.swift); written into every manifest.
    public internal(set) var sinkId = ""
    public internal(set) var clusterId = ""
    /// This instance's ledger: per `topic/partition`, the highest sequence committed.
    var ledger: [String: LedgerEntry] = [:]
    var root: String { sink.root }
    /// Relative to the sink.
    var manifestDir: String { "_qos/manifests/\(instance)" }
    /// Summaries of the manifests this store committed or read, by path
    /// relative to the sink: a manifest never changes once committed, so
    /// garbage collection reads each one at most once (`collectGarbage`).
    var summaries: [String: ManifestSummary] = [:]
    /// The manifest listing `checkSoleHolder` took last, after the epoch's
    /// commit point: `collectGarbage` uses it instead of listing again (one
    /// request fewer per epoch on object storage).
    var fenceListing: [String]?
    /// Manifests read and decoded so far (tests: collection reads only new ones).
    private(set) var manifestsDecoded = 0

    /// How long a writer's leftovers (a staging directory, a temporary
    /// manifest, a manifest of no partition) wait before another start or
    /// instance deletes them: far longer than any epoch takes to write.
    static let deadWriterSeconds = 600.0

    public init(sink: FileSink, instance: String) throws {
        self.sink = sink
        storage = sink.storage
        self.instance = instance
        try storage.makeDirectory("_qos/manifests/\(instance)")
        epoch = try storage.list("_qos/manifests/\(instance)")
            .compactMap { Int64($0.split(separator: ".")[0]) }.max() ?? 0
        _ = storage.removeStaleTemporaries(manifestDir, olderThan: Self.deadWriterSeconds)
    }

    /// Stages, commits and publishes one epoch. Returns the final paths.
    @discardableResult
    public func commit(files: [WindowFileWriter.PlannedFile], partitions: [PartitionCheckpoint]) throws -> [String] {
        let m = try commitManifest(files: files, partitions: partitions)
        try rollForward(m)
        return m.files.map(\.final)
    }

    /// Steps 1 and 2 of an epoch: stages the files, then writes the manifest
    /// (the commit point). `rollForward` publishes it.
    /// When the epoch holds partitions, two fences run last before the commit
    /// point: the sink's (`checkSoleHolder`: no other instance checkpointed
    /// them since we restored them) and `fence`, the source's: both throw when
    /// the partitions may be another process's by now. The sink's runs again
    /// right after the commit point: a manifest committed in the same moment
    /// as another holder's is withdrawn before its files are published.
    func commitManifest(files: [WindowFileWriter.PlannedFile], partitions: [PartitionCheckpoint],
                        fence: () throws -> Void = {}) throws -> Manifest {
        try checkIdentity()
        fenceListing = nil
        epoch += 1
        let stage = "_staging/\(instance)/\(CivilTime.pad(Int(epoch), 12))"
        var list: [(staged: String, final: String)] = []
        for (i, f) in files.enumerated() {
            let rel = String(f.path.dropFirst(root.count + 1))
            let staged = "\(stage)/\(i)-\(f.name)"
            try storage.makeDirectory(stage)
            try storage.stage(staged, f.bytes)
            list.append((staged, rel))
        }
        if !files.isEmpty { try storage.syncDirectory(stage) }
        let m = Manifest(instance: instance, epoch: epoch, sinkId: sinkId, clusterId: clusterId, partitions: partitions, files: list)
        let name = "\(manifestDir)/\(CivilTime.pad(Int(epoch), 12)).manifest"
        let bytes = try m.encode()
        if !partitions.isEmpty {
            try checkSoleHolder(partitions)
            try fence()
        }
        guard try storage.commit(name, bytes) else {
            throw UserError("epoch \(epoch) of instance '\(instance)' was already committed by another writer in '\(storage.display(name))' — "
                            + "give each daemon its own --instance name")
        }
        summaries[name] = ManifestSummary(m)
        if !partitions.isEmpty {
            // Another holder that passed its fences in the same moment may
            // have committed the same checkpoint meanwhile: withdraw ours
            // before any file of it is published (HolderFence.swift).
            do {
                try checkSoleHolder(partitions)
            } catch let e as ConcurrentHolder {
                storage.remove(name)
                try? storage.syncDirectory(manifestDir)  // withdrawn for good, also across a power loss
                summaries[name] = nil
                fenceListing = nil
                // `remove` reports nothing: a manifest still there would be
                // rolled forward by the next start, its files published twice.
                if (try? storage.read(name)) != .some(nil) {
                    throw UserError("\(e) — but this epoch's manifest '\(storage.display(name))' could not be withdrawn: "
                                    + "delete it before restarting any daemon on this sink, or its files are published twice")
                }
                throw e
            }
        }
        // After the commit point (a ledger ahead of the manifests would refuse
        // a start), before the files become visible.
        try recordInLedger(partitions)
        return m
    }

    /// Finishes step 3 of a committed manifest (idempotent).
    func rollForward(_ m: Manifest) throws {
        let stage = "_staging/\(m.instance)/\(CivilTime.pad(Int(m.epoch), 12))"
        // One listing instead of a probe per file: a published epoch costs
        // one request on object storage, not a failed COPY per file.
        let staged = m.files.isEmpty ? [] : Set(try storage.list(stage))
        var dirs = Set<String>()
        do {
            for f in m.files where staged.contains(String(f.staged.split(separator: "/").last ?? "")) {
                guard try storage.move(f.staged, to: f.final) else { continue }
                dirs.insert(String(f.final[..<(f.final.lastIndex(of: "/") ?? f.final.startIndex)]))
            }
            for d in dirs { try storage.syncDirectory(d) }
        } catch let e as StorageError {
            // A sink deleted in the middle of a publish says so, rather than
            // naming the directory it took with it.
            try checkIdentity()
            throw e
        }
        storage.removeTree(stage)
    }

    /// Every committed manifest in the sink (all instances).
    public func manifests() throws -> [Manifest] {
        try manifestPaths().compactMap(readManifest)
    }

    /// The paths (relative to the sink) of every committed manifest, all instances.
    func manifestPaths() throws -> [String] {
        try storage.list("_qos/manifests").flatMap { inst in
            try storage.list("_qos/manifests/\(inst)").filter { $0.hasSuffix(".manifest") }
                .map { "_qos/manifests/\(inst)/\($0)" }
        }
    }

    /// Reads and decodes one manifest (and keeps its summary); nil when it
    /// was deleted since the listing (collected by another instance: no
    /// longer in force).
    func readManifest(_ rel: String) throws -> Manifest? {
        let path = storage.display(rel)
        guard let bytes = try storage.read(rel) else { return nil }
        do {
            let m = try Manifest.decode(bytes, path: path)
            manifestsDecoded += 1
            summaries[rel] = ManifestSummary(m)
            return m
        } catch let e as StateError where e.isNewerFormat {
            throw CheckpointError.newerFormat(path: path, detail: e.message)
        } catch let e as StateError {
            throw CheckpointError.corrupt(path: path, detail: e == .checksumMismatch ? e.message : "\(e)")
        }
    }

    /// Recovery at start / on assignment: roll every manifest forward and
    /// drop staging directories of epochs that never committed.
    public func recover() throws -> [Manifest] {
        let all = try manifests()
        for m in all { try rollForward(m) }
        let committed = Set(all.map { "\($0.instance)/\(CivilTime.pad(Int($0.epoch), 12))" })
        for inst in try storage.list("_staging") {
            for ep in try storage.list("_staging/\(inst)") where !committed.contains("\(inst)/\(ep)") {
                // Only our own, or another instance's that is clearly dead (its epoch is older than 10 min).
                if inst == instance || storage.ageSeconds("_staging/\(inst)/\(ep)") > Self.deadWriterSeconds {
                    storage.removeTree("_staging/\(inst)/\(ep)")
                }
            }
        }
        return all
    }

    /// The newest checkpoint of each partition of `topic`.
    public static func latest(_ manifests: [Manifest], topic: String) -> [Int32: PartitionCheckpoint] {
        var out: [Int32: PartitionCheckpoint] = [:]
        for m in manifests {
            for p in m.partitions where p.topic == topic && p.seq > (out[p.partition]?.seq ?? -1) { out[p.partition] = p }
        }
        return out
    }

    /// Deletes our manifests that every partition has moved past, and other
    /// instances' (below). Runs after every epoch: it lists the manifests
    /// and reads only those it has no summary of — in a daemon alone on its
    /// sink, none after its start. (It used to decode every manifest in
    /// full, states and all, every 20 epochs: ≈ 550 MiB at once in a
    /// 20 000 beacons/s soak, docs/architecture.md "The daemon's heap".)
    public func collectGarbage() throws {
        var all: [(rel: String, summary: ManifestSummary)] = []
        // A manifest committed by another instance since that listing is
        // collected at the next epoch.
        let listed = try fenceListing ?? manifestPaths()
        fenceListing = nil
        for rel in listed {
            if summaries[rel] == nil { _ = try readManifest(rel) }  // keeps its summary (none: deleted since the listing)
            if let s = summaries[rel] { all.append((rel, s)) }
        }
        let present = Set(listed)
        summaries = summaries.filter { present.contains($0.key) }
        var newest: [String: Int64] = [:]
        for (_, m) in all { for p in m.seqs { newest[p.partition] = max(newest[p.partition] ?? -1, p.seq) } }
        func superseded(_ m: ManifestSummary) -> Bool {
            m.seqs.allSatisfy { $0.seq < newest[$0.partition] ?? -1 }
        }
        for (rel, m) in all where m.instance == instance && m.epoch < epoch && superseded(m) {
            storage.remove(rel)
            summaries[rel] = nil
        }
        // Another instance's manifest (a restarted daemon gets a new instance
        // name) is deleted once every partition it holds has a newer
        // checkpoint elsewhere: whoever took those partitions over rolled it
        // forward first (`recover`). One that holds no partition is deleted
        // once it is as old as a dead instance's staging directory. Without
        // this, every restart left its last manifest (a full state) forever.
        var collectedOthers = false
        for (rel, m) in all where m.instance != instance {
            let due = m.seqs.isEmpty ? storage.ageSeconds(rel) > Self.deadWriterSeconds : superseded(m)
            if due {
                storage.remove(rel)
                summaries[rel] = nil
                // Only once the instance has no manifest left (nor a temporary one a crash left).
                _ = storage.removeStaleTemporaries("_qos/manifests/\(m.instance)", olderThan: Self.deadWriterSeconds)
                storage.removeEmptyDirectory("_qos/manifests/\(m.instance)")
                collectedOthers = true
            }
        }
        // Other instances' ledgers: when one of their manifests went, and
        // every 20 epochs (each is a listing and a read per instance).
        if collectedOthers || epoch % 20 == 0 {
            collectLedgers(newest)
            // A temporary manifest of this instance's earlier run, killed
            // while writing it, once it is surely no other writer's.
            _ = storage.removeStaleTemporaries(manifestDir, olderThan: Self.deadWriterSeconds)
        }
    }

    /// The names in `dir`, sorted; dot names only when `hidden`.
    public static func listFiles(_ dir: String, hidden: Bool = false) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." && (hidden || !name.hasPrefix(".")) { out.append(name) }
        }
        return out.sorted()
    }

    /// Removes `path` and, if it is a directory, everything in it, as
    /// `rm -rf` does: hidden names included (a dot file left in a
    /// directory kept it from going), and a symbolic link removed as a
    /// link, never followed (whatever it points to stays).
    public static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for n in listFiles(path, hidden: true) { removeTree("\(path)/\(n)") }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    static func ageSeconds(_ path: String) -> Double {
        var st = stat()
        guard stat(path, &st) == 0 else { return 0 }
        return Double(wallClockMs() / 1000 - Int64(st.st_mtim.tv_sec))
    }
}
