#if canImport(Glibc)
import Glibc
#endif
import QoSCore

/// An error an operator fixes: `description` is one line naming the problem
/// and the fix (`qos` prints it as `qos: error: …` and exits 1).
public protocol OperatorError: Error, CustomStringConvertible {}

extension UserError: OperatorError {}

/// A failed storage call, with its errno kept (not only its text).
public struct StorageError: OperatorError {
    public let operation: String
    public let path: String
    public let errno: Int32

    /// Captures the current `errno`.
    public init(_ operation: String, _ path: String, errno: Int32 = Glibc.errno) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String {
        "cannot \(operation) '\(path)': \(String(cString: strerror(errno))) — check the sink's path, permissions and free space"
    }
}

/// Refusals of the checkpoint state and the sink (README "The daemon": state
/// and sink integrity). Each names the file or condition and the fix.
public enum CheckpointError: OperatorError, Equatable {
    /// A manifest, snapshot or ledger whose bytes are not the ones written.
    case corrupt(path: String, detail: String)
    /// A manifest or snapshot of a later format than this build reads (a
    /// newer qos ran on the sink, and this one is older).
    case newerFormat(path: String, detail: String)
    /// The sink holds published output that the checkpoint state does not cover.
    case stateLost(sink: String, detail: String)
    /// The checkpoints were taken from another Kafka cluster.
    case clusterChanged(sink: String, stored: String, current: String)
    /// The sink, or its identity file, vanished or changed under a running daemon.
    case sinkReplaced(sink: String, detail: String)

    public static let acceptFlag = "--accept-state-loss"

    public var description: String {
        switch self {
        case .corrupt(let path, let detail):
            return "checkpoint '\(path)' is corrupt (\(detail)) — move it away to restart its partitions from "
                + "their previous checkpoint (then pass \(Self.acceptFlag) if the daemon reports state loss), or restore it from a backup"
        case .newerFormat(let path, let detail):
            return "checkpoint '\(path)' was written by a newer release of qos (\(detail)) — run that release or a "
                + "later one on this sink; this one cannot continue from it"
        case .stateLost(let sink, let detail):
            return "sink '\(sink)': \(detail); starting would count again what is already published — restore the "
                + "missing checkpoint files of '\(sink)/_qos', use an empty --sink, or pass \(Self.acceptFlag) to start anyway"
        case .clusterChanged(let sink, let stored, let current):
            return "the checkpoints in '\(sink)/_qos' were taken from Kafka cluster '\(stored)', but the brokers are "
                + "cluster '\(current)': their offsets mean nothing there — point --brokers at the original cluster, "
                + "use an empty --sink, or pass \(Self.acceptFlag) to continue from the checkpointed offsets anyway"
        case .sinkReplaced(let sink, let detail):
            return "sink '\(sink)' \(detail) while the daemon was running: the epochs published in it are gone — "
                + "restore the sink from a backup, or restart with an empty --sink"
        }
    }
}

/// The sink's identity and the checkpoint ledger, both under `<sink>/_qos/`:
/// - `sink-id`: a random id written once, when the daemon first starts on
///   the sink (created conditionally: of daemons started at once on an empty
///   sink, one writes it and the others adopt it); every manifest carries it, and it is checked before every
///   checkpoint, so a sink deleted or replaced under a running daemon stops it.
/// - `ledger/<instance>`: per partition, the highest checkpoint sequence (and
///   next offset) this instance has committed, rewritten after every manifest.
///   A newest manifest that is missing at start shows as a ledger sequence
///   above the newest manifest's.
extension CheckpointStore {
    /// Relative to the sink.
    var sinkIdRel: String { "_qos/sink-id" }
    var ledgerRel: String { "_qos/ledger" }
    var sinkIdPath: String { storage.display(sinkIdRel) }
    var ledgerDir: String { storage.display(ledgerRel) }
    static let ledgerMagic = Array("QOSLEDG1".utf8)

    /// The id in `<sink>/_qos/sink-id`, nil if the file is missing.
    func readSinkId() throws -> String? {
        guard let bytes = try storage.read(sinkIdRel) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        let id = text.split(whereSeparator: { $0 == "\n" || $0 == " " }).first.map(String.init) ?? ""
        guard id.hasPrefix("videoqos-sink-"), id.count == 14 + 32 else {
            throw CheckpointError.corrupt(path: sinkIdPath, detail: "not a sink id")
        }
        return id
    }

    static func newSinkId() -> String {
        var g = SystemRandomNumberGenerator()
        let hex = (0..<2).map { _ in
            let s = String(g.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return "videoqos-sink-" + hex.joined()
    }

    /// Checks, before anything is consumed, that the checkpoint state covers
    /// what the sink already published; creates the sink's identity on first
    /// use. With `accept` a refusal is logged instead, and the ledgers are
    /// lowered to the surviving state so the next start needs no flag.
    public func openState(accept: Bool, log: (String) -> Void) throws {
        // Ledgers before manifests: a ledger entry is written after its
        // manifest, so an instance committing meanwhile cannot look ahead.
        var ledgers = try readLedgers()
        let all = try recover()
        var problems: [String] = []
        var replaceIdentity = false
        let ids = Set(all.map(\.sinkId).filter { !$0.isEmpty })
        var id = try readSinkId()
        if let id, let other = ids.first(where: { $0 != id }) {
            problems.append("its checkpoints belong to another sink ('\(other)', this sink is '\(id)')")
        } else if id == nil, ids.count == 1 {
            id = ids.first  // only the identity file was lost: the manifests still name it
        }
        if all.isEmpty, let file = firstPublishedFile() {
            problems.append("it holds published files (e.g. '\(file)') but no checkpoint state ('\(root)/_qos/manifests' is empty)")
        }
        let newest = CheckpointStore.newestSeqs(all)
        for (inst, entries) in ledgers {
            for (key, e) in entries.sorted(by: { $0.key < $1.key }) where e.seq > newest[key] ?? -1 {
                problems.append("partition \(key) was checkpointed at sequence \(e.seq) (offset \(e.next), per '\(ledgerDir)/\(inst)') "
                    + "but the newest manifest has \(newest[key].map(String.init) ?? "none")")
            }
        }
        if !problems.isEmpty {
            let detail = problems.prefix(3).joined(separator: "; ") + (problems.count > 3 ? "; and \(problems.count - 3) more" : "")
            guard accept else { throw CheckpointError.stateLost(sink: root, detail: detail) }
            log("qos run: \(CheckpointError.acceptFlag): accepting state loss in '\(root)': \(detail) — windows already published may be counted again")
            for (inst, entries) in ledgers {
                var lowered = entries.filter { newest[$0.key] != nil }
                for k in lowered.keys { lowered[k]!.seq = min(lowered[k]!.seq, newest[k]!) }
                if lowered != entries { try writeLedger(lowered, instance: inst) }
                ledgers[inst] = lowered
            }
            if let i = id, ids.contains(where: { $0 != i }) { replaceIdentity = true }  // adopt a fresh identity
        }
        sinkId = try settleIdentity(known: id, replace: replaceIdentity)
        ledger = ledgers[instance] ?? [:]
    }

    /// The sink's identity once `openState`'s checks are done. `known`: the
    /// one its file or its manifests name (nil: a new sink); `replace`: a
    /// fresh one over a foreign one (`--accept-state-loss`). Daemons started
    /// at once on one sink each come here, and may have read no file a
    /// moment ago while another has created it since: the file is only ever
    /// created conditionally (`SinkStorage.create`), so exactly one identity
    /// is written and the others adopt it — never overwritten, except by
    /// `replace`.
    func settleIdentity(known: String?, replace: Bool) throws -> String {
        if replace {
            let fresh = CheckpointStore.newSinkId()
            try storage.publish(sinkIdRel, Array((fresh + "\n").utf8))
            return fresh
        }
        if let known, try readSinkId() == known { return known }  // the usual start: nothing to write
        let wanted = known ?? CheckpointStore.newSinkId()
        if try storage.create(sinkIdRel, Array((wanted + "\n").utf8)) { return wanted }
        guard let found = try readSinkId() else {
            throw CheckpointError.sinkReplaced(sink: root, detail: "lost its identity file '\(sinkIdPath)' just after another daemon created it")
        }
        // A new sink: another daemon's identity won. A known one restored
        // by another daemon in the same moment is the same.
        guard known == nil || found == known else {
            throw CheckpointError.sinkReplaced(sink: root, detail: "was given another identity ('\(found)', its checkpoints name '\(known!)') while this daemon started")
        }
        return found
    }

    /// Refuses to continue from checkpoints of `topic` taken from another
    /// Kafka cluster than `current` (with `accept`: logs it and continues).
    public func checkCluster(_ current: String, topic: String, accept: Bool, log: (String) -> Void) throws {
        clusterId = current
        guard !current.isEmpty else { return }
        let stored = Set(CheckpointStore.latest(try manifests(), topic: topic).values.map(\.clusterId).filter { !$0.isEmpty })
        guard let other = stored.sorted().first(where: { $0 != current }) else { return }
        guard accept else { throw CheckpointError.clusterChanged(sink: root, stored: other, current: current) }
        log("qos run: \(CheckpointError.acceptFlag): continuing from checkpoints of Kafka cluster '\(other)' on cluster '\(current)'")
    }

    /// Before every checkpoint: the sink must still be the one we started on.
    public func checkIdentity() throws {
        guard !sinkId.isEmpty else { return }
        let found: String?
        do { found = try readSinkId() } catch { found = "unreadable" }
        guard let found else {
            throw CheckpointError.sinkReplaced(sink: root, detail: "was deleted (its identity file '\(sinkIdPath)' is gone)")
        }
        guard found == sinkId else {
            throw CheckpointError.sinkReplaced(sink: root, detail: "was replaced (its identity is now '\(found)', was '\(sinkId)')")
        }
    }

    /// Deletes other instances' ledgers that every partition has moved past
    /// (newer manifests, recorded in their own instances' ledgers, cover them),
    /// so `ledger/` holds about one file per live instance.
    func collectLedgers(_ newest: [String: Int64]) {
        guard let ledgers = try? readLedgers() else { return }
        for (inst, entries) in ledgers where inst != instance {
            if entries.allSatisfy({ $0.value.seq < newest[$0.key] ?? -1 }) { storage.remove("\(ledgerRel)/\(inst)") }
        }
    }

    /// The newest checkpoint sequence of every partition (`topic/partition`).
    static func newestSeqs(_ manifests: [Manifest]) -> [String: Int64] {
        var out: [String: Int64] = [:]
        for m in manifests { for p in m.partitions { out["\(p.topic)/\(p.partition)"] = max(out["\(p.topic)/\(p.partition)"] ?? -1, p.seq) } }
        return out
    }

    /// After a manifest commits: the ledger records its partitions' sequences.
    func recordInLedger(_ partitions: [PartitionCheckpoint]) throws {
        for p in partitions {
            let key = "\(p.topic)/\(p.partition)"
            if p.seq > ledger[key]?.seq ?? -1 { ledger[key] = LedgerEntry(seq: p.seq, next: p.nextOffset) }
        }
        try writeLedger(ledger, instance: instance)
    }

    func writeLedger(_ entries: [String: LedgerEntry], instance inst: String) throws {
        var w = StateWriter()
        for b in CheckpointStore.ledgerMagic { w.uint(UInt64(b)) }
        w.string(inst)
        w.uint(UInt64(entries.count))
        for (k, e) in entries.sorted(by: { $0.key < $1.key }) { w.string(k); w.int(e.seq); w.int(e.next) }
        w.seal()
        // The rename need not be durable at once: an older ledger only asks less.
        try storage.replace("\(ledgerRel)/\(inst)", w.bytes)
    }

    func readLedgers() throws -> [String: [String: LedgerEntry]] {
        var out: [String: [String: LedgerEntry]] = [:]
        for inst in try storage.list(ledgerRel) {
            let path = "\(ledgerDir)/\(inst)"
            guard let bytes = try storage.read("\(ledgerRel)/\(inst)") else { continue }  // collected since the listing
            guard bytes.starts(with: CheckpointStore.ledgerMagic), CRC32C.verifySealed(bytes) else {
                throw CheckpointError.corrupt(path: path, detail: "CRC32C mismatch")
            }
            do {
                var r = StateReader(bytes, end: bytes.count - 4)
                for _ in CheckpointStore.ledgerMagic { _ = try r.uint() }
                let name = try r.string()
                var entries: [String: LedgerEntry] = [:]
                for _ in 0..<(try r.count()) { entries[try r.string()] = LedgerEntry(seq: try r.int(), next: try r.int()) }
                out[name] = entries
            } catch {
                throw CheckpointError.corrupt(path: path, detail: "\(error)")
            }
        }
        return out
    }

    /// Some visible `.parquet` file of the sink, if there is one (stops at the first).
    func firstPublishedFile() -> String? { storage.firstFile(suffix: ".parquet") }
}

struct LedgerEntry: Equatable {
    var seq: Int64
    var next: Int64
}
