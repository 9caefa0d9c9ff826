#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QoSCore

/// `/metrics` (Prometheus text format 0.0.4) and `/healthz` on a local port,
/// served from a background thread. The daemon publishes a new snapshot at
/// every checkpoint; `/healthz` is 200 while snapshots keep coming (the poll
/// loop is alive) and 503 after `staleAfterSeconds` without one.
public final class MetricsServer: @unchecked Sendable {
    private let fd: Int32
    private let lock = NSLock()
    private var body = "# no checkpoint yet\n"
    private var updatedAt = monotonicSeconds()
    public let port: Int
    public var staleAfterSeconds = 60.0

    public init(host: String = "127.0.0.1", port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw UserError("metrics: cannot create a socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw UserError("metrics: cannot listen on \(host):\(port) (\(String(cString: strerror(errno)))) — choose another --metrics-port, or 0 to disable")
        }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: bound.sin_port))
    }

    public func start() {
        let t = Thread { [self] in serve() }
        t.start()
    }

    public func publish(_ status: RunStatus) {
        let text = MetricsServer.render(status)
        lock.withLock { body = text; updatedAt = monotonicSeconds() }
    }

    private func serve() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { if errno == EINTR { continue }; return }
            handle(c)
            close(c)
        }
    }

    private func handle(_ c: Int32) {
        var buf = [UInt8](repeating: 0, count: 2048)
        let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return }
        let line = String(decoding: buf[0..<n], as: UTF8.self).split(separator: "\r\n").first ?? ""
        let parts = line.split(separator: " ")
        let path = parts.count > 1 ? String(parts[1]) : "/"
        let (snapshot, age) = lock.withLock { (body, monotonicSeconds() - updatedAt) }
        switch path {
        case "/metrics": reply(c, 200, "text/plain; version=0.0.4", snapshot)
        case "/healthz":
            age < staleAfterSeconds ? reply(c, 200, "text/plain", "ok\n")
                                    : reply(c, 503, "text/plain", "stalled: no checkpoint for \(Int(age)) s\n")
        default: reply(c, 404, "text/plain", "not found: try /metrics or /healthz\n")
        }
    }

    private func reply(_ c: Int32, _ code: Int, _ type: String, _ text: String) {
        let reason = code == 200 ? "OK" : code == 404 ? "Not Found" : "Service Unavailable"
        let payload = Array(text.utf8)
        let head = "HTTP/1.1 \(code) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(payload.count)\r\nConnection: close\r\n\r\n"
        let all = Array(head.utf8) + payload
        _ = all.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// The Prometheus exposition of a status snapshot.
    public static func render(_ s: RunStatus) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, v) in samples { out += "\(name)\(labels) \(v == v.rounded() ? String(Int64(v)) : String(v))\n" }
        }
        let c = s.counters
        metric("qos_beacons_consumed_total", "counter", "Kafka messages consumed.", [("", Double(c.messages))])
        metric("qos_beacons_accepted_total", "counter", "Beacons applied.", [("", Double(c.accepted))])
        metric("qos_beacons_rejected_total", "counter", "Beacons rejected, by reason.",
               c.rejected.sorted { $0.key < $1.key }.map { ("{reason=\"\($0.key)\"}", Double($0.value)) })
        metric("qos_beacons_late_total", "counter", "Beacons applied to an already written window.", [("", Double(c.lateEvents))])
        metric("qos_beacons_duplicate_total", "counter", "Beacons dropped as duplicate seq.", [("", Double(c.duplicates))])
        metric("qos_saturated_values_total", "counter", "Sums that stuck at Int64.max instead of overflowing.", [("", Double(s.saturatedValues))])
        metric("qos_open_sessions", "gauge", "Open sessions.", [("", Double(s.openSessions))])
        metric("qos_windows_written_total", "counter", "Windows written (base files).", [("", Double(s.windowsWritten))])
        metric("qos_files_written_total", "counter", "Parquet files published.", [("", Double(s.filesWritten))])
        metric("qos_checkpoint_epoch", "gauge", "Last committed checkpoint epoch.", [("", Double(s.epoch))])
        metric("qos_flush_latency_ms", "gauge", "Duration of the last flush + checkpoint.", [("", s.lastFlushMs)])
        if let wm = s.watermarkMs { metric("qos_watermark_ms", "gauge", "Instance watermark, epoch ms.", [("", Double(wm))]) }
        metric("qos_consumer_lag", "gauge", "Messages behind the high watermark, per partition.",
               s.lag.sorted { $0.key < $1.key }.map { ("{partition=\"\($0.key)\"}", Double($0.value)) })
        return out
    }
}
