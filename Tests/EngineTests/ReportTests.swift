import Foundation
import Testing
import TestSupport
@testable import Engine
import Generator
import Parquet
import QoSCore
import Sketches

/// `qos report`: the page's numbers against the tables of a replayed sink,
/// read here column by column with the Parquet reader alone (an oracle
/// independent of `TableReader` and `GroupMerger`).
@Suite(.serialized) struct ReportTests {
    final class Fixture: @unchecked Sendable {
        let dir: String
        let sink: String
        /// The report of the whole sink.
        var model: ReportModel!
        init() throws {
            dir = makeTemporaryDirectory("qos-report")
            var g = GeneratorOptions()
            g.seed = 11
            g.sessions = 300
            g.rate = 10
            g.lateFraction = 0.03
            g.duplicateFraction = 0.01
            g.malformedFraction = 0.005
            g.slowPop = "fastly/ams"
            g.failingPlayer = "shaka-player@4.7.11"
            let input = dir + "/in.ndjson"
            try writeGeneratedInput(g, to: input)
            sink = dir + "/out"
            var o = ReplayOptions()
            o.inputs = [input]
            o.sink = sink
            o.nowMs = { 1_767_225_600_000 + 86_400_000 }
            _ = try ReplayJob(o).run()
            var r = ReportOptions()
            r.sink = sink
            r.maxRows = 10_000
            model = try ReportBuilder.model(r)
        }
    }

    static let fixture: Result<Fixture, Error> = Result { try Fixture() }

    func fx() throws -> Fixture { try ReportTests.fixture.get() }

    /// Σ of an INT64 column and the distinct window starts, over every file of a table.
    struct Sums {
        var ints: [String: Int64] = [:]
        var hll = HLLSketch(lgK: 12)
        var startup = DDSketch(relativeAccuracy: 0.01)
        var perWindow: [Int64: Int64] = [:]
        var files = 0
        var lateFiles = 0
        var keyed: [String: Int64] = [:]
    }

    static func sums(_ dir: String, key: [String] = [], keyedColumn: String = "views") throws -> Sums {
        var s = Sums()
        for path in Inspector.parquetFiles(under: dir) {
            let r = try ParquetFileReader(bytes: Inspector.readFile(path))
            s.files += 1
            if r.metadataValue(forKey: "videoqos.kind")?.hasPrefix("late") == true { s.lateFiles += 1 }
            var cols: [String: [Int64]] = [:]
            for (i, f) in r.schema.enumerated() where f.physical == .int64 {
                if case .int64(let v) = try r.column(i) { cols[f.name] = v.map { $0 ?? 0 } }
            }
            for (name, v) in cols { s.ints[name, default: 0] += v.reduce(0, +) }
            if let views = cols["views"] {
                for (w, n) in zip(cols["window_start"]!, views) { s.perWindow[w / 1000, default: 0] += n }
            }
            if let i = r.columnIndex(named: "viewers_hll"), case .byteArray(let v) = try r.column(i) {
                for b in v { s.hll.merge(try HLLSketch(bytes: b!)) }
            }
            if let i = r.columnIndex(named: "startup_ms_sketch"), case .byteArray(let v) = try r.column(i) {
                for b in v { s.startup.merge(try DDSketch(protobuf: b!)) }
            }
            if !key.isEmpty {
                let dims = try key.map { try r.column(named: $0).stringValues!.map { $0! } }
                let v = cols[keyedColumn] ?? [Int64](repeating: 1, count: r.numRows)
                for i in 0..<r.numRows { s.keyed[dims.map { $0[i] }.joined(separator: "|"), default: 0] += v[i] }
            }
        }
        return s
    }

    func kpi(_ m: ReportModel, _ id: String) -> Double? { m.kpis.first { $0.id == id }?.value ?? nil }

    func table(_ m: ReportModel, _ id: String) -> ReportModel.Table? { m.tables.first { $0.id == id } }

    func number(_ c: ReportModel.Cell) -> Double? { if case .number(let v) = c { return v } else { return nil } }
    func text(_ c: ReportModel.Cell) -> String { if case .text(let v) = c { return v } else { return "" } }

    @Test func kpisEqualTheOverallTablesSums() throws {
        let f = try fx()
        let m = f.model!
        let s = try ReportTests.sums(f.sink + "/overall")
        #expect(s.lateFiles > 0, "the fixture must have late-delta files for the merge to be tested")
        let i = s.ints
        #expect(kpi(m, "views") == Double(i["views"]!))
        #expect(kpi(m, "plays") == Double(i["plays"]!))
        #expect(kpi(m, "vsf_rate") == Double(i["vsf"]!) / Double(i["views"]!))
        #expect(kpi(m, "ebvs_rate") == Double(i["ebvs"]!) / Double(i["views"]!))
        #expect(kpi(m, "vpf_rate") == Double(i["vpf"]!) / Double(i["plays"]!))
        #expect(kpi(m, "rebuffer_ratio") == Double(i["rebuffer_ms"]!) / Double(i["playing_ms"]! + i["rebuffer_ms"]!))
        #expect(kpi(m, "failed_rate") == Double(i["failed_requests"]!) / Double(i["requests"]!))
        #expect(kpi(m, "unique_viewers") == s.hll.estimate.rounded())
        #expect(kpi(m, "startup_p50") == s.startup.quantile(0.5))
        #expect(kpi(m, "startup_p95") == s.startup.quantile(0.95))
        #expect(i["vsf"]! > 0 && i["vpf"]! > 0 && i["failed_requests"]! > 0)
        // One point per window, each the sum of the window's files.
        #expect(m.points.count == s.perWindow.count)
        #expect(m.stepMs == m.grainMs && m.grainMs == 120_000)
        for p in m.points { #expect(p.values["views"] == Double(s.perWindow[p.start] ?? -1)) }
        let rejects = try ReportTests.sums(f.sink + "/rejects", key: ["reason"])
        #expect(kpi(m, "rejects") == Double(rejects.keyed.values.reduce(0, +)))
        #expect(kpi(m, "rejects")! > 0)
    }

    @Test func breakdownsEqualTheirTables() throws {
        let f = try fx()
        let m = f.model!
        for (id, dir, key) in [("cdn", "cdn", ["cdn", "pop"]), ("geo", "geo", ["country"]), ("video", "video", ["video_id"]),
                               ("device", "device", ["device_type"]), ("player", "device", ["player_name"])] {
            let want = try ReportTests.sums(f.sink + "/" + dir, key: key).keyed.filter { $0.value > 0 }
            let t = try #require(table(m, id))
            let vi = t.columns.firstIndex { $0.id == "views" }!
            var got: [String: Int64] = [:]
            for r in t.rows { got[r.prefix(key.count).map(text).joined(separator: "|")] = Int64(number(r[vi])!) }
            #expect(got.filter { $0.value > 0 } == want, "\(id)")
        }
        // Player × version from the sessions table: one session per row.
        let sessions = try ReportTests.sums(f.sink + "/sessions", key: ["player_name", "player_version"])
        let pv = try #require(table(m, "player_version"))
        var got: [String: Int64] = [:]
        for r in pv.rows { got[text(r[0]) + "|" + text(r[1])] = Int64(number(r[2])!) }
        #expect(got == sessions.keyed)
        // VSF and EBVS per closed session with a view_start (docs/semantics.md §7), read here
        // from the sessions files' boolean columns.
        var views: [String: Int], vsfs: [String: Int]
        (views, vsfs) = ([:], [:])
        for path in Inspector.parquetFiles(under: f.sink + "/sessions") {
            let r = try ParquetFileReader(bytes: Inspector.readFile(path))
            func col(_ n: String) throws -> [Bool] { guard case .boolean(let v) = try r.column(named: n) else { return [] }; return v.map { $0! } }
            let names = try r.column(named: "player_name").stringValues!, versions = try r.column(named: "player_version").stringValues!
            let missing = try col("missing_start"), vsf = try col("vsf")
            for i in 0..<r.numRows where !missing[i] {
                let k = names[i]! + "|" + versions[i]!
                views[k, default: 0] += 1
                if vsf[i] { vsfs[k, default: 0] += 1 }
            }
        }
        #expect(views.count > 1 && vsfs.values.reduce(0, +) > 0 && views.values.reduce(0, +) < Int(sessions.keyed.values.reduce(0, +)),
                "the fixture has sessions without a view_start and start failures")
        let vsfCol = pv.columns.firstIndex { $0.id == "vsf_rate" }!
        for r in pv.rows {
            let k = text(r[0]) + "|" + text(r[1])
            #expect(number(r[vsfCol]) == views[k].map { Double(vsfs[k] ?? 0) / Double($0) }, "\(k)")
        }
        // The broken player version is the worst by VPF among those with plays.
        let vpf = pv.columns.firstIndex { $0.id == "vpf_rate" }!
        let worst = pv.rows.filter { number($0[2])! >= 20 }.max { (number($0[vpf]) ?? 0) < (number($1[vpf]) ?? 0) }!
        #expect(text(worst[0]) + "@" + text(worst[1]) == "shaka-player@4.7.11")
        let rejects = try ReportTests.sums(f.sink + "/rejects", key: ["reason"])
        let rt = try #require(table(m, "rejects"))
        #expect(Dictionary(uniqueKeysWithValues: rt.rows.map { (text($0[0]), Int64(number($0[1])!)) }) == rejects.keyed)
        #expect(table(m, "cdn_edge") == nil, "no cdn_edge table in this sink: no section")
    }

    @Test func rangeSelectsWindowsByStart() throws {
        let f = try fx()
        var all = ReportOptions()
        all.sink = f.sink
        let full = f.model!
        let mid = full.points[full.points.count / 2].start
        var o = all
        o.fromMs = mid
        let part = try ReportBuilder.model(o)
        #expect(part.points.first?.start == mid)
        let want = full.points.filter { $0.start >= mid }.map { $0.values["views"]! }.reduce(0, +)
        #expect(kpi(part, "views") == want)
        o.fromMs = 0
        o.toMs = 1
        #expect(throws: UserError.self) { try ReportBuilder.model(o) }
    }

    @Test func longRangesAreDrawnAtACoarserStepWithExactMerges() throws {
        let f = try fx()
        var o = ReportOptions()
        o.sink = f.sink
        let full = f.model!
        o.maxPoints = 4
        let m = try ReportBuilder.model(o)
        #expect(m.points.count <= 4 && m.points.count > 1)
        #expect(m.stepMs % m.grainMs == 0 && m.stepMs > m.grainMs)
        #expect(m.points.map { $0.values["views"]! }.reduce(0, +) == kpi(full, "views"))
        for p in m.points { #expect(p.start % m.stepMs == 0) }
    }

    @Test func pageIsSelfContainedAndCarriesTheNumbers() throws {
        let f = try fx()
        var o = ReportOptions()
        o.sink = f.sink
        let out = f.dir + "/report.html"
        let summary = try ReportBuilder.write(o, to: out)
        #expect(summary.contains("wrote \(out)"))
        let html = try String(contentsOfFile: out, encoding: .utf8)
        let m = f.model!
        #expect(html.contains("data-kpi=\"views\" data-value=\"\(Int64(kpi(m, "views")!))\""))
        #expect(!html.contains("src=") && !html.contains("href=") && !html.contains("@import") && !html.contains("url("),
                "no external resource")
        for c in m.charts {
            #expect(html.contains("data-chart=\"\(c.id)\""))
            #expect(!html.contains("data-chart=\"\(c.id)\" data-points=\"0\""), "\(c.id) has data")
        }
        #expect(html.contains("prefers-color-scheme:dark"))
    }

    @Test func liveRoutesServeThePageAndWindows() throws {
        let f = try fx()
        let live = LiveReport(sink: f.sink, hours: 10_000)
        #expect(live.route("/")?.body.contains("no window written") == true, "before the first refresh")
        live.refresh()
        let page = try #require(live.route("/"))
        #expect(page.status == 200 && page.type.hasPrefix("text/html") && page.body.contains("data-live=\"1\""))
        let w = try #require(live.route("/api/windows?table=overall&from=0"))
        let json = try JSONSerialization.jsonObject(with: Data(w.body.utf8)) as! [String: Any]
        let rows = json["rows"] as! [[String: Any]]
        let s = try ReportTests.sums(f.sink + "/overall")
        #expect(rows.count == s.perWindow.count)
        #expect(rows.map { ($0["views"] as! NSNumber).int64Value }.reduce(0, +) == s.ints["views"]!)
        #expect(rows.map { ($0["requests"] as! NSNumber).int64Value }.reduce(0, +) == s.ints["requests"]!)
        // A table without segment columns has no segment numbers (they read as 0 before).
        let video = try #require(live.route("/api/windows?table=video&from=0"))
        let videoRows = (try JSONSerialization.jsonObject(with: Data(video.body.utf8)) as! [String: Any])["rows"] as! [[String: Any]]
        #expect(!videoRows.isEmpty && videoRows.allSatisfy { $0["requests"] == nil && $0["failed_requests"] == nil && $0["views"] != nil })
        let last = rows.map { ($0["window_start_ms"] as! NSNumber).int64Value }.max()!
        let newer = try #require(live.route("/api/windows?table=overall&from=\(last + 1)"))
        #expect(newer.body.contains("\"rows\":[\n]"))
        #expect(live.route("/api/windows?table=nope")?.status == 400)
        #expect(live.route("/api/windows?from=yesterday")?.status == 400)
        #expect(live.route("/metrics") == nil, "left to the metrics server")
        let status = try #require(live.route("/api/status"))
        #expect(status.body.hasPrefix("{\"counters\":{"))
    }

    /// A `cdn_edge` table (CDN access logs; columns as `TableSchemas.cdnEdgeColumns` writes them)
    /// becomes the PoP view: requests and errors summed, serve-time sketches merged, per cdn × pop.
    /// A sink with the test's `overall` table and two `cdn_edge` windows
    /// written by hand; returns it and the merged serve sketch of the first PoP.
    /// `lgK`, `accuracy`, `requests`: what a file not written by qos might hold.
    func edgeSink(_ name: String, lgK: Int = 12, accuracy: Double = 0.01,
                  requests: Int64 = 100, withOverall: Bool = true) throws -> (sink: String, serveAll: DDSketch) {
        let f = try fx()
        let sink = f.dir + "/" + name
        try FileManager.default.createDirectory(atPath: sink, withIntermediateDirectories: true)
        if withOverall {
            try FileManager.default.createSymbolicLink(atPath: sink + "/overall", withDestinationPath: f.sink + "/overall")
        }
        let w0: Int64 = 1_767_225_600_000
        var serveAll = DDSketch(relativeAccuracy: accuracy)
        for (i, (pops, slow)) in [(["ams", "fra"], 900.0), (["ams", "lhr"], 40.0)].enumerated() {
            let start = w0 + Int64(i) * 120_000
            var serve: [[UInt8]] = [], hll: [[UInt8]] = []
            for (j, _) in pops.enumerated() {
                var d = DDSketch(relativeAccuracy: accuracy)
                for k in 0..<50 { _ = d.add(j == 0 ? slow + Double(k) : 30 + Double(k)) }
                if j == 0 { serveAll.merge(d) }
                serve.append(d.protobufBytes())
                var h = HLLSketch(lgK: lgK)
                for k in 0..<(10 + j) { h.update("10.0.\(i).\(k)") }
                hll.append(h.compactBytes())
            }
            let n = pops.count
            func ints(_ v: [Int64]) -> ParquetColumnData { .int64(v.map { Optional($0) }) }
            func strs(_ v: [String]) -> ParquetColumnData { .byteArray(v.map { Optional(Array($0.utf8)) }) }
            let schema: [ParquetField] = [
                ParquetField(name: "window_start", physical: .int64, logical: .timestampMicrosUTC, optional: false),
                ParquetField(name: "window_end", physical: .int64, logical: .timestampMicrosUTC, optional: false),
                .string("cdn", optional: false), .string("account", optional: false), .string("owner", optional: false),
                .string("pop", optional: false)]
                + ["requests", "http_errors", "http_5xx", "slow_responses", "bytes_out", "cache_hits", "cache_misses"].map {
                    ParquetField(name: $0, physical: .int64, optional: false) }
                + [ParquetField(name: "serve_ms_sketch", physical: .byteArray, optional: false),
                   ParquetField(name: "clients_hll", physical: .byteArray, optional: false)]
            let cols: [ParquetColumnData] = [
                ints(Array(repeating: start * 1000, count: n)), ints(Array(repeating: (start + 120_000) * 1000, count: n)),
                strs(Array(repeating: "edgecast", count: n)), strs(Array(repeating: "acct", count: n)),
                strs(Array(repeating: "", count: n)), strs(pops),
                ints([requests, 200]), ints([30, 2]), ints([20, 0]), ints([50, 0]), ints([1000, 2000]), ints([60, 190]), ints([40, 10]),
                .byteArray(serve.map { Optional($0) }), .byteArray(hll.map { Optional($0) })]
            var o = ParquetWriterOptions()
            o.keyValueMetadata = [("videoqos.spec_version", "1"), ("videoqos.table", "cdn_edge")]
            let dir = FileSink(root: sink).directory(table: "cdn_edge", windowStartMs: start)
            try FileSink(root: sink).publish(try writeParquet(schema: schema, columns: cols, options: o), dir: dir,
                                             name: "cdn_edge_\(i)_base.parquet")
        }
        return (sink, serveAll)
    }

    @Test func cdnEdgeTableBecomesThePoPView() throws {
        let (sink, serveAll) = try edgeSink("edge-sink")
        var o = ReportOptions()
        o.sink = sink
        let m = try ReportBuilder.model(o)
        let t = try #require(table(m, "cdn_edge"))
        let rows = Dictionary(uniqueKeysWithValues: t.rows.map { (text($0[0]) + "/" + text($0[1]), $0) })
        let ams = try #require(rows["edgecast/ams"])
        let col = { (id: String) in t.columns.firstIndex { $0.id == id }! }
        #expect(number(ams[col("requests")]) == 200)
        #expect(number(ams[col("http_error_rate")]) == 60.0 / 200)
        #expect(number(ams[col("cache_hit_ratio")]) == 120.0 / 200)
        #expect(number(ams[col("serve_p95")]) == serveAll.quantile(0.95))
        #expect(number(rows["edgecast/lhr"]![col("requests")]) == 200)
        #expect(rows.count == 3)
    }

    /// A sink of CDN access logs alone (`qos replay --format edgecast`) has
    /// no `overall` table: the page is the PoP view over `cdn_edge`'s windows.
    @Test func aSinkOfCdnLogsAloneIsReported() throws {
        var o = ReportOptions()
        o.sink = try edgeSink("edge-only", withOverall: false).sink
        let m = try ReportBuilder.model(o)
        #expect(m.windows == 2 && m.files == 2 && m.grainMs == 120_000)
        #expect(m.firstStart == 1_767_225_600_000 && m.lastEnd == 1_767_225_600_000 + 240_000)
        let t = try #require(table(m, "cdn_edge"))
        #expect(t.rows.count == 3)
        // No beacon numbers to show: no tiles, charts or beacon breakdowns.
        #expect(m.kpis.isEmpty && m.charts.isEmpty && m.tables.map(\.id).allSatisfy { ["cdn_edge", "rejects"].contains($0) })
        let html = ReportHTML.page(m)
        #expect(html.contains("No beacon tables in this sink") && !html.contains("<h2>Totals</h2>"))
    }

    /// A count axis is labelled in whole numbers, however small its values.
    @Test func countAxesHaveWholeSteps() {
        for (v, f) in [(0.0, ReportModel.Format.count), (1, .count), (3, .count), (2, .ms), (7, .bytes)] {
            let (top, step) = ReportSVG.niceScale(v, f)
            #expect(step >= 1 && step == step.rounded() && top >= v, "\(v) \(f)")
        }
        #expect(ReportSVG.niceScale(0.004, .percent).step < 0.01)
    }

    /// "N files" counts files, not the windows they hold: a late-delta file
    /// of several windows is one file.
    @Test func theFileCountIsOfFiles() throws {
        let f = try fx()
        var all = 0, multi = false
        for t in ReportReader.tables {
            for p in try ReportReader.files(sink: f.sink, table: t, fromMs: .min, toMs: .max) {
                all += 1
                if try ReportReader.read(p, table: t).count > 1 { multi = true }
            }
        }
        #expect(multi, "the fixture has a file of several windows")
        #expect(f.model.files == all)
    }

    /// A `cdn_edge` file whose sketches cannot be merged into ours (another
    /// HLL lg_k, another DDSketch accuracy) or whose counter is negative is
    /// refused with its path, as `qos inspect` and `qos reaggregate` refuse it.
    @Test(arguments: [("lgk", 10, 0.01, Int64(100), "lg_k 10"), ("accuracy", 12, 0.02, 100, "relative accuracy"),
                      ("negative", 12, 0.01, -5, "requests is negative")])
    func aCdnEdgeFileQosCouldNotHaveWrittenIsRefused(_ name: String, _ lgK: Int, _ accuracy: Double,
                                                     _ requests: Int64, _ says: String) throws {
        var o = ReportOptions()
        o.sink = try edgeSink("edge-" + name, lgK: lgK, accuracy: accuracy, requests: requests).sink
        do {
            _ = try ReportBuilder.model(o)
            Issue.record("\(name): no error")
        } catch {
            let text = "\(error)"
            #expect(text.contains(says) && text.contains("cdn_edge_0_base.parquet"), "\(text)")
        }
    }

    /// Numbers for people, and no trap on a saturated sum (Int64.max).
    @Test func numbersAreFormattedForPeople() {
        #expect(ReportHTML.count(1_234_567) == "1,234,567")
        #expect(ReportHTML.ms(850) == "850 ms" && ReportHTML.ms(1250) == "1.25 s")
        #expect(ReportHTML.percent(0.0123) == "1.23 %" && ReportHTML.percent(0.00045) == "0.045 %")
        #expect(ReportHTML.bytes(2_500_000) == "2.5 MB")
        #expect(ReportHTML.count(Double(Int64.max)) == String(Double(Int64.max)))
        #expect(!ReportHTML.fixed(Double(Int64.max), 2).isEmpty)
        #expect(ReportHTML.format(nil, .percent) == "–")
    }

    /// A week of 2-minute windows with many groups stays far below 5 MB: the
    /// series is drawn at a coarser step, tables keep their top rows.
    @Test func aWeekOfWindowsStaysSmall() throws {
        var acc = ReportAccumulator(ReportOptions())
        let t0: Int64 = 1_767_225_600_000, w: Int64 = 120_000
        for i in 0..<5040 {
            let s = t0 + Int64(i) * w
            var m = ReportMetrics()
            m.views = 100 + Int64(i % 50)
            m.plays = 90
            m.vsf = 2
            m.playingMs = 1_000_000
            m.rebufferMs = Int64(i % 7) * 1000
            m.segment.requests = 1000
            m.segment.failedRequests = Int64(i % 11)
            m.startupSketch.add(Double(500 + i % 300))
            m.viewers.insert("v\(i)")
            acc.add(.metric(.overall, start: s, end: s + w, rows: [MetricRow(start: s, end: s + w, dims: [], m: m)]))
            var rows: [MetricRow<DataSketchesKit>] = []
            for v in 0..<40 {
                var vm = ReportMetrics()
                vm.views = Int64(v + 1)
                rows.append(MetricRow(start: s, end: s + w, dims: ["video-\((i * 40 + v) % 5000)"], m: vm))
            }
            acc.add(.metric(.video, start: s, end: s + w, rows: rows))
        }
        let m = ReportModel(acc)
        #expect(m.points.count <= 600 && m.windows == 5040)
        let html = ReportHTML.page(m)
        #expect(html.utf8.count < 5_000_000, "\(html.utf8.count) bytes")
        #expect(table(m, "video")!.rows.count == 100 && table(m, "video")!.groups == 5000)
    }
}
