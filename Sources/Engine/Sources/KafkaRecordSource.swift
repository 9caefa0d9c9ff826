import Kafka
import QoSCore

/// One topic of a consumer group as a `RecordSource`: records are
/// librdkafka's own buffers (no copy), rebalances become ownership events,
/// and committed offsets go back to the group for lag monitoring only (the
/// checkpoints hold the offsets that count).
public final class KafkaRecordSource: RecordSource {
    public let consumer: KafkaConsumer
    public let name: String
    public private(set) var partitionCount = 0
    /// Rotates `idle` over the partitions.
    var nudgeCursor = 0

    /// Connects and checks the topic; throws the consumer's one-line errors.
    public init(brokers: String, group: String, topic: String, properties: [String: String],
                logHandler: KafkaLogHandler?) throws {
        name = topic
        consumer = try KafkaConsumer(brokers: brokers, groupId: group, topics: [topic], extra: properties,
                                     logHandler: logHandler)
        // Throws the one-line "unreachable" / "topic does not exist" errors itself.
        partitionCount = try consumer.checkTopics(timeoutMs: 10_000)[topic] ?? 0
    }

    public func clusterId() -> String { consumer.clusterId() ?? "" }

    public func poll(maxRecords: Int, timeoutMs: Int, onRecord: (RawRecord) -> Void,
                     onEvent: (SourceEvent) -> Void) throws -> Int {
        let topic = name
        return try consumer.poll(maxMessages: maxRecords, timeoutMs: timeoutMs, onMessage: { m in
            onRecord(RawRecord(bytes: m.payload, partition: m.partition, offset: m.offset,
                               position: .kafka(topic: m.topic, partition: m.partition, offset: m.offset)))
        }, onEvent: { e in
            switch e {
            case .message: break  // messages arrive through onMessage
            case .assigned(let tps): onEvent(.assigned(tps.filter { $0.topic == topic }.map(\.partition)))
            case .revoked(let tps, let lost): onEvent(.revoked(tps.filter { $0.topic == topic }.map(\.partition), lost: lost))
            case .error(let err):
                onEvent(.error(SourceError(kind: "\(err.kind)", message: err.message, dataLoss: err.kind == .offsetReset)))
            }
        })
    }

    public func startAssigned(_ start: [Int32: Int64?]) throws {
        var offsets: [TopicPartition: Int64] = [:]
        for (p, o) in start { offsets[TopicPartition(name, p)] = o ?? KafkaOffset.beginning }
        try consumer.completeAssign(startOffsets: offsets, otherwise: KafkaOffset.beginning)
    }

    public func completeRevoke() throws { try consumer.completeRevoke() }

    public func commit(_ next: [Int32: Int64]) {
        let offsets = Dictionary(uniqueKeysWithValues: next.map { (TopicPartition(name, $0.key), $0.value) })
        if !offsets.isEmpty { try? consumer.commit(offsets, async: true) }
    }

    /// The high watermark of the partition's latest fetch response
    /// (librdkafka keeps fetching while idle, so it is at most
    /// fetch.wait.max.ms old); asking the broker for each of 64 partitions
    /// took over a second, which delayed the last windows.
    public func endOffset(_ partition: Int32) throws -> Int64 {
        let tp = TopicPartition(name, partition)
        return try consumer.cachedWatermarks(tp)?.high ?? consumer.queryWatermarks(tp, timeoutMs: 5000).high
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
        let ids = next.keys.sorted()
        guard !ids.isEmpty else { return }
        for i in 0..<ids.count {
            let p = ids[(nudgeCursor + i) % ids.count]
            let tp = TopicPartition(name, p)
            guard let hi = consumer.cachedWatermarks(tp)?.high, let n = next[p], n < hi else { continue }
            nudgeCursor = (nudgeCursor + i + 1) % ids.count
            _ = try? consumer.queryWatermarks(tp, timeoutMs: 500)
            return
        }
    }

    public func lag() -> [Int32: Int64] {
        Dictionary(uniqueKeysWithValues: consumer.lag().map { ($0.key.partition, $0.value) })
    }

    public func close() { consumer.close() }
}
