// MockBroker: an embedded development Kafka cluster (librdkafka's mock
// cluster, rdkafka_mock.h). In memory only; not for production.
//
// Ports: librdkafka 2.0.2's mock brokers always bind 127.0.0.1 on a random
// port (rd_kafka_mock_broker_new binds sin_port 0; there is no API or config
// to choose it — that arrived in later versions). For a fixed port we run a
// small TCP forwarder from 127.0.0.1:<port> to broker 1. That is enough for
// bootstrap: clients then connect to the addresses advertised in metadata,
// which are the mock brokers' own 127.0.0.1:<random> listeners. Consequence:
// clients must run on the same host (the advertised address is loopback).
//
// Other 2.0.2 mock-cluster behaviour worth knowing (verified in tests):
// - Retention: each partition keeps only its newest ~5 MiB (or 100 000
//   message sets); older data is dropped silently (log start moves). A
//   consumer that falls further behind jumps forward (auto.offset.reset).
// - Unknown topics are auto-created with 4 partitions by a producer's
//   metadata request and by a consumer's subscription: call
//   `KafkaProducer.checkTopic` / `KafkaConsumer.checkTopics` first.
// - Groups: the first join of a group takes 3 s; any later rebalance waits
//   up to session.timeout.ms − 1 s for members to rejoin, so use a short
//   session.timeout.ms (e.g. 6000) with the mock. That same wait is the
//   mock's rebalance timeout: a member whose revoke handling (flush +
//   checkpoint before `completeRevoke`) takes longer is dropped and its
//   partitions go to others. Real brokers wait max.poll.interval.ms.
// - ListOffsets by timestamp is not implemented.

import CRdKafka
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Threading: all methods are thread-safe (librdkafka's mock API posts
/// commands to the mock cluster's own thread); `close` is idempotent.
public final class MockBroker: @unchecked Sendable {
    /// What clients should use as bootstrap.servers: the forwarder's
    /// 127.0.0.1:<port> when a port was requested, else the mock's own list.
    public let bootstrapServers: String
    /// The mock cluster's own bootstrap list (127.0.0.1:<random>,…).
    public let clusterBootstrapServers: String
    public let brokerCount: Int

    private let rk: OpaquePointer
    private let box: ClientBox
    private var opaque: UnsafeMutableRawPointer?
    private var mcluster: OpaquePointer?
    private var forwarder: TCPForwarder?
    private let lock = Lock()

    /// - Parameters:
    ///   - brokers: number of mock brokers (ids 1…n).
    ///   - port: a fixed local port for bootstrap (forwarded to broker 1);
    ///     nil = use the mock's random ports directly. 0 = any free port.
    ///   - topics: topics to create, name → partition count.
    public init(brokers: Int = 1, port: Int? = nil, topics: [String: Int] = [:],
                logHandler: KafkaLogHandler? = KafkaLog.errorsToStderr) throws {
        precondition(brokers >= 1)
        brokerCount = brokers
        // Bind the requested port first: "port in use" is the likely error.
        var fwd: TCPForwarder? = nil
        if let port { fwd = try TCPForwarder(port: port) }

        let box = ClientBox(logHandler: logHandler)
        self.box = box
        // A dummy producer handle owns the mock cluster's thread and logs.
        let conf = try makeConf([("client.id", "videoqos-mock")], box: box)
        let (rk, opaque) = try makeHandle(RD_KAFKA_PRODUCER, conf: conf, box: box)
        self.rk = rk
        self.opaque = opaque
        guard let mc = rd_kafka_mock_cluster_new(rk, Int32(brokers)) else {
            rd_kafka_destroy(rk)
            Unmanaged<ClientBox>.fromOpaque(opaque).release()
            fwd?.stop()
            throw KafkaError(.other, "cannot start the embedded Kafka mock cluster (see the log above)")
        }
        mcluster = mc
        clusterBootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(mc))
        if let fwd {
            let first = clusterBootstrapServers.split(separator: ",").first.map(String.init) ?? clusterBootstrapServers
            let targetPort = Int(first.split(separator: ":").last ?? "") ?? 0
            fwd.start(targetPort: targetPort)
            forwarder = fwd
            bootstrapServers = "127.0.0.1:\(fwd.port)"
        } else {
            bootstrapServers = clusterBootstrapServers
        }
        for (name, n) in topics.sorted(by: { $0.key < $1.key }) {
            try createTopic(name, partitions: n)
        }
    }

    deinit { close() }

    /// Creates a topic (replication factor ≤ broker count).
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int? = nil) throws {
        let rf = min(replicationFactor ?? brokerCount, brokerCount)
        let err = try withCluster { rd_kafka_mock_topic_create($0, name, Int32(partitions), Int32(rf)) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.other, "cannot create mock topic '\(name)': \(errName(err))", code: err.rawValue)
        }
    }

    /// Simulates an outage of broker `id` (1-based): closes its listener and
    /// connections; clients see transport errors until `setBrokerUp`.
    public func setBrokerDown(_ id: Int32 = 1) throws {
        let err = try withCluster { rd_kafka_mock_broker_set_down($0, id) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(.other, "mock broker \(id) down: \(errName(err))") }
    }

    public func setBrokerUp(_ id: Int32 = 1) throws {
        let err = try withCluster { rd_kafka_mock_broker_set_up($0, id) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(.other, "mock broker \(id) up: \(errName(err))") }
    }

    /// Adds network round-trip latency to broker `id`.
    public func setBrokerRTT(_ id: Int32, ms: Int) throws {
        let err = try withCluster { rd_kafka_mock_broker_set_rtt($0, id, Int32(ms)) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(.other, "mock broker \(id) rtt: \(errName(err))") }
    }

    /// Makes the next `count` requests of Kafka API `apiKey` fail with `error`
    /// (rd_kafka_mock_push_request_errors), for fault-injection tests.
    public func pushRequestErrors(apiKey: Int16, error: Int32, count: Int = 1) throws {
        _ = try withCluster { mc -> Int in
            var errs = [rd_kafka_resp_err_t](repeating: rd_kafka_resp_err_t(rawValue: error), count: count)
            rd_kafka_mock_push_request_errors_array(mc, apiKey, count, &errs)
            return 0
        }
    }

    /// Stops the forwarder and destroys the cluster (all data is lost).
    /// Close clients first (or they will log connection errors). Idempotent.
    public func close() {
        let (mc, fwd) = lock.withLock { () -> (OpaquePointer?, TCPForwarder?) in
            let r = (mcluster, forwarder)
            mcluster = nil
            forwarder = nil
            return r
        }
        guard let mc else { return }
        fwd?.stop()
        rd_kafka_mock_cluster_destroy(mc)
        rd_kafka_destroy(rk)
        if let opaque {
            Unmanaged<ClientBox>.fromOpaque(opaque).release()
            self.opaque = nil
        }
    }

    private func withCluster<R>(_ body: (OpaquePointer) -> R) throws -> R {
        try lock.withLock {
            guard let mc = mcluster else { throw KafkaError(.other, "mock broker is closed") }
            return body(mc)
        }
    }
}
