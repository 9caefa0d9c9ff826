import Foundation
import Testing
import TestSupport
@testable import Engine
import Generator
import Parquet
import QoSCore

/// Replay through the real sink, read back with our own Parquet reader.
@Suite struct ReplayTests {
    func tempDir() -> String { makeTemporaryDirectory("qos-replay") }

    func writeInput(_ dir: String, sessions: Int) throws -> String {
        var o = GeneratorOptions()
        o.seed = 77
        o.sessions = sessions
        o.duplicateFraction = 0.01
        o.malformedFraction = 0.01
        let path = dir + "/in.ndjson"
        try writeGeneratedInput(o, to: path)
        return path
    }

    @Test func overallTableSumsMatchTheEngineCounters() throws {
        let dir = tempDir()
        var o = ReplayOptions()
        o.inputs = [try writeInput(dir, sessions: 200)]
        o.sink = dir + "/out"
        let summary = try ReplayJob(o).run()
        let files = Inspector.parquetFiles(under: dir + "/out/overall")
        var views: Int64 = 0, dups: Int64 = 0, ended: Int64 = 0
        for f in files {
            let r = try ParquetFileReader(bytes: Inspector.readFile(f))
            guard case .int64(let v) = try r.column(named: "views"),
                  case .int64(let d) = try r.column(named: "duplicates"),
                  case .int64(let e) = try r.column(named: "sessions_ended") else { Issue.record("types"); return }
            views += v.reduce(0) { $0 + ($1 ?? 0) }
            dups += d.reduce(0) { $0 + ($1 ?? 0) }
            ended += e.reduce(0) { $0 + ($1 ?? 0) }
        }
        #expect(views >= 200 && dups == summary.counters.duplicates && ended == summary.counters.sessionsClosed)
        let rejects = Inspector.parquetFiles(under: dir + "/out/rejects")
        let rows = try rejects.reduce(0) { try $0 + ParquetFileReader(bytes: Inspector.readFile($1)).numRows }
        #expect(Int64(rows) == summary.counters.rejectedTotal && rows > 0)
        let text = try Inspector.summarizeDirectory(dir + "/out/overall")
        #expect(text.contains("views \(views)"))
    }

    /// Windows shorter than a minute (or not on a minute) still get a file
    /// each: file names carry the window start's seconds when it has some
    /// (two 30 s windows of one minute wrote one name, the second file
    /// replacing the first).
    @Test func subMinuteWindowsEachKeepTheirFile() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = ReplayOptions()
        o.inputs = [try writeInput(dir, sessions: 200)]
        o.sink = dir + "/out"
        o.config.windowMs = 30_000
        let summary = try ReplayJob(o).run()
        var views: Int64 = 0, ended: Int64 = 0
        var starts = Set<Int64>()
        for f in Inspector.parquetFiles(under: dir + "/out/overall") {
            let (_, rows) = try TableReader.readMetricFile(f, table: .overall)
            for r in rows { views += r.m.views; ended += r.m.sessionsEnded; starts.insert(r.start) }
        }
        #expect(ended == summary.counters.sessionsClosed)
        #expect(views >= 200)
        #expect(starts.contains { $0 % 60_000 == 30_000 })
        #expect(Inspector.parquetFiles(under: dir + "/out/overall").contains { $0.contains("30Z_30s_") })
    }

    /// Every file under `root`, by relative path.
    func files(_ root: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(atPath: root)!
        while let rel = e.nextObject() as? String {
            var dir: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + rel, isDirectory: &dir), !dir.boolValue {
                out[rel] = try Data(contentsOf: URL(fileURLWithPath: root + "/" + rel))
            }
        }
        return out
    }

    @Test func rebuildingTheInternersAtEveryFlushWritesTheSameFiles() throws {
        let dir = tempDir()
        var o = ReplayOptions()
        o.inputs = [try writeInput(dir, sessions: 600)]
        o.nowMs = { 4_000_000_000_000 }
        o.sink = dir + "/plain"
        _ = try ReplayJob(o).run()
        o.sink = dir + "/rebuilt"
        o.rebuildInternersAtEveryFlush = true
        _ = try ReplayJob(o).run()
        let plain = try files(dir + "/plain"), rebuilt = try files(dir + "/rebuilt")
        #expect(plain.keys.filter { $0.hasSuffix(".parquet") }.count > 10)
        #expect(plain.keys.sorted() == rebuilt.keys.sorted())
        for (path, bytes) in plain { #expect(rebuilt[path] == bytes, "\(path) differs") }
    }

    @Test func missingInputIsAUserError() throws {
        var o = ReplayOptions()
        o.inputs = ["/nonexistent/beacons.ndjson"]
        o.sink = tempDir()
        #expect(throws: UserError.self) { try ReplayJob(o).run() }
    }

    @Test func overlongLinesAreRejectedTooLarge() throws {
        let dir = tempDir()
        let big = String(repeating: "x", count: 3 << 20)
        let text = "{\"event\":\"view_start\",\"ts\":1767225600000,\"session_id\":\"s\",\"pad\":\"\(big)\"}\n"
            + "{\"event\":\"view_start\",\"ts\":1767225600001,\"session_id\":\"t\"}\n"
        try text.write(toFile: dir + "/in.ndjson", atomically: true, encoding: .utf8)
        var o = ReplayOptions()
        o.inputs = [dir + "/in.ndjson"]
        o.sink = dir + "/out"
        let s = try ReplayJob(o).run()
        #expect(s.counters.rejected == ["too_large": 1] && s.counters.accepted == 1 && s.lines == 2)
    }
}
