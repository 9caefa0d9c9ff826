import Foundation
import QoSCore
import Testing
import TestSupport
@testable import Engine

/// `DirectPublish`, replay's encode + publish: flushes submitted faster than
/// they are published (the submitter then encodes pending flushes' files
/// itself) are still published whole, once each, in submit order; a
/// failure to publish reaches the submitter without a hang. (The limit
/// guards against a hang: alone the suite takes well under a second, but
/// each file is fsynced twice, and on a disk busy with a parallel build
/// both tests once took over a minute.)
@Suite(.timeLimit(.minutes(5))) struct DirectPublishTests {
    static let t0: Int64 = 1_767_225_600_000  // 2026-01-01T00:00Z

    /// `count` on-time windows two minutes apart, each with two sessions.
    static func windows(_ count: Int) -> (QoSEngine<DataSketchesKit>, [WindowState<DataSketchesKit>]) {
        var config = EngineConfig()
        config.latenessMs = 0
        let engine = QoSEngine<DataSketchesKit>(config: config)
        let now = t0 + 86_400_000
        for w in 0..<count {
            for k in 0..<2 {
                let sid = "w\(w)-s\(k)", at = t0 + Int64(w) * 120_000 + Int64(k) * 1000
                for (event, dt) in [(EventType.viewStart, 0), (.playStart, 700), (.heartbeat, 10_000), (.viewEnd, 20_000)] {
                    var b = Beacon(event: event, ts: at + Int64(dt), sessionId: sid)
                    b.videoId = "v\(w % 3)"
                    b.playedMs = event == .heartbeat ? 9000 : nil
                    engine.apply(b, partition: 0, source: .file(name: "t", line: 0), nowMs: now)
                }
            }
        }
        let windows = engine.finish().sorted { $0.start < $1.start }
        return (engine, windows)
    }

    /// The published files' paths, in publish order, from the JSON dump.
    static func dumpedPaths(_ path: String) throws -> [String] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var seen: [String] = []
        for line in text.split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            if let p = object?["path"] as? String, seen.last != p { seen.append(p) }
        }
        return seen
    }

    @Test func flushesSubmittedFasterThanPublishedArePublishedWholeAndInOrder() throws {
        let (engine, windows) = Self.windows(24)
        #expect(windows.count == 24 && windows.allSatisfy { !$0.isDelta })
        let root = makeTemporaryDirectory("qos-direct-publish")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let writer = WindowFileWriter(sink: FileSink(root: root + "/out"), windowMs: engine.config.windowMs, inputTag: "t")
        let names = engine.interner.strings
        let direct = DirectPublish(writer: writer)
        direct.dump = try JSONDump(path: root + "/dump.ndjson", sinkRoot: root + "/out")
        // One window per flush, submitted back to back: far more than `pendingMax` wait at once.
        var expected: [WindowFileWriter.PlannedFile] = []
        for (i, w) in windows.enumerated() {
            let submitted = try direct.submit(windows: [w], rejects: [], names: names, range: "a..\(i)", lateFrom: i + 1)
            #expect(submitted)
            expected += try writer.plan([w], names: names, flush: i + 1, sourceRange: "a..\(i)", lateFrom: i + 1)
        }
        let files = try direct.finish()
        try direct.dump?.close()
        #expect(files == expected.count && Set(expected.map(\.table)).isSuperset(of: ["video", "sessions"]))
        // Every file in the sink, with the bytes one thread's plan gives.
        let differing = expected.filter { f in FileManager.default.contents(atPath: f.path).map { Array($0) } != f.bytes }
        #expect(differing.isEmpty, "missing or other bytes: \(differing.map(\.name))")
        // Published in submit order, each once.
        let relative = expected.map { String($0.path.dropFirst(root.count + "/out/".count)) }
        #expect(try Self.dumpedPaths(root + "/dump.ndjson") == relative)
    }

    @Test func aFailedPublishReachesTheSubmitterAndFinish() throws {
        let (engine, windows) = Self.windows(12)
        let root = makeTemporaryDirectory("qos-direct-publish")
        defer { try? FileManager.default.removeItem(atPath: root) }
        // A regular file where the `video` table's directory must go.
        #expect(FileManager.default.createFile(atPath: root + "/video", contents: Data()))
        let writer = WindowFileWriter(sink: FileSink(root: root), windowMs: engine.config.windowMs, inputTag: "t")
        let direct = DirectPublish(writer: writer)
        var thrown: Error?
        for (i, w) in windows.enumerated() where thrown == nil {
            do {
                _ = try direct.submit(windows: [w], rejects: [], names: engine.interner.strings, range: "a..\(i)",
                                      lateFrom: i + 1)
            } catch {
                thrown = error
            }
        }
        #expect(performing: { _ = try direct.finish() }, throws: { e in
            (e as? StorageError)?.errno == ENOTDIR && "\(e)".contains("\(root)/video")
        })
        if let thrown { #expect((thrown as? StorageError)?.errno == ENOTDIR) }
    }
}
