#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import Engine
import ObjectStore
import TestSupport

/// The storage a sink test runs on (docs/object-storage.md "Tests"): a local
/// directory, or `s3://qos-test/<random>` on moto in server mode on loopback.
/// Tests take it as `@Test(arguments: StorageUnderTest.all)`.
enum StorageUnderTest: String, Sendable, CustomTestStringConvertible {
    case local, s3

    /// `s3` only where moto is installed (`make deps`); without it the s3
    /// cases are left out, as ObjectStoreTests' suites are skipped.
    static var all: [StorageUnderTest] { MotoServer.available ? [.local, .s3] : [.local] }

    var testDescription: String { rawValue }

    /// A fresh, empty sink on this storage.
    func make() throws -> SinkUnderTest { try SinkUnderTest(self) }
}

/// One sink of a test and what keeps it alive (moto's process for s3).
final class SinkUnderTest {
    let kind: StorageUnderTest
    let sink: FileSink
    let server: MotoServer?

    init(_ kind: StorageUnderTest) throws {
        self.kind = kind
        switch kind {
        case .local:
            let d = NSTemporaryDirectory() + "qos-sink-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            sink = FileSink(root: d)
            server = nil
        case .s3:
            let moto = try MotoServer()
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
