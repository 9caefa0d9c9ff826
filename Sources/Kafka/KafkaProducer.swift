// KafkaProducer and produceAll (the `qos generate --kafka` engine).

import CRdKafka
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Delivery counters (from librdkafka delivery reports).
public struct DeliveryStats: Sendable, Equatable {
    /// Messages the broker acknowledged.
    public var delivered: Int
    /// Messages that permanently failed (after librdkafka's retries).
    public var failed: Int
    /// The first failure's reason.
    public var firstError: String?
    /// Key and value bytes of the messages delivered and failed.
    public var deliveredBytes = 0
    public var failedBytes = 0

    public init(delivered: Int, failed: Int, firstError: String?, deliveredBytes: Int = 0, failedBytes: Int = 0) {
        self.delivered = delivered
        self.failed = failed
        self.firstError = firstError
        self.deliveredBytes = deliveredBytes
        self.failedBytes = failedBytes
    }
}

/// A producer. Keys are hashed with `murmur2_random` (the Java client's
/// partitioner) unless `extra["partitioner"]` says otherwise, so a session's
/// beacons land in one partition.
///
/// Threading: `produce`, `poll`, `flush`, `stats` may be called from any
/// thread (librdkafka's producer API is thread-safe; our counters are
/// locked). `close` must not race with other calls. Hence `@unchecked Sendable`.
public final class KafkaProducer: @unchecked Sendable {
    public let brokers: String
    private let rk: OpaquePointer
    private let box: ClientBox
    private var opaque: UnsafeMutableRawPointer?
    private let closeLock = Lock()
    private var closed = false
    /// The largest record this producer takes, key and value together:
    /// its `message.max.bytes` less librdkafka's worst-case record framing
    /// (`recordOverheadMax`). A larger one is refused by `produce`.
    public let recordBytesMax: Int
    /// librdkafka's worst-case framing of one v2 record (length, attributes,
    /// timestamp and offset deltas, key and value lengths, header count: its
    /// `RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD`, 36 bytes), rounded up.
    public static let recordOverheadMax = 64
    /// librdkafka's local queue bound in bytes (its effective
    /// `queue.buffering.max.kbytes` × 1024): past it `produce` is refused.
    public let queueBytesMax: Int

    /// - Parameters:
    ///   - extra: passed verbatim to `rd_kafka_conf_set` after the defaults
    ///     (`linger.ms=5`, `partitioner=murmur2_random`); a bad key or value
    ///     throws a one-line `KafkaError(.configuration)` naming it.
    public init(brokers: String, extra: [String: String] = [:],
                logHandler: KafkaLogHandler? = KafkaLog.errorsToStderr) throws {
        self.brokers = brokers
        let box = ClientBox(logHandler: logHandler)
        self.box = box
        let settings = try mergeSettings(
            defaults: [
                ("linger.ms", "5"),
                ("partitioner", "murmur2_random"),
                ("client.id", "videoqos"),
            ],
            extra: extra,
            forced: [("bootstrap.servers", brokers)])
        let conf = try makeConf(settings, box: box)
        rd_kafka_conf_set_dr_msg_cb(conf, producerDeliveryCallback)
        rd_kafka_conf_set_error_cb(conf, producerErrorCallback)
        let (rk, opaque) = try makeHandle(RD_KAFKA_PRODUCER, conf: conf, box: box)
        self.rk = rk
        self.opaque = opaque
        recordBytesMax = max(0, (confInt(rk, "message.max.bytes") ?? 1_000_000) - Self.recordOverheadMax)
        queueBytesMax = (confInt(rk, "queue.buffering.max.kbytes") ?? 1_048_576) * 1024
    }

    deinit { close(flushTimeoutMs: 0) }

    /// The client handle for a call that must come before `close()`, which
    /// destroys it: a call after it would use freed memory, so it stops the
    /// process instead. Callers close the producer only once nothing uses
    /// it any more (`Collector.drain` stops its event loops first).
    private func live(_ what: String) -> OpaquePointer {
        let isClosed = closeLock.withLock { closed }
        precondition(!isClosed, "KafkaProducer.\(what) after close()")
        return rk
    }

    /// Enqueues one message (payload and key are copied). When librdkafka's
    /// local queue is full, serves delivery reports and retries (backpressure)
    /// for up to `blockTimeoutMs`, then throws.
    /// - Parameters:
    ///   - partition: explicit partition, or nil for the partitioner (by key).
    ///   - timestampMs: Kafka message timestamp; nil = now. (Beware: on a
    ///     real broker, old timestamps make retention delete data early.)
    public func produce(topic: String, key: [UInt8]?, payload: [UInt8], partition: Int32? = nil,
                        timestampMs: Int64? = nil, blockTimeoutMs: Int = 60_000) throws {
        let rk = live("produce")
        let deadline = monotonicNanos() + UInt64(max(0, blockTimeoutMs)) * 1_000_000
        while true {
            let result: (rd_kafka_resp_err_t, String)? = topic.withCString { topicC in
                payload.withUnsafeBytes { pay in
                    withOptionalBytes(key) { keyPtr, keyLen in
                        var vus = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 6)
                        var n = 0
                        vus[n].vtype = RD_KAFKA_VTYPE_TOPIC; vus[n].u.cstr = topicC; n += 1
                        vus[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS; vus[n].u.i = RD_KAFKA_MSG_F_COPY; n += 1
                        vus[n].vtype = RD_KAFKA_VTYPE_VALUE
                        vus[n].u.mem.ptr = UnsafeMutableRawPointer(mutating: pay.baseAddress)
                        vus[n].u.mem.size = pay.count; n += 1
                        if let keyPtr {
                            vus[n].vtype = RD_KAFKA_VTYPE_KEY
                            vus[n].u.mem.ptr = UnsafeMutableRawPointer(mutating: keyPtr)
                            vus[n].u.mem.size = keyLen; n += 1
                        }
                        if let partition {
                            vus[n].vtype = RD_KAFKA_VTYPE_PARTITION; vus[n].u.i32 = partition; n += 1
                        }
                        if let timestampMs {
                            vus[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP; vus[n].u.i64 = timestampMs; n += 1
                        }
                        return takeError(rd_kafka_produceva(rk, vus, n))
                    }
                }
            }
            guard let (code, text) = result else { return }
            if code == RD_KAFKA_RESP_ERR__QUEUE_FULL && monotonicNanos() < deadline {
                rd_kafka_poll(rk, 50)  // serve delivery reports, frees queue space
                continue
            }
            if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                throw KafkaError(.other, "Kafka producer queue stayed full for \(blockTimeoutMs / 1000) s — is Kafka at \(brokers) up?",
                                 code: code.rawValue)
            }
            if code == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || code == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART {
                throw KafkaError(.unknownTopic, "topic '\(topic)' does not exist on brokers \(brokers) — create it or fix --topic",
                                 code: code.rawValue)
            }
            if code == RD_KAFKA_RESP_ERR__FATAL {
                throw KafkaError(.fatal, "Kafka producer failed: \(text)", code: code.rawValue)
            }
            throw KafkaError(.other, "Kafka produce to '\(topic)' failed: \(text)", code: code.rawValue)
        }
    }

    /// Serves delivery reports and errors; returns the number of events served.
    @discardableResult
    public func poll(timeoutMs: Int = 0) -> Int {
        Int(rd_kafka_poll(live("poll"), Int32(clamping: timeoutMs)))
    }

    /// Waits until every queued message is delivered or failed; throws if
    /// some are still outstanding after `timeoutMs`.
    public func flush(timeoutMs: Int = 30_000) throws {
        let rk = live("flush")
        let err = rd_kafka_flush(rk, Int32(clamping: timeoutMs))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let n = rd_kafka_outq_len(rk)
            throw KafkaError(.unreachable,
                             "\(n) message(s) not delivered to Kafka at \(brokers) within \(timeoutMs / 1000) s — check --kafka/--brokers and that the broker is up",
                             code: err.rawValue)
        }
    }

    /// Messages (and requests) not yet delivered.
    public var outstanding: Int { Int(rd_kafka_outq_len(live("outstanding"))) }

    public var stats: DeliveryStats {
        box.lock.withLock {
            DeliveryStats(delivered: box.delivered, failed: box.failed, firstError: box.firstDeliveryError,
                          deliveredBytes: box.deliveredBytes, failedBytes: box.failedBytes)
        }
    }

    /// Checks reachability and that `topic` exists (no auto-creation).
    /// Returns the partition count.
    @discardableResult
    public func checkTopic(_ topic: String, timeoutMs: Int = 10_000) throws -> Int {
        try checkTopics(rk: live("checkTopic"), box: box, brokers: brokers, topics: [topic], timeoutMs: timeoutMs)[topic] ?? 0
    }

    /// Queries a partition's (low, high) watermarks from its leader.
    public func queryWatermarks(_ tp: TopicPartition, timeoutMs: Int = 5000) throws -> (low: Int64, high: Int64) {
        try Kafka.queryWatermarks(rk: live("queryWatermarks"), tp, timeoutMs: timeoutMs)
    }

    /// Flushes (up to `flushTimeoutMs`) and destroys the client. Undelivered
    /// messages are dropped. Idempotent.
    public func close(flushTimeoutMs: Int = 10_000) {
        let doClose = closeLock.withLock { () -> Bool in
            if closed { return false }
            closed = true
            return true
        }
        guard doClose else { return }
        if flushTimeoutMs > 0 { _ = rd_kafka_flush(rk, Int32(clamping: flushTimeoutMs)) }
        _ = rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT)
        rd_kafka_destroy(rk)
        if let opaque {
            Unmanaged<ClientBox>.fromOpaque(opaque).release()
            self.opaque = nil
        }
    }
}

private func withOptionalBytes<R>(_ a: [UInt8]?, _ body: (UnsafeRawPointer?, Int) -> R) -> R {
    guard let a else { return body(nil, 0) }
    return a.withUnsafeBytes { b in
        // An empty key is still a key (not null): give it a valid pointer.
        if b.count == 0 { return withUnsafePointer(to: 0 as UInt8) { body(UnsafeRawPointer($0), 0) } }
        return body(b.baseAddress, b.count)
    }
}

private let producerDeliveryCallback: @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = { _, m, opaque in
    guard let m, let box = ClientBox.from(opaque) else { return }
    let err = m.pointee.err
    let bytes = m.pointee.len + m.pointee.key_len
    box.lock.withLock {
        if err == RD_KAFKA_RESP_ERR_NO_ERROR {
            box.delivered += 1
            box.deliveredBytes += bytes
        } else {
            box.failed += 1
            box.failedBytes += bytes
            if box.firstDeliveryError == nil { box.firstDeliveryError = errName(err) }
        }
    }
}

private let producerErrorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = { _, code, reason, opaque in
    // Transient errors (broker down, …): librdkafka retries; they are logged
    // via log_cb already. Remember them for the "cannot reach" explanation.
    guard let box = ClientBox.from(opaque) else { return }
    let text = reason.map { String(cString: $0) } ?? ""
    box.lock.withLock { box.lastFailure = text }
}

// MARK: - produceAll

/// One message for `produceAll`.
public struct OutgoingMessage: Sendable {
    public var key: [UInt8]?
    public var payload: [UInt8]
    /// Event time, epoch ms. Used as the Kafka timestamp only when
    /// `produceAll(useEventTimestamps: true)`.
    public var timestampMs: Int64?
    public init(key: [UInt8]?, payload: [UInt8], timestampMs: Int64? = nil) {
        self.key = key; self.payload = payload; self.timestampMs = timestampMs
    }
    public init(key: String, payload: [UInt8], timestampMs: Int64? = nil) {
        self.init(key: Array(key.utf8), payload: payload, timestampMs: timestampMs)
    }
}

/// Progress of `produceAll`.
public struct ProduceProgress: Sendable {
    /// Messages handed to the producer so far.
    public var sent: Int
    public var delivered: Int
    public var failed: Int
    public var elapsedSeconds: Double
}

/// Produces every element of `messages` (mapped by `transform`; nil skips
/// it) to `topic`, then flushes.
///
/// - Parameters:
///   - rate: messages per second in real time (paced against a monotonic
///     clock from the start, so it does not drift), or nil for as fast as
///     possible (backpressure from librdkafka's queue).
///   - useEventTimestamps: use each message's `timestampMs` as the Kafka
///     timestamp (off by default: on a real broker, old timestamps make
///     time-based retention delete the data early).
///   - progress: called about once per `progressInterval` seconds.
///   - shouldStop: polled between messages (e.g. a SIGINT flag); stops early
///     and still flushes.
/// - Throws: `KafkaError` when a message cannot be enqueued, the flush times
///   out, or any message permanently failed delivery.
@discardableResult
public func produceAll<S: Sequence>(_ messages: S, producer: KafkaProducer, topic: String, rate: Double?,
                                    useEventTimestamps: Bool = false, flushTimeoutMs: Int = 60_000,
                                    progressInterval: Double = 1,
                                    progress: ((ProduceProgress) -> Void)? = nil,
                                    shouldStop: () -> Bool = { false },
                                    transform: (S.Element) throws -> OutgoingMessage?) throws -> ProduceProgress {
    let start = monotonicNanos()
    let base = producer.stats
    var sent = 0
    var nextProgress = start + UInt64(progressInterval * 1e9)
    func snapshot() -> ProduceProgress {
        let s = producer.stats
        return ProduceProgress(sent: sent, delivered: s.delivered - base.delivered, failed: s.failed - base.failed,
                               elapsedSeconds: Double(monotonicNanos() - start) / 1e9)
    }
    let nsPerMessage: Double? = rate.flatMap { $0 > 0 && $0.isFinite ? 1e9 / $0 : nil }
    for element in messages {
        if shouldStop() { break }
        guard let m = try transform(element) else { continue }
        if let nsPerMessage {
            // Message i is due at start + i / rate.
            let due = start + UInt64(Double(sent) * nsPerMessage)
            while true {
                let now = monotonicNanos()
                if now >= due { break }
                let waitMs = Int((due - now) / 1_000_000)
                if waitMs >= 1 {
                    producer.poll(timeoutMs: min(waitMs, 100))  // sleep while serving reports
                } else {
                    var ts = timespec(tv_sec: 0, tv_nsec: Int(due - now))
                    nanosleep(&ts, nil)
                }
                if shouldStop() { break }
            }
        }
        try producer.produce(topic: topic, key: m.key, payload: m.payload,
                             timestampMs: useEventTimestamps ? m.timestampMs : nil)
        sent += 1
        if sent & 1023 == 0 { producer.poll(timeoutMs: 0) }
        if let progress, monotonicNanos() >= nextProgress {
            producer.poll(timeoutMs: 0)
            progress(snapshot())
            nextProgress = monotonicNanos() + UInt64(progressInterval * 1e9)
        }
    }
    try producer.flush(timeoutMs: flushTimeoutMs)
    let final = snapshot()
    progress?(final)
    if final.failed > 0 {
        throw KafkaError(.other,
                         "\(final.failed) of \(final.sent) messages failed delivery to Kafka topic '\(topic)': \(producer.stats.firstError ?? "unknown error")")
    }
    return final
}

/// `produceAll` for a sequence of `OutgoingMessage`s.
@discardableResult
public func produceAll<S: Sequence>(_ messages: S, producer: KafkaProducer, topic: String, rate: Double?,
                                    useEventTimestamps: Bool = false, flushTimeoutMs: Int = 60_000,
                                    progressInterval: Double = 1,
                                    progress: ((ProduceProgress) -> Void)? = nil,
                                    shouldStop: () -> Bool = { false }) throws -> ProduceProgress
where S.Element == OutgoingMessage {
    try produceAll(messages, producer: producer, topic: topic, rate: rate, useEventTimestamps: useEventTimestamps,
                   flushTimeoutMs: flushTimeoutMs, progressInterval: progressInterval, progress: progress,
                   shouldStop: shouldStop, transform: { $0 })
}

/// An integer property of a client's effective configuration.
private func confInt(_ rk: OpaquePointer, _ name: String) -> Int? {
    var size = 0
    guard rd_kafka_conf_get(rd_kafka_conf(rk), name, nil, &size) == RD_KAFKA_CONF_OK, size > 0 else { return nil }
    var buf = [CChar](repeating: 0, count: size)
    guard rd_kafka_conf_get(rd_kafka_conf(rk), name, &buf, &size) == RD_KAFKA_CONF_OK else { return nil }
    return Int(String(cString: buf))
}
