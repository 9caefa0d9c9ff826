#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import Engine
import ObjectStore

/// The storage a sink test runs on (docs/object-storage.md "Tests"): a local
/// directory, or `s3://qos-test/<random>` on moto in server mode on loopback.
/// Tests take it as `@Test(arguments: StorageUnderTest.all)`.
enum StorageUnderTest: String, Sendable, CustomTestStringConvertible {
    case local, s3

    /// `s3` only where moto is installed (`make deps`); without it the s3
    /// cases are left out, as ObjectStoreTests' suites are skipped.
    static var all: [StorageUnderTest] { LoopbackS3.available ? [.local, .s3] : [.local] }

    var testDescription: String { rawValue }

    /// A fresh, empty sink on this storage.
    func make() throws -> SinkUnderTest { try SinkUnderTest(self) }
}

/// One sink of a test and what keeps it alive (moto's process for s3).
final class SinkUnderTest {
    let kind: StorageUnderTest
    let sink: FileSink
    let server: LoopbackS3?

    init(_ kind: StorageUnderTest) throws {
        self.kind = kind
        switch kind {
        case .local:
            let d = NSTemporaryDirectory() + "qos-sink-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            sink = FileSink(root: d)
            server = nil
        case .s3:
            let moto = try LoopbackS3()
            sink = try FileSink.named("s3://qos-test/\(UUID().uuidString.lowercased())", environment: moto.environment)
            try (sink.remote as! S3Storage).client.createBucket()
            server = moto
        }
    }

    deinit { if kind == .local { try? FileManager.default.removeItem(atPath: sink.root) } }

    var storage: any SinkStorage { sink.storage }
    var root: String { sink.root }
    /// The options of a `StreamDriver` on this sink (its credentials and endpoint).
    var environment: [String: String] { server?.environment ?? [:] }

    /// The Parquet files a reader sees (outside `_` directories), by path
    /// relative to the sink: `DriverTests.visible` on either storage.
    func visible() throws -> [String: Data] {
        var out: [String: Data] = [:]
        func walk(_ rel: String) throws {
            for name in try storage.list(rel) where !name.hasPrefix("_") {
                let path = rel.isEmpty ? name : "\(rel)/\(name)"
                if name.hasSuffix(".parquet") { out[path] = Data(try #require(try storage.read(path))) } else { try walk(path) }
            }
        }
        try walk("")
        return out
    }

    /// Relative paths of the files under `rel`, sorted (every level).
    func files(_ rel: String) throws -> [String] {
        var out: [String] = []
        for name in try storage.list(rel) {
            let path = "\(rel)/\(name)"
            let below = try files(path)
            if below.isEmpty { out.append(path) } else { out += below }
        }
        return out.sorted()
    }
}

/// moto's S3 server on a free loopback port, killed when released (its
/// state is in memory); the same as ObjectStoreTests' `MotoServer`.
final class LoopbackS3 {
    let process = Process()
    let port: Int

    static let binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".venv/bin/moto_server").path
    static var available: Bool { FileManager.default.isExecutableFile(atPath: binary) }

    init() throws {
        port = LoopbackS3.freePort()
        process.executableURL = URL(fileURLWithPath: LoopbackS3.binary)
        process.arguments = ["-H", "127.0.0.1", "-p", String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 {  // ready when it accepts connections
            if LoopbackS3.accepts(port) { return }
            usleep(50_000)
        }
        stop()
        throw UserError("moto_server did not start on \(port)")
    }

    deinit { stop() }

    /// moto ignores SIGTERM.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    var environment: [String: String] {
        ["AWS_ENDPOINT_URL": "http://127.0.0.1:\(port)", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_REGION": "us-east-1"]
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
