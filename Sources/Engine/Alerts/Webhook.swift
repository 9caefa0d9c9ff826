#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// An `http://host[:port]/path` URL (no TLS: a relay in front adds it).
public struct WebhookURL: Equatable, Sendable {
    public let host: String
    public let port: UInt16
    public let path: String

    public init?(_ text: String) {
        guard text.hasPrefix("http://") else { return nil }
        let rest = text.dropFirst(7)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        path = slash == rest.endIndex ? "/" : String(rest[slash...])
        var h = Substring(authority), p: UInt16 = 80
        if let colon = authority.lastIndex(of: ":") {
            guard let n = UInt16(authority[authority.index(after: colon)...]), n > 0 else { return nil }
            h = authority[..<colon]; p = n
        }
        guard !h.isEmpty, !h.contains("@"), !h.contains(where: { $0.isWhitespace }),
              !path.contains(where: { $0.isWhitespace }) else { return nil }
        host = String(h); port = p
    }
}

/// Posts alert firings as JSON to their rules' webhooks from a thread of
/// its own, so a slow or dead receiver never holds up the pipeline: each
/// POST has `timeoutSeconds` to connect, send and get a status line; the
/// queue holds at most `queueMax` posts (more are dropped and logged).
/// One attempt per firing (README "Alerts"): the `alerts` table is the record.
public final class WebhookSender: @unchecked Sendable {
    public let timeoutSeconds: Double
    public let queueMax = 1000
    let log: Logger
    private let cond = NSCondition()
    private var queue: [(url: String, body: String)] = []
    private var stopping = false
    private var thread: Thread?
    /// Posts answered 2xx, and posts that failed or were dropped (for tests and logs).
    public private(set) var delivered = 0, failed = 0

    public init(timeoutSeconds: Double = 2, log: Logger) {
        self.timeoutSeconds = timeoutSeconds
        self.log = log
    }

    /// Queues a POST (returns at once).
    public func send(_ body: String, to url: String) {
        cond.lock()
        defer { cond.unlock() }
        guard queue.count < queueMax else {
            failed += 1
            log.warn("qos run: alert webhook queue full (\(queueMax)); dropped a post to \(url)")
            return
        }
        queue.append((url, body))
        if thread == nil {
            let t = Thread { [self] in loop() }
            thread = t
            t.start()
        }
        cond.signal()
    }

    /// Waits until the queue is empty (at most `seconds`); for shutdown and tests.
    public func drain(seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        cond.lock()
        while (!queue.isEmpty || busy) && Date() < deadline { _ = cond.wait(until: min(deadline, Date().addingTimeInterval(0.05))) }
        cond.unlock()
    }

    private var busy = false

    private func loop() {
        while true {
            cond.lock()
            while queue.isEmpty && !stopping { cond.wait() }
            if queue.isEmpty { cond.unlock(); return }
            let (url, body) = queue.removeFirst()
            busy = true
            cond.unlock()
            let result = WebhookSender.post(body, to: url, timeoutSeconds: timeoutSeconds)
            if case .failure(let e) = result { log.warn("qos run: alert webhook \(url): \(e.message) (not retried; the alerts table has the row)") }
            cond.lock()
            busy = false
            if case .success = result { delivered += 1 } else { failed += 1 }
            cond.broadcast()
            cond.unlock()
        }
    }

    /// One HTTP/1.1 POST of a JSON body; success is a 2xx status line.
    public static func post(_ body: String, to text: String, timeoutSeconds: Double) -> Result<Int, UserError> {
        guard let url = WebhookURL(text) else { return .failure(UserError("not an http:// URL")) }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(url.host, String(url.port), &hints, &res) == 0, let ai = res else {
            return .failure(UserError("cannot resolve host \(url.host)"))
        }
        defer { freeaddrinfo(res) }
        let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
        guard fd >= 0 else { return .failure(UserError("socket: \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        // Non-blocking connect bounded by the timeout, then blocking I/O with timeouts.
        let flags = fcntl(fd, F_GETFL, 0)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        let ms = Int32(max(1, timeoutSeconds * 1000))
        if connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) != 0 {
            guard errno == EINPROGRESS else { return .failure(UserError("connect: \(String(cString: strerror(errno)))")) }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, ms) == 1 else { return .failure(UserError("connect timed out after \(timeoutSeconds) s")) }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            guard err == 0 else { return .failure(UserError("connect: \(String(cString: strerror(err)))")) }
        }
        _ = fcntl(fd, F_SETFL, flags)
        var tv = timeval(tv_sec: Int(timeoutSeconds), tv_usec: Int((timeoutSeconds - Double(Int(timeoutSeconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let payload = Array(body.utf8)
        let head = "POST \(url.path) HTTP/1.1\r\nHost: \(url.host):\(url.port)\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(payload.count)\r\nUser-Agent: qos-alerts\r\nConnection: close\r\n\r\n"
        let request = Array(head.utf8) + payload
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return .failure(UserError("send: \(n == 0 ? "closed" : String(cString: strerror(errno)))")) }
            sent += n
        }
        // One deadline for the whole status line: a receiver trickling bytes
        // (each within the socket timeout) cannot hold the sender longer.
        var response: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1024)
        let deadline = monotonicSeconds() + timeoutSeconds
        while !response.contains(UInt8(ascii: "\n")) && response.count < 8192 {
            let left = deadline - monotonicSeconds()
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard left > 0, poll(&p, 1, Int32(max(1, (left * 1000).rounded(.up)))) == 1 else {
                return .failure(UserError("no answer within \(timeoutSeconds) s"))
            }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else {
                return .failure(UserError(n == 0 ? "connection closed before a status line" : "no answer within \(timeoutSeconds) s"))
            }
            response += buf[0..<n]
        }
        let line = String(decoding: response.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
            return .failure(UserError("not an HTTP answer: \(line.prefix(80))"))
        }
        return (200...299).contains(status) ? .success(status) : .failure(UserError("answered \(line.prefix(80))"))
    }
}

/// The alerts of a running pipeline: the rules' evaluator, and what happens
/// once an epoch with firings is committed — a log line each, and a webhook
/// POST for rules that have one.
public final class AlertPipeline {
    public let evaluator: AlertEvaluator
    public let webhooks: WebhookSender
    let log: Logger

    public init(rules: [AlertRule], log: Logger, webhookTimeoutSeconds: Double = 2) {
        evaluator = AlertEvaluator(rules: rules)
        webhooks = WebhookSender(timeoutSeconds: webhookTimeoutSeconds, log: log)
        self.log = log
        evaluator.onWarning = { log.warn("qos run: \($0)") }
    }

    /// The latest firings (at most 100), oldest first, for a live view.
    public private(set) var recent: [AlertFiring] = []
    /// Every firing of this process.
    public private(set) var firedTotal = 0
    /// Firings of this process by rule name (`qos_alerts_fired_total`).
    public private(set) var firedByRule: [String: Int64] = [:]

    /// After the commit: the firings are in the sink; now tell people.
    public func committed(_ firings: [AlertFiring]) {
        recent = Array((recent + firings).suffix(100))
        firedTotal += firings.count
        for f in firings { firedByRule[f.rule, default: 0] += 1 }
        for f in firings {
            log.warn("qos run: ALERT \(f.message)")
            if let url = f.webhook { webhooks.send(f.json, to: url) }
        }
    }
}
