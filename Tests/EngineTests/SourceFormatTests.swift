import Foundation
import Testing
@testable import Engine
import QoSCore

/// The input seams: a file source yields records with offsets and
/// `file:line` positions; formats are found by name.
@Suite struct SourceFormatTests {
    func write(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "qos-src-\(UUID().uuidString).ndjson"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func drain(_ s: FileRecordSource, max: Int = 2, start: Int64? = nil) throws -> [(Int64, String, String)] {
        var out: [(Int64, String, String)] = []
        while !s.atEnd {
            var assigned = false
            _ = try s.poll(maxRecords: max, timeoutMs: 0, onRecord: { r in
                #expect(r.partition == 0)
                out.append((r.offset, r.position.description.split(separator: "/").last.map(String.init) ?? "",
                            String(decoding: r.bytes, as: UTF8.self)))
            }, onEvent: { if case .assigned([0]) = $0 { assigned = true } })
            if assigned { try s.startAssigned([0: start]) }
        }
        return out
    }

    @Test func fileSourceNumbersRecordsAcrossFilesAndSkipsBlankLines() throws {
        let a = try write("a1\n\nA3\r\na4"), b = try write("b1\nb2\n")
        let got = try drain(FileRecordSource(paths: [a, b]))
        let name = { (p: String) in p.split(separator: "/").last.map(String.init)! }
        #expect(got.map(\.0) == [0, 1, 2, 3, 4])
        #expect(got.map(\.1) == ["\(name(a)):1", "\(name(a)):3", "\(name(a)):4", "\(name(b)):1", "\(name(b)):2"])
        #expect(got.map(\.2) == ["a1", "A3", "a4", "b1", "b2"])
        // Started at an offset (a restart), earlier records are not delivered again.
        let resumed = try drain(FileRecordSource(paths: [a, b]), max: 3, start: 3)
        #expect(resumed.map(\.0) == [3, 4] && resumed.map(\.2) == ["b1", "b2"])
    }

    @Test func formatsAreFoundByName() throws {
        let f = try RecordFormats.named("beacon-json")
        var items: [DecodedItem] = []
        Array(#"{"event":"heartbeat","ts":1,"session_id":"s","seq":1}"#.utf8).withUnsafeBytes { f.decode($0) { items.append($0) } }
        #expect(items.count == 1)
        #expect(throws: UserError.self) { try RecordFormats.named("cdn-log") }
        #expect(RecordFormats.all.map(\.name) == ["beacon-json", "edgecast", "cloudfront", "fastly", "akamai", "cmcd"])
    }
}
