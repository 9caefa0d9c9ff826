import Foundation
import Parquet
import QoSCore
import Testing
import TestSupport
@testable import Engine
import Generator

/// How `WindowFileWriter.plan` lays flushed windows out in files: one
/// `base` file per table per window, or (the daemon, `combineBaseByHour`)
/// one per table for the on-time windows of one hour flushed together —
/// the same rows either way.
@Suite struct WindowFilesTests {
    static let t0: Int64 = 1_767_225_600_000  // 2026-01-01T00:00Z

    /// Windows at 00:00, 00:02, 00:06 and 01:00 (two minutes each), each with
    /// sessions that start, play and end inside it.
    func flushedWindows() -> (QoSEngine<DataSketchesKit>, [WindowState<DataSketchesKit>]) {
        let engine = QoSEngine<DataSketchesKit>()
        let now = Self.t0 + 86_400_000
        for (w, minute) in [0, 2, 6, 60].enumerated() {
            for k in 0..<3 {
                let sid = "w\(w)-s\(k)", at = Self.t0 + Int64(minute) * 60_000 + Int64(k) * 1000
                for (event, dt) in [(EventType.viewStart, 0), (.playStart, 800), (.heartbeat, 10_000), (.viewEnd, 20_000)] {
                    var b = Beacon(event: event, ts: at + Int64(dt), sessionId: sid)
                    b.videoId = "v\(k)"
                    b.playedMs = event == .heartbeat ? 9000 : nil
                    engine.apply(b, partition: 0, source: .file(name: "t", line: 0), nowMs: now)
                }
            }
        }
        return (engine, engine.finish())
    }

    /// Every row of `files` as text, column by column, sorted (file order aside).
    func rows(_ files: [WindowFileWriter.PlannedFile]) throws -> [String] {
        var out: [String] = []
        for f in files {
            let cols = try f.columnData()
            for i in 0..<f.rows {
                out.append(cols.map { c -> String in
                    switch c {
                    case .boolean(let v): return "\(v[i] as Any)"
                    case .int32(let v): return "\(v[i] as Any)"
                    case .int64(let v): return "\(v[i] as Any)"
                    case .double(let v): return "\(v[i] as Any)"
                    case .byteArray(let v): return "\(v[i] as Any)"
                    }
                }.joined(separator: "|"))
            }
        }
        return out.sorted()
    }

    @Test func combinedBaseFilesHoldTheSameRowsInOneFilePerTableAndHour() throws {
        let (engine, windows) = flushedWindows()
        #expect(windows.filter { !$0.isDelta }.count == 4)
        let writer = WindowFileWriter(sink: FileSink(root: makeTemporaryDirectory("qos-window-files")),
                                      windowMs: engine.config.windowMs, inputTag: "t")
        let apart = try writer.plan(windows, interner: engine.interner, flush: 1, sourceRange: "t")
        let together = try writer.plan(windows, interner: engine.interner, flush: 1, sourceRange: "t",
                                       combineBaseByHour: true)
        for table in ["overall", "video", "sessions"] {
            let a = apart.filter { $0.table == table }, b = together.filter { $0.table == table }
            #expect(a.count == 4, "\(table): one file per window")
            #expect(b.map(\.name) == ["\(table)_20260101T0000Z_120s_base_t.parquet",
                                      "\(table)_20260101T0100Z_120s_base_t.parquet"])
            #expect(try rows(a) == rows(b), "\(table): the same rows")
            let hour0 = try ParquetFileReader(bytes: b[0].bytes)
            guard case .int64(let starts) = try hour0.column(named: "window_start") else {
                Issue.record("\(table): no window_start"); continue
            }
            #expect(Set(starts.compactMap { $0 }) == Set([0, 2, 6].map { (Self.t0 + Int64($0) * 60_000) * 1000 }))
            #expect(hour0.metadataValue(forKey: "videoqos.windows") == "3")
            #expect(hour0.metadataValue(forKey: "videoqos.window_end") == "2026-01-01T00:08:00Z")
            // A single window's file is the same either way, bytes and all.
            #expect(a.last?.bytes == b.last?.bytes && a.last?.name == b.last?.name)
        }
    }

    /// A flush cut into units (`FlushWork`: each on-time window, the late
    /// deltas, the rejects) and encoded by several threads at once gives
    /// the files one thread's `plan` + `planRejects` give: the same names
    /// and bytes, in the same order.
    @Test func aFlushEncodedByManyThreadsGivesTheFilesOfOneThreadInItsOrder() throws {
        var config = EngineConfig()
        config.latenessMs = 0
        let engine = QoSEngine<DataSketchesKit>(config: config)
        let now = Self.t0 + 86_400_000
        func play(_ sid: String, _ at: Int64, video: String) {
            for (event, dt) in [(EventType.viewStart, 0), (.playStart, 800), (.heartbeat, 10_000), (.viewEnd, 20_000)] {
                var b = Beacon(event: event, ts: at + Int64(dt), sessionId: sid)
                b.videoId = video
                b.playedMs = event == .heartbeat ? 9000 : nil
                engine.apply(b, partition: 0, source: .file(name: "t", line: 0), nowMs: now)
            }
        }
        for (w, minute) in [0, 2, 6, 60, 64].enumerated() {
            for k in 0..<3 { play("w\(w)-s\(k)", Self.t0 + Int64(minute) * 60_000 + Int64(k) * 1000, video: "v\(k)") }
        }
        _ = engine.flush(watermark: Self.t0 + 62 * 60_000)  // windows before 01:02 written
        for k in 0..<4 {  // late into the written windows of both hours, then more on time
            play("late-\(k)", Self.t0 + Int64([0, 2, 60, 6][k]) * 60_000 + 5000, video: "v9")
            play("next-\(k)", Self.t0 + Int64(66 + 2 * k) * 60_000, video: "v\(k)")
        }
        let windows = engine.finish()
        #expect(windows.filter(\.isDelta).count == 4)
        #expect(windows.filter { !$0.isDelta }.count >= 4)
        let rejects = (0..<5).map { i in
            RejectRow(ingestedAt: Self.t0 + Int64(i) * 200_000, reason: "invalid_json", source: "t:\(i)", payload: Array("{".utf8))
        }
        let writer = WindowFileWriter(sink: FileSink(root: makeTemporaryDirectory("qos-flush-work")),
                                      windowMs: engine.config.windowMs, inputTag: "t")
        let names = engine.interner.strings
        let serial = try writer.plan(windows, names: names, flush: 3, sourceRange: "a..b", lateFrom: 2)
            + writer.planRejects(rejects, flush: 3, sourceRange: "a..b")
        #expect(Set(serial.map(\.name)).count == serial.count)
        #expect(serial.contains { $0.name.contains("late000002-000003") } && serial.contains { $0.table == "rejects" })
        let job = DirectPublish.Job(windows: windows, rejects: rejects, names: names, flush: 3, lateFrom: 2, range: "a..b")
        for helpers in [0, 1, 3] {
            let work = FlushWork(job, writer)
            let threads = (0..<helpers).map { _ in Thread { work.help() } }
            threads.forEach { $0.start() }
            let files = try work.files()
            #expect(files.map(\.name) == serial.map(\.name), "\(helpers) helpers: the files in one thread's order")
            let sameBytes = files.map(\.bytes) == serial.map(\.bytes)
            #expect(sameBytes, "\(helpers) helpers: the same bytes")
        }
    }

    /// A file written one column chunk at a time (`OutputColumn.encode`) is
    /// the file of whole columns: each row's size estimate (serialized
    /// sketches included) equals what the whole-column writer measures, so
    /// the row groups split at the same rows — here every few KB.
    @Test func filesWrittenColumnByColumnEqualFilesOfWholeColumns() throws {
        var o = GeneratorOptions()
        o.seed = 9
        o.sessions = 300
        let engine = QoSEngine<DataSketchesKit>()
        for m in TrafficGenerator(o) {
            m.payload.withUnsafeBytes { bytes in
                BeaconDecoder.decode(bytes) { item in
                    if case .beacon(let b) = item {
                        engine.apply(b, partition: 0, source: .file(name: "t", line: 0), nowMs: Self.t0 + 86_400_000)
                    }
                }
            }
        }
        let windows = engine.finish().filter { !$0.isDelta }
        #expect(windows.count > 3)
        let writer = WindowFileWriter(sink: FileSink(root: makeTemporaryDirectory("qos-window-files")),
                                      windowMs: engine.config.windowMs, inputTag: "t")
        var options = ParquetWriterOptions()
        options.rowGroupMaxBytes = 4096
        var compared = 0
        func check<R>(_ what: String, _ cols: [OutputColumn<R>], _ rows: [R]) throws {
            guard !rows.isEmpty else { return }
            let streamed = try OutputColumn.encode(cols, rows, options: options)
            let whole = try writeParquet(schema: cols.map(\.field), columns: rows.withUnsafeBufferPointer { all in cols.map { $0.build(all) } }, options: options)
            let same = streamed == whole
            #expect(same, "\(what): \(rows.count) rows")
            compared += 1
        }
        for w in windows {
            for t in MetricTable.allCases {
                try check(t.name, TableSchemas.metricColumns(t, DataSketchesKit.self), writer.metricRows(w, t, engine.interner.strings))
            }
            let all = SessionRowAt.Rows(w.sessions, start: w.start, end: w.end)
            try check("sessions", TableSchemas.sessionColumns(), w.sessions.indices.map { SessionRowAt(all, index: $0) })
        }
        #expect(compared > 3 * MetricTable.allCases.count)
    }
}
