/// The driver's bookkeeping of the partitions it owns: per partition, the
/// sequence number of its last committed checkpoint, the next offset to read
/// and the first offset of the current epoch. The one place this lives
/// (not to be confused with the ledger *files* of StateGuard.swift, which
/// record committed sequences on disk for state-loss detection).
///
/// Invariants, checked at every change: `epochStart ≤ next`, `next` never
/// moves back except by `rewind` (a partition's log restarted below it), and
/// (`check(enginePartitions:)`) the owned partitions are exactly the
/// engine's partitions.
public struct PartitionBook: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public var seq: Int64
        public var next: Int64
        public var epochStart: Int64
    }

    public private(set) var entries: [Int32: Entry] = [:]

    public init() {}

    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }
    /// Owned partitions, ascending.
    public var ids: [Int32] { entries.keys.sorted() }
    public subscript(_ partition: Int32) -> Entry? { entries[partition] }

    /// Takes ownership of `partition`, whose checkpoint `seq` (0: none) ends before `next`.
    public mutating func own(_ partition: Int32, seq: Int64, next: Int64) {
        precondition(seq >= 0 && next >= 0, "partition \(partition): negative checkpoint position")
        entries[partition] = Entry(seq: seq, next: next, epochStart: next)
    }

    public mutating func release(_ partition: Int32) { entries[partition] = nil }

    /// Records that every record of `partition` before `next` was applied.
    @inline(__always)
    public mutating func advance(_ partition: Int32, to next: Int64) {
        guard let e = entries[partition] else { preconditionFailure("partition \(partition) advanced but not owned") }
        assert(next >= e.next, "partition \(partition): next offset moved back from \(e.next) to \(next)")
        entries[partition]!.next = next
    }

    /// The partition's log restarted below `next` (the topic was recreated
    /// or its log truncated, docs/architecture.md "When Kafka moves a
    /// position"): reading goes on from `offset`. The epoch's range then
    /// starts at `offset` if it started above it.
    public mutating func rewind(_ partition: Int32, to offset: Int64) {
        guard let e = entries[partition] else { preconditionFailure("partition \(partition) rewound but not owned") }
        precondition(offset >= 0 && offset < e.next, "partition \(partition): rewind to \(offset) is not below \(e.next)")
        entries[partition] = Entry(seq: e.seq, next: offset, epochStart: min(e.epochStart, offset))
    }

    /// "p:epochStart-next,…" in partition order (names the epoch's input in file tags and metadata).
    public var epochRange: String { ids.map { "\($0):\(entries[$0]!.epochStart)-\(entries[$0]!.next)" }.joined(separator: ",") }

    /// No partition read anything since the last committed epoch.
    public var unchangedThisEpoch: Bool { entries.values.allSatisfy { $0.epochStart == $0.next } }

    /// Next offsets of the owned partitions.
    public var nextOffsets: [Int32: Int64] { entries.mapValues(\.next) }

    /// The sequence number the next checkpoint of `partition` gets.
    public func nextSeq(_ partition: Int32) -> Int64 { entries[partition]!.seq + 1 }

    /// An epoch was committed with every owned partition: sequences advance
    /// and the next epoch starts where this one ended.
    public mutating func epochCommitted() {
        for p in entries.keys {
            let e = entries[p]!
            entries[p] = Entry(seq: e.seq + 1, next: e.next, epochStart: e.next)
        }
    }

    /// Checks every invariant, with the engine's partition ids.
    public func check<S: Sequence>(enginePartitions: S) where S.Element == Int32 {
        for (p, e) in entries {
            precondition(e.epochStart <= e.next, "partition \(p): epoch start \(e.epochStart) past next offset \(e.next)")
            precondition(e.seq >= 0, "partition \(p): negative sequence")
        }
        let engine = Set(enginePartitions)
        precondition(engine == Set(entries.keys),
                     "owned partitions \(ids) differ from the engine's \(engine.sorted())")
    }
}
