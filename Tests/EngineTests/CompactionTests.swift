import Foundation
import Testing
import TestSupport
@testable import Engine
import Generator
import Parquet
import QoSCore
import SplitMix

/// Late data without a small-files explosion (README "Late data and
/// compaction"): the daemon in-process (DriverTests' harness: in-memory
/// source, manual clock) over three hours of simulated traffic with
/// realistic lateness — 1 % of beacons 1–10 min late, 0.1 % 1–24 h late —
/// delivered minute by minute of simulated time.
@Suite(.serialized) struct CompactionTests {
    static let start = DriverTests.start

    struct Delivery { var at: Int64; var order: Int; var payload: [UInt8] }

    /// The input in delivery order. One partition: `qos replay` reads its
    /// input as one partition, and with one the daemon's watermark-driven
    /// session closes are the replay's (docs/semantics.md §2), so every
    /// additive number must match.
    static let deliveries: [Delivery] = {
        var o = GeneratorOptions()
        o.seed = 11
        o.sessions = 450
        o.rate = 2.5
        o.startMs = start
        o.lateFraction = 0.01  // delivered 1–10 min after their ts
        o.duplicateFraction = 0.01
        o.malformedFraction = 0.005
        var rng = SplitMix64(seed: 2026)
        var out: [Delivery] = []
        var clock = start
        for (i, m) in TrafficGenerator(o).enumerated() {
            clock = max(clock, m.ts)
            var at = clock
            if rng.next() % 1000 == 0 { at = m.ts + 3_600_000 + Int64(rng.next() % UInt64(23 * 3_600_000)) }  // 1–24 h late
            out.append(Delivery(at: at, order: i, payload: m.payload))
        }
        return out.sorted { ($0.at, $0.order) < ($1.at, $1.order) }
    }()

    static func tempDir() -> String { DriverTests.tempDir() }

    /// `qos replay` of the same input, in delivery order.
    static func replay(_ dir: String, count: Int = deliveries.count) throws -> String {
        let input = dir + "/in.ndjson"
        let sink = try LineSink(path: input)
        for d in deliveries.prefix(count) { try sink.writeLine(d.payload) }
        try sink.close()
        var o = ReplayOptions()
        o.inputs = [input]
        o.sink = dir + "/replay"
        o.nowMs = { DriverTests.wall + 48 * 3_600_000 }
        _ = try ReplayJob(o).run()
        return o.sink
    }

    /// Per table and hour directory, the Parquet files a reader lists now.
    static func filesPerHourDir(_ sink: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for t in TableSchemas.tableNames {
            for dt in CheckpointStore.listFiles("\(sink)/\(t)") {
                for hour in CheckpointStore.listFiles("\(sink)/\(t)/\(dt)") {
                    out["\(t)/\(dt)/\(hour)"] = CheckpointStore.listFiles("\(sink)/\(t)/\(dt)/\(hour)")
                        .filter { $0.hasSuffix(".parquet") }.count
                }
            }
        }
        return out
    }

    /// Every additive column summed per (table, window, group) over every
    /// visible file; not `late_events` and `concurrent_plays` (they depend
    /// on when windows were written: docs/semantics.md §4). Plus the row
    /// counts of `sessions` and `rejects`.
    static func additive(_ sink: String, only rel: String? = nil) throws -> [String: Int64] {
        var out: [String: Int64] = [:]
        for t in MetricTable.allCases where rel == nil || rel!.hasPrefix(t.name + "/") {
            for p in Inspector.parquetFiles(under: "\(sink)/\(rel ?? t.name)") {
                let (_, rows) = try TableReader.readMetricFile(p, table: t)
                for r in rows {
                    let key = "\(t.name)|\(r.start)|\(r.dims.joined(separator: "|"))"
                    for (name, kp) in TableReader.additiveColumns where name != "late_events" && name != "concurrent_plays" {
                        out["\(key)|\(name)", default: 0] += r.m[keyPath: kp]
                    }
                }
            }
        }
        for t in ["sessions", "rejects"] where rel == nil || rel!.hasPrefix(t + "/") {
            for p in Inspector.parquetFiles(under: "\(sink)/\(rel ?? t)") {
                out[t, default: 0] += Int64(try ParquetFileReader(bytes: Inspector.readFile(p)).numRows)
            }
        }
        return out.filter { $0.value != 0 }
    }

    /// Window starts of every file in one hour directory.
    static func windowsPerFile(_ dir: String) throws -> [[Int64]] {
        try CheckpointStore.listFiles(dir).filter { $0.hasSuffix(".parquet") }.map { name in
            let r = try ParquetFileReader(bytes: Inspector.readFile("\(dir)/\(name)"))
            guard case .int64(let ws) = try r.column(named: "window_start") else { return [] }
            return Array(Set(ws.compactMap { $0 })).sorted()
        }
    }

    /// Feeds the deliveries minute by minute of simulated time from `from`;
    /// returns where it stopped (a crash thrown by a hook) or nil at the end.
    static func feed(_ h: DriverTests.Harness, _ src: MemoryRecordSource, from: Int,
                     count: Int = deliveries.count) throws -> Int? {
        var i = from
        let all = Array(deliveries.prefix(count))
        while i < all.count {
            let minute = all[i].at / 60_000
            var j = i
            while j < all.count && all[j].at / 60_000 == minute { j += 1 }
            // Delivered up to record j: what the source already holds (after a restart) is not appended twice.
            if src.records[0].count < j {
                for k in max(i, src.records[0].count)..<j { src.append(all[k].payload, partition: 0) }
            }
            h.clock.nowMs = max(h.clock.nowMs, (minute + 1) * 60_000)
            h.clock.monotonic += 60
            do {
                repeat { try h.driver.step() } while (src.lag()[0] ?? 1) > 0 || !src.pending.isEmpty
                try h.driver.step()
            } catch is Compactor.CompactionCrash {
                return i
            }
            i = j
        }
        return nil
    }

    static func harness(_ sink: String, maxFiles: Int, clockMs: Int64) throws -> DriverTests.Harness {
        let h = try DriverTests.Harness(sink: sink)
        h.clock.nowMs = clockMs
        h.options.checkpointIntervalMs = 60_000
        h.options.checkpointMinIntervalMs = 2_000
        h.options.compaction = CompactionPolicy()
        h.options.compaction.maxFiles = maxFiles
        return h
    }

    /// Releases at most once per interval of the clock it is given, never at
    /// the first reading; end of input (`.max`) always.
    @Test func lateFlushPolicyReleasesOncePerInterval() {
        var p = LateFlushPolicy(intervalMs: 300_000)
        let first = p.due(1_000_000)               // first reading: the interval starts
        let same = p.due(1_199_999)                // same 5-minute interval (900 000 ..< 1 200 000)
        let next = p.due(1_200_000)
        #expect(!first && !same && next)
        p.released(at: 1_200_000, flush: 7)
        #expect(p.pendingSince == 8)
        let early = p.due(1_499_999), onTime = p.due(1_500_000)
        #expect(!early && onTime)
        let end = p.due(.max), unknown = p.due(.min)
        #expect(end && !unknown)
    }

    /// `/metrics` exports files written, late files, compactions and files per hour directory.
    @Test func metricsExportFilesAndCompactions() {
        var s = RunStatus()
        s.filesWritten = 40
        s.lateFilesWritten = 6
        s.compactions = 3
        s.compactedFiles = 29
        s.hourDirFilesMax = ["overall": 4, "video": 11]
        let text = MetricsServer.render(s)
        for line in ["qos_files_written_total 40", "qos_late_files_written_total 6", "qos_compactions_total 3",
                     "qos_compacted_files_total 29", "qos_hour_dir_files_max{table=\"overall\"} 4",
                     "qos_hour_dir_files_max{table=\"video\"} 11"] {
            #expect(text.contains(line + "\n"), "\(line)")
        }
    }

    /// Compaction is off on s3:// (docs/object-storage.md "Differences from
    /// the local sink": no atomic swap, a reader would count an hour's files
    /// and their merge twice): settings that keep a local hour at 2 files
    /// leave one file per epoch there, and no compaction state is written.
    @Test(.enabled(if: MotoServer.available, "moto_server is not in .venv (run `make deps`)"))
    func compactionSettingsOnAnS3SinkDoNotCompact() throws {
        let t = try StorageUnderTest.s3.make()
        let h = try Self.harness(t.root, maxFiles: 2, clockMs: Self.start)
        h.options.environment = t.environment
        h.options.compaction.afterMs = 0
        let src = MemoryRecordSource(name: "beacons", partitions: 1)
        let d = try h.start(src)
        src.assign([0])
        #expect(try Self.feed(h, src, from: 0, count: Self.deliveries.count / 6) == nil)
        try d.finish()
        #expect(d.compactor.compactions == 0)
        var perHour: [String: Int] = [:]
        for rel in try t.visible().keys where rel.hasPrefix("overall/") { perHour[String(rel[..<rel.lastIndex(of: "/")!]), default: 0] += 1 }
        #expect((perHour.values.max() ?? 0) > 2, "\(perHour)")
        #expect(try t.files("_qos").filter { $0.hasPrefix("_qos/compact") }.isEmpty)
    }

    @Test func realisticLatenessStaysUnderTheCapAndEqualsReplay() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sink = dir + "/run"
        let h = try Self.harness(sink, maxFiles: Defaults.compactFiles, clockMs: Self.start)
        var worst = 0, epochs = 0
        var over: [String] = []
        func checkCap(_ when: String) {
            for (d, n) in Self.filesPerHourDir(sink) {
                worst = max(worst, n)
                if n > Defaults.compactFiles { over.append("\(when): \(d) holds \(n)") }
            }
        }
        // Late files: at most one release per late_flush_interval of the
        // clock, and at most one file per table and hour directory per release.
        var lateSeen = 0
        var releases: [Int64] = []
        var sameRelease: [String] = []
        var finishing = false
        h.options.onCheckpoint = { s in
            epochs += 1
            checkCap("epoch \(epochs)")
            guard s.lateFilesWritten > lateSeen, !finishing else { return }  // end of input writes whatever is pending
            lateSeen = s.lateFilesWritten
            releases.append(h.clock.nowMs / Defaults.lateFlushIntervalMs)
            var kinds: [String: Int] = [:]
            for p in Inspector.parquetFiles(under: sink) where p.contains("_late") {
                let parts = p.split(separator: "/"), name = parts.last!
                let kind = name.split(separator: "_").first { $0.hasPrefix("late") }!
                kinds["\(parts.dropLast().suffix(3).joined(separator: "/"))|\(kind)", default: 0] += 1
            }
            sameRelease += kinds.filter { $0.value > 1 }.map(\.key)
        }
        let src = MemoryRecordSource(name: "beacons", partitions: 1)
        let d = try h.start(src)
        d.compactor.beforeSwap = { _ in checkCap("before a swap") }
        d.compactor.afterSwap = { _ in checkCap("after a swap") }
        src.assign([0])
        #expect(try Self.feed(h, src, from: 0) == nil)
        finishing = true
        try d.finish()

        #expect(over.isEmpty, "\(over.prefix(5))")
        #expect(epochs > 100 && worst > 1)
        #expect(d.status.lateFilesWritten > 0 && d.compactor.compactions > 0, "late files \(d.status.lateFilesWritten)")
        #expect(releases.count > 3 && zip(releases, releases.dropFirst()).allSatisfy { $0 < $1 }, "\(releases)")
        #expect(sameRelease.isEmpty, "\(sameRelease.prefix(3))")

        // Hours closed for compact_after: one file per table, so every window has one file.
        let wm = d.tracker.value(wallMs: h.clock.nowMs) ?? .min
        var closed = 0
        for (rel, n) in Self.filesPerHourDir(sink) {
            guard let end = d.compactor.hourEnd(rel), end + Defaults.compactAfterMs <= wm else { continue }
            closed += 1
            #expect(n == 1, "\(rel): \(n) files")
            let windows = try Self.windowsPerFile("\(sink)/\(rel)").flatMap { $0 }
            #expect(windows.count == Set(windows).count, "\(rel): a window in two files")
        }
        #expect(closed >= 7, "closed hour directories: \(closed)")

        // Every additive number equals `qos replay` of the same input.
        let replayed = try Self.additive(try Self.replay(dir)), got = try Self.additive(sink)
        #expect(replayed.count > 1000)
        let diff = Set(replayed.keys).union(got.keys).filter { replayed[$0] != got[$0] }.sorted()
        #expect(diff.isEmpty, "\(diff.count) differ: \(diff.prefix(5).map { "\($0): run \(got[$0] ?? 0) replay \(replayed[$0] ?? 0)" })")
    }

    /// An hour holding windows of two lengths (`window` changed between
    /// runs) cannot become one file: the daemon's compactor skips it with
    /// one warning, not one per epoch, and tries again once a file comes.
    @Test func anHourItCannotCompactIsTriedAgainOnlyWhenItChanges() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sink = dir + "/sink"
        func replay(_ name: String, windowMs: Int64, sessions: [String]) throws {
            let input = "\(dir)/\(name).ndjson"
            let lines = sessions.map { #"{"event":"view_start","ts":1767225700000,"session_id":"\#($0)"}"# }
            try lines.joined(separator: "\n").write(toFile: input, atomically: true, encoding: .utf8)
            var o = ReplayOptions()
            o.inputs = [input]
            o.sink = sink
            o.config.windowMs = windowMs
            o.nowMs = { 1_767_225_700_000 }
            _ = try ReplayJob(o).run()
        }
        try replay("a", windowMs: 120_000, sessions: ["a"])
        try replay("b", windowMs: 600_000, sessions: ["b"])
        var warnings: [String] = []
        let compactor = try Compactor(sink: FileSink(root: sink), instance: "t", policy: CompactionPolicy(),
                                      log: Logger { level, message in if level == .warn { warnings.append(message) } })
        compactor.recover(nowMs: 1_767_300_000_000)
        for _ in 0..<3 { try compactor.afterEpoch(watermark: 1_767_300_000_000, nowMs: 1_767_300_000_000) }
        let overall = warnings.filter { $0.contains("overall/") }
        #expect(overall.count == 1 && overall[0].contains("windows of different lengths"), "\(warnings)")
        try replay("c", windowMs: 600_000, sessions: ["c"])  // a new file: tried again
        try compactor.afterEpoch(watermark: 1_767_300_000_000, nowMs: 1_767_300_000_000)
        #expect(warnings.filter { $0.contains("overall/") }.count == 2, "\(warnings)")
    }

    /// A lease the compactor cannot write (here: its temporary name taken by
    /// a directory; in the field, permissions or a full disk) skips the hour
    /// with a warning naming it, not in silence.
    @Test func aLeaseThatCannotBeWrittenIsSaid() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sink = dir + "/sink"
        for name in ["a", "b"] {
            let input = "\(dir)/\(name).ndjson"
            try #"{"event":"view_start","ts":1767225700000,"session_id":"\#(name)"}"#.write(toFile: input, atomically: true, encoding: .utf8)
            var o = ReplayOptions()
            o.inputs = [input]
            o.sink = sink
            o.nowMs = { 1_767_225_700_000 }
            _ = try ReplayJob(o).run()
        }
        var warnings: [String] = []
        let compactor = try Compactor(sink: FileSink(root: sink), instance: "t", policy: CompactionPolicy(),
                                      log: Logger { level, message in if level == .warn { warnings.append(message) } })
        compactor.recover(nowMs: 1_767_300_000_000)
        let hours = Inspector.parquetFiles(under: sink + "/overall").map { String($0.dropFirst(sink.count + 1).split(separator: "/").dropLast().joined(separator: "/")) }
        let rel = try #require(Set(hours).first)
        #expect(Set(hours).count == 1 && hours.count > 1, "one hour of several files: \(hours)")
        try FileManager.default.createDirectory(atPath: "\(compactor.dir)/.\(rel.replacingOccurrences(of: "/", with: "~")).t.tmp",
                                                withIntermediateDirectories: true)
        try compactor.afterEpoch(watermark: 1_767_300_000_000, nowMs: 1_767_300_000_000)
        #expect(warnings.contains { $0.contains(rel) && $0.contains("cannot write its lease") }, "\(warnings)")
        #expect(Inspector.parquetFiles(under: sink + "/overall").count == hours.count)
    }

    @Test func crashesDuringCompactionNeitherLoseNorDoubleCount() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The first 80 minutes of deliveries (the 1–24 h late ones among them included).
        let count = Self.deliveries.firstIndex { $0.at >= Self.start + 80 * 60_000 } ?? Self.deliveries.count
        let final = try Self.additive(try Self.replay(dir, count: count))
        let sink = dir + "/run"
        // A low cap: many compactions; crash in some before and some after the swap.
        var compactionsSeen = 0, crashes = 0
        var from: Int? = 0
        var clockMs = Self.start
        var src = MemoryRecordSource(name: "beacons", partitions: 1)
        var h: DriverTests.Harness!
        var visibleChecks = 0
        while let i = from {
            h = try Self.harness(sink, maxFiles: 5, clockMs: clockMs)
            let d = try h.start(src)
            var before: [String: Int64] = [:]
            d.compactor.beforeSwap = { rel in
                compactionsSeen += 1
                before = try Self.additive(sink, only: rel)
                if compactionsSeen % 7 == 3 { crashes += 1; throw Compactor.CompactionCrash() }
            }
            d.compactor.afterSwap = { rel in
                // The swap neither drops nor double counts a number a reader saw before it.
                #expect(try Self.additive(sink, only: rel) == before)
                visibleChecks += 1
                if compactionsSeen % 7 == 5 { crashes += 1; throw Compactor.CompactionCrash() }
            }
            src.assign([0])
            from = try Self.feed(h, src, from: i, count: count)
            clockMs = h.clock.nowMs
            if from == nil {
                // After a restart at the end, first read what the checkpoint had not covered.
                do { try h.drain(src); try d.finish() } catch is Compactor.CompactionCrash { from = count }
            }
            if from != nil {
                // Right after the crash: nothing visible above its final value.
                for (k, v) in try Self.additive(sink) {
                    #expect(v <= final[k] ?? 0, "\(k): visible \(v) > final \(final[k] ?? 0)")
                }
                src = DriverTests.reopen(src)
            }
        }
        #expect(crashes >= 4 && visibleChecks > 5, "crashes \(crashes), compactions \(compactionsSeen)")
        let got = try Self.additive(sink)
        let diff = Set(final.keys).union(got.keys).filter { final[$0] != got[$0] }.sorted()
        #expect(diff.isEmpty, "\(diff.count) differ: \(diff.prefix(5).map { "\($0): run \(got[$0] ?? 0) replay \(final[$0] ?? 0)" })")
        // No compaction left half done: no staging directory, no lease.
        let left = CheckpointStore.listFiles(sink + "/_qos/compact").filter { $0 != "trash" }
        #expect(left.isEmpty, "\(left)")
    }
}
