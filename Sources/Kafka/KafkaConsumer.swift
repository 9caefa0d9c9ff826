// KafkaConsumer: a consumer-group member whose offsets are owned by the
// caller (checkpointed with the output), built on rd_kafka_consumer_poll.

import CRdKafka
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What `KafkaConsumer.poll` returns, in the order it happened.
public enum KafkaEvent: Sendable {
    /// A record.
    case message(KafkaMessage)
    /// Partitions newly assigned to this member. Always the LAST event of a
    /// poll. Nothing is fetched for them until the caller calls
    /// `completeAssign(startOffsets:otherwise:)` (or the next `poll`, which
    /// completes it with the committed offsets).
    case assigned([TopicPartition])
    /// Partitions being taken away. Always the LAST event of a poll; every
    /// message of these partitions that this member will ever see has already
    /// been returned (earlier in this batch or before). The partitions stay
    /// owned by this member until the caller calls `completeRevoke()` (or the
    /// next `poll`): flush and checkpoint them first — within
    /// max.poll.interval.ms (the group's rebalance timeout; on the 2.0.2 mock
    /// cluster, session.timeout.ms − 1 s). `lost` means the group already
    /// gave them to someone else (session timeout): do not commit.
    case revoked([TopicPartition], lost: Bool)
    /// A non-fatal error (broker down, transport failure, unknown topic …).
    /// librdkafka keeps retrying; this is for logs and health.
    case error(KafkaError)
}

/// A message borrowed from librdkafka by `KafkaConsumer.poll(maxMessages:timeoutMs:onMessage:onEvent:)`:
/// its bytes are valid only during that callback (`copy()` keeps them).
public struct KafkaRecord {
    /// librdkafka's message; nil for a record of the fetch path.
    let message: UnsafeMutablePointer<rd_kafka_message_t>?
    /// The fetch path's timestamp (when `message` is nil).
    let fetchedTimestampMs: Int64
    public let topic: String
    public let partition: Int32
    public let offset: Int64
    public let key: UnsafeRawBufferPointer?
    public let payload: UnsafeRawBufferPointer

    /// Kafka message timestamp (create or log-append time), epoch ms; nil if unknown.
    public var timestampMs: Int64? {
        guard let message else { return fetchedTimestampMs >= 0 ? fetchedTimestampMs : nil }
        var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ts = rd_kafka_message_timestamp(message, &tsType)
        return ts >= 0 ? ts : nil
    }

    public func copy() -> KafkaMessage {
        KafkaMessage(topic: topic, partition: partition, offset: offset, key: key.map { Array($0) },
                     payload: Array(payload), timestampMs: timestampMs)
    }
}

/// Who fetches the records of the assigned partitions (docs/kafka-fetch.md).
public enum KafkaFetchPath: String, Sendable, CaseIterable {
    /// librdkafka, for every partition.
    case librdkafka
    /// The consumer's own Fetch requests, for partitions whose leader it can
    /// reach over plain TCP; librdkafka for the rest (and for any partition
    /// the path hands back). Falls back to `librdkafka` entirely when the
    /// properties ask for TLS, SASL, a rack or an isolation level it does
    /// not know.
    case native
}

/// A consumer-group member with `enable.auto.commit=false` and
/// `enable.auto.offset.store=false`: the caller owns the offsets.
///
/// Threading rule: `poll`, `completeAssign`, `completeRevoke`, `commit`,
/// `seek`, `pause`, `resume`, `committed`, `checkTopics` and `close` must be
/// called from the one polling thread (librdkafka 2.0.x: consume_batch is
/// unsafe with concurrent seek/pause/rebalance; rebalance callbacks run inside
/// poll on that thread). `lag()`, `assignment`, `cachedWatermarks` are safe
/// from any thread (for /metrics). Hence `@unchecked Sendable`: the type may
/// move to the polling thread, not be shared by several pollers.
public final class KafkaConsumer: @unchecked Sendable {
    public let brokers: String
    public let groupId: String
    public let topics: [String]

    private let rk: OpaquePointer
    private let box: ClientBox
    private var opaque: UnsafeMutableRawPointer?
    private var topicNames: [UnsafeMutableRawPointer: String] = [:]
    /// The topic of the previous message (messages come in runs of one topic).
    private var lastTopic: (rkt: OpaquePointer, name: String)?

    // Guarded by stateLock (read by lag() from other threads).
    private let stateLock = Lock()
    private var closed = false
    private var assigned: Set<TopicPartition> = []
    /// Next offset per partition: the one after the last message returned by
    /// poll, or the explicit start offset given to completeAssign / seek.
    private var positions: [TopicPartition: Int64] = [:]
    /// Start offset given at assignment when it was symbolic (beginning/end/committed).
    private var symbolicStart: [TopicPartition: Int64] = [:]
    /// (low, high) watermarks of the fetch path's partitions, from its responses.
    private var nativeWatermarks: [TopicPartition: (low: Int64, high: Int64)] = [:]

    /// The fetch path, when `fetchPath` is `.native` and the properties allow
    /// it; its partitions are paused in librdkafka. Polling thread only.
    private let native: NativeFetcher?
    /// Partitions the fetch path handed back to librdkafka, with the next
    /// offset to hand over: librdkafka's records below it were already
    /// handed over (a seek right after a handback can race a fetch librdkafka
    /// had under way) and are dropped. An offset reset or a seek moves it.
    /// Polling thread only.
    private var handedBack: [TopicPartition: Int64] = [:]

    /// Whether the fetch path is in use (`fetchPath: .native` and properties it follows).
    public var fetchesNatively: Bool { native != nil }

    /// - Parameters:
    ///   - brokers: `bootstrap.servers`, e.g. "kafka1:9092,kafka2:9092".
    ///   - groupId: consumer group.
    ///   - topics: topics to subscribe to (a name starting with `^` is a regex).
    ///   - extra: passed verbatim to `rd_kafka_conf_set` (after the defaults,
    ///     so they win), e.g. `["security.protocol": "SASL_SSL", …]`. A bad key
    ///     or value throws a one-line `KafkaError(.configuration)` naming it.
    ///     `enable.auto.commit` / `enable.auto.offset.store` may not be set to
    ///     true.
    ///   - logHandler: librdkafka log lines (default: errors to stderr).
    ///   - fetchPath: who fetches records (`KafkaFetchPath`).
    public init(brokers: String, groupId: String, topics: [String], extra: [String: String] = [:],
                logHandler: KafkaLogHandler? = KafkaLog.errorsToStderr,
                fetchPath: KafkaFetchPath = .librdkafka) throws {
        self.brokers = brokers
        self.groupId = groupId
        self.topics = topics
        guard !topics.isEmpty else { throw KafkaError(.configuration, "no Kafka topic given — set --topic") }
        let box = ClientBox(logHandler: logHandler)
        box.isConsumer = true
        self.box = box
        let settings = try mergeSettings(
            defaults: [
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
                ("client.id", "videoqos"),
            ],
            extra: extra,
            forced: [
                ("bootstrap.servers", brokers),
                ("group.id", groupId),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
            ])
        let conf = try makeConf(settings, box: box)
        rd_kafka_conf_set_rebalance_cb(conf, consumerRebalanceCallback)
        rd_kafka_conf_set_error_cb(conf, consumerErrorCallback)
        let (rk, opaque) = try makeHandle(RD_KAFKA_CONSUMER, conf: conf, box: box)
        self.rk = rk
        self.opaque = opaque
        // Serve error/log/stats events from the consumer queue, i.e. in poll().
        rd_kafka_poll_set_consumer(rk)
        box.cooperative = rebalanceProtocol(rk) == "COOPERATIVE"
            || (extra["partition.assignment.strategy"]?.contains("cooperative") ?? false)
        if fetchPath == .native, let settings = NativeFetchSettings(extra) {
            native = NativeFetcher(settings: settings, lookupLeaders: { topics in
                try leaderMap(rk: rk, topics: topics, timeoutMs: settings.stallMs)
            })
        } else {
            native = nil
        }

        // Subscription is deferred to the first poll() so checkTopics() can
        // run first: the 2.0.2 mock cluster auto-creates a subscribed topic
        // that does not exist (4 partitions), hiding a --topic typo.
    }

    private var subscribed = false

    /// The array of the messages a `poll` pops, kept between polls for its
    /// capacity; they are destroyed together when the poll returns.
    /// librdkafka allocates each message on its fetch thread; freeing one
    /// takes that thread's malloc arena lock. One free per message, between
    /// the records the engine ingests, collided with the fetch thread's
    /// allocations often enough to cost a futex wait and wake-up each time
    /// (docs/architecture.md, "The path of one Kafka message").
    private var consumed: [UnsafeMutablePointer<rd_kafka_message_t>] = []

    private func subscribeIfNeeded() throws {
        guard !subscribed else { return }
        let list = makePartitionList(topics.map { (TopicPartition($0, -1), KafkaOffset.invalid) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_subscribe(rk, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.configuration, "cannot subscribe to \(topics.joined(separator: ",")): \(errName(err))",
                             code: err.rawValue)
        }
        subscribed = true
    }

    deinit { close() }

    // MARK: Polling

    /// Polls for up to `maxMessages` messages: blocks up to `timeoutMs` for
    /// the first event, then drains what is already available without
    /// blocking. Rebalance events end the batch (see `KafkaEvent`). Throws
    /// only on a fatal client error.
    public func poll(maxMessages: Int = 1000, timeoutMs: Int = 100) throws -> [KafkaEvent] {
        var out: [KafkaEvent] = []
        _ = try poll(maxMessages: maxMessages, timeoutMs: timeoutMs,
                     onMessage: { out.append(.message($0.copy())) }, onEvent: { out.append($0) })
        return out
    }

    /// The same poll without copying: each message is handed to `onMessage`
    /// as a `KafkaRecord` whose bytes are librdkafka's own (valid only during
    /// the call); every other event goes to `onEvent`, in the order it
    /// happened, rebalance events last. Returns the number of messages.
    public func poll(maxMessages: Int, timeoutMs: Int, onMessage: (KafkaRecord) throws -> Void,
                     onEvent: (KafkaEvent) -> Void) throws -> Int {
        precondition(!isClosed, "KafkaConsumer.poll after close()")
        try subscribeIfNeeded()
        if box.lock.withLock({ box.pendingRebalance != nil }) {
            try autoCompleteRebalance()
        }
        var messages = 0
        var first = true
        // The messages popped, in a local array (the property only keeps its
        // capacity between polls): no exclusivity check per message.
        var popped: [UnsafeMutablePointer<rd_kafka_message_t>] = []
        swap(&popped, &consumed)
        defer {
            for m in popped { rd_kafka_message_destroy(m) }
            popped.removeAll(keepingCapacity: popped.count <= 16_384)
            swap(&popped, &consumed)
        }
        // Positions are recorded per run of messages from one partition, not
        // per message; the run keeps its topic's name for its messages.
        var run: (rkt: OpaquePointer, topic: String, partition: Int32, next: Int64)?
        func endRun() {
            guard let r = run else { return }
            let tp = TopicPartition(r.topic, r.partition)
            stateLock.withLock { positions[tp] = r.next }
            run = nil
        }
        defer { endRun() }
        // With partitions on the fetch path, librdkafka is only asked for
        // what it has (events, handed-back partitions); the fetch path waits.
        let nativeActive = native.map { !$0.partitions.isEmpty } ?? false
        var rebalanced = false
        pollLoop: while messages < maxMessages {
            let m = rd_kafka_consumer_poll(rk, first && !nativeActive ? Int32(clamping: timeoutMs) : 0)
            first = false
            let (cbEvents, rebalance) = box.signal.load(ordering: .acquiring) == 0 ? ([], nil)
                : box.lock.withLock { () -> ([KafkaEvent], PendingRebalance?) in
                    let e = box.events
                    if !e.isEmpty { box.events = [] }
                    if box.pendingRebalance == nil { box.signal.store(0, ordering: .relaxed) }
                    return (e, box.pendingRebalance)
                }
            // Callback events (errors, rebalance) happened before `m` was popped.
            // A rebalance event is kept for the end of the batch.
            for e in cbEvents {
                if case .assigned = e { continue }
                if case .revoked = e { continue }
                onEvent(e)
            }
            if let m {
                popped.append(m)
                let msg = m.pointee
                if msg.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    if let e = convertError(m) { onEvent(e) }
                } else if let rkt = msg.rkt {
                    let dropped = rebalance.map { r in
                        r.kind == .revoke && r.partitions.contains(TopicPartition(topicName(rkt), msg.partition))
                    } ?? false
                    // A message popped after the revoke callback is left for the next owner.
                    if !dropped, native == nil || keepLibrdkafkaRecord(rkt, msg.partition, msg.offset) {
                        let topic: String
                        if let r = run, r.rkt == rkt, r.partition == msg.partition {
                            topic = r.topic
                            run!.next = msg.offset + 1
                        } else {
                            endRun()
                            topic = topicName(rkt)
                            run = (rkt, topic, msg.partition, msg.offset + 1)
                        }
                        messages += 1
                        let payload = msg.payload.map { UnsafeRawBufferPointer(start: $0, count: msg.len) }
                        try onMessage(KafkaRecord(
                            message: m, fetchedTimestampMs: -1, topic: topic, partition: msg.partition, offset: msg.offset,
                            key: msg.key.map { UnsafeRawBufferPointer(start: $0, count: msg.key_len) },
                            payload: payload ?? UnsafeRawBufferPointer(start: nil, count: 0)))
                    }
                }
            }
            if let rebalance {
                switch rebalance.kind {
                case .assign: onEvent(.assigned(rebalance.partitions))
                case .revoke: onEvent(.revoked(rebalance.partitions, lost: rebalance.lost))
                }
                rebalanced = true
                break pollLoop
            }
            if m == nil { break }
        }
        if let native, nativeActive, !rebalanced, messages < maxMessages {
            endRun()
            messages += try pollNative(native, max: maxMessages - messages, waitMs: messages == 0 ? timeoutMs : 0,
                                       onMessage: onMessage, onEvent: onEvent)
        }
        if let f = box.lock.withLock({ box.fatal }) {
            throw KafkaError(.fatal, "Kafka consumer failed: \(f)")
        }
        return messages
    }

    // MARK: The fetch path (docs/kafka-fetch.md)

    /// False for a librdkafka record of a partition on the fetch path (it is
    /// paused there; one fetched before the pause is the fetch path's to
    /// hand over), or below where the fetch path handed its partition back.
    private func keepLibrdkafkaRecord(_ rkt: OpaquePointer, _ partition: Int32, _ offset: Int64) -> Bool {
        guard let native else { return true }
        if native.partitions.isEmpty && handedBack.isEmpty { return true }
        let tp = TopicPartition(topicName(rkt), partition)
        if native.owns(tp) { return false }
        if let floor = handedBack[tp] {
            guard offset >= floor else { return false }
            handedBack[tp] = offset + 1
        }
        return true
    }

    private func pollNative(_ native: NativeFetcher, max: Int, waitMs: Int, onMessage: (KafkaRecord) throws -> Void,
                            onEvent: (KafkaEvent) -> Void) throws -> Int {
        let n = try native.deliver(max: max, waitMs: waitMs, onReport: { onEvent(.error($0)) }) { r in
            try onMessage(KafkaRecord(message: nil, fetchedTimestampMs: r.timestampMs, topic: r.partition.topic,
                                      partition: r.partition.partition, offset: r.offset, key: r.key, payload: r.value))
        }
        publishNativeState(native)
        for h in native.takeHandBacks() {
            onEvent(.error(KafkaError(.other, "Kafka fetch path: \(h.partition) goes back to librdkafka at offset \(h.offset): \(h.reason)")))
            try giveBack(h.partition, at: h.offset)
        }
        return n
    }

    /// Positions and watermarks of the fetch path's partitions, for `lag()`
    /// and `nextOffsets` on other threads.
    private func publishNativeState(_ native: NativeFetcher) {
        stateLock.withLock {
            for (tp, st) in native.partitions {
                positions[tp] = st.next
                symbolicStart[tp] = nil
                if st.highWatermark >= 0 { nativeWatermarks[tp] = (st.lowWatermark, st.highWatermark) }
            }
        }
    }

    /// Hands a partition to librdkafka at `offset` (it stays assigned there).
    /// A seek that fails throws: the caller stops, and restarts from its
    /// checkpoint, rather than let librdkafka read from elsewhere.
    private func giveBack(_ tp: TopicPartition, at offset: Int64) throws {
        native?.remove([tp])
        handedBack[tp] = offset
        stateLock.withLock { nativeWatermarks[tp] = nil }
        try seek(tp, to: offset)
        try pauseResume([tp], pause: false)
    }

    /// Puts newly assigned partitions on the fetch path: paused in
    /// librdkafka, their symbolic start offsets resolved here. A partition
    /// whose offset cannot be resolved stays with librdkafka.
    private func takeOnFetchPath(_ native: NativeFetcher, _ entries: [(TopicPartition, Int64)]) throws {
        guard !entries.isEmpty else { return }
        try pauseResume(entries.map(\.0), pause: true)
        var resolved: [TopicPartition: Int64] = [:]
        var committedAsked: [TopicPartition] = []
        var earliest: [TopicPartition] = [], latest: [TopicPartition] = []
        for (tp, off) in entries {
            switch off {
            case 0...: resolved[tp] = off
            case KafkaOffset.beginning: earliest.append(tp)
            case KafkaOffset.end: latest.append(tp)
            case KafkaOffset.committed: committedAsked.append(tp)
            default: break
            }
        }
        // Committed offsets that cannot be read now stay librdkafka's to
        // find (auto.offset.reset would re-read what the group committed).
        if !committedAsked.isEmpty, let committed = try? self.committed(committedAsked) {
            for tp in committedAsked {
                if let c = committed[tp] { resolved[tp] = c; continue }
                switch native.settings.reset {
                case .earliest?: earliest.append(tp)
                case .latest?: latest.append(tp)
                case nil: break
                }
            }
        }
        let timeout = native.settings.stallMs
        if !earliest.isEmpty { resolved.merge(native.listOffsets(earliest, .earliest, timeoutMs: timeout)) { a, _ in a } }
        if !latest.isEmpty { resolved.merge(native.listOffsets(latest, .latest, timeoutMs: timeout)) { a, _ in a } }
        native.add(resolved.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        publishNativeState(native)
        for (tp, off) in entries where resolved[tp] == nil {
            // librdkafka resolves what could not be resolved here.
            try pauseResume([tp], pause: false)
            handedBack[tp] = off >= 0 ? off : 0
        }
    }

    private func convertError(_ m: UnsafeMutablePointer<rd_kafka_message_t>) -> KafkaEvent? {
        let msg = m.pointee
        if msg.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return nil }
        let text = String(cString: rd_kafka_message_errstr(m))
        var where_ = ""
        if let rkt = msg.rkt {
            where_ = " (\(topicName(rkt))\(msg.partition >= 0 ? "/\(msg.partition)" : ""))"
        }
        if msg.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || msg.err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC {
            return .error(KafkaError(.unknownTopic, "Kafka: \(text)\(where_) — create the topic or fix --topic",
                                     code: msg.err.rawValue))
        }
        if msg.err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET || msg.err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE {
            // librdkafka moved the position (even backwards: a recreated topic).
            if let rkt = msg.rkt { handedBack[TopicPartition(topicName(rkt), msg.partition)]?  = -1 }
            return .error(KafkaError(.offsetReset, "Kafka offset out of range\(where_), position reset by auto.offset.reset: \(text)",
                                     code: msg.err.rawValue,
                                     topicPartition: msg.rkt.map { TopicPartition(topicName($0), msg.partition) },
                                     offset: msg.offset >= 0 ? msg.offset : nil))
        }
        return .error(KafkaError(.other, "Kafka consumer error\(where_): \(text)", code: msg.err.rawValue))
    }

    private func topicName(_ rkt: OpaquePointer) -> String {
        if let last = lastTopic, last.rkt == rkt { return last.name }
        let k = UnsafeMutableRawPointer(rkt)
        if let n = topicNames[k] { lastTopic = (rkt, n); return n }
        let n = String(cString: rd_kafka_topic_name(rkt))
        topicNames[k] = n
        return n
    }

    // MARK: Rebalance completion

    /// Starts fetching the partitions of the last `.assigned` event.
    /// `startOffsets[tp]` is the next offset to read (e.g. from a checkpoint)
    /// or a `KafkaOffset` constant; partitions without an entry start at
    /// `otherwise` (default: the oldest retained message).
    public func completeAssign(startOffsets: [TopicPartition: Int64] = [:], otherwise: Int64 = KafkaOffset.beginning) throws {
        requireOpen("completeAssign")
        guard let pending = box.lock.withLock({ box.pendingRebalance }), pending.kind == .assign else { return }
        let entries = pending.partitions.map { ($0, startOffsets[$0] ?? otherwise) }
        let list = makePartitionList(entries)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let errText: String?
        if box.cooperative {
            errText = takeError(rd_kafka_incremental_assign(rk, list)).map { $0.1 }
        } else {
            let err = rd_kafka_assign(rk, list)
            errText = err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : errName(err)
        }
        box.lock.withLock { box.pendingRebalance = nil }
        stateLock.withLock {
            if !box.cooperative {
                assigned.removeAll(); positions.removeAll(); symbolicStart.removeAll(); nativeWatermarks.removeAll()
            }
            for (tp, off) in entries {
                assigned.insert(tp)
                if off >= 0 { positions[tp] = off; symbolicStart[tp] = nil } else { positions[tp] = nil; symbolicStart[tp] = off }
            }
        }
        if let errText { throw KafkaError(.other, "Kafka assign failed: \(errText)") }
        if let native {
            if !box.cooperative { native.removeAll(); handedBack.removeAll() }
            for (tp, _) in entries { handedBack[tp] = nil }
            try takeOnFetchPath(native, entries)
        }
    }

    /// Releases the partitions of the last `.revoked` event (call after the
    /// flush/checkpoint of those partitions is durable).
    public func completeRevoke() throws {
        requireOpen("completeRevoke")
        guard let pending = box.lock.withLock({ box.pendingRebalance }), pending.kind == .revoke else { return }
        let errText = unassign(pending.partitions)
        box.lock.withLock { box.pendingRebalance = nil }
        if let errText { throw KafkaError(.other, "Kafka unassign failed: \(errText)") }
    }

    private func unassign(_ partitions: [TopicPartition]) -> String? {
        let errText: String?
        if box.cooperative {
            let list = makePartitionList(partitions.map { ($0, KafkaOffset.invalid) })
            defer { rd_kafka_topic_partition_list_destroy(list) }
            errText = takeError(rd_kafka_incremental_unassign(rk, list)).map { $0.1 }
        } else {
            let err = rd_kafka_assign(rk, nil)
            errText = err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : errName(err)
        }
        stateLock.withLock {
            if box.cooperative {
                for tp in partitions { assigned.remove(tp); positions[tp] = nil; nativeWatermarks[tp] = nil }
            } else {
                assigned.removeAll(); positions.removeAll(); nativeWatermarks.removeAll()
            }
        }
        if let native {
            if box.cooperative {
                native.remove(partitions)
                for tp in partitions { handedBack[tp] = nil }
            } else {
                native.removeAll(); handedBack.removeAll()
            }
        }
        return errText
    }

    private func autoCompleteRebalance() throws {
        guard let pending = box.lock.withLock({ box.pendingRebalance }) else { return }
        switch pending.kind {
        case .assign: try completeAssign(otherwise: KafkaOffset.committed)
        case .revoke: try completeRevoke()
        }
    }

    // MARK: Offsets

    /// Commits offsets to the group (the NEXT offset to read, i.e. last
    /// processed + 1). For lag monitoring only — the checkpoint is the truth.
    /// `async: true` returns immediately (result ignored).
    public func commit(_ offsets: [TopicPartition: Int64], async: Bool = true) throws {
        requireOpen("commit")
        guard !offsets.isEmpty else { return }
        let list = makePartitionList(offsets.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_commit(rk, list, async ? 1 : 0)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET {
            throw KafkaError(.other, "Kafka offset commit failed: \(errName(err))", code: err.rawValue)
        }
    }

    /// The group's committed offsets (next offset to read) for `partitions`;
    /// partitions without a committed offset are absent.
    public func committed(_ partitions: [TopicPartition], timeoutMs: Int = 10_000) throws -> [TopicPartition: Int64] {
        requireOpen("committed")
        guard !partitions.isEmpty else { return [:] }
        let list = makePartitionList(partitions.map { ($0, KafkaOffset.invalid) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_committed(rk, list, Int32(clamping: timeoutMs))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.other, "cannot read committed offsets from Kafka: \(errName(err))", code: err.rawValue)
        }
        var out: [TopicPartition: Int64] = [:]
        for (tp, off, _) in readPartitionList(list) where off >= 0 { out[tp] = off }
        return out
    }

    /// Moves the fetch position of an assigned partition (next offset to read,
    /// or a `KafkaOffset` constant). Messages already returned are not undone.
    public func seek(_ tp: TopicPartition, to offset: Int64, timeoutMs: Int = 10_000) throws {
        requireOpen("seek")
        if let native, native.owns(tp) {
            if offset >= 0 {
                native.seek(tp, to: offset)
                stateLock.withLock { positions[tp] = offset }
                return
            }
            // A symbolic position: librdkafka resolves it.
            native.remove([tp])
            try pauseResume([tp], pause: false)
        }
        if handedBack[tp] != nil { handedBack[tp] = offset >= 0 ? offset : 0 }
        let list = makePartitionList([(tp, offset)])
        defer { rd_kafka_topic_partition_list_destroy(list) }
        if let (code, text) = takeError(rd_kafka_seek_partitions(rk, list, Int32(clamping: timeoutMs))) {
            throw KafkaError(.other, "Kafka seek \(tp) to \(offset) failed: \(text)", code: code.rawValue)
        }
        if let (_, _, err) = readPartitionList(list).first, err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.other, "Kafka seek \(tp) to \(offset) failed: \(errName(err))", code: err.rawValue)
        }
        stateLock.withLock { positions[tp] = offset >= 0 ? offset : nil }
    }

    /// Stops / restarts fetching partitions (backpressure) without leaving the group.
    public func pause(_ partitions: [TopicPartition]) throws { try pauseOrResume(partitions, pause: true) }
    public func resume(_ partitions: [TopicPartition]) throws { try pauseOrResume(partitions, pause: false) }

    private func pauseOrResume(_ partitions: [TopicPartition], pause: Bool) throws {
        guard let native else { return try pauseResume(partitions, pause: pause) }
        var others: [TopicPartition] = []
        for tp in partitions {
            if native.owns(tp) { native.setPaused(tp, pause) } else { others.append(tp) }
        }
        try pauseResume(others, pause: pause)
    }

    private func pauseResume(_ partitions: [TopicPartition], pause: Bool) throws {
        requireOpen("pause/resume")
        guard !partitions.isEmpty else { return }
        let list = makePartitionList(partitions.map { ($0, KafkaOffset.invalid) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = pause ? rd_kafka_pause_partitions(rk, list) : rd_kafka_resume_partitions(rk, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.other, "Kafka \(pause ? "pause" : "resume") failed: \(errName(err))", code: err.rawValue)
        }
    }

    // MARK: Monitoring (any thread)

    /// Partitions currently assigned (after completeAssign, before completeRevoke).
    public var assignment: [TopicPartition] {
        stateLock.withLock { assigned.sorted() }
    }

    /// Next offset per assigned partition: after the last message poll()
    /// returned, or the explicit start / seek offset. Absent = not known yet.
    public var nextOffsets: [TopicPartition: Int64] {
        stateLock.withLock { positions.filter { assigned.contains($0.key) } }
    }

    /// The (low, high) watermarks librdkafka last saw in fetch responses;
    /// nil until the first fetch of that partition. Non-blocking.
    public func cachedWatermarks(_ tp: TopicPartition) -> (low: Int64, high: Int64)? {
        stateLock.withLock {
            guard !closed else { return nil }
            if let w = nativeWatermarks[tp] { return w }
            var lo: Int64 = KafkaOffset.invalid, hi: Int64 = KafkaOffset.invalid
            let err = rd_kafka_get_watermark_offsets(rk, tp.topic, tp.partition, &lo, &hi)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, hi >= 0 else { return nil }
            return (lo, hi)
        }
    }

    /// Consumer lag per assigned partition: cached high watermark − next
    /// offset this consumer returns. Non-blocking; partitions whose position
    /// or watermark is not known yet are absent.
    public func lag() -> [TopicPartition: Int64] {
        stateLock.withLock {
            guard !closed else { return [:] }
            var out: [TopicPartition: Int64] = [:]
            for tp in assigned {
                if let w = nativeWatermarks[tp], let pos = positions[tp] {
                    out[tp] = max(0, w.high - pos)
                    continue
                }
                var lo: Int64 = KafkaOffset.invalid, hi: Int64 = KafkaOffset.invalid
                guard rd_kafka_get_watermark_offsets(rk, tp.topic, tp.partition, &lo, &hi) == RD_KAFKA_RESP_ERR_NO_ERROR,
                      hi >= 0 else { continue }
                var pos = positions[tp]
                if pos == nil, let sym = symbolicStart[tp] {
                    if sym == KafkaOffset.beginning { pos = max(lo, 0) }
                    if sym == KafkaOffset.end { pos = hi }
                }
                if pos == nil {
                    // Nothing returned yet: use librdkafka's fetch position.
                    let list = makePartitionList([(tp, KafkaOffset.invalid)])
                    if rd_kafka_position(rk, list) == RD_KAFKA_RESP_ERR_NO_ERROR,
                       let (_, off, _) = readPartitionList(list).first, off >= 0 { pos = off }
                    rd_kafka_topic_partition_list_destroy(list)
                }
                if let pos { out[tp] = max(0, hi - pos) }
            }
            return out
        }
    }

    /// Queries the partition leader for (low, high) watermarks. Blocking; call
    /// from the polling thread or any thread that is not inside a callback.
    public func queryWatermarks(_ tp: TopicPartition, timeoutMs: Int = 5000) throws -> (low: Int64, high: Int64) {
        requireOpen("queryWatermarks")
        return try Kafka.queryWatermarks(rk: rk, tp, timeoutMs: timeoutMs)
    }

    /// Checks that the cluster is reachable and every subscribed topic exists;
    /// returns partition counts. Throws one-line `.unreachable` ("cannot reach
    /// Kafka at … — check --brokers") or `.unknownTopic` ("topic 'x' does not
    /// exist on brokers … — create it or fix --topic") errors.
    @discardableResult
    public func checkTopics(timeoutMs: Int = 10_000) throws -> [String: Int] {
        requireOpen("checkTopics")
        return try Kafka.checkTopics(rk: rk, box: box, brokers: brokers, topics: topics, timeoutMs: timeoutMs)
    }

    /// The cluster id the brokers report in their metadata (nil when the
    /// cluster does not report one, or does not answer within `timeoutMs`).
    public func clusterId(timeoutMs: Int = 10_000) -> String? {
        requireOpen("clusterId")
        guard let p = rd_kafka_clusterid(rk, Int32(timeoutMs)) else { return nil }
        defer { rd_kafka_mem_free(rk, p) }
        return String(cString: p)
    }

    /// True when the group has taken this member's assignment away (its
    /// session timed out: the process was paused, or cut off from the
    /// coordinator, for longer than `session.timeout.ms`; or it did not poll
    /// within `max.poll.interval.ms`) and the lost revoke is not served yet.
    /// Its partitions may already be another member's.
    public var assignmentLost: Bool {
        requireOpen("assignmentLost")
        return rd_kafka_assignment_lost(rk) != 0
    }

    // MARK: Close

    private var isClosed: Bool { stateLock.withLock { closed } }

    /// A call that uses the librdkafka handle after `close()` destroyed it
    /// is a programming error: stop here rather than touch freed memory.
    private func requireOpen(_ what: String) {
        precondition(!isClosed, "KafkaConsumer.\(what) after close()")
    }

    /// Leaves the group and destroys the client. Flush/checkpoint BEFORE
    /// calling: partitions are released without a `.revoked` event.
    /// Idempotent; call from the polling thread.
    public func close() {
        if isClosed { return }
        box.lock.withLock { box.closing = true }
        if let pending = box.lock.withLock({ box.pendingRebalance }) {
            if pending.kind == .revoke { _ = unassign(pending.partitions) }
            box.lock.withLock { box.pendingRebalance = nil }
        }
        native?.close()
        _ = rd_kafka_consumer_close(rk)
        destroyHandle()
    }

    private func destroyHandle() {
        stateLock.withLock {
            closed = true
            assigned.removeAll()
        }
        rd_kafka_destroy(rk)
        if let opaque {
            Unmanaged<ClientBox>.fromOpaque(opaque).release()
            self.opaque = nil
        }
    }
}

/// The group's rebalance protocol ("NONE", "EAGER", "COOPERATIVE"), or nil
/// when librdkafka has none to report (it returns NULL then).
private func rebalanceProtocol(_ rk: OpaquePointer) -> String? {
    rd_kafka_rebalance_protocol(rk).map { String(cString: $0) }
}

// MARK: - C callbacks (run on the polling thread, inside rd_kafka_consumer_poll)

private let consumerRebalanceCallback: @convention(c) (OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?) -> Void = { rk, err, partitions, opaque in
    guard let rk, let box = ClientBox.from(opaque) else { return }
    let tps = readPartitionList(partitions).map { $0.0 }
    // NULL while the group state is being reset (seen under load during a
    // rebalance): the protocol does not change within a consumer's life, so
    // the last one known stands.
    let proto = rebalanceProtocol(rk)
    let (cooperative, closing) = box.lock.withLock { () -> (Bool, Bool) in
        if let proto { box.cooperative = proto == "COOPERATIVE" }
        return (box.cooperative, box.closing)
    }
    if closing {
        // close(): the caller already checkpointed; release right away.
        if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            // Should not happen while closing; assign nothing new.
            if cooperative { _ = takeError(rd_kafka_incremental_assign(rk, partitions)) } else { _ = rd_kafka_assign(rk, partitions) }
        } else if cooperative {
            _ = takeError(rd_kafka_incremental_unassign(rk, partitions))
        } else {
            _ = rd_kafka_assign(rk, nil)
        }
        return
    }
    let pending: PendingRebalance
    if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
        pending = PendingRebalance(kind: .assign, partitions: tps, lost: false)
    } else if err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
        pending = PendingRebalance(kind: .revoke, partitions: tps, lost: rd_kafka_assignment_lost(rk) != 0)
    } else {
        // Rebalance error: drop the assignment (librdkafka's documented advice).
        box.lock.withLock {
            box.events.append(.error(KafkaError(.other, "Kafka rebalance error: \(errName(err))", code: err.rawValue)))
        }
        pending = PendingRebalance(kind: .revoke, partitions: tps, lost: true)
    }
    box.lock.withLock { box.pendingRebalance = pending }
    // Return from rd_kafka_consumer_poll right away so the caller sees it.
    rd_kafka_yield(rk)
}

private let consumerErrorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = { rk, code, reason, opaque in
    guard let rk, let box = ClientBox.from(opaque) else { return }
    let err = rd_kafka_resp_err_t(rawValue: code)
    let text = reason.map { String(cString: $0) } ?? errName(err)
    if err == RD_KAFKA_RESP_ERR__FATAL {
        var buf = [CChar](repeating: 0, count: 512)
        let orig = rd_kafka_fatal_error(rk, &buf, buf.count)
        box.lock.withLock { box.fatal = "\(cString(buf)) (\(errName(orig)))" }
        return
    }
    let kind: KafkaError.Kind
    switch err {
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__RESOLVE:
        kind = .unreachable
    case RD_KAFKA_RESP_ERR__AUTHENTICATION, RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED, RD_KAFKA_RESP_ERR__SSL:
        kind = .auth
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        kind = .unknownTopic
    default:
        kind = .other
    }
    box.lock.withLock {
        if box.events.count < 1000 {  // bounded if nobody polls for a while
            box.events.append(.error(KafkaError(kind, "Kafka: \(text)", code: code)))
        }
    }
}
