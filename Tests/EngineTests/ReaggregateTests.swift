import Foundation
import Testing
import TestSupport
@testable import Engine
import Generator
import Parquet
import QoSCore
import Sketches

/// `qos reaggregate`: a 2-minute replay rolled up to 1 h must equal a 1 h
/// replay of the same beacons (issue 7's acceptance checks), with real files.
@Suite(.serialized) struct ReaggregateTests {
    static let metricTables = MetricTable.allCases
    /// The tables a beacon replay writes (not `cdn_edge`, CdnEdgeTests covers it).
    static let beaconTables = TableSchemas.tableNames.filter { $0 != TableSchemas.cdnEdgeTable }

    /// Independent oracle: all files of a table summed / merged per (window, dims).
    struct Agg {
        var ints: [String: Int64] = [:]
        var hll = HLLSketch(lgK: 12)
        var dd: [String: DDSketch] = [:]
        /// concurrent_plays summed per source window.
        var concurrentBySource: [Int64: Int64] = [:]
    }

    static func tempDir() -> String { makeTemporaryDirectory("qos-reagg") }

    /// One generated input replayed at 2 min and at 1 h, shared by the tests.
    final class Fixture: @unchecked Sendable {
        let dir: String
        init() throws {
            dir = ReaggregateTests.tempDir()
            var g = GeneratorOptions()
            g.seed = 7
            g.sessions = 250
            g.rate = 1
            g.lateFraction = 0.02
            g.duplicateFraction = 0.01
            g.malformedFraction = 0.005
            g.explicitGeo = true
            let input = dir + "/in.ndjson"
            try writeGeneratedInput(g, to: input)
            for (name, ms) in [("w2m", Int64(120_000)), ("w1h", Int64(3_600_000))] {
                var o = ReplayOptions()
                o.inputs = [input]
                o.sink = dir + "/" + name
                o.config.windowMs = ms
                o.nowMs = { 1_767_225_600_000 + 86_400_000 }
                _ = try ReplayJob(o).run()
            }
        }
    }

    static let fixture: Result<Fixture, Error> = Result { try Fixture() }

    func fx() throws -> Fixture { try ReaggregateTests.fixture.get() }

    static func reaggregate(sink: String, tables: [String], grainMs: Int64 = 3_600_000, dims: [String]? = nil,
                            out: String? = nil, compact: Bool = false) throws -> ReaggregateSummary {
        var o = ReaggregateOptions()
        o.sink = sink
        o.tables = tables
        o.grainMs = grainMs
        o.dims = dims
        o.out = out
        o.compact = compact
        o.graceSeconds = 0
        return try ReaggregateJob(o).run()
    }

    /// Reads every file of `dir` into per-(window, dims) aggregates.
    static func load(_ dir: String, _ table: MetricTable, keep: [String]? = nil) throws -> [String: Agg] {
        var out: [String: Agg] = [:]
        let dims = keep ?? table.dimensions
        for path in Inspector.parquetFiles(under: dir) {
            let r = try ParquetFileReader(bytes: Inspector.readFile(path))
            guard case .int64(let starts) = try r.column(named: "window_start") else { throw UserError("type") }
            let dimCols = try dims.map { try r.column(named: $0).stringValues!.map { $0! } }
            var cols: [(String, ParquetColumnData)] = []
            for f in r.schema { cols.append((f.name, try r.column(named: f.name))) }
            for i in 0..<r.numRows {
                let key = "\(starts[i]!)|" + dimCols.map { $0[i] }.joined(separator: "|")
                var a = out[key] ?? Agg()
                for (name, c) in cols {
                    switch c {
                    case .int64(let v) where name == "concurrent_plays":
                        a.concurrentBySource[starts[i]!, default: 0] += v[i]!
                    case .int64(let v) where !["window_start", "window_end", "watch_ms"].contains(name):
                        a.ints[name, default: 0] += v[i]!
                    case .byteArray(let v) where name == "viewers_hll":
                        a.hll.merge(try HLLSketch(bytes: v[i]!))
                    case .byteArray(let v) where name.hasSuffix("_sketch"):
                        a.dd[name, default: DDSketch()].merge(try DDSketch(protobuf: v[i]!))
                    default: break
                    }
                }
                out[key] = a
            }
        }
        return out
    }

    /// Re-keys 2-minute aggregates to 1 h windows: sums, merges, and the
    /// concurrent_plays rule (sum within a source window, max across them).
    static func rollUp(_ fine: [String: Agg], grainMs: Int64) -> [String: Agg] {
        var out: [String: Agg] = [:]
        for (key, a) in fine {
            var parts = key.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            let start = Int64(parts[0])! / 1000
            parts[0] = String((start - start % grainMs) * 1000)
            let k = parts.joined(separator: "|")
            var o = out[k] ?? Agg()
            for (n, v) in a.ints { o.ints[n, default: 0] += v }
            o.hll.merge(a.hll)
            for (n, s) in a.dd { o.dd[n, default: DDSketch()].merge(s) }
            for (w, c) in a.concurrentBySource { o.concurrentBySource[w, default: 0] += c }
            out[k] = o
        }
        return out
    }

    static func maxConcurrent(_ a: Agg) -> Int64 { a.concurrentBySource.values.max() ?? 0 }

    @Test func rollUpEqualsTheCoarseReplay() throws {
        let f = try fx()
        let out = f.dir + "/r1h"
        let s = try Self.reaggregate(sink: f.dir + "/w2m", tables: Self.beaconTables, out: out)
        #expect(s.filesWritten > 0 && s.filesRead > s.filesWritten)
        for t in Self.metricTables {
            let rolled = try Self.load(out + "/\(t.name)", t)
            let coarse = try Self.load(f.dir + "/w1h/\(t.name)", t)
            let fine = Self.rollUp(try Self.load(f.dir + "/w2m/\(t.name)", t), grainMs: 3_600_000)
            #expect(rolled.count == coarse.count && !rolled.isEmpty, "\(t.name): groups")
            for (k, c) in coarse {
                guard let r = rolled[k] else { Issue.record("\(t.name) \(k) missing"); continue }
                var ri = r.ints, ci = c.ints
                #expect(ri.removeValue(forKey: "late_events") != nil)
                ci.removeValue(forKey: "late_events")
                #expect(ri == ci, "\(t.name) \(k) additive columns")
                #expect(r.hll.registerValues == c.hll.registerValues, "\(t.name) \(k) viewers_hll registers")
                for (n, d) in c.dd {
                    #expect(r.dd[n]?.protobufBytes() == d.protobufBytes(), "\(t.name) \(k) \(n) bytes")
                }
                // Documented rules: late_events summed; concurrent_plays = max over source windows of their sums.
                #expect(r.ints["late_events"] == fine[k]?.ints["late_events"])
                #expect(r.concurrentBySource.count == 1)
                #expect(Self.maxConcurrent(r) == Self.maxConcurrent(fine[k] ?? Agg()), "\(t.name) \(k) concurrent_plays")
            }
        }
    }

    @Test func derivedColumnsAreRecomputed() throws {
        let f = try fx()
        let out = f.dir + "/r1h-derived"
        _ = try Self.reaggregate(sink: f.dir + "/w2m", tables: ["overall"], out: out)
        for path in Inspector.parquetFiles(under: out + "/overall") {
            let r = try ParquetFileReader(bytes: Inspector.readFile(path))
            #expect(r.metadataValue(forKey: "videoqos.kind") == "rollup")
            #expect(r.metadataValue(forKey: "videoqos.window_ms") == "3600000")
            guard case .int64(let views) = try r.column(named: "views"), case .int64(let vsf) = try r.column(named: "vsf"),
                  case .double(let rate) = try r.column(named: "vsf_rate"),
                  case .int64(let watch) = try r.column(named: "watch_ms"),
                  case .int64(let a) = try r.column(named: "startup_ms_sum"), case .int64(let b) = try r.column(named: "playing_ms"),
                  case .int64(let c) = try r.column(named: "rebuffer_ms"), case .int64(let d) = try r.column(named: "seek_ms"),
                  case .double(let uv) = try r.column(named: "unique_viewers"),
                  case .byteArray(let hll) = try r.column(named: "viewers_hll")
            else { Issue.record("types"); return }
            #expect(rate[0] == (views[0]! > 0 ? Double(vsf[0]!) / Double(views[0]!) : nil))
            #expect(watch[0]! == a[0]! + b[0]! + c[0]! + d[0]!)
            #expect(uv[0] == (try HLLSketch(bytes: hll[0]!)).estimate)
        }
    }

    @Test func rowTablesAreReWindowedAndEqual() throws {
        let f = try fx()
        let out = f.dir + "/r1h-rows"
        _ = try Self.reaggregate(sink: f.dir + "/w2m", tables: ["sessions", "rejects"], out: out)
        for t in ["sessions", "rejects"] {
            func rows(_ dir: String) throws -> [String] {
                var all: [String] = []
                for p in Inspector.parquetFiles(under: dir) {
                    let r = try ParquetFileReader(bytes: Inspector.readFile(p))
                    let cols = try r.schema.indices.map { try r.column($0) }
                    for i in 0..<r.numRows {
                        all.append(zip(r.schema, cols).map { f, c in "\(f.name)=\(Inspector.cell(c, i, f))" }.joined(separator: " "))
                    }
                }
                return all.sorted()
            }
            let rolled = try rows(out + "/" + t), coarse = try rows(f.dir + "/w1h/" + t)
            #expect(!rolled.isEmpty && rolled == coarse, "\(t)")
        }
    }

    @Test func droppingEveryDimensionOfVideoGivesOverall() throws {
        let f = try fx()
        let out = f.dir + "/r1h-nodims"
        _ = try Self.reaggregate(sink: f.dir + "/w2m", tables: ["video"], dims: [], out: out)
        _ = try Self.reaggregate(sink: f.dir + "/w2m", tables: ["overall"], out: out)
        let files = Inspector.parquetFiles(under: out + "/video")
        let r = try ParquetFileReader(bytes: Inspector.readFile(files[0]))
        #expect(r.columnIndex(named: "video_id") == nil)
        #expect(r.metadataValue(forKey: "videoqos.dimensions") == "")
        let video = try Self.load(out + "/video", .video, keep: [])
        let overall = try Self.load(out + "/overall", .overall)
        let segment = Set(TableSchemas.segmentColumns(DataSketchesKit.self).map(\.field.name))
        #expect(video.count == overall.count && !video.isEmpty)
        for (k, o) in overall {
            guard let v = video[k] else { Issue.record("\(k) missing"); continue }
            #expect(v.ints == o.ints.filter { !segment.contains($0.key) }, "\(k)")
            #expect(v.hll.registerValues == o.hll.registerValues)
            #expect(v.concurrentBySource == o.concurrentBySource)
            for (n, d) in v.dd { #expect(o.dd[n]?.protobufBytes() == d.protobufBytes(), "\(k) \(n)") }
        }
        // The default output root names the kept dimensions.
        var opts = ReaggregateOptions()
        opts.sink = "s"
        opts.dims = []
        #expect(opts.outputRoot == "s/rollup_1h_by_none")
        opts.dims = nil
        #expect(opts.outputRoot == "s/rollup_1h")
    }

    static func copyTree(_ from: String, _ to: String) throws {
        try FileManager.default.copyItem(atPath: from, toPath: to)
    }

    @Test func compactionLeavesOneFilePerWindowWithTheSameNumbers() throws {
        let f = try fx()
        let sink = f.dir + "/compact"
        try Self.copyTree(f.dir + "/w2m", sink)
        var before: [String: [String: Agg]] = [:]
        for t in Self.metricTables { before[t.name] = try Self.load(sink + "/\(t.name)", t) }
        let filesBefore = Inspector.parquetFiles(under: sink).count
        let s = try Self.reaggregate(sink: sink, tables: Self.beaconTables, compact: true)
        #expect(s.windowsOut > 0 && s.filesReplaced > s.filesWritten && s.fallbacks == 0)
        #expect(Inspector.parquetFiles(under: sink).count == filesBefore - s.filesReplaced + s.filesWritten)
        for t in Self.beaconTables {
            let files = Inspector.parquetFiles(under: sink + "/" + t)
            var perWindow: [Int64: Int] = [:]
            for p in files {
                let r = try ParquetFileReader(bytes: Inspector.readFile(p))
                guard case .int64(let ws) = try r.column(named: "window_start") else { continue }
                perWindow[ws[0]!, default: 0] += 1
            }
            #expect(perWindow.values.allSatisfy { $0 == 1 }, "\(t): one file per window")
        }
        for t in Self.metricTables {
            let after = try Self.load(sink + "/\(t.name)", t)
            let b = before[t.name]!
            #expect(after.count == b.count)
            for (k, a) in after {
                #expect(a.ints == b[k]?.ints && a.concurrentBySource == b[k]?.concurrentBySource, "\(t.name) \(k)")
                #expect(a.hll.registerValues == b[k]?.hll.registerValues)
            }
        }
        #expect(!FileManager.default.fileExists(atPath: sink + "/.qos-compact"))
        // Idempotent: nothing left to compact.
        let again = try Self.reaggregate(sink: sink, tables: Self.beaconTables, compact: true)
        #expect(again.windowsOut == 0 && again.filesWritten == 0)
    }

    /// Views per (window_start, window_end) over every file of `dir`.
    static func viewsByWindow(_ dir: String) throws -> [String: Int64] {
        var out: [String: Int64] = [:]
        for path in Inspector.parquetFiles(under: dir) {
            let r = try ParquetFileReader(bytes: Inspector.readFile(path))
            guard case .int64(let s) = try r.column(named: "window_start"), case .int64(let e) = try r.column(named: "window_end"),
                  case .int64(let v) = try r.column(named: "views") else { throw UserError("types") }
            for i in 0..<r.numRows { out["\(s[i]!)-\(e[i]!)", default: 0] += v[i]! }
        }
        return out
    }

    /// A file of another window length in an hour directory with late
    /// deltas (a 1 h roll-up copied there, or a sink whose `window`
    /// changed between runs) covers other windows: compaction must not
    /// fold its 13:00–14:00 row into the 13:00–13:02 row.
    @Test func compactionKeepsWindowsOfAnotherLengthApart() throws {
        let f = try fx()
        let sink = f.dir + "/mixed-lengths"
        try Self.copyTree(f.dir + "/w2m", sink)
        let late = Inspector.parquetFiles(under: sink + "/overall").filter { $0.contains("_late") }
        guard let lateFile = late.first else { Issue.record("the fixture has no late-delta file"); return }
        let hourDir = String(lateFile[..<lateFile.lastIndex(of: "/")!])
        let relHour = hourDir.dropFirst((sink + "/overall").count)
        guard let hourFile = Inspector.parquetFiles(under: f.dir + "/w1h/overall" + relHour).first(where: { $0.contains("_base_") }) else {
            Issue.record("no 1 h file for \(relHour)"); return
        }
        let copied = hourDir + "/overall_hour_3600s_base_other.parquet"
        try FileManager.default.copyItem(atPath: hourFile, toPath: copied)
        let before = try Self.viewsByWindow(sink + "/overall")
        #expect(before.keys.contains { k in k.hasSuffix("-" + String(Int64(k.split(separator: "-")[0])! + 3_600_000_000)) })
        let s = try Self.reaggregate(sink: sink, tables: ["overall"], compact: true)
        #expect(s.filesWritten > 0)
        #expect(try Self.viewsByWindow(sink + "/overall") == before, "every (start, end) window keeps its views")
        #expect(FileManager.default.fileExists(atPath: copied), "the only 1 h file of the hour is left as it is")
        // The daemon's merge refuses to fold two lengths into one file.
        let twoMinute = Inspector.parquetFiles(under: hourDir).first { !$0.hasSuffix("_other.parquet") }!
        let e = #expect(throws: UserError.self) {
            try Compactor.merge(table: "overall", paths: [twoMinute, copied], options: ParquetWriterOptions())
        }
        #expect(e?.message.contains(copied) == true, "\(e?.message ?? "")")
    }

    @Test func filesOfSeveralWritersMergeLikeDeltas() throws {
        // Two instances that each wrote half of the windows' files: a copy of a
        // file under another writer's name must count twice.
        let f = try fx()
        let sink = f.dir + "/writers"
        try Self.copyTree(f.dir + "/w2m", sink)
        let files = Inspector.parquetFiles(under: sink + "/overall")
        let name = files[0].split(separator: "/").last!
        let dup = String(files[0].dropLast(name.count)) + name.replacingOccurrences(of: "_r", with: "_x")
        try FileManager.default.copyItem(atPath: files[0], toPath: dup)
        let once = try Self.load(f.dir + "/w2m/overall", .overall)
        _ = try Self.reaggregate(sink: sink, tables: ["overall"], out: sink + "/out")
        let rolled = try Self.load(sink + "/out/overall", .overall)
        let r0 = try ParquetFileReader(bytes: Inspector.readFile(files[0]))
        guard case .int64(let ws) = try r0.column(named: "window_start"), case .int64(let v) = try r0.column(named: "views") else { return }
        let hourKey = "\((ws[0]! / 1000 - ws[0]! / 1000 % 3_600_000) * 1000)|"
        let expected = Self.rollUp(once, grainMs: 3_600_000)[hourKey]!.ints["views"]! + v[0]!
        #expect(rolled[hourKey]?.ints["views"] == expected)
        // concurrent_plays: the copied file's window counts twice (summed within a window), then max.
        guard case .int64(let c) = try r0.column(named: "concurrent_plays") else { return }
        var perWindow = Self.rollUp(once, grainMs: 3_600_000)[hourKey]!.concurrentBySource
        perWindow[ws[0]!, default: 0] += c[0]!
        #expect(rolled[hourKey].map(Self.maxConcurrent) == perWindow.values.max())
    }

    @Test func corruptOrNewerFilesStopBeforeAnythingIsWritten() throws {
        let f = try fx()
        let sink = f.dir + "/bad"
        try Self.copyTree(f.dir + "/w2m", sink)
        let files = Inspector.parquetFiles(under: sink + "/geo")
        // Truncated file.
        let victim = files[files.count / 2]
        let bytes = try Inspector.readFile(victim)
        try Data(bytes.prefix(bytes.count / 2)).write(to: URL(fileURLWithPath: victim))
        do {
            _ = try Self.reaggregate(sink: sink, tables: Self.beaconTables, out: sink + "/out")
            Issue.record("no error")
        } catch let e as UserError {
            #expect(e.message.contains(victim))
        }
        #expect(!FileManager.default.fileExists(atPath: sink + "/out"))
        try Data(bytes).write(to: URL(fileURLWithPath: victim))
        // A newer spec version.
        let r = try ParquetFileReader(bytes: bytes)
        var opts = ParquetWriterOptions()
        opts.keyValueMetadata = r.keyValueMetadata.map { $0.key == "videoqos.spec_version" ? ($0.key, "2") : $0 }
        let newer = try writeParquet(schema: r.schema, columns: r.schema.indices.map { try r.column($0) }, options: opts)
        try Data(newer).write(to: URL(fileURLWithPath: victim))
        for compact in [false, true] {
            do {
                _ = try Self.reaggregate(sink: sink, tables: ["geo"], out: compact ? nil : sink + "/out", compact: compact)
                Issue.record("no error")
            } catch let e as UserError {
                #expect(e.message.contains(victim) && e.message.contains("spec_version=2"))
            }
        }
        #expect(!FileManager.default.fileExists(atPath: sink + "/out"))
        #expect(Inspector.parquetFiles(under: sink + "/geo") == files)
    }

    @Test func badArguments() throws {
        let f = try fx()
        #expect(throws: UserError.self) { try Self.reaggregate(sink: f.dir + "/w2m", tables: ["video"], grainMs: 420_000, out: f.dir + "/x") }
        #expect(throws: UserError.self) { try Self.reaggregate(sink: f.dir + "/w2m", tables: ["geo"], dims: ["city"], out: f.dir + "/x") }
        #expect(throws: UserError.self) { try Self.reaggregate(sink: f.dir + "/w2m", tables: ["sessions"], dims: [], out: f.dir + "/x") }
        #expect(throws: UserError.self) { try Self.reaggregate(sink: f.dir + "/nope", tables: ["video"]) }
        #expect(!FileManager.default.fileExists(atPath: f.dir + "/x"))
    }

    /// A roll-up written next to files a reader sums with it doubles every
    /// number: into the sink itself (its `overall` directory then held the
    /// 2-minute windows and their 1-hour sum), into one of its table
    /// directories (which then held another table's files), or into a
    /// directory that holds another sink's windows or another grain.
    @Test func aRollUpIsNotWrittenWhereItWouldBeCountedTwice() throws {
        let f = try fx()
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sink = dir + "/sink"
        try Self.copyTree(f.dir + "/w2m", sink)
        let before = Inspector.parquetFiles(under: sink).sorted()
        for (out, needle) in [(sink, "is the sink itself"), (sink + "/", "is the sink itself"),
                              (dir + "/elsewhere/../sink", "is the sink itself"),
                              (sink + "/video", "inside the sink's 'video' directory"),
                              (sink + "/overall/new/../x", "inside the sink's 'overall' directory"),
                              (sink + "/_qos/r", "inside the sink's '_qos' directory"),
                              (f.dir + "/w1h", "already holds other files of table overall")] {
            let e = #expect(throws: UserError.self, "\(out)") {
                try Self.reaggregate(sink: sink, tables: ["overall", "video"], out: out)
            }
            #expect(e?.message.contains(needle) == true, "\(out): \(e?.message ?? "")")
        }
        // Relative to the working directory, through a symbolic link: the same sink.
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: sink)
        #expect(throws: UserError.self) { try Self.reaggregate(sink: sink, tables: ["overall"], out: dir + "/link") }
        #expect(Inspector.parquetFiles(under: sink).sorted() == before, "nothing was written into the sink")
        // The default root, and a re-run of the same grain into its own root, are fine;
        // another grain into that root is not.
        _ = try Self.reaggregate(sink: sink, tables: ["overall"])
        _ = try Self.reaggregate(sink: sink, tables: ["overall"])
        _ = try Self.reaggregate(sink: sink, tables: ["overall"], out: dir + "/r1h")
        _ = try Self.reaggregate(sink: sink, tables: ["overall"], out: dir + "/r1h")
        let e = #expect(throws: UserError.self) {
            try Self.reaggregate(sink: sink, tables: ["overall"], grainMs: 86_400_000, out: dir + "/r1h")
        }
        #expect(e?.message.contains("_3600s_rollup.parquet") == true, "\(e?.message ?? "")")
        var o = ReaggregateOptions()
        o.sink = sink
        o.tables = ["overall"]
        o.zstdLevel = 99
        #expect(throws: UserError.self) { _ = try ReaggregateJob(o) }
    }

    @Test func timeRangeSelectsWholeOutputWindows() throws {
        let f = try fx()
        let out = f.dir + "/r-range"
        var o = ReaggregateOptions()
        o.sink = f.dir + "/w2m"
        o.tables = ["overall"]
        o.grainMs = 600_000
        o.fromMs = UTCTime.parse("2026-01-01T00:15:00Z")!
        o.toMs = UTCTime.parse("2026-01-01T00:30:00Z")!
        o.out = out
        _ = try ReaggregateJob(o).run()
        let names = Inspector.parquetFiles(under: out).map { $0.split(separator: "/").last! }
        #expect(names == ["overall_20260101T0010Z_600s_rollup.parquet", "overall_20260101T0020Z_600s_rollup.parquet"])
    }

    @Test func oneEntryDictionaryStringColumnsReadBack() throws {
        // Bit width 0 dictionary indices (one distinct value): every single-row file has them.
        for n in [1, 3, 9, 100] {
            let bytes = try writeParquet(schema: [.string("s", optional: false)],
                                         columns: [.strings([String?](repeating: "video-0", count: n))],
                                         options: ParquetWriterOptions())
            let r = try ParquetFileReader(bytes: bytes)
            #expect(try r.column(named: "s").stringValues == [String?](repeating: "video-0", count: n))
        }
    }

    @Test func parsesTimes() {
        #expect(UTCTime.parse("2026-01-01") == 1_767_225_600_000)
        #expect(UTCTime.parse("2026-01-01T00:02:00Z") == 1_767_225_720_000)
        #expect(UTCTime.parse("2026-01-01T01:00Z") == 1_767_229_200_000)
        #expect(UTCTime.parse("1767225600000") == 1_767_225_600_000)
        #expect(UTCTime.parse("2000-02-29T23:59:59Z") == 951_868_799_000)
        #expect(UTCTime.parse("2026-13-01") == nil && UTCTime.parse("yesterday") == nil && UTCTime.parse("2026-01-01T25:00Z") == nil)
        #expect(ReaggregateOptions.grainName(3_600_000) == "1h" && ReaggregateOptions.grainName(600_000) == "10m"
                && ReaggregateOptions.grainName(86_400_000) == "1d" && ReaggregateOptions.grainName(90_000) == "90s")
    }

    @Test func everyMetricColumnIsReadOrDerived() {
        let known = Set(TableReader.additiveColumns.map(\.name) + TableReader.quantileColumns.map(\.name))
            .union(TableReader.derivedColumns).union(["window_start", "window_end", "viewers_hll"])
        for t in MetricTable.allCases {
            for c in TableSchemas.metricColumns(t, DataSketchesKit.self) where !t.dimensions.contains(c.field.name) {
                #expect(known.contains(c.field.name), "\(t.name).\(c.field.name) is neither read nor recomputed")
            }
        }
    }
}
