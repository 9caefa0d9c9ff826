import Foundation
import Testing
@testable import Engine

/// Pins the bytes `qos replay` writes. The input is a committed fixture
/// (tests/fixtures/replay-golden.ndjson.zst: `qos generate --seed 14
/// --sessions 120 --rate 15 --late-fraction 0.05 --duplicate-fraction 0.03
/// --malformed-fraction 0.03`, so late, duplicate and malformed beacons),
/// replayed with an engine clock that makes its last minutes `ts_in_future`.
/// The expected names and hashes (tests/fixtures/replay-golden.expected)
/// were written by the binary before the pipeline was restructured (and
/// re-recorded at the fixed input path after checking that the new code
/// writes exactly the old listing at the old path): a refactoring of the
/// data path must leave them unchanged. To re-record
/// after an intended output change: `QOS_GOLDEN_RECORD=1 swift test
/// --filter GoldenOutputTests`, and say why in the commit.
@Suite struct GoldenOutputTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("tests/fixtures").path

    /// Every file under `root` as "relative-path fnv1a64-of-bytes size", sorted.
    static func listing(_ root: String) throws -> String {
        var lines: [String] = []
        let e = FileManager.default.enumerator(atPath: root)!
        while let rel = e.nextObject() as? String {
            var dir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root + "/" + rel, isDirectory: &dir), !dir.boolValue else { continue }
            let bytes = try Data(contentsOf: URL(fileURLWithPath: root + "/" + rel))
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            lines.append("\(rel) \(String(h, radix: 16)) \(bytes.count)")
        }
        return lines.sorted().joined(separator: "\n") + "\n"
    }

    @Test func replayWritesTheRecordedBytes() throws {
        let dir = NSTemporaryDirectory() + "qos-golden-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = ReplayOptions()
        // The input's path is part of every file (`videoqos.source` metadata):
        // read it from one fixed path, so the bytes do not depend on where the
        // repository is checked out.
        let input = "/tmp/qos-golden-input/replay-golden.ndjson.zst"
        try? FileManager.default.createDirectory(atPath: "/tmp/qos-golden-input", withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: input)
        try FileManager.default.copyItem(atPath: Self.fixtures + "/replay-golden.ndjson.zst", toPath: input)
        o.inputs = [input]
        o.sink = dir + "/out"
        o.nowMs = { 1_767_227_500_000 }
        let summary = try ReplayJob(o).run()
        #expect(summary.counters.rejected["ts_in_future", default: 0] > 0)
        #expect(summary.counters.duplicates > 0 && summary.counters.lateEvents > 0)
        let got = try Self.listing(dir + "/out")
        let expectedPath = Self.fixtures + "/replay-golden.expected"
        if ProcessInfo.processInfo.environment["QOS_GOLDEN_RECORD"] == "1" {
            try got.write(toFile: expectedPath, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOfFile: expectedPath, encoding: .utf8)
        let (g, x) = (got.split(separator: "\n"), expected.split(separator: "\n"))
        #expect(g.count == x.count, "file count \(g.count) != recorded \(x.count)")
        for line in Set(g).symmetricDifference(Set(x)).sorted() { Issue.record("differs from the recorded output: \(line)") }
    }
}
