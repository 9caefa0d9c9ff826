import Foundation
import Testing
import TestSupport
@testable import Engine
import Generator
import QoSCore

/// `qos replay --workers N` (docs/architecture.md "Sharding"): the sessions
/// sharded over N engines must write the tables one engine writes — the
/// same files, rows and values, with every decision that depends on the
/// watermark (late events, too-old rejects, closes, window flushes) taken
/// at the same point.
@Suite struct ShardedReplayTests {
    func tempDir() -> String { makeTemporaryDirectory("qos-shard") }

    /// Every file's columns (`--json-dump`), by path.
    func dump(_ o: ReplayOptions, workers: Int, dir: String) throws -> (summary: ReplaySummary, files: [String: String]) {
        var o = o
        o.workers = workers
        o.sink = dir + "/w\(workers)"
        o.jsonDump = dir + "/w\(workers).jsonl"
        let summary = try ReplayJob(o).run()
        var files: [String: String] = [:]
        for line in try String(contentsOfFile: o.jsonDump!, encoding: .utf8).split(separator: "\n") {
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            files[obj["path"] as! String] = String(line)
        }
        return (summary, files)
    }

    /// Compares two replays file by file and column by column. `viewers_hll`
    /// is a union of the shards' sketches: its bytes may list the same
    /// coupons in another order (docs/architecture.md "Sharding"), so it
    /// must have the same size and the same estimate (`unique_viewers`,
    /// compared as a column); every other column must be equal.
    func expectSame(_ one: [String: String], _ many: [String: String], _ label: String) throws {
        #expect(one.keys.sorted() == many.keys.sorted(), "\(label): file names differ")
        for (path, a) in one {
            guard let b = many[path], a != b else { continue }
            let ca = try JSONSerialization.jsonObject(with: Data(a.utf8)) as! [String: Any]
            let cb = try JSONSerialization.jsonObject(with: Data(b.utf8)) as! [String: Any]
            let colsA = ca["columns"] as! [String: Any], colsB = cb["columns"] as! [String: Any]
            #expect(colsA.keys.sorted() == colsB.keys.sorted())
            for (name, va) in colsA {
                let vb = colsB[name] ?? NSNull()
                if try JSONSerialization.data(withJSONObject: [va]) == JSONSerialization.data(withJSONObject: [vb]) { continue }
                if name == "viewers_hll", let x = va as? [Any], let y = vb as? [Any],
                   x.map({ ($0 as? String)?.count }) == y.map({ ($0 as? String)?.count }) { continue }
                Issue.record("\(label): \(path) column \(name) differs")
            }
        }
    }

    @Test func theGoldenInputGivesTheSameTablesWithTwoAndThreeWorkers() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = ReplayOptions()
        let input = dir + "/replay-golden.ndjson.zst"
        try FileManager.default.copyItem(atPath: GoldenOutputTests.fixtures + "/replay-golden.ndjson.zst", toPath: input)
        o.inputs = [input]
        o.nowMs = { 1_767_227_500_000 }
        let one = try dump(o, workers: 1, dir: dir)
        #expect(one.files.count > 20)
        for n in [2, 3] {
            let many = try dump(o, workers: n, dir: dir)
            #expect(many.summary.counters == one.summary.counters)
            #expect(many.summary.windowsWritten == one.summary.windowsWritten)
            #expect(many.summary.filesWritten == one.summary.filesWritten)
            try expectSame(one.files, many.files, "\(n) workers")
        }
    }

    /// Generated traffic with late, duplicate, future and malformed beacons,
    /// short windows and a short session timeout (many gap and timeout
    /// closes, many flushes, late deltas released along the way).
    @Test(arguments: [1, 2, 3] as [UInt64])
    func generatedTrafficGivesTheSameTablesForOneToFourWorkers(seed: UInt64) throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var g = GeneratorOptions()
        g.seed = seed
        g.sessions = 150
        g.rate = 20
        g.lateFraction = 0.05
        g.duplicateFraction = 0.03
        g.malformedFraction = 0.03
        g.futureFraction = 0.02
        let path = dir + "/in.ndjson"
        try writeGeneratedInput(g, to: path)
        var o = ReplayOptions()
        o.inputs = [path]
        o.config.windowMs = 30_000
        o.config.sessionTimeoutMs = 20_000
        o.lateFlushIntervalMs = 60_000
        // The engine clock 10 minutes into the traffic (≈ 9 minutes long):
        // the injected future beacons are `ts_in_future`.
        o.nowMs = { g.startMs + 600_000 }
        let one = try dump(o, workers: 1, dir: dir)
        #expect(one.summary.counters.lateEvents > 0 && one.summary.counters.duplicates > 0)
        #expect(one.summary.counters.rejectedTotal > 0)
        for n in 2...4 {
            let many = try dump(o, workers: n, dir: dir)
            #expect(many.summary.counters == one.summary.counters, "\(n) workers")
            #expect(many.summary.windowsWritten == one.summary.windowsWritten, "\(n) workers")
            try expectSame(one.files, many.files, "\(n) workers")
        }
    }
}
