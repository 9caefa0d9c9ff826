import QoSCore

/// Two processes reading one partition into one sink (docs/architecture.md
/// "Fencing"): a member of the group resumed after its session timed out,
/// or a second daemon in another `--group` on the same sink. Each would
/// publish the same stretch of the partition: counted twice.
///
/// The sink shows it. A partition's checkpoint sequence grows by one with
/// every checkpoint, whoever takes it, and a holder's next one is its
/// restored sequence plus one. So if another instance's manifest already
/// carries a sequence at or past the one this epoch would commit for a
/// partition it holds, someone else checkpointed the partition after this
/// process restored it: this process is not its only holder. The epoch is
/// then not committed (or, found right after its commit point, withdrawn)
/// and the daemon stops; a restart restores the newest checkpoint.
public struct ConcurrentHolder: OperatorError, Equatable {
    /// `topic/partition`.
    public let partition: String
    /// The sequence this epoch would have committed, and the other instance's.
    public let ours: Int64
    public let theirs: Int64
    public let otherInstance: String
    /// The other instance's manifest, as the storage names it.
    public let manifest: String

    public var description: String {
        "partition \(partition) was checkpointed by another instance ('\(otherInstance)', sequence \(theirs) in '\(manifest)') "
            + "after this one restored it (this epoch would commit sequence \(ours)): two processes are reading it into one "
            + "sink — a second daemon with another --group on this --sink, or this process was paused past the group's "
            + "session timeout; this epoch is not published, so nothing is counted twice — give each group its own "
            + "--sink, then restart: it resumes from the newest checkpoint"
    }
}

extension CheckpointStore {
    /// The sink's half of the fence, run just before and just after the
    /// commit point of an epoch that holds `partitions`: throws
    /// `ConcurrentHolder` when another instance's committed manifest has a
    /// checkpoint of one of them at the sequence this epoch would commit
    /// (or commits) or later. Reads only manifests it has no summary of; the
    /// listing is kept for `collectGarbage`.
    func checkSoleHolder(_ partitions: [PartitionCheckpoint]) throws {
        let listed = try manifestPaths()
        fenceListing = listed
        var others: [String: (seq: Int64, rel: String, instance: String)] = [:]
        for rel in listed {
            if summaries[rel] == nil { _ = try readManifest(rel) }  // nil: collected since the listing
            guard let s = summaries[rel], s.instance != instance else { continue }
            for p in s.seqs where p.seq > others[p.partition]?.seq ?? -1 { others[p.partition] = (p.seq, rel, s.instance) }
        }
        for p in partitions {
            let key = "\(p.topic)/\(p.partition)"
            guard let o = others[key], o.seq >= p.seq else { continue }
            throw ConcurrentHolder(partition: key, ours: p.seq, theirs: o.seq, otherInstance: o.instance,
                                   manifest: storage.display(o.rel))
        }
    }
}
