// A minimal loopback TCP forwarder: 127.0.0.1:<port> → 127.0.0.1:<target>.
// Used by MockBroker to offer a fixed bootstrap port (see MockBroker.swift).
// One accept thread plus one thread per connection; plenty for bootstrap
// traffic of a development broker.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Threading: `start` once, `stop` once from any thread; internal state is locked.
final class TCPForwarder: @unchecked Sendable {
    let port: Int
    private let listenFD: Int32
    private var wakePipe: [Int32] = [-1, -1]
    private var targetPort = 0
    private let lock = Lock()
    private var connections: Set<Int32> = []
    private var stopped = false
    private var acceptThread: pthread_t?

    /// Binds 127.0.0.1:`port` (0 = any free port) and listens.
    init(port: Int) throws {
        guard (0...65535).contains(port) else {
            throw KafkaError(.portInUse, "port \(port) is not a valid TCP port — use 1–65535")
        }
        #if canImport(Darwin)
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #else
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #endif
        guard fd >= 0 else { throw KafkaError(.other, "cannot create a socket: \(String(cString: strerror(errno)))") }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        var addr = loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            let e = errno
            close(fd)
            if e == EADDRINUSE {
                throw KafkaError(.portInUse, "port \(port) is already in use — stop whatever listens there or pick another --port")
            }
            if e == EACCES {
                throw KafkaError(.portInUse, "no permission to listen on port \(port) — pick a port above 1023 with --port")
            }
            throw KafkaError(.portInUse, "cannot listen on 127.0.0.1:\(port): \(String(cString: strerror(e)))")
        }
        guard listen(fd, 64) == 0 else {
            let e = errno
            close(fd)
            throw KafkaError(.portInUse, "cannot listen on 127.0.0.1:\(port): \(String(cString: strerror(e)))")
        }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        listenFD = fd
        self.port = Int(UInt16(bigEndian: bound.sin_port))
        guard pipe(&wakePipe) == 0 else {
            close(fd)
            throw KafkaError(.other, "pipe() failed: \(String(cString: strerror(errno)))")
        }
    }

    func start(targetPort: Int) {
        self.targetPort = targetPort
        acceptThread = spawnThread(detached: false) { [self] in acceptLoop() }
    }

    /// Stops accepting, closes every forwarded connection, frees the port.
    func stop() {
        let (first, t) = lock.withLock { () -> (Bool, pthread_t?) in
            if stopped { return (false, nil) }
            stopped = true
            for c in connections { shutdown(c, Int32(SHUT_RDWR)) }
            return (true, acceptThread)
        }
        guard first else { return }
        var b: UInt8 = 1
        _ = write(wakePipe[1], &b, 1)
        if let t { pthread_join(t, nil) } else { close(listenFD) }
        close(wakePipe[0]); close(wakePipe[1])
    }

    private func acceptLoop() {
        defer { close(listenFD) }
        while true {
            var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wakePipe[0], events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, -1)
            if n < 0 { if errno == EINTR { continue }; return }
            if fds[1].revents != 0 { return }
            if fds[0].revents & Int16(POLLIN) == 0 { continue }
            let c = accept(listenFD, nil, nil)
            if c < 0 { continue }
            let ok = lock.withLock { () -> Bool in
                if stopped { return false }
                connections.insert(c)
                return true
            }
            if !ok { close(c); return }
            let target = targetPort
            _ = spawnThread(detached: true) { [self] in pump(client: c, target: target) }
        }
    }

    private func pump(client: Int32, target: Int) {
        #if canImport(Darwin)
        let up = socket(AF_INET, SOCK_STREAM, 0)
        #else
        let up = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #endif
        var connected = false
        if up >= 0 {
            noSigPipe(up); noSigPipe(client)
            var addr = loopbackAddress(port: target)
            connected = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(up, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
        }
        if connected {
            let registered = lock.withLock { () -> Bool in
                if stopped { return false }
                connections.insert(up)
                return true
            }
            if registered { relay(client, up) }
        }
        lock.withLock {
            connections.remove(client)
            connections.remove(up)
        }
        if up >= 0 { close(up) }
        close(client)
    }

    private func relay(_ a: Int32, _ b: Int32) {
        var buf = [UInt8](repeating: 0, count: 64 * 1024)
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        while true {
            fds[0].revents = 0; fds[1].revents = 0
            let n = poll(&fds, 2, -1)
            if n < 0 { if errno == EINTR { continue }; return }
            for i in 0..<2 where fds[i].revents != 0 {
                let from = fds[i].fd, to = fds[1 - i].fd
                let r = buf.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
                if r <= 0 { return }
                var off = 0
                while off < r {
                    let w = buf.withUnsafeBytes { sendAll(to, $0.baseAddress! + off, r - off) }
                    if w <= 0 { return }
                    off += w
                }
            }
        }
    }
}

private func loopbackAddress(port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return addr
}

private func noSigPipe(_ fd: Int32) {
    #if canImport(Darwin)
    var on: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
    #endif
}

private func sendAll(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Darwin)
    return send(fd, p, n, 0)
    #else
    return send(fd, p, n, Int32(MSG_NOSIGNAL))
    #endif
}

private final class ThreadBody {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// Starts a pthread running `body`; returns its handle (nil if detached or failed).
@discardableResult
func spawnThread(detached: Bool, _ body: @escaping @Sendable () -> Void) -> pthread_t? {
    let arg = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    #if canImport(Darwin)
    var tid: pthread_t? = nil
    #else
    var tid = pthread_t()
    #endif
    let rc = pthread_create(&tid, nil, { raw in
        #if canImport(Darwin)
        let b = Unmanaged<ThreadBody>.fromOpaque(raw).takeRetainedValue()
        #else
        let b = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
        #endif
        b.run()
        return nil
    }, arg)
    guard rc == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(arg).release()
        return nil
    }
    #if canImport(Darwin)
    if detached { pthread_detach(tid!); return nil }
    return tid
    #else
    if detached { pthread_detach(tid); return nil }
    return tid
    #endif
}
