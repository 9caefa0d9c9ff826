#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import ObjectStore
import TestSupport

/// moto (`TestSupport.MotoServer`) as these suites use it: a client of
/// one bucket with quick retries, and the skip comment.
extension MotoServer {
    static let skipReason = Comment(rawValue: MotoServer.skipMessage)

    func client(bucket: String = "qos-test", prefix: String = "data") -> S3Client {
        var c = S3Config(bucket: bucket, prefix: prefix, endpoint: endpoint, region: "us-east-1", pathStyle: true,
                         credentials: S3Credentials(accessKeyId: "testing", secretAccessKey: "testing"))
        c.retry.baseSeconds = 0.01
        return S3Client(c)
    }
}

@Suite(.serialized, .enabled(if: MotoServer.available, MotoServer.skipReason)) struct S3ClientTests {
    @Test func objectsRoundTripThroughARealS3API() throws {
        let moto = try MotoServer()
        let s3 = moto.client()
        try s3.createBucket()
        let key = s3.config.key("overall/dt=2026-01-01/hour=00/a b+c=é.parquet")
        let body = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(try s3.put(key, body) == .created)
        #expect(try s3.get(key) == body)
        #expect(try s3.get(key, range: 100..<150) == Array(body[100..<150]))
        #expect(try s3.get(s3.config.key("missing")) == nil)
        try s3.copy(key, to: s3.config.key("copy"))
        #expect(try s3.get(s3.config.key("copy")) == body)
        try s3.delete(key)
        #expect(try s3.get(key) == nil)
        try s3.delete(key)  // already gone: not an error
    }

    @Test func listingPagesThroughEveryKey() throws {
        let moto = try MotoServer()
        var s3 = moto.client()
        try s3.createBucket()
        var c = s3.config
        c.listPageSize = 2
        s3 = S3Client(c)
        let keys = ["a", "b b", "c+d", "dt=1/é", "z/y/x"].map { c.key($0) }
        for k in keys { try s3.put(k, Array(k.utf8)) }
        try s3.put("elsewhere/a", [1])
        let listed = try s3.list(prefix: c.prefix + "/")
        #expect(listed.map(\.key) == keys.sorted())
        #expect(listed.map(\.size) == keys.sorted().map { Int64($0.utf8.count) })
    }

    @Test func aConditionalPutCreatesOnce() throws {
        let moto = try MotoServer()
        let s3 = moto.client()
        try s3.createBucket()
        let key = s3.config.key("_qos/manifests/a/000001.manifest")
        #expect(try s3.put(key, [1, 2, 3], ifAbsent: true) == .created)
        #expect(try s3.put(key, [9, 9], ifAbsent: true) == .exists)
        #expect(try s3.get(key) == [1, 2, 3])
    }

    @Test func multipartUploadsAssembleTheWholeBody() throws {
        let moto = try MotoServer()
        let s3 = moto.client()
        try s3.createBucket()
        let body = (0..<(11 << 20)).map { UInt8(truncatingIfNeeded: $0 >> 7) }
        let key = s3.config.key("big.parquet")
        try s3.putMultipart(key, body, partSize: 5 << 20)
        let got = try #require(try s3.get(key))
        #expect(got.count == body.count && got == body)
    }

    @Test func aMissingBucketIsOneLineNamingTheFix() throws {
        let moto = try MotoServer()
        let s3 = moto.client(bucket: "no-such-bucket")
        #expect(throws: S3Error.self) { try s3.put("x", [1]) }
        do { try s3.put("x", [1]) } catch let e as S3Error {
            #expect(e.kind == .noSuchBucket)
            #expect(e.description.contains("create it or fix the s3:// address") && !e.description.contains("\n"))
        }
    }

    @Test func anUnreachableStoreIsRetriedThenOneLine() throws {
        var c = S3Config(bucket: "qos-test", prefix: "", endpoint: "http://127.0.0.1:\(MotoServer.freePort())",
                         region: "us-east-1", pathStyle: true, credentials: S3Credentials(accessKeyId: "a", secretAccessKey: "b"))
        c.retry.maxAttempts = 3
        c.connectTimeoutSeconds = 1
        let s3 = S3Client(c)
        var waits: [Double] = []
        s3.sleep = { waits.append($0) }
        do {
            _ = try s3.get("x")
            Issue.record("no error from a closed port")
        } catch let e as S3Error {
            #expect(e.kind == .transport && e.description.contains("unreachable"))
        }
        #expect(waits.count == 2)
    }

    /// The start-up probe fails fast: a closed port (refused) and a
    /// listener that never accepts nor answers (a blackhole) each cost at
    /// most `probe.maxAttempts` attempts, not the running sink's six.
    @Test func theStartupProbeOfAnUnreachableStoreGivesUpAfterFewAttempts() throws {
        let blackhole = Blackhole()
        defer { blackhole.close() }
        for port in [MotoServer.freePort(), blackhole.port] {
            var c = S3Config(bucket: "qos-test", prefix: "p", endpoint: "http://127.0.0.1:\(port)",
                             region: "us-east-1", pathStyle: true, credentials: S3Credentials(accessKeyId: "a", secretAccessKey: "b"))
            c.connectTimeoutSeconds = 1
            c.probe.timeoutSeconds = 1
            let s3 = S3Client(c)
            var waits: [Double] = []
            s3.sleep = { waits.append($0) }
            do {
                try s3.probeWritable("p/.qos-write-probe")
                Issue.record("no error from port \(port)")
            } catch let e as S3Error {
                #expect(e.kind == .transport && e.description.contains("unreachable") && !e.description.contains("\n"))
            }
            #expect(waits.count == c.probe.maxAttempts - 1, "port \(port)")
        }
    }
}

/// A loopback listener that never accepts: the kernel completes a few
/// handshakes into its backlog, then drops SYNs; nothing ever answers.
final class Blackhole {
    let fd: Int32
    let port: Int

    init() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    func close() { _ = Glibc.close(fd) }
}
