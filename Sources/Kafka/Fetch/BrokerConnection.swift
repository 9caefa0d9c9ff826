// One plain-TCP connection to a broker, one request at a time
// (docs/kafka-fetch.md "Connections"). Blocking, with a deadline on every
// wait: it runs on the consumer's polling thread.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

final class BrokerConnection {
    let host: String
    let port: Int32
    private var fd: Int32 = -1
    private var correlation: Int32 = 0
    /// The last response's body (after its correlation id), kept for its
    /// capacity; records are lent from it until the next `receive`.
    let response = RawBuffer()
    /// The largest response accepted (`receive.message.max.bytes`).
    let maxResponseBytes: Int
    let clientId: String
    /// Set once ApiVersions has answered.
    private(set) var versions = ApiVersions()

    init(host: String, port: Int32, clientId: String, maxResponseBytes: Int) {
        self.host = host
        self.port = port
        self.clientId = clientId
        self.maxResponseBytes = maxResponseBytes
    }

    deinit { close() }

    var isOpen: Bool { fd >= 0 }

    func close() {
        if fd >= 0 { _ = Glibc.close(fd) }
        fd = -1
    }

    /// Connects (if not connected) and asks for the broker's API versions.
    func open(timeoutMs: Int) throws(WireError) {
        guard fd < 0 else { return }
        let deadline = monotonicNanos() &+ UInt64(timeoutMs) * 1_000_000
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw WireError("cannot resolve broker \(host):\(port)")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            let s = socket(a.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard s >= 0 else { continue }
            if Glibc.connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen) != 0 && errno != EINPROGRESS {
                lastError = String(cString: strerror(errno)); _ = Glibc.close(s); continue
            }
            do throws(WireError) {
                try wait(s, events: Int16(POLLOUT), deadline: deadline, what: "connect")
            } catch { lastError = error.description; _ = Glibc.close(s); continue }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len)
            guard err == 0 else { lastError = String(cString: strerror(err)); _ = Glibc.close(s); continue }
            var one: Int32 = 1
            setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            fd = s
            break
        }
        guard fd >= 0 else { throw WireError("cannot connect to broker \(host):\(port): \(lastError)") }
        let remaining = Int(max(1, (Int64(bitPattern: deadline &- monotonicNanos())) / 1_000_000))
        try roundTrip(.apiVersions, version: 0, timeoutMs: remaining) { _ in }
        versions = try ApiVersions.parse(response.bytes)
    }

    /// Sends a request and reads its response into `response`.
    func roundTrip(_ api: ApiKey, version: Int16, timeoutMs: Int, body: (inout WireWriter) -> Void) throws(WireError) {
        try send(api, version: version, timeoutMs: timeoutMs, body: body)
        try receive(timeoutMs: timeoutMs)
    }

    private var awaiting: Int32?
    private var sentAt: UInt64 = 0

    func send(_ api: ApiKey, version: Int16, timeoutMs: Int, body: (inout WireWriter) -> Void) throws(WireError) {
        guard fd >= 0 else { throw WireError("not connected to \(host):\(port)") }
        precondition(awaiting == nil, "one request at a time")
        correlation &+= 1
        let request = kafkaRequest(api, version: version, correlationId: correlation, clientId: clientId, body: body)
        let deadline = monotonicNanos() &+ UInt64(timeoutMs) * 1_000_000
        do {
            try request.withUnsafeBytes { b in
                var sent = 0
                while sent < b.count {
                    let n = Glibc.send(fd, b.baseAddress! + sent, b.count - sent, Int32(MSG_NOSIGNAL))
                    if n > 0 { sent += n; continue }
                    if n < 0 && (errno == EAGAIN || errno == EINTR) {
                        try wait(fd, events: Int16(POLLOUT), deadline: deadline, what: "send")
                        continue
                    }
                    throw WireError("send to \(host):\(port) failed: \(String(cString: strerror(errno)))")
                }
            }
        } catch { close(); throw (error as? WireError) ?? WireError("\(error)") }
        awaiting = correlation
    }

    /// Reads the response to the request `send` wrote: its first bytes
    /// within `timeoutMs` (a fetch's own wait added by the caller), and each
    /// next bytes within `stallMs` of the last (a large response may take
    /// long; a broker that stops sending may not).
    func receive(timeoutMs: Int, stallMs: Int? = nil) throws(WireError) {
        guard let expected = awaiting else { preconditionFailure("receive without a request") }
        awaiting = nil
        let deadline = monotonicNanos() &+ UInt64(timeoutMs) * 1_000_000
        let stall = UInt64(stallMs ?? timeoutMs) * 1_000_000
        do {
            var head = [UInt8](repeating: 0, count: 8)
            try head.withUnsafeMutableBytes { b in try readFully(b, deadline: deadline, stall: stall) }
            let size = Int(Int32(bigEndian: head.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }))
            let id = Int32(bigEndian: head.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: Int32.self) })
            guard size >= 4, size - 4 <= maxResponseBytes else {
                throw WireError("broker \(host):\(port) sent a response of \(size) bytes (receive.message.max.bytes is \(maxResponseBytes))")
            }
            guard id == expected else { throw WireError("broker \(host):\(port) answered request \(id), not \(expected)") }
            let n = size - 4
            response.reserve(n)
            response.count = 0
            try readFully(UnsafeMutableRawBufferPointer(rebasing: response.whole[0..<n]),
                          deadline: Swift.max(deadline, monotonicNanos() &+ stall), stall: stall)
            response.count = n
        } catch { close(); throw (error as? WireError) ?? WireError("\(error)") }
    }

    private func readFully(_ buf: UnsafeMutableRawBufferPointer, deadline: UInt64, stall: UInt64) throws(WireError) {
        var got = 0
        var deadline = deadline
        while got < buf.count {
            let n = recv(fd, buf.baseAddress! + got, buf.count - got, 0)
            if n > 0 {
                got += n
                if got > 0 { deadline = Swift.max(deadline, monotonicNanos() &+ stall) }
                continue
            }
            if n == 0 { throw WireError("broker \(host):\(port) closed the connection") }
            if errno == EAGAIN || errno == EINTR {
                try wait(fd, events: Int16(POLLIN), deadline: deadline, what: "response")
                continue
            }
            throw WireError("receive from \(host):\(port) failed: \(String(cString: strerror(errno)))")
        }
    }

    private func wait(_ s: Int32, events: Int16, deadline: UInt64, what: String) throws(WireError) {
        while true {
            let now = monotonicNanos()
            guard now < deadline else { throw WireError("\(what) from broker \(host):\(port) timed out") }
            var p = pollfd(fd: s, events: events, revents: 0)
            let ms = Int32(clamping: (deadline - now + 999_999) / 1_000_000)
            let r = Glibc.poll(&p, 1, ms)
            if r > 0 { return }
            if r < 0 && errno != EINTR {
                throw WireError("\(what) from broker \(host):\(port): poll failed: \(String(cString: strerror(errno)))")
            }
        }
    }
}
