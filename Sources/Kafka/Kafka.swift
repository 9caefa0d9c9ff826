// Kafka module: librdkafka consumer, producer and embedded mock broker.
//
// Layering: this module depends only on the C library (CRdKafka) and the
// platform; it knows nothing about beacons. Errors are `KafkaError`s whose
// `message` is one operator-facing line (what went wrong + the fix).
//
// A checkpointing consumer loop (offsets live in the sink's checkpoint;
// Kafka commits are for lag monitoring only):
//
//     let c = try KafkaConsumer(brokers: b, groupId: g, topics: [t], extra: kafkaConf)
//     try c.checkTopics()                       // one-line errors before subscribing
//     while running {
//         for ev in try c.poll(maxMessages: 5000, timeoutMs: 200) {
//             switch ev {
//             case .message(let m):   engine.apply(m)   // checkpoint m.offset + 1
//             case .assigned(let tps):                 // nothing fetched yet
//                 try c.completeAssign(startOffsets: checkpoint.offsets(for: tps))
//             case .revoked(let tps, _):               // still ours until completeRevoke
//                 flushAndCheckpoint(tps); try c.completeRevoke()
//             case .error(let e):     log(e.message)   // librdkafka keeps retrying
//             }
//         }
//         if flushDue { flushAndCheckpoint(all); try c.commit(checkpoint.offsets) }
//     }
//     flushAndCheckpoint(all); c.close()
//
// Threading rules (see each class): a `KafkaConsumer` is polled from ONE
// thread (librdkafka 2.0.x: consume_batch is unsafe with concurrent
// seek/pause/rebalance, so we use rd_kafka_consumer_poll in a loop and every
// rebalance callback runs inside that poll). `KafkaProducer.produce` and
// `poll` may be called from any thread.

import CRdKafka
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Public value types

/// A topic partition.
public struct TopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)/\(partition)" }
    public static func < (a: TopicPartition, b: TopicPartition) -> Bool {
        a.topic != b.topic ? a.topic < b.topic : a.partition < b.partition
    }
}

/// Special offsets understood by librdkafka (`RD_KAFKA_OFFSET_*`).
public enum KafkaOffset {
    /// Oldest retained message.
    public static let beginning: Int64 = -2
    /// Next message to be produced (skip everything retained).
    public static let end: Int64 = -1
    /// The group's committed offset (falls back to `auto.offset.reset`, which
    /// this module defaults to `earliest`).
    public static let committed: Int64 = -1000
    /// "No offset" as returned by librdkafka.
    public static let invalid: Int64 = -1001
}

/// One consumed record. `offset` is the record's own offset; the offset to
/// checkpoint / commit after processing it is `offset + 1`.
public struct KafkaMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var payload: [UInt8]
    /// Kafka message timestamp (create or log-append time), epoch ms; nil if unknown.
    public var timestampMs: Int64?
    public var topicPartition: TopicPartition { TopicPartition(topic, partition) }

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, payload: [UInt8], timestampMs: Int64?) {
        self.topic = topic; self.partition = partition; self.offset = offset
        self.key = key; self.payload = payload; self.timestampMs = timestampMs
    }
}

/// An error from this module. `message` is a single line meant for operators.
public struct KafkaError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// A `rd_kafka_conf_set` key/value was rejected (key in `key`).
        case configuration
        /// No broker could be reached (bootstrap servers wrong / down).
        case unreachable
        /// The topic does not exist on the cluster.
        case unknownTopic
        /// Authentication / authorization failure.
        case auth
        /// The client instance is unusable (librdkafka fatal error).
        case fatal
        /// A start/checkpoint offset is not in the partition's log any more
        /// and librdkafka reset the position per `auto.offset.reset`: either
        /// retention deleted it (messages were skipped) or the log restarted
        /// below it (topic recreated, log truncated). Operators must hear about it.
        case offsetReset
        /// A local port could not be bound (mock broker forwarder).
        case portInUse
        /// Anything else (transient errors, timeouts, ...).
        case other
    }
    public var kind: Kind
    public var message: String
    /// librdkafka `rd_kafka_resp_err_t` raw value (0 when not applicable).
    public var code: Int32
    /// The configuration key for `.configuration` errors.
    public var key: String?
    /// The partition an `.offsetReset` happened to, when librdkafka named it,
    /// and the offset it could not serve.
    public var topicPartition: TopicPartition?
    public var offset: Int64?

    public init(_ kind: Kind, _ message: String, code: Int32 = 0, key: String? = nil,
                topicPartition: TopicPartition? = nil, offset: Int64? = nil) {
        self.kind = kind
        self.message = oneLine(message)
        self.code = code
        self.key = key
        self.topicPartition = topicPartition
        self.offset = offset
    }
    public var description: String { message }
}

// MARK: - Logging

/// A librdkafka log line (`log_cb`). `level` is syslog-style: 0 emerg … 3 err,
/// 4 warning, 5 notice, 6 info, 7 debug.
public struct KafkaLogMessage: Sendable {
    public var level: Int32
    public var facility: String
    public var message: String
    /// librdkafka client instance name, e.g. `rdkafka#consumer-1`.
    public var client: String
}

/// Receives librdkafka's log lines. Called from librdkafka's internal threads:
/// must be thread-safe and quick.
public typealias KafkaLogHandler = @Sendable (KafkaLogMessage) -> Void

public enum KafkaLog {
    /// Default: errors only (level ≤ 3), one line each, on stderr.
    public static let errorsToStderr: KafkaLogHandler = { m in
        guard m.level <= 3 else { return }
        writeLine("kafka: \(m.facility): \(m.message)")
    }
    /// Discards everything (tests).
    public static let silent: KafkaLogHandler = { _ in }
    /// Everything up to `maxLevel` on stderr (debugging).
    public static func stderr(maxLevel: Int32) -> KafkaLogHandler {
        { m in if m.level <= maxLevel { writeLine("kafka[\(m.level)] \(m.client) \(m.facility): \(m.message)") } }
    }

    static func writeLine(_ s: String) {
        var line = oneLine(s) + "\n"
        line.withUTF8 { b in _ = write(2, b.baseAddress, b.count) }
    }
}

/// The librdkafka version string, e.g. "2.0.2".
public var librdkafkaVersion: String { String(cString: rd_kafka_version_str()) }

// MARK: - Internals shared by consumer, producer and mock broker

/// A NUL-terminated C buffer as a String.
func cString(_ buf: [CChar]) -> String {
    buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

func oneLine(_ s: String) -> String {
    guard s.contains(where: { $0 == "\n" || $0 == "\r" }) else { return s }
    return s.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).joined(separator: " ")
}

/// pthread mutex; cheap and usable from C callbacks.
final class Lock: @unchecked Sendable {
    private let m: UnsafeMutablePointer<pthread_mutex_t>
    init() {
        m = .allocate(capacity: 1)
        m.initialize(to: pthread_mutex_t())
        pthread_mutex_init(m, nil)
    }
    deinit {
        pthread_mutex_destroy(m)
        m.deallocate()
    }
    @inline(__always)
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
}

func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func errName(_ err: rd_kafka_resp_err_t) -> String { String(cString: rd_kafka_err2str(err)) }

/// Shared state reachable from librdkafka's C callbacks through the conf
/// opaque. Retained (passRetained) for the lifetime of the rd_kafka_t and
/// released only after rd_kafka_destroy returned, so callbacks never see a
/// dangling pointer. All mutable fields are guarded by `lock` because log_cb
/// runs on librdkafka's internal threads.
final class ClientBox: @unchecked Sendable {
    let lock = Lock()
    let logHandler: KafkaLogHandler?
    /// The most recent connection failure seen in the logs (facility FAIL),
    /// used to explain "cannot reach Kafka".
    var lastFailure: String?

    // Consumer: events produced by callbacks during rd_kafka_consumer_poll.
    // Changed under `lock` only.
    var events: [KafkaEvent] = [] {
        didSet { if !events.isEmpty { signal.store(1, ordering: .releasing) } }
    }
    var pendingRebalance: PendingRebalance? {
        didSet { if pendingRebalance != nil { signal.store(1, ordering: .releasing) } }
    }
    /// Nonzero while `events` or `pendingRebalance` may be set, so the poll
    /// loop takes the lock only then (not once per message). Cleared under
    /// `lock` when both are found empty.
    let signal = Atomic<Int>(0)
    var closing = false
    var fatal: String?
    var cooperative = false
    var isConsumer = false

    // Producer: delivery report counters.
    var delivered = 0
    var failed = 0
    var deliveredBytes = 0
    var failedBytes = 0
    var firstDeliveryError: String?

    init(logHandler: KafkaLogHandler?) { self.logHandler = logHandler }

    static func from(_ p: UnsafeMutableRawPointer?) -> ClientBox? {
        guard let p else { return nil }
        return Unmanaged<ClientBox>.fromOpaque(p).takeUnretainedValue()
    }
}

struct PendingRebalance {
    enum Kind { case assign, revoke }
    var kind: Kind
    var partitions: [TopicPartition]
    var lost: Bool
}

/// log_cb: runs on any librdkafka thread.
let kafkaLogCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = { rk, level, fac, buf in
    guard let rk, let box = ClientBox.from(rd_kafka_opaque(rk)) else { return }
    let facility = fac.map { String(cString: $0) } ?? ""
    let msg = buf.map { String(cString: $0) } ?? ""
    if facility == "FAIL" || facility == "ERROR" {
        box.lock.withLock { box.lastFailure = msg }
    } else if facility == "OFFSET" && msg.contains("offset reset") {
        // librdkafka 2.0.2 reports an out-of-range reset only as a log line.
        box.lock.withLock {
            if box.isConsumer && box.events.count < 1000 {
                let at = offsetResetPosition(msg)
                box.events.append(.error(KafkaError(.offsetReset, "Kafka \(msg)", topicPartition: at?.partition, offset: at?.offset)))
            }
        }
    }
    guard let h = box.logHandler else { return }
    h(KafkaLogMessage(level: level, facility: facility, message: msg,
                      client: String(cString: rd_kafka_name(rk))))
}

/// The partition and offset named by librdkafka 2.0.2's out-of-range log
/// line, `"[thrd:main]: <topic> [<partition>]: offset reset (at offset
/// <offset>, broker …) to …"` (the offset nil when it is not a number; nil
/// for any other text). Topic names have no spaces or brackets.
public func offsetResetPosition(_ line: String) -> (partition: TopicPartition, offset: Int64?)? {
    guard let mark = line.firstRange(of: "]: offset reset") else { return nil }
    let head = line[..<mark.lowerBound]
    guard let open = head.lastIndex(of: "["),
          let partition = Int32(head[head.index(after: open)...]), partition >= 0 else { return nil }
    var topic = head[..<open]
    guard topic.last == " " else { return nil }
    topic = topic.dropLast()
    if let space = topic.lastIndex(of: " ") { topic = topic[topic.index(after: space)...] }
    guard !topic.isEmpty, !topic.contains("["), !topic.contains("]") else { return nil }
    var offset: Int64?
    let tail = line[mark.upperBound...]
    if tail.hasPrefix(" (at offset ") {
        offset = Int64(tail.dropFirst(" (at offset ".count).prefix { $0 >= "0" && $0 <= "9" })
    }
    return (TopicPartition(String(topic), partition), offset)
}

/// Builds an rd_kafka_conf_t from ordered settings; a rejected key or value
/// throws a one-line `.configuration` error naming the key.
func makeConf(_ settings: [(String, String)], box: ClientBox) throws -> OpaquePointer {
    guard let conf = rd_kafka_conf_new() else { throw KafkaError(.other, "rd_kafka_conf_new failed") }
    var errbuf = [CChar](repeating: 0, count: 512)
    for (k, v) in settings {
        let r = rd_kafka_conf_set(conf, k, v, &errbuf, errbuf.count)
        if r != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            let why = cString(errbuf)
            let hint = r == RD_KAFKA_CONF_UNKNOWN
                ? "unknown librdkafka property" : "invalid value"
            throw KafkaError(.configuration,
                             "bad Kafka setting '\(k)': \(hint) (\(why)) — see librdkafka CONFIGURATION.md",
                             key: k)
        }
    }
    rd_kafka_conf_set_log_cb(conf, kafkaLogCallback)
    var value = [CChar](repeating: 0, count: 32)
    var size = value.count
    if rd_kafka_conf_get(conf, "receive.message.max.bytes", &value, &size) == RD_KAFKA_CONF_OK,
       let bytes = Int(cString(value)), bytes > 0 {
        ZstdFrameSizeHint.admit(receiveMessageMaxBytes: bytes)
    }
    return conf
}

/// Creates the rd_kafka_t; on failure destroys conf and throws.
func makeHandle(_ type: rd_kafka_type_t, conf: OpaquePointer, box: ClientBox) throws -> (OpaquePointer, UnsafeMutableRawPointer) {
    let opaque = Unmanaged.passRetained(box).toOpaque()
    rd_kafka_conf_set_opaque(conf, opaque)
    var errbuf = [CChar](repeating: 0, count: 512)
    guard let rk = rd_kafka_new(type, conf, &errbuf, errbuf.count) else {
        rd_kafka_conf_destroy(conf)
        Unmanaged<ClientBox>.fromOpaque(opaque).release()
        throw KafkaError(.configuration, "cannot create Kafka client: \(cString(errbuf))")
    }
    return (rk, opaque)
}

/// Ordered settings: defaults, then user `extra` (sorted by key, so errors
/// are deterministic), then `forced` which the user may not override.
func mergeSettings(defaults: [(String, String)], extra: [String: String], forced: [(String, String)]) throws -> [(String, String)] {
    for (k, v) in forced {
        if let mine = extra[k], mine != v {
            throw KafkaError(.configuration,
                             "Kafka setting '\(k)' cannot be set to '\(mine)': this client needs \(k)=\(v) (offsets are checkpointed with the output)",
                             key: k)
        }
    }
    let forcedKeys = Set(forced.map(\.0))
    let extraKeys = Set(extra.keys)
    var out = defaults.filter { !extraKeys.contains($0.0) && !forcedKeys.contains($0.0) }
    out += extra.sorted { $0.key < $1.key }.filter { !forcedKeys.contains($0.key) }.map { ($0.key, $0.value) }
    out += forced
    return out
}

// MARK: - Partition lists

func makePartitionList(_ entries: [(TopicPartition, Int64)]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
    let list = rd_kafka_topic_partition_list_new(Int32(max(entries.count, 1)))!
    for (tp, off) in entries {
        let e = rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition)!
        e.pointee.offset = off
    }
    return list
}

func readPartitionList(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>?) -> [(TopicPartition, Int64, rd_kafka_resp_err_t)] {
    guard let list, list.pointee.cnt > 0, let elems = list.pointee.elems else { return [] }
    var out: [(TopicPartition, Int64, rd_kafka_resp_err_t)] = []
    out.reserveCapacity(Int(list.pointee.cnt))
    for i in 0..<Int(list.pointee.cnt) {
        let e = elems[i]
        out.append((TopicPartition(String(cString: e.topic), e.partition), e.offset, e.err))
    }
    return out
}

func takeError(_ e: OpaquePointer?) -> (rd_kafka_resp_err_t, String)? {
    guard let e else { return nil }
    defer { rd_kafka_error_destroy(e) }
    return (rd_kafka_error_code(e), String(cString: rd_kafka_error_string(e)))
}

// MARK: - Metadata: topic existence and reachability

/// Fetches cluster metadata (all topics, so nothing is auto-created) and
/// returns each requested topic's partition count; throws one-line errors for
/// an unreachable cluster or a missing topic.
func checkTopics(rk: OpaquePointer, box: ClientBox, brokers: String, topics: [String], timeoutMs: Int) throws -> [String: Int] {
    var md: UnsafePointer<rd_kafka_metadata>? = nil
    let err = rd_kafka_metadata(rk, 1, nil, &md, Int32(timeoutMs))
    if err != RD_KAFKA_RESP_ERR_NO_ERROR {
        let detail = box.lock.withLock { box.lastFailure }
        switch err {
        case RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
             RD_KAFKA_RESP_ERR__RESOLVE:
            throw KafkaError(.unreachable,
                             "cannot reach Kafka at \(brokers)\(detail.map { " (\($0))" } ?? "") — check --brokers and that the broker is running",
                             code: err.rawValue)
        case RD_KAFKA_RESP_ERR__AUTHENTICATION, RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED,
             RD_KAFKA_RESP_ERR__SSL:
            throw KafkaError(.auth,
                             "Kafka at \(brokers) rejected the connection: \(errName(err))\(detail.map { " (\($0))" } ?? "") — check the kafka.security.*/sasl.*/ssl.* settings",
                             code: err.rawValue)
        default:
            throw KafkaError(.other, "Kafka metadata request to \(brokers) failed: \(errName(err))", code: err.rawValue)
        }
    }
    guard let md else { throw KafkaError(.other, "Kafka metadata request to \(brokers) returned nothing") }
    defer { rd_kafka_metadata_destroy(md) }
    var found: [String: Int] = [:]
    var authDenied: Set<String> = []
    let m = md.pointee
    for i in 0..<Int(m.topic_cnt) {
        let t = m.topics[i]
        let name = String(cString: t.topic)
        if t.err == RD_KAFKA_RESP_ERR_NO_ERROR { found[name] = Int(t.partition_cnt) }
        else if t.err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED { authDenied.insert(name) }
    }
    var out: [String: Int] = [:]
    for topic in topics {
        if let n = found[topic] { out[topic] = n; continue }
        if topic.hasPrefix("^") { continue }  // regex subscription: nothing to check
        if authDenied.contains(topic) {
            throw KafkaError(.auth, "not authorized to access topic '\(topic)' on \(brokers) — check the Kafka ACLs / credentials",
                             code: RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED.rawValue)
        }
        throw KafkaError(.unknownTopic,
                         "topic '\(topic)' does not exist on brokers \(brokers) — create it or fix --topic",
                         code: RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue)
    }
    return out
}

/// Brokers and partition leaders of `topics` from librdkafka's metadata
/// (the fetch path's map; docs/kafka-fetch.md).
func leaderMap(rk: OpaquePointer, topics: [String], timeoutMs: Int) throws -> LeaderMap {
    var md: UnsafePointer<rd_kafka_metadata>? = nil
    let err = rd_kafka_metadata(rk, 1, nil, &md, Int32(clamping: timeoutMs))
    guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md else {
        throw KafkaError(.other, "Kafka metadata request failed: \(errName(err))", code: err.rawValue)
    }
    defer { rd_kafka_metadata_destroy(md) }
    let m = md.pointee
    var out = LeaderMap()
    for i in 0..<Int(m.broker_cnt) {
        let b = m.brokers[i]
        out.brokers[b.id] = (String(cString: b.host), b.port)
    }
    let wanted = Set(topics)
    for i in 0..<Int(m.topic_cnt) {
        let t = m.topics[i]
        let name = String(cString: t.topic)
        guard wanted.contains(name), t.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
        for j in 0..<Int(t.partition_cnt) {
            let p = t.partitions[j]
            if p.err == RD_KAFKA_RESP_ERR_NO_ERROR, p.leader >= 0 { out.leaders[TopicPartition(name, p.id)] = p.leader }
        }
    }
    return out
}

/// Queries the broker for a partition's low/high watermark (blocking).
func queryWatermarks(rk: OpaquePointer, _ tp: TopicPartition, timeoutMs: Int) throws -> (low: Int64, high: Int64) {
    var lo: Int64 = 0, hi: Int64 = 0
    let err = rd_kafka_query_watermark_offsets(rk, tp.topic, tp.partition, &lo, &hi, Int32(timeoutMs))
    guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
        throw KafkaError(.other, "cannot query watermarks of \(tp): \(errName(err))", code: err.rawValue)
    }
    return (lo, hi)
}
