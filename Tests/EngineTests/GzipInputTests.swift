import Foundation
import Testing
@testable import Engine
import QoSCore

/// `.gz` input files (CloudFront delivers its standard logs gzip-compressed):
/// the file source decompresses them, concatenated members too, and a
/// truncated or non-gzip file is a one-line error.
@Suite struct GzipInputTests {
    func gzip(_ text: String) throws -> Data {
        let dir = NSTemporaryDirectory() + "qos-gz-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let plain = dir + "/x"
        try text.write(toFile: plain, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["gzip", "-n", plain]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        return try Data(contentsOf: URL(fileURLWithPath: plain + ".gz"))
    }

    func file(_ data: Data, name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "qos-gz-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/" + name
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    func lines(_ path: String) throws -> [String] {
        let s = FileRecordSource(paths: [path])
        var out: [String] = []
        while !s.atEnd {
            var assigned = false
            _ = try s.poll(maxRecords: 100, timeoutMs: 0, onRecord: { out.append(String(decoding: $0.bytes, as: UTF8.self)) },
                           onEvent: { if case .assigned = $0 { assigned = true } })
            if assigned { try s.startAssigned([0: nil]) }
        }
        return out
    }

    @Test func gzipFilesAreDecompressedLineByLine() throws {
        let big = (0..<20_000).map { "line \($0) " + String(repeating: "x", count: $0 % 97) }
        let path = try file(try gzip(big.joined(separator: "\n") + "\n"), name: "big.gz")
        #expect(try lines(path) == big)
        // Two members back to back (`cat a.gz b.gz`) are one stream.
        let two = try file(try gzip("a1\na2\n") + (try gzip("b1\n")), name: "two.gz")
        #expect(try lines(two) == ["a1", "a2", "b1"])
    }

    @Test func truncatedOrInvalidGzipIsAOneLineError() throws {
        let whole = try gzip(String(repeating: "some log line\n", count: 1000))
        let cut = try file(whole.prefix(whole.count / 2), name: "cut.gz")
        #expect(throws: UserError.self) { try lines(cut) }
        do { _ = try lines(cut) } catch let e as UserError {
            #expect(e.message.contains("truncated gzip") && !e.message.contains("\n"))
        }
        let notGzip = try file(Data("plain text\n".utf8), name: "plain.gz")
        do { _ = try lines(notGzip); Issue.record("no error") } catch let e as UserError {
            #expect(e.message.contains("not a valid gzip file"))
        }
    }

    @Test func aGzippedCloudFrontFileParsesWithItsDistributionFromTheName() throws {
        let text = [CloudFrontFormatTests.version, CloudFrontFormatTests.fields,
                    CloudFrontFormatTests.line(CloudFrontFormatTests.hit),
                    CloudFrontFormatTests.line(CloudFrontFormatTests.ipv6)].joined(separator: "\n") + "\n"
        let path = try file(try gzip(text), name: "E2QWRUHAPOMQZL.2019-12-04-21.a103fd12.gz")
        let parser = CloudFrontParser(distributionId: CloudFrontParser.distributionId(fromFileName: path))
        let out = parseAll(parser, try lines(path))
        #expect(out.count == 2)
        for case .record(let r) in out { #expect(r.owner == "E2QWRUHAPOMQZL") }
        if case .record(let r) = out.last { #expect(r.clientIP == "2001:DB8::1:2:3:4" && r.status == 502) }
    }
}
