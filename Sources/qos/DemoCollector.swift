import Engine
import Foundation
import Generator
import Kafka
import QoSCore

/// `qos demo`'s collector: a `qos collect` (README "qos collect") in front of
/// the embedded broker, and the players of one session in eight posting
/// their reports to it as CMCD v2 over HTTP (docs/cmcd.md) instead of going
/// straight to Kafka. The daemon reads them from topic `cmcd` with the
/// `cmcd` format.
final class DemoCollector: @unchecked Sendable {
    static let topic = "cmcd"
    /// One session in `share` is a CMCD player.
    static let share: UInt64 = 8

    /// Whether a generated message is posted as CMCD: a beacon of a session
    /// picked by its id (FNV-1a, so the choice is the same for every beacon
    /// of a session). Malformed messages stay on the Kafka path; a duplicate
    /// delivery is not posted (CMCD has no sequence number to drop it by).
    static func viaCollector(_ m: GeneratedMessage) -> Bool {
        guard m.beacon != nil else { return false }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in m.key.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h % share == 0
    }

    let producer: KafkaProducer
    let collector: Collector
    let poster: CMCDPoster
    var url: String { "http://127.0.0.1:\(collector.port)/v1/cmcd" }

    /// Binds the collector on a free loopback port, producing to `brokers`.
    init(brokers: String, options gen: GeneratorOptions, speed: Double) throws {
        producer = try KafkaProducer(brokers: brokers, extra: collectorKafkaSettings(bufferMessages: 100_000))
        var o = Collector.Options()
        o.host = "127.0.0.1"
        o.port = 0
        o.threads = 1
        o.cmcdTopic = DemoCollector.topic
        // The posting players stand behind the demo as behind a load
        // balancer: the collector takes each one's address from
        // X-Forwarded-For (so geo works), and limits no one.
        o.trustedProxies = [IPNetwork("127.0.0.1/32")!]
        o.ratePerSecond = 0
        collector = try Collector(options: o, producer: producer)
        poster = CMCDPoster(port: collector.port, options: gen, speed: speed)
    }

    func start() { poster.start() }

    /// Stops the players, drains the collector and closes its producer;
    /// returns the records Kafka did not acknowledge.
    func stop() -> Int {
        poster.stop()
        let left = collector.drain(graceSeconds: 2, flushSeconds: 10)
        producer.close(flushTimeoutMs: 1000)
        return left
    }

    func summary() -> String {
        let c = poster.counts
        var s = "collector: \(c.reports) CMCD reports of \(c.sessions.count) sessions posted to \(url) "
            + "in \(c.requests) requests, \(c.accepted) accepted → topic \(DemoCollector.topic)"
        if c.failed > 0 { s += ", \(c.failed) requests failed (last: \(c.lastFailure))" }
        return s
    }
}

/// The CMCD players: the generated traffic of the collector's sessions,
/// paced like the Kafka producers, each session's reports of every 200 ms
/// posted as one request (CMCD v2 batches reports) with its address in
/// X-Forwarded-For.
final class CMCDPoster: @unchecked Sendable {
    struct Counts { var reports = 0, requests = 0, accepted = 0, failed = 0; var lastFailure = ""; var sessions = Set<String>() }
    let port: Int
    let options: GeneratorOptions
    let speed: Double
    private let lock = NSLock()
    private var stopping = false
    private var done = DispatchSemaphore(value: 0)
    private var started = false
    private var _counts = Counts()
    var counts: Counts { lock.withLock { _counts } }

    init(port: Int, options: GeneratorOptions, speed: Double) {
        self.port = port
        self.options = options
        self.speed = speed
    }

    func start() {
        started = true
        Thread { [self] in
            defer { done.signal() }
            let client = LoopbackHTTPClient(port: port)
            let encoder = CMCDEncoder()
            let stop = { self.lock.withLock { self.stopping } }
            var pending: [String: [UInt8]] = [:]   // by client address: the lines to post
            var lastFlush = wallClockMs()
            func flush() {
                lastFlush = wallClockMs()
                for (ip, body) in pending {
                    let r = client.post("/v1/cmcd", body: body, headers: ["Content-Type": "application/cmcd", "X-Forwarded-For": ip])
                    lock.withLock {
                        _counts.requests += 1
                        if let r, r.status == 202, let n = CMCDPoster.acceptedCount(r.body) { _counts.accepted += n } else {
                            _counts.failed += 1
                            _counts.lastFailure = r.map { "HTTP \($0.status)" } ?? "no answer"
                        }
                    }
                }
                pending.removeAll(keepingCapacity: true)
            }
            let sessions = TrafficGenerator(options).lazy.filter { DemoCollector.viaCollector($0) && !$0.isDuplicate }
            let paced = RealTimePacer(AnyIterator(sessions.makeIterator()), eventStartMs: options.startMs, speed: speed,
                                      clock: wallClockMs, wait: { ms in
                                          if wallClockMs() - lastFlush >= 200 { flush() }
                                          usleep(UInt32(min(ms, 50)) * 1000)
                                      }, shouldStop: stop)
            for m in paced {
                if stop() { break }
                guard let b = m.beacon, let line = encoder.encode(b) else { continue }
                pending[b.ip ?? "127.0.0.1", default: []] += line + [0x0a]
                lock.withLock { _counts.reports += 1; _counts.sessions.insert(b.sessionId) }
                if wallClockMs() - lastFlush >= 200 { flush() }
            }
            flush()   // the collector still answers: it is drained after the players stop
        }.start()
    }

    func stop() {
        lock.withLock { stopping = true }
        if started { done.wait() }
    }

    /// n of the collector's `{"accepted":n}`.
    static func acceptedCount(_ body: [UInt8]) -> Int? {
        guard let o = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return nil }
        return o["accepted"] as? Int
    }
}

/// A blocking HTTP/1.1 client on one keep-alive loopback connection
/// (reconnecting once when the server closed it), for the demo's players.
final class LoopbackHTTPClient {
    let port: Int
    private var fd: Int32 = -1

    init(port: Int) { self.port = port }
    deinit { if fd >= 0 { close(fd) } }

    /// The answer's status and body, or nil when there was none.
    func post(_ path: String, body: [UInt8], headers: [String: String]) -> (status: Int, body: [UInt8])? {
        var head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.count)\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        let request = Array((head + "\r\n").utf8) + body
        for _ in 0..<2 {
            if fd < 0 { fd = LoopbackHTTPClient.connect(port) }
            if fd < 0 { return nil }
            if sendAll(request), let r = readResponse() { return r }
            close(fd)
            fd = -1
        }
        return nil
    }

    static func connect(_ port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if ok != 0 { close(fd); return -1 }
        return fd
    }

    private func sendAll(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    /// Status line, headers up to the blank line, then Content-Length bytes.
    private func readResponse() -> (status: Int, body: [UInt8])? {
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        let crlf2: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int?
        var length = 0
        while true {
            if headEnd == nil, let r = data.firstRange(of: crlf2) {
                headEnd = r.upperBound
                let head = String(decoding: data[..<r.lowerBound], as: UTF8.self).lowercased()
                for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                    length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            if let h = headEnd, data.count >= h + length {
                let statusLine = String(decoding: data.prefix(while: { $0 != 13 }), as: UTF8.self).split(separator: " ")
                guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
                return (status, Array(data[h..<(h + length)]))
            }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            data += buf[0..<n]
        }
    }
}
