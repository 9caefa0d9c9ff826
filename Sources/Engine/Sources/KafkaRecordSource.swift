import Kafka
import QoSCore

/// The topics of a consumer group as a `RecordSource`: records are the
/// fetch path's or librdkafka's own buffers (no copy; docs/kafka-fetch.md), rebalances become ownership events,
/// and committed offsets go back to the group for lag monitoring only (the
/// checkpoints hold the offsets that count). Partition `p` of the `i`-th
/// topic is the driver's partition `StreamPartition(stream: i, partition: p).id`.
public final class KafkaRecordSource: RecordSource {
    public let consumer: KafkaConsumer
    public let streams: [String]
    /// `streams` as the names records' positions carry.
    let streamNames: [SourceName]
    public var name: String { streams.joined(separator: "+") }
    public private(set) var partitionCount = 0
    /// Rotates `idle` over the partitions.
    var nudgeCursor = 0

    /// Connects and checks the topics; throws the consumer's one-line errors.
    public init(brokers: String, group: String, topics: [String], properties: [String: String],
                logHandler: KafkaLogHandler?, fetchPath: KafkaFetchPath = .librdkafka) throws {
        precondition(!topics.isEmpty && Set(topics).count == topics.count, "one or more distinct topics")
        streams = topics
        streamNames = topics.map { SourceName($0) }
        consumer = try KafkaConsumer(brokers: brokers, groupId: group, topics: topics, extra: properties,
                                     logHandler: logHandler, fetchPath: fetchPath)
        // Throws the one-line "unreachable" / "topic does not exist" errors itself.
        let counts = try consumer.checkTopics(timeoutMs: 10_000)
        for t in topics {
            let n = counts[t] ?? 0
            guard n <= StreamPartition.partitionsMax else {
                throw UserError("topic '\(t)' has \(n) partitions — qos run reads at most \(StreamPartition.partitionsMax) per topic")
            }
            partitionCount += n
        }
    }

    /// The driver's id of a Kafka partition (nil: not one of our topics).
    func id(_ tp: TopicPartition) -> Int32? {
        streams.firstIndex(of: tp.topic).map { StreamPartition(stream: $0, partition: tp.partition).id }
    }

    func topicPartition(_ id: Int32) -> TopicPartition {
        let sp = StreamPartition(id: id)
        return TopicPartition(streams[sp.stream], sp.partition)
    }

    public func clusterId() -> String { consumer.clusterId() ?? "" }

    public func poll(maxRecords: Int, timeoutMs: Int, onRecord: (RawRecord) -> Void,
                     onEvent: (SourceEvent) -> Void) throws -> Int {
        let single = streams.count == 1
        return try consumer.poll(maxMessages: maxRecords, timeoutMs: timeoutMs, onMessage: { m in
            guard let id = single ? m.partition : id(TopicPartition(m.topic, m.partition)) else { return }
            onRecord(RawRecord(bytes: m.payload, partition: id, offset: m.offset,
                               position: .kafka(topic: streamNames[single ? 0 : StreamPartition(id: id).stream],
                                                partition: m.partition, offset: m.offset)))
        }, onEvent: { e in
            switch e {
            case .message: break  // messages arrive through onMessage
            case .assigned(let tps): onEvent(.assigned(tps.compactMap(id)))
            case .revoked(let tps, let lost): onEvent(.revoked(tps.compactMap(id), lost: lost))
            case .error(let err):
                onEvent(.error(SourceError(kind: "\(err.kind)", message: err.message, dataLoss: err.kind == .offsetReset,
                                           partition: err.topicPartition.flatMap(id), offset: err.offset)))
            }
        })
    }

    public func startAssigned(_ start: [Int32: Int64?]) throws {
        var offsets: [TopicPartition: Int64] = [:]
        for (p, o) in start { offsets[topicPartition(p)] = o ?? KafkaOffset.beginning }
        try consumer.completeAssign(startOffsets: offsets, otherwise: KafkaOffset.beginning)
    }

    public func completeRevoke() throws { try consumer.completeRevoke() }

    public func checkStillAssigned() throws {
        guard consumer.assignmentLost else { return }
        throw SourceFenced("the Kafka group took this instance's partitions away (its session timed out: the "
                           + "process was paused or cut off from the coordinator for longer than session.timeout.ms, "
                           + "or did not poll within max.poll.interval.ms); stopping before the epoch's commit point "
                           + "so that nothing is counted twice — restart it: it resumes from the last checkpoint")
    }

    public func commit(_ next: [Int32: Int64]) {
        let offsets = Dictionary(uniqueKeysWithValues: next.map { (topicPartition($0.key), $0.value) })
        if !offsets.isEmpty { try? consumer.commit(offsets, async: true) }
    }

    /// The high watermark of the partition's latest fetch response
    /// (librdkafka keeps fetching while idle, so it is at most
    /// fetch.wait.max.ms old); asking the broker for each of 64 partitions
    /// took over a second, which delayed the last windows.
    public func endOffset(_ partition: Int32) throws -> Int64 {
        let tp = topicPartition(partition)
        return try consumer.cachedWatermarks(tp)?.high ?? consumer.queryWatermarks(tp, timeoutMs: 5000).high
    }

    public func startOffset(_ partition: Int32) throws -> Int64 {
        try consumer.queryWatermarks(topicPartition(partition), timeoutMs: 5000).low
    }

    /// librdkafka 2.0 stops fetching a partition whose local queue is over
    /// queued.min.messages or queued.max.messages.kbytes and decides again
    /// only when its broker thread wakes up (network I/O or a request from
    /// the application, else after about a second): while catching up, the
    /// consumer queue runs dry with every partition waiting. An empty poll
    /// while a partition is behind asks for that partition's watermarks,
    /// which wakes its broker's thread (catch-up of 5 M beacons in 64
    /// partitions: 27 s → 16 s wall).
    public func idle(next: [Int32: Int64]) {
        guard !consumer.fetchesNatively else { return }  // the fetch path does not wait on librdkafka's threads
        let ids = next.keys.sorted()
        guard !ids.isEmpty else { return }
        for i in 0..<ids.count {
            let p = ids[(nudgeCursor + i) % ids.count]
            let tp = topicPartition(p)
            guard let hi = consumer.cachedWatermarks(tp)?.high, let n = next[p], n < hi else { continue }
            nudgeCursor = (nudgeCursor + i + 1) % ids.count
            _ = try? consumer.queryWatermarks(tp, timeoutMs: 500)
            return
        }
    }

    public func lag() -> [Int32: Int64] {
        Dictionary(uniqueKeysWithValues: consumer.lag().compactMap { e in id(e.key).map { ($0, e.value) } })
    }

    public func close() { consumer.close() }
}
