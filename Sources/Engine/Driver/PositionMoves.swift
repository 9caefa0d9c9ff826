/// Partitions whose position Kafka moved because the offset to read was not
/// in the log any more (docs/architecture.md "When Kafka moves a position").
///
/// librdkafka reports the move out of band (2.0.2: a log line), possibly
/// while records fetched before it are still queued, so what happened is
/// decided by the partition's records that follow the report:
/// - a record below the partition's next offset: the log restarted below it
///   (the topic was recreated, or its log truncated) — reading goes on from
///   that record, whose offsets are new records;
/// - a record at or past the offset Kafka could not serve: retention deleted
///   the offsets between the partition's next offset and it — they are
///   skipped, never read;
/// - any other record was fetched before the move and is read as usual.
struct PositionMoves {
    enum Verdict: Equatable {
        /// The record was fetched before the move: nothing decided yet.
        case pending
        /// The log restarted below the next offset: read on from the record.
        case restarted
        /// This many offsets before the record were never read (0: none).
        case skipped(Int64)
    }

    /// Partition → the offset Kafka could not serve.
    private(set) var pending: [Int32: Int64] = [:]

    var isEmpty: Bool { pending.isEmpty }

    /// Kafka could not serve `offset` of `partition` and moved its position.
    /// A second report before any record keeps the first offset.
    mutating func moved(_ partition: Int32, at offset: Int64) {
        precondition(offset >= 0, "partition \(partition): negative offset \(offset)")
        if pending[partition] == nil { pending[partition] = offset }
    }

    /// The partition is no longer owned.
    mutating func forget(_ partition: Int32) { pending[partition] = nil }

    /// What a record at `offset` of `partition`, whose next offset is
    /// `next`, tells; nil when the partition's position was not moved.
    mutating func decide(_ partition: Int32, offset: Int64, next: Int64) -> Verdict? {
        guard let at = pending[partition] else { return nil }
        if offset < next {
            pending[partition] = nil
            return .restarted
        }
        if offset >= at {
            pending[partition] = nil
            return .skipped(offset - next)
        }
        return .pending
    }

    /// The same for a moved partition whose log holds no record (its first
    /// offset is its `end`): no record will come to decide, its end does.
    mutating func decideEmpty(_ partition: Int32, end: Int64, next: Int64) -> Verdict? {
        guard pending[partition] != nil else { return nil }
        pending[partition] = nil
        return end < next ? .restarted : .skipped(end - next)
    }
}

extension StreamDriver {
    /// A position move the source names a partition for, as soon as it is
    /// reported (before that partition's next record): true when it was one.
    func noteMove(_ e: SourceEvent) -> Bool {
        guard case .error(let err) = e, err.dataLoss, let p = err.partition, let entry = book[p] else { return false }
        let next = current?.partition == p ? current!.next ?? entry.next : entry.next
        moves.moved(p, at: max(err.offset ?? next, 0))
        o.log.warn("qos run: kafka: \(err.message) — partition \(partitionName(p)) is read on from where Kafka moved it; "
                   + "its next record tells whether offsets were skipped or its log restarted")
        return true
    }

    /// Acts on what a moved partition's record (or its empty log's end,
    /// `offset`) told (`PositionMoves.Verdict`); `next` was its next offset.
    func positionMoved(_ p: Int32, from next: Int64, to offset: Int64, _ verdict: PositionMoves.Verdict) {
        switch verdict {
        case .pending:
            return
        case .restarted:
            let inRun = current?.partition == p
            if inRun { endRun() }
            book.rewind(p, to: offset)
            if inRun { current = (p, offset, format(of: p)) }
            status.kafkaLogRestarts += 1
            o.log.error("qos run: partition \(partitionName(p)) restarts at offset \(offset), below its next offset "
                        + "\(next): the topic was recreated or its log truncated. Its records from offset \(offset) on "
                        + "are read as new (after an unclean leader election, those read before are counted again)")
        case .skipped(let n) where n > 0:
            status.kafkaOffsetsSkipped += n
            o.log.error("qos run: DATA LOSS: partition \(partitionName(p)): offsets \(next) to \(offset - 1) (\(n)) "
                        + "were never read — Kafka no longer had them (retention deleted them first: raise the "
                        + "topic's retention, or keep the daemon closer to the head)")
        case .skipped:
            o.log("qos run: partition \(partitionName(p)): Kafka moved its position to offset \(offset), where it was: nothing skipped")
        }
    }

    /// `topic[partition]`, as Kafka names the partition.
    func partitionName(_ p: Int32) -> String {
        let sp = StreamPartition(id: p)
        return "\(source.streams[sp.stream])[\(sp.partition)]"
    }
}
