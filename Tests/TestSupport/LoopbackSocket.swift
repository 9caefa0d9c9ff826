import Glibc

/// A blocking TCP socket connected to 127.0.0.1:`port`, for tests that
/// speak HTTP byte by byte (what a raw client, slow or hostile, sends).
/// `receiveBuffer` shrinks the kernel's receive buffer (a client that does
/// not read fills it soon); the timeouts are in seconds (0: none).
public func connectLoopback(port: Int, receiveBuffer: Int32? = nil, receiveTimeout: Int = 0,
                            sendTimeout: Int = 0) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw LoopbackSocketError(message: "socket: \(String(cString: strerror(errno)))") }
    if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
    for (option, seconds) in [(SO_RCVTIMEO, receiveTimeout), (SO_SNDTIMEO, sendTimeout)] where seconds > 0 {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size))
    }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
    let ok = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if ok != 0 {
        let why = String(cString: strerror(errno))
        close(fd)
        throw LoopbackSocketError(message: "connect: \(why)")
    }
    return fd
}

public struct LoopbackSocketError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
