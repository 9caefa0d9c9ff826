#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A real S3 API on loopback for the test targets: moto in server mode
/// (PyPI `moto[server]`, installed into `.venv` by `make deps`) on a free
/// port, one process per instance, killed when the instance is released
/// (its state is in memory, so nothing is lost). docs/object-storage.md "Tests".
public final class MotoServer {
    let process = Process()
    public let port: Int

    /// `.venv/bin/moto_server` of this repository.
    public static let binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".venv/bin/moto_server").path
    /// Tests that need a store run only where moto is installed.
    public static var available: Bool { FileManager.default.isExecutableFile(atPath: binary) }
    public static let skipMessage = "moto_server is not in .venv (run `make deps`): the tests against a real S3 API are skipped"

    public struct NotStarted: Error, CustomStringConvertible {
        public let port: Int
        public var description: String { "moto_server did not start on \(port)" }
    }

    public init() throws {
        port = MotoServer.freePort()
        process.executableURL = URL(fileURLWithPath: MotoServer.binary)
        process.arguments = ["-H", "127.0.0.1", "-p", String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 {  // ready when it accepts connections
            if MotoServer.accepts(port) { return }
            usleep(50_000)
        }
        stop()
        throw NotStarted(port: port)
    }

    deinit { stop() }

    /// moto's server ignores SIGTERM (waiting for it hung a suite).
    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    public var endpoint: String { "http://127.0.0.1:\(port)" }

    /// What `qos` needs to reach it: endpoint, moto's test keys, a region.
    public var environment: [String: String] {
        ["AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_REGION": "us-east-1"]
    }

    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = loopback(port: 0)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    public static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = loopback(port: port)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    static func loopback(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        return addr
    }
}
