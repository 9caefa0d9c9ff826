import Foundation
import QoSCore

/// Counters for `/metrics`.
final class CollectStats: @unchecked Sendable {
    struct Snapshot {
        var responses: [UInt: Int] = [:]
        var accepted = 0
        var rejected: [String: Int] = [:]
        var refused: [String: Int] = [:]
        var lost = 0
    }
    private var s = Snapshot()
    private let lock = NSLock()
    func response(_ code: UInt) { lock.withLock { s.responses[code, default: 0] += 1 } }
    func refused(_ why: String) { lock.withLock { s.refused[why, default: 0] += 1 } }
    func count(accepted: Int, rejects: [RejectReason], lost: Int) {
        lock.withLock {
            s.accepted += accepted
            for r in rejects { s.rejected[r.code, default: 0] += 1 }
            s.lost += lost
        }
    }
    func snapshot() -> Snapshot { lock.withLock { s } }
}

final class ManagedAtomicFlag: @unchecked Sendable {
    private var value = false
    private let lock = NSLock()
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// `/metrics` of `qos collect` (README "qos collect", metrics).
extension Collector {
    func renderMetrics() -> String {
        let s = stats.snapshot()
        let d = producer.stats
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Int)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, v) in samples { out += "\(name)\(labels) \(v)\n" }
        }
        metric("qos_collect_responses_total", "counter", "HTTP responses, by status code.",
               s.responses.sorted { $0.key < $1.key }.map { ("{code=\"\($0.key)\"}", $0.value) })
        metric("qos_collect_records_accepted_total", "counter", "Records accepted and handed to Kafka.", [("", s.accepted)])
        metric("qos_collect_records_rejected_total", "counter", "Records refused (400), by reason; also produced for the rejects table.",
               s.rejected.sorted { $0.key < $1.key }.map { ("{reason=\"\($0.key)\"}", $0.value) })
        metric("qos_collect_requests_refused_total", "counter", "Requests refused before decoding: rate (429), origin (403), unavailable (503), body_budget (503), too_large (413), timeout (408), unread_responses (closed), client_connections (closed at accept).",
               s.refused.sorted { $0.key < $1.key }.map { ("{why=\"\($0.key)\"}", $0.value) })
        metric("qos_collect_kafka_delivered_total", "counter", "Records Kafka acknowledged.", [("", d.delivered)])
        metric("qos_collect_kafka_failed_total", "counter", "Records Kafka permanently refused.", [("", d.failed)])
        metric("qos_collect_kafka_buffered", "gauge", "Records waiting for Kafka's acknowledgement.", [("", buffered)])
        metric("qos_collect_buffer_capacity", "gauge", "Records that may wait for Kafka before requests get 503.", [("", options.bufferMessages)])
        metric("qos_collect_kafka_buffered_bytes", "gauge", "Bytes waiting for Kafka's acknowledgement (key, value, 256 per record).",
               [("", bufferedBytes)])
        metric("qos_collect_buffer_bytes_capacity", "gauge",
               "Bytes that may wait for Kafka before requests get 503 (nine tenths of queue.buffering.max.kbytes).", [("", bufferBytesMax)])
        metric("qos_collect_connections", "gauge", "Open client connections.", [("", openConnections)])
        metric("qos_collect_body_bytes", "gauge", "Request body bytes held or announced, across connections.", [("", bodyBytesReserved)])
        metric("qos_collect_body_bytes_capacity", "gauge", "Body bytes held at once before requests get 503 (--max-body-total).",
               [("", options.bodyBytesTotalMax)])
        metric("qos_collect_rate_limited_clients", "gauge", "Client addresses with a token bucket.", [("", limiter.clients)])
        return out
    }
}
