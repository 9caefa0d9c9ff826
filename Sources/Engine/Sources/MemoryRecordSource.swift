import QoSCore

/// A `RecordSource` held in memory, for in-process tests of the driver (in
/// the style of swift-nio's `EmbeddedChannel`): records are appended per
/// partition, and the test plays the consumer group — `assign` / `revoke`
/// queue ownership events for the next poll, as Kafka's rebalance callbacks
/// would. Offsets are indices into a partition's records. `expire` and
/// `recreate` take offsets out of a partition's log as retention and a
/// recreated topic would: a position no longer in the log is moved to the
/// log's first offset and reported, as librdkafka does with
/// `auto.offset.reset=earliest`.
public final class MemoryRecordSource: RecordSource {
    public let streams: [String]
    /// `streams` as the names records' positions carry.
    let streamNames: [SourceName]
    public var name: String { streams.joined(separator: "+") }
    public var partitionCount: Int { records.count }
    let partitionsPerStream: Int
    /// Per partition (stream by stream), its records.
    public private(set) var records: [[[UInt8]]]
    /// Per partition (stream by stream), its first offset still in the log.
    public private(set) var first: [Int64]
    /// Next index to deliver per owned partition.
    public private(set) var position: [Int32: Int64] = [:]
    /// Offsets the driver declared durable, per partition.
    public private(set) var committed: [Int32: Int64] = [:]
    /// Records delivered from one partition before the next partition's turn.
    public var run = 100
    var pending: [SourceEvent] = []
    var awaitingAssign = false
    var awaitingRevoke = false

    public convenience init(name: String = "memory", partitions: Int) {
        self.init(streams: [name], partitionsPerStream: partitions)
    }

    /// Several streams (topics) of `partitionsPerStream` partitions each;
    /// partition ids are `StreamPartition` ids.
    public init(streams: [String], partitionsPerStream: Int) {
        precondition(!streams.isEmpty, "a source has a stream")
        self.streams = streams
        streamNames = streams.map { SourceName($0) }
        self.partitionsPerStream = partitionsPerStream
        records = Array(repeating: [], count: streams.count * partitionsPerStream)
        first = Array(repeating: 0, count: records.count)
    }

    /// Every partition id, stream by stream.
    public var ids: [Int32] {
        streams.indices.flatMap { s in (0..<Int32(partitionsPerStream)).map { StreamPartition(stream: s, partition: $0).id } }
    }

    func slot(_ id: Int32) -> Int {
        let sp = StreamPartition(id: id)
        precondition(sp.stream < streams.count && Int(sp.partition) < partitionsPerStream, "no partition \(id)")
        return sp.stream * partitionsPerStream + Int(sp.partition)
    }

    public func append(_ bytes: [UInt8], partition: Int32) { records[slot(partition)].append(bytes) }

    /// Retention: the partition's offsets below `offset` leave its log.
    public func expire(_ partition: Int32, below offset: Int64) {
        precondition(offset >= first[slot(partition)] && offset <= Int64(records[slot(partition)].count), "expire within the log")
        first[slot(partition)] = offset
    }

    /// The partition's log starts over (a recreated topic): `records` at offsets from 0.
    public func recreate(_ partition: Int32, with records: [[UInt8]]) {
        self.records[slot(partition)] = records
        first[slot(partition)] = 0
    }

    /// The same records, nothing owned (a restarted process reads the same topics).
    public func reopened() -> MemoryRecordSource {
        let s = MemoryRecordSource(streams: streams, partitionsPerStream: partitionsPerStream)
        s.records = records
        s.first = first
        return s
    }

    /// The group gives this member `partitions` (delivered at the next poll).
    public func assign(_ partitions: [Int32]) { pending.append(.assigned(partitions)) }

    /// The group takes `partitions` away; `lost`: already given to someone else.
    public func revoke(_ partitions: [Int32], lost: Bool = false) { pending.append(.revoked(partitions, lost: lost)) }

    public func poll(maxRecords: Int, timeoutMs: Int, onRecord: (RawRecord) -> Void,
                     onEvent: (SourceEvent) -> Void) throws -> Int {
        precondition(!awaitingAssign && !awaitingRevoke, "poll before the last ownership change was completed")
        // Runs of up to `run` records per partition, round-robin, like a
        // consumer's fetches from several partitions.
        var n = 0
        var progressed = true
        while n < maxRecords && progressed {
            progressed = false
            for p in position.keys.sorted() {
                var i = position[p]!
                let recs = records[slot(p)]
                if i < first[slot(p)] || i > Int64(recs.count) {
                    onEvent(.error(SourceError(kind: "offsetReset", message: "offset \(i) is not in partition \(p)'s log",
                                               dataLoss: true, partition: p, offset: i)))
                    i = first[slot(p)]
                }
                var k = 0
                while n < maxRecords && k < run && i < Int64(recs.count) {
                    recs[Int(i)].withUnsafeBytes { b in
                        let sp = StreamPartition(id: p)
                        onRecord(RawRecord(bytes: b, partition: p, offset: i,
                                           position: .memory(name: streamNames[sp.stream], partition: sp.partition, index: i)))
                    }
                    i += 1
                    n += 1
                    k += 1
                    progressed = true
                }
                position[p] = i
            }
        }
        if !pending.isEmpty {
            let e = pending.removeFirst()
            switch e {
            case .assigned: awaitingAssign = true
            case .revoked(let ps, _): awaitingRevoke = true; for p in ps { position[p] = nil }
            case .error: break
            }
            onEvent(e)
        }
        return n
    }

    public func startAssigned(_ start: [Int32: Int64?]) throws {
        precondition(awaitingAssign, "startAssigned without an assignment")
        awaitingAssign = false
        for (p, o) in start { position[p] = o ?? 0 }
    }

    public func completeRevoke() throws {
        precondition(awaitingRevoke, "completeRevoke without a revocation")
        awaitingRevoke = false
    }

    public func commit(_ next: [Int32: Int64]) { committed.merge(next) { _, n in n } }
    public func endOffset(_ partition: Int32) throws -> Int64 { Int64(records[slot(partition)].count) }
    public func startOffset(_ partition: Int32) throws -> Int64 { first[slot(partition)] }
    public func idle(next: [Int32: Int64]) {}
    /// Set by a test: the group took the partitions away and the lost
    /// revoke has not been served yet (`KafkaConsumer.assignmentLost`).
    public var assignmentLost = false

    /// Set by a test: runs when an epoch asks whether the partitions are
    /// still this process's — the last moment before its commit point (a
    /// pause there is the race docs/architecture.md "Fencing" describes).
    public var whileFenceChecks: (() throws -> Void)?

    public func checkStillAssigned() throws {
        try whileFenceChecks?()
        if assignmentLost { throw SourceFenced("the memory source's partitions were taken away") }
    }

    public func lag() -> [Int32: Int64] {
        // A position no longer in the log will move to its first offset.
        Dictionary(uniqueKeysWithValues: position.map { p, i in
            let end = Int64(records[slot(p)].count), start = first[slot(p)]
            return (p, end - (i < start || i > end ? start : i))
        })
    }
    public func close() {}
}
