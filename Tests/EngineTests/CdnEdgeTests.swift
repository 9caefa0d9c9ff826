import Foundation
import Testing
@testable import Engine
import Parquet
import QoSCore
import Sketches

/// CDN access logs → `cdn_edge` (README "Input: CDN access logs"): the
/// EdgeCast parser on hand-written records, then the original CDN-quality
/// pipeline's own fixtures through `qos replay`, checkpoints, late deltas and
/// `qos reaggregate`.
@Suite struct CdnEdgeTests {
    /// The fixtures live outside the repository (`../shared/data/cdn-edgecast`
    /// next to the checkout, or `$QOS_SHARED_DATA/cdn-edgecast`).
    static let fixtures: String = {
        if let d = ProcessInfo.processInfo.environment["QOS_SHARED_DATA"] { return d + "/cdn-edgecast" }
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return repo.deletingLastPathComponent().appendingPathComponent("shared/data/cdn-edgecast").path
    }()
    static let haveFixtures = FileManager.default.fileExists(atPath: fixtures + "/cdn_log.json")

    static let guid1 = "ba63d50dca2149d9a23b30587c75465d"
    static let guid2 = "e6cf0c55dac249f0a0f72e7c72e6f6cb"

    func parse(_ s: String) -> [CdnLogItem] {
        var out: [CdnLogItem] = []
        let p = EdgecastParser()
        Array(s.utf8).withUnsafeBytes { b in p.parse(b) { out.append($0) } }
        return out
    }

    func records(_ items: [CdnLogItem]) -> [CdnLogRecord] {
        items.compactMap { if case .record(let r) = $0 { return r } else { return nil } }
    }

    func rejects(_ items: [CdnLogItem]) -> [String] {
        items.compactMap { if case .reject(let r, _) = $0 { return r.code } else { return nil } }
    }

    static let record = #"{"timestamp":1631233904.999,"pop":"dce","status_code":404,"write_time":0.25,"bytes_out":10,"cache_status":"TCP_EXPIRED_MISS","rewritten_path":"/80C078/o/slices/x/ba63d50dca2149d9a23b30587c75465d/56dce28cdd2940a1bd268be0b5c265bc/a.ts","client_ip":"2001:db8::1","last_byte_served":0,"extra":{"nested":[1,2]}}"#

    @Test func oneRecordReadsEveryFieldInItsUnit() {
        let items = parse(Self.record)
        #expect(rejects(items).isEmpty)
        let r = records(items)
        #expect(r == [CdnLogRecord(timeMs: 1_631_233_904_000, cdn: "edgecast", account: "80C078", owner: Self.guid1, pop: "dce",
                                   status: 404, serveMs: 250, ttfbMs: nil, bytesOut: 10, cache: .miss,
                                   clientIP: "2001:db8::1", incomplete: true)])
        // The time truncates from its digits in every number form (with an
        // exponent it went through a Double, which rounded into the next second).
        for t in ["1631233904.99999999999", "1.63123390499999999999e9", "163123390499999999999e-11"] {
            let one = records(parse(#"{"timestamp":\#(t),"status_code":200}"#))
            #expect(one.map(\.timeMs) == [1_631_233_904_000], "\(t)")
        }
    }

    /// A key written with escapes names the same field (JSON compares
    /// keys by their characters, not their spelling).
    @Test func escapedKeysNameTheSameFields() {
        let escaped = #"{"t\u0069mestamp":1631233904.999,"pop":"dce","status\u005fcode":404,"write_time":0.25,"bytes\u005Fout":10,"cache_status":"TCP_EXPIRED_MISS","rewritten_path":"/80C078/o/slices/x/ba63d50dca2149d9a23b30587c75465d/56dce28cdd2940a1bd268be0b5c265bc/a.ts","client_ip":"2001:db8::1","last_byte_served":0,"extra":{"nested":[1,2]}}"#
        let items = parse(escaped)
        #expect(rejects(items).isEmpty)
        #expect(records(items) == records(parse(Self.record)))
        // An escape that does not spell the key is another key.
        #expect(rejects(parse(#"{"timestamp":1631233904,"status\u0060code":200}"#)) == ["missing_field:status_code"])
    }

    @Test func arrayAndBatchOfStringsGiveTheSameRecords() {
        let escaped = Self.record.replacingOccurrences(of: "\"", with: "\\\"")
        let array = records(parse("[\(Self.record), \(Self.record)]"))
        let batch = records(parse("[\"\(escaped)\\n\",\"\(escaped)\"]"))
        #expect(array.count == 2)
        #expect(batch == array)
    }

    @Test func malformedRecordsAreRejectedWithAReason() {
        #expect(rejects(parse(#"{"timestamp":1631233904.1,"pop":"dce"}"#)) == ["missing_field:status_code"])
        #expect(rejects(parse(#"{"timestamp":null,"status_code":200}"#)) == ["missing_field:timestamp"])
        #expect(rejects(parse(#"{"status_code":null,"timestamp":1631233904}"#)) == ["missing_field:status_code"])
        #expect(rejects(parse(#"{"status_code":"200","timestamp":1631233904}"#)) == ["wrong_type:status_code"])
        #expect(rejects(parse(#"sdasdasdasdasdasd}asdasdasdasdasd"#)) == ["invalid_json"])
        #expect(rejects(parse(#"{"status_code":200,"timestamp":1631233904"#)) == ["invalid_json"])
        #expect(rejects(parse("[]")) == ["empty_batch"])
        #expect(rejects(parse("[1]")) == ["not_an_object"])
        // One broken string of a batch rejects that record only.
        let items = parse(#"["{\"status_code\":200,\"timestamp\":1631233904}", "{\"status_code:200}"]"#)
        #expect(records(items).count == 1)
        #expect(rejects(items) == ["invalid_json"])
    }

    @Test func statusZeroAndAbsentOptionalFieldsAreKept() {
        let r = records(parse(#"{"timestamp":1631233904,"status_code":0,"pop":null,"write_time":null}"#))
        #expect(r == [CdnLogRecord(timeMs: 1_631_233_904_000, cdn: "edgecast", status: 0)])
    }

    @Test func statusClassesCacheAndSlowFollowTheTableRules() {
        var m = CdnEdgeMetrics<DataSketchesKit>()
        let rows: [(Int32, Double?, CdnLogRecord.CacheOutcome, Bool?)] =
            [(0, nil, .other, nil), (200, 200, .hit, false), (206, 200.5, .hit, true), (304, 1, .miss, nil),
             (404, 0, .miss, nil), (503, 5000, .other, nil)]
        for (status, serve, cache, incomplete) in rows {
            m.add(CdnLogRecord(timeMs: 0, cdn: "x", status: status, serveMs: serve, bytesOut: 3, cache: cache,
                               clientIP: "10.0.0.\(status % 7)", incomplete: incomplete), slowMs: 200)
        }
        #expect([m.requests, m.httpErrors, m.http2xx, m.http3xx, m.http4xx, m.http5xx] == [6, 3, 2, 1, 1, 1])
        #expect([m.slowResponses, m.bytesOut, m.cacheHits, m.cacheMisses, m.incompleteResponses] == [2, 18, 2, 2, 1])
        #expect(m.serveSketch.count == 5)
        #expect(m.ttfbSketch.isEmpty)
        #expect(EdgecastParser.cacheOutcome("TCP_PARTIAL_HIT") == .hit)
        #expect(EdgecastParser.cacheOutcome("TCP_CLIENT_REFRESH_MISS") == .miss)
        #expect(EdgecastParser.cacheOutcome("CONFIG_NOCACHE") == .other)
    }

    @Test func ownerIsTheFirstGuidPairBetweenTheFirstTwoSlices() {
        func owner(_ p: String) -> String { EdgecastParser.pathParts(p).owner }
        let a = "0123456789abcdef0123456789abcdef", b = "fedcba9876543210fedcba9876543210"
        #expect(owner("/A1/x/slices/\(a)/\(b)/f.ts") == a)
        #expect(owner("/A1/x/slices/static/static.vtt") == "")
        #expect(owner("/A1/origin-default/ichnaea/u.js") == "")
        #expect(owner("/A1/\(a)/\(b)/slices/x.ts") == "")  // before the first /slices
        #expect(owner("/A1/slices/x/slices/\(a)/\(b)/f.ts") == "")  // after the second
        #expect(owner("/A1/slices/\(a)/\(b)") == "")  // no closing slash
        #expect(EdgecastParser.pathParts("/80C078/origin/x").account == "80C078")
        #expect(EdgecastParser.pathParts("").account == "")
    }

    @Test func mutatedRecordsNeverTrapAndRejectRangesStayInTheMessage() {
        let escaped = Self.record.replacingOccurrences(of: "\"", with: "\\\"")
        let seeds = [Self.record, "[\(Self.record),\(Self.record)]", "[\"\(escaped)\\n\",\"\(escaped)\"]"].map { Array($0.utf8) }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 11
        }
        let parser = EdgecastParser()
        var recordsSeen = 0, rejectsSeen = 0
        for _ in 0..<20_000 {
            var m = seeds[Int(next() % UInt64(seeds.count))]
            for _ in 0...(next() % 3) {
                guard !m.isEmpty else { break }
                let i = Int(next() % UInt64(m.count))
                switch next() % 3 {
                case 0: m[i] = UInt8(truncatingIfNeeded: next())
                case 1: m.remove(at: i)
                default: m.insert(Array("\"{}[],:0.-e\\".utf8)[Int(next() % 12)], at: i)
                }
            }
            m.withUnsafeBytes { b in
                parser.parse(b) { item in
                    switch item {
                    case .record(let r):
                        recordsSeen += 1
                        #expect(r.timeMs % 1000 == 0)
                    case .reject(_, let range):
                        rejectsSeen += 1
                        #expect(range.lowerBound >= 0 && range.upperBound <= b.count)
                    }
                }
            }
        }
        #expect(recordsSeen > 0 && rejectsSeen > 0)
    }

    // MARK: The original pipeline's fixtures through `qos replay`

    struct Table { var rows: [CdnEdgeRow<DataSketchesKit>]; var rejects: [String] }

    func replay(_ files: [String], window: Int64 = 60_000, sink: String? = nil) throws -> (String, ReplaySummary) {
        let dir = sink ?? NSTemporaryDirectory() + "qos-cdn-\(UUID().uuidString)"
        var o = ReplayOptions()
        o.inputs = files.map { Self.fixtures + "/" + $0 }
        o.sink = dir
        o.config.windowMs = window
        o.format = try RecordFormats.named("edgecast")
        let s = try ReplayJob(o).run()
        return (dir, s)
    }

    func read(_ sink: String, table: String = "cdn_edge") throws -> [CdnEdgeRow<DataSketchesKit>] {
        try Inspector.parquetFiles(under: sink + "/" + table).flatMap { try TableReader.readCdnEdgeFile($0).1 }
    }

    func rejectReasons(_ sink: String) throws -> [String] {
        try Inspector.parquetFiles(under: sink + "/rejects").flatMap { f -> [String] in
            let r = try ParquetFileReader(bytes: Inspector.readFile(f))
            return (try r.column(named: "reason").stringValues ?? []).compactMap { $0 }
        }
    }

    func totals(_ rows: [CdnEdgeRow<DataSketchesKit>]) -> (Int64, Int64, Int64) {
        (rows.reduce(0) { $0 + $1.m.requests }, rows.reduce(0) { $0 + $1.m.httpErrors },
         rows.reduce(0) { $0 + $1.m.slowResponses })
    }

    @Test(.enabled(if: haveFixtures), arguments: ["cdn_log.json", "cdn_log_batch.json"])
    func fixtureGivesSixOwnerPopRows(_ file: String) throws {
        let (sink, _) = try replay([file])
        let rows = try read(sink)
        #expect(rows.count == 6)
        #expect(totals(rows) == (9, 0, 1))
        #expect(Set(rows.map(\.start)) == [1_631_233_860_000])
        var byOwner: [String: Int64] = [:]
        for r in rows { byOwner[r.key.owner, default: 0] += r.m.requests }
        #expect(byOwner == [Self.guid1: 2, Self.guid2: 4, "": 3])
        let slow = rows.filter { $0.m.slowResponses > 0 }.map { [$0.key.owner, $0.key.pop] }
        #expect(slow == [[Self.guid2, "dce"]])
        #expect(rows.allSatisfy { $0.key.account == "80C078" && $0.key.cdn == "edgecast" })
        #expect(rows.reduce(0) { $0 + $1.m.cacheHits } == 6)
        #expect(rows.reduce(0) { $0 + $1.m.cacheMisses } == 3)
        #expect(try rejectReasons(sink).isEmpty)
    }

    @Test(.enabled(if: haveFixtures)) func brokenRecordIsOneRejectAndTheRestCount() throws {
        let (sink, summary) = try replay(["cdn_log_broken.json"])
        let rows = try read(sink)
        #expect(rows.count == 5)
        #expect(totals(rows) == (8, 0, 1))
        #expect(!rows.contains { $0.key.owner == Self.guid1 && $0.key.pop == "dce" })
        #expect(try rejectReasons(sink) == ["invalid_json"])
        #expect(summary.counters.rejected == ["invalid_json": 1])
    }

    @Test(.enabled(if: haveFixtures)) func notJsonGivesNoRowsAndOneReject() throws {
        let (sink, _) = try replay(["cdn_log_broken_json.json"])
        #expect(try read(sink).isEmpty)
        #expect(try rejectReasons(sink) == ["invalid_json"])
    }

    // MARK: Checkpoints, late deltas, roll-ups

    func fixtureRecords() throws -> [CdnLogRecord] {
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/cdn_log.json")))
        return bytes.split(separator: 0x0A).flatMap { line in records(parse(String(decoding: line, as: UTF8.self))) }
    }

    func rowsOf(_ windows: [WindowState<DataSketchesKit>]) -> [[String]: CdnEdgeMetrics<DataSketchesKit>] {
        var out: [[String]: CdnEdgeMetrics<DataSketchesKit>] = [:]
        for w in windows {
            for (k, m) in zip(w.cdnEdge.keys, w.cdnEdge.metrics) { out[["\(w.start)"] + k.values, default: .init()].merge(m) }
        }
        return out
    }

    @Test(.enabled(if: haveFixtures)) func snapshotRestoresCdnEdgeStateExactly() throws {
        let recs = try fixtureRecords()
        var config = EngineConfig()
        config.windowMs = 60_000
        let now: Int64 = 1_631_233_904_000 + 1000
        let whole = QoSEngine<DataSketchesKit>(config: config)
        let cut = QoSEngine<DataSketchesKit>(config: config)
        for (i, r) in recs.enumerated() {
            whole.apply(r, partition: 0, source: .memory(name: "t", partition: 0, index: Int64(i)), nowMs: now)
        }
        for (i, r) in recs.prefix(5).enumerated() {
            cut.apply(r, partition: 0, source: .memory(name: "t", partition: 0, index: Int64(i)), nowMs: now)
        }
        let bytes = cut.snapshot(partition: 0)
        let restored = QoSEngine<DataSketchesKit>(config: config)
        try restored.restore(partition: 0, from: bytes)
        #expect(restored.snapshot(partition: 0) == bytes)
        for (i, r) in recs.dropFirst(5).enumerated() {
            restored.apply(r, partition: 0, source: .memory(name: "t", partition: 0, index: Int64(i + 5)), nowMs: now)
        }
        let a = rowsOf(whole.finish()), b = rowsOf(restored.finish())
        #expect(a.count == 6)
        #expect(a == b)
    }

    @Test func snapshotWithoutCdnStateHasNoCdnSection() throws {
        // A beacon-only partition's snapshot flags no cdn_edge section (version 3;
        // version 2 ended before it), then lists no closed sessions.
        let e = QoSEngine<DataSketchesKit>()
        let bytes = e.snapshot(partition: 3)
        var r = StateReader(bytes, end: bytes.count - 4)
        for _ in 0..<8 { _ = try r.uint() }
        #expect(try r.int() == 3)
        _ = try r.int(); _ = try r.int()
        #expect(try r.count() == 0)  // windows
        #expect(try r.count() == 0)  // sessions
        #expect(try r.count() == 0)  // rejects
        #expect(try r.bool() == false)  // no cdn_edge section
        #expect(try r.count() == 0)  // closed sessions
        #expect(r.atEnd)
    }

    @Test func recordsForAWrittenWindowGoToALateDelta() throws {
        var config = EngineConfig()
        config.windowMs = 60_000
        config.latenessMs = 0
        let e = QoSEngine<DataSketchesKit>(config: config)
        let t0: Int64 = 1_700_000_000_000
        func rec(_ t: Int64, _ status: Int32) -> CdnLogRecord {
            CdnLogRecord(timeMs: t, cdn: "edgecast", pop: "p", status: status, serveMs: 10, clientIP: "1.2.3.4")
        }
        let src = SourcePosition.memory(name: "t", partition: 0, index: 0)
        e.apply(rec(t0, 200), partition: 0, source: src, nowMs: t0)
        e.apply(rec(t0 + 120_000, 200), partition: 0, source: src, nowMs: t0 + 120_000)
        let first = e.flush(watermark: e.replayWatermark)
        #expect(first.map(\.isDelta) == [false])
        e.apply(rec(t0 + 1000, 503), partition: 0, source: src, nowMs: t0 + 120_000)
        #expect(e.counters.lateEvents == 1)
        let late = e.flush(watermark: e.replayWatermark).filter(\.isDelta)
        #expect(late.count == 1)
        #expect(late[0].start == config.windowStart(t0))
        #expect(late[0].cdnEdge.metrics.map(\.http5xx) == [1])
        #expect(late[0].cdnEdge.metrics.map(\.httpErrors) == [1])
    }

    /// CDN log lines over several windows in two partitions, some late.
    static func cdnSource(partitions: Int = 2, perPartition: Int = 3000) -> MemoryRecordSource {
        let src = MemoryRecordSource(name: "cdnlogs", partitions: partitions)
        let guids = ["0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"]
        let statuses = [200, 200, 206, 304, 404, 503, 0]
        for p in 0..<partitions {
            for i in 0..<perPartition {
                var t = Double(DriverTests.start) / 1000 + Double(i) * 0.7 + Double(p) * 0.3
                if i % 97 == 50 { t -= 200 }  // behind a written window: a late delta
                let path = i % 5 == 0 ? "/AB12/static/x.js" : "/AB12/o/slices/\(guids[i % 2])/\(guids[(i + 1) % 2])/s\(i).ts"
                let line = #"{"timestamp":\#(t),"pop":"p\#(i % 3)","status_code":\#(statuses[i % statuses.count]),"write_time":\#(Double(i % 400) / 1000),"bytes_out":\#(i * 13),"cache_status":"\#(i % 4 == 0 ? "TCP_MISS" : "TCP_HIT")","rewritten_path":"\#(path)","client_ip":"10.0.\#(p).\#(i % 211)","last_byte_served":\#(i % 9 == 0 ? 0 : 1)}"#
                src.append(Array(line.utf8), partition: Int32(p))
            }
        }
        return src
    }

    func startCdn(_ h: DriverTests.Harness, _ src: MemoryRecordSource) throws -> StreamDriver {
        h.driver = try StreamDriver(h.options, format: RecordFormats.named("edgecast"), clock: h.clock)
        try h.driver.store.openState(accept: false, log: { _ in })
        try h.driver.attach(src)
        return h.driver
    }

    /// The crashed run on a local directory and on s3:// (moto): a crash
    /// between the commit point and the publish is finished by the next start.
    @Test(arguments: StorageUnderTest.all)
    func qosRunCommitsCdnEdgeExactlyOnceAcrossACrash(_ storage: StorageUnderTest) throws {
        let dir = DriverTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Reference: one uninterrupted run, checkpointed after the same poll.
        let ref = Self.cdnSource()
        let hr = try DriverTests.Harness(sink: dir + "/reference")
        let dr = try startCdn(hr, ref)
        ref.assign([0, 1])
        var polls = 0
        repeat {
            try dr.step()
            polls += 1
            if polls == 4 { try dr.checkpoint(reason: "test") }
        } while ref.lag().values.contains { $0 > 0 } || !ref.pending.isEmpty
        try dr.finish()

        struct Crash: Error {}
        let crashed = try storage.make()
        func harness() throws -> DriverTests.Harness {
            let h = try DriverTests.Harness(sink: crashed.root)
            if storage == .s3 { h.options.environment = crashed.environment }
            return h
        }
        let src = Self.cdnSource()
        let h = try harness()
        let d = try startCdn(h, src)
        d.epochCommit.afterCommit = { throw Crash() }
        src.assign([0, 1])
        for _ in 0..<4 { try d.step() }
        #expect(throws: Crash.self) { try d.checkpoint(reason: "test") }
        #expect(try crashed.visible().isEmpty)
        // A new process rolls the epoch forward, restores the partitions' cdn_edge state and continues.
        let again = DriverTests.reopen(src)
        let h2 = try harness()
        let d2 = try startCdn(h2, again)
        again.assign([0, 1])
        try h2.drain(again)
        try d2.finish()

        let want = try DriverTests.visible(dir + "/reference"), got = try crashed.visible()
        #expect(want.keys.contains { $0.hasPrefix("cdn_edge/") && $0.contains("_late") })
        #expect(want.keys.sorted() == got.keys.sorted())
        for (path, bytes) in want { #expect(got[path] == bytes, "\(path) differs") }
        // Every record counted once: the visible cdn_edge files hold all 6000.
        let rows = try got.filter { $0.key.hasPrefix("cdn_edge/") }
            .flatMap { try TableReader.readCdnEdgeFile($0.key, bytes: Array($0.value)).1 }
        #expect(rows.reduce(0) { $0 + $1.m.requests } == 6000)
    }

    /// Late deltas of `cdn_edge` are one file per hour directory holding
    /// several windows, and the daemon's compaction merges an hour of them
    /// per window (README "Late data and compaction"): totals and every
    /// window × group equal the files before, and an hour is one file.
    @Test func lateDeltasAndCompactionKeepEveryCdnEdgeWindow() throws {
        let dir = DriverTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = Self.cdnSource()
        let h = try DriverTests.Harness(sink: dir)
        let d = try startCdn(h, src)
        src.assign([0, 1])
        for _ in 0..<4 { try d.step() }
        try d.checkpoint(reason: "test")  // windows written: later records behind them are late
        try h.drain(src)
        try d.finish()
        let lateFiles = Inspector.parquetFiles(under: dir + "/cdn_edge").filter { $0.contains("_late") }
        #expect(!lateFiles.isEmpty)
        func totals(_ rows: [CdnEdgeRow<DataSketchesKit>]) -> [String: [Int64]] {
            var out: [String: [Int64]] = [:]
            for r in rows {
                var sums = out["\(r.start)|\(r.end)|\(r.key.values)", default: []]
                var k = 0
                var m = r.m
                m.visitCounters { v in
                    if sums.count <= k { sums.append(0) }
                    sums[k] += v
                    k += 1
                }
                out["\(r.start)|\(r.end)|\(r.key.values)"] = sums
            }
            return out
        }
        let before = try read(dir)
        #expect(before.reduce(0) { $0 + $1.m.requests } == 6000)
        let hours = Set(Inspector.parquetFiles(under: dir + "/cdn_edge").map {
            $0.dropFirst(dir.count + 1).split(separator: "/").dropLast().joined(separator: "/")
        })
        // Hour directories holding more than one file (a base file and the
        // late deltas; the daemon already wrote an epoch's windows of one
        // hour as one base file) are compacted to one file of their windows.
        let several = hours.filter { Inspector.parquetFiles(under: dir + "/" + $0).count > 1 }
        #expect(!several.isEmpty)
        for rel in several.sorted() { #expect(try d.compactor.compact(rel, nowMs: h.clock.wallMs())) }
        for rel in hours {
            let files = Inspector.parquetFiles(under: dir + "/" + rel)
            #expect(files.count == 1)
            if several.contains(rel) {
                #expect(try files.allSatisfy { try TableReader.readCdnEdgeFile($0).0.isMultiWindow })
            }
        }
        let after = try read(dir)
        #expect(totals(after) == totals(before))
        #expect(after.count == Set(before.map { "\($0.start)|\($0.key.values)" }).count)
    }

    @Test(.enabled(if: haveFixtures)) func reaggregateRollsCdnEdgeUpBySketchMerge() throws {
        let (sink, _) = try replay(["cdn_log.json"])
        // A second replay's late-looking share in the same sink: another file of the same window.
        _ = try replay(["cdn_log_batch.json"], sink: sink)
        var o = ReaggregateOptions()
        o.sink = sink
        o.tables = ["cdn_edge"]
        o.grainMs = 3_600_000
        o.dims = ["pop"]
        _ = try ReaggregateJob(o).run()
        let rolled = try read(o.outputRoot)
        #expect(rolled.map(\.key.pop) == ["dce", "mic"])
        #expect(rolled.map(\.m.requests) == [10, 8])
        #expect(rolled.allSatisfy { $0.key.owner == "" && $0.start == 1_631_232_000_000 })
        // Sketch merge: the same clients twice count once.
        let source = try read(sink)
        for pop in ["dce", "mic"] {
            var hll = HLLSketch(lgK: SketchParameters.hllLgK)
            for r in source where r.key.pop == pop { hll.merge(r.m.clients.hll) }
            #expect(rolled.first { $0.key.pop == pop }!.m.clients.estimate == hll.estimate)
        }
        #expect(rolled.reduce(0) { $0 + $1.m.serveSketch.count } == 18)
        // Compaction keeps every dimension and the totals.
        var c = ReaggregateOptions()
        c.sink = sink
        c.tables = ["cdn_edge"]
        c.compact = true
        c.graceSeconds = 0
        _ = try ReaggregateJob(c).run()
        let compacted = try read(sink)
        #expect(Inspector.parquetFiles(under: sink + "/cdn_edge").count == 1)
        #expect(compacted.count == 6)
        #expect(totals(compacted) == (18, 0, 2))
        #expect(try Inspector.summarizeDirectory(sink + "/cdn_edge").contains("CDN requests 18"))
    }
}
