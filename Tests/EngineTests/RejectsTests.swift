import Foundation
import Testing
@testable import Engine
import Parquet
import QoSCore
@testable import Generator

/// Reject rows are written by every flush (by ingestion time), whatever the
/// state of the windows, and are held in memory only until then.
@Suite struct RejectsTests {
    static let t0: Int64 = 1_780_000_200_000
    static let now: Int64 = t0 + 60_000

    typealias E = QoSEngine<DataSketchesKit>

    func send(_ e: E, _ text: String, partition: Int32 = 0, line: Int64, now: Int64 = now) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { raw in
            e.ingest(message: UnsafeRawBufferPointer(raw), partition: partition,
                     source: .file(name: "t", line: line), nowMs: now)
        }
    }

    func beacon(_ ts: Int64, _ sid: String = "s1", seq: Int = 1) -> String {
        #"{"event":"heartbeat","ts":\#(ts),"session_id":"\#(sid)","seq":\#(seq)}"#
    }

    /// What a flush at `watermark` hands to the writer as `rejects` rows.
    func writtenRejects(_ e: E, watermark: Int64) -> [RejectRow] {
        _ = e.flush(watermark: watermark)
        return e.takeRejects(nowMs: Self.now)
    }

    @Test func rejectsBeforeTheFirstBeaconAndInUnwrittenWindowsAreWrittenByTheNextFlush() throws {
        let e = E()
        send(e, "garbage before any beacon", line: 1)
        send(e, beacon(Self.t0), line: 2)
        send(e, #"{"event":"heartbeat"}"#, line: 3)
        send(e, beacon(Self.now + 3_600_000, seq: 2), line: 4)  // ts_in_future: the clock stays at t0
        send(e, "[1]", partition: 1, line: 5)                    // a partition that never gets a beacon
        // The watermark is behind every window end (a stuck clock): no window is written.
        let rows = writtenRejects(e, watermark: Self.t0 - 60_000)
        #expect(rows.map(\.reason).sorted() == ["invalid_json", "missing_field:ts", "not_an_object", "ts_in_future"])
        // Once written, they are gone from memory and from the checkpoint.
        let again = E()
        for p: Int32 in [0, 1] { try again.restore(partition: p, from: e.snapshot(partition: p)) }
        #expect(writtenRejects(again, watermark: .max).isEmpty)
    }
}

extension RejectsTests {
    @Test func ingestedAtIsThePartitionClockOrTheFirstBeaconsTsOrTheEngineClock() {
        let e = E()
        send(e, "x", line: 1)
        send(e, beacon(Self.t0 + 5), line: 2)
        send(e, beacon(Self.t0 + 9, seq: 2), line: 3)
        send(e, "y", line: 4)
        send(e, "z", partition: 3, line: 5)
        let rows = e.takeRejects(nowMs: 42)
        #expect(rows.map(\.source) == ["t:1", "t:4", "t:5"])
        #expect(rows.map(\.ingestedAt) == [Self.t0 + 5, Self.t0 + 9, 42])
        #expect(e.takeRejects(nowMs: 43).isEmpty)
    }

    @Test func heldRejectsSurviveASnapshotAndAreWrittenOnceAfterRestore() throws {
        let e = E()
        send(e, "early", line: 1)
        send(e, beacon(Self.t0), line: 2)
        send(e, "late", line: 3)
        send(e, "unclocked", partition: 1, line: 4)
        let snaps = [Int32(0), 1].map { p -> [UInt8] in
            let s = e.snapshot(partition: p)
            #expect(s.starts(with: Array("QOSPART4".utf8)))  // the format with held rows
            return s
        }
        let r = E()
        for (p, s) in zip([Int32(0), 1], snaps) { try r.restore(partition: p, from: s) }
        #expect(r.takeRejects(nowMs: 7) == e.takeRejects(nowMs: 7))
        #expect(r.partition(0).pendingRejectBytes == 0 && r.takeRejects(nowMs: 7).isEmpty)
        // Snapshots are byte-identical for equal states.
        let r2 = E()
        for (p, s) in zip([Int32(0), 1], snaps) { try r2.restore(partition: p, from: s) }
        #expect(r2.snapshot(partition: 0) == snaps[0] && r2.snapshot(partition: 1) == snaps[1])
    }

    @Test func aVersion1SnapshotsWindowRejectsBecomeHeldRows() throws {
        // A version-1 snapshot of partition 0 (maxTs t0, written through .min): one
        // empty base window holding one reject row, no sessions.
        var w = StateWriter(capacity: 256)
        for b in Array("QOSPART1".utf8) { w.uint(UInt64(b)) }
        w.int(0); w.int(Self.t0); w.int(.min)
        w.uint(1)                                    // windows
        w.int(Self.t0 - Self.t0 % 120_000); w.bool(false)
        for _ in MetricTable.allCases { w.uint(0) }  // no groups
        w.uint(0)                                    // session rows
        w.uint(1); w.int(Self.t0); w.string("invalid_json"); w.string("t:9"); w.blob(Array("{".utf8))
        w.uint(0)                                    // sessions
        let e = E()
        try e.restore(partition: 0, from: w.bytes)
        #expect(e.partition(0).maxTs == Self.t0)
        let rows = e.takeRejects(nowMs: 1)
        #expect(rows == [RejectRow(ingestedAt: Self.t0, reason: "invalid_json", source: "t:9", payload: Array("{".utf8))])
    }

    @Test func theEngineSaysWhenRejectsHeldPassTheCap() {
        var c = EngineConfig()
        c.rejectBytesHeldMax = 1000
        let e = E(config: c)
        var line: Int64 = 0
        while !e.rejectsHeldOverCap && line < 100 {
            line += 1
            send(e, String(repeating: "!", count: 100), partition: Int32(line % 2), line: line)
        }
        // Each row holds 100 + 3 + 12 + 96 = 211 bytes; the cap is per partition:
        // partition 1's fifth row (line 9) passes 1000.
        #expect(line == 9)
        let total = e.partitions.values.reduce(0) { $0 + $1.pendingRejectBytes }
        #expect(total > 1000)
        #expect(e.takeRejects(nowMs: 0).count == 9)
        #expect(!e.rejectsHeldOverCap && e.partitions.values.allSatisfy { $0.pendingRejects.isEmpty })
    }
}

/// `qos replay` writes every reject, flushes early when they pass the cap,
/// and stays byte-for-byte deterministic.
extension RejectsTests {
    func replay(_ input: String, _ sink: String, capBytes: Int, nowMs: Int64? = nil) throws -> ReplaySummary {
        var o = ReplayOptions()
        if let nowMs { o.nowMs = { nowMs } }
        o.inputs = [input]
        o.sink = sink
        o.config.rejectBytesHeldMax = capBytes
        return try ReplayJob(o).run()
    }

    func files(_ root: String) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for f in Inspector.parquetFiles(under: root) { out[String(f.dropFirst(root.count))] = try Inspector.readFile(f) }
        return out
    }

    @Test func replayWritesEveryRejectInCappedFlushesDeterministically() throws {
        let dir = NSTemporaryDirectory() + "qos-rejects-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var lines = (0..<10).map { "garbage \($0) before any beacon" }
        for i in 0..<400 {
            lines.append(beacon(Self.t0 + Int64(i) * 1000, "s\(i % 7)", seq: i + 1))
            if i % 3 == 0 { lines.append(#"{"event":"heartbeat","session_id":"x"}"#) }
        }
        let input = dir + "/in.ndjson"
        try (lines.joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)
        let a = try replay(input, dir + "/a", capBytes: 3000)
        let b = try replay(input, dir + "/b", capBytes: 3000)
        let fa = try files(dir + "/a"), fb = try files(dir + "/b")
        #expect(fa.keys.sorted() == fb.keys.sorted())
        #expect(fa.keys.allSatisfy { fa[$0] == fb[$0] })
        let rejectFiles = fa.keys.filter { $0.hasPrefix("/rejects/") }
        var rows = 0
        var ingested: [Int64] = []
        for f in rejectFiles {
            let r = try ParquetFileReader(bytes: fa[f]!)
            rows += r.numRows
            if case .int64(let t) = try r.column(named: "ingested_at") { ingested += t.map { $0! / 1000 } }
        }
        #expect(Int64(rows) == a.counters.rejectedTotal && a.counters.rejectedTotal == 10 + 134)
        #expect(a.counters == b.counters)
        // ~220 bytes a row (the source names the input path), 3000 bytes a flush: many flushes.
        #expect(rejectFiles.count > 5)
        // The 10 rows before the first beacon carry its ts: no 1970 and no wall-clock rows.
        #expect(ingested.min() == Self.t0 && ingested.max()! < Self.t0 + 400_000)
        #expect(ingested.filter { $0 == Self.t0 }.count == 10 + 1)  // and the one right after it

        // Past the cap before any beacon: those rows are written with the engine clock.
        let garbage = dir + "/garbage.ndjson"
        try (lines.prefix(10).joined(separator: "\n") + "\n").write(toFile: garbage, atomically: true, encoding: .utf8)
        let g = try replay(garbage, dir + "/g", capBytes: 300, nowMs: 1_700_000_000_000)
        let gf = try files(dir + "/g")
        var gRows = 0
        for (_, bytes) in gf {
            let r = try ParquetFileReader(bytes: bytes)
            gRows += r.numRows
            if case .int64(let t) = try r.column(named: "ingested_at") { #expect(t.allSatisfy { $0 == 1_700_000_000_000_000 }) }
        }
        #expect(gRows == 10 && g.counters.rejectedTotal == 10 && gf.count >= 5)
    }
}

extension RejectsTests {
    /// A beacon of a batch that time admission refuses stores its own object
    /// (docs/semantics.md "Never silent"), like a reject found while decoding;
    /// whichever way the engine is handed the message.
    @Test func aRefusedBeaconOfABatchStoresItsOwnObject() {
        let ok = beacon(Self.t0)
        let future = beacon(Self.now + 3_600_000, seq: 2)
        let early = beacon(946_684_799_999, "s2", seq: 3)                      // before 2000: invalid_value:ts
        let escaped = #"{"event":"heartbeat","ts":\#(Self.now + 3_600_000),"session_id":"s\u0031","seq":4}"#
        let message = "[\(ok),\n \(future) , \(early),\(escaped)]"
        let expected = [("ts_in_future", future), ("invalid_value:ts", early), ("ts_in_future", message)]
        func check(_ rows: [RejectRow]) {
            #expect(rows.map(\.reason) == expected.map(\.0))
            #expect(rows.map { String(decoding: $0.payload, as: UTF8.self) } == expected.map(\.1))
        }
        // Decoded and applied in one call (`qos run`).
        let direct = E()
        send(direct, message, line: 1)
        check(direct.takeRejects(nowMs: Self.now))
        // Decoded on another thread, applied item by item (`qos replay`).
        let staged = E()
        var scratch = DecodeScratch()
        var bytes = Array(message.utf8)
        bytes.withUnsafeMutableBytes { raw in
            let m = UnsafeRawBufferPointer(raw)
            BeaconDecoder.decodeLending(m, scratch: &scratch) { item in
                staged.ingest(item, message: m, partition: 0, source: .file(name: "t", line: 1), nowMs: Self.now)
            }
        }
        check(staged.takeRejects(nowMs: Self.now))
        // One object alone is its own payload; offsets outside any element give the message.
        #expect(Array(message.utf8).withUnsafeBytes { BeaconDecoder.element(of: $0, containing: 0).count } == message.utf8.count)
        #expect(Array(message.utf8).withUnsafeBytes { BeaconDecoder.element(of: $0, containing: 1).count } == ok.utf8.count)
    }
}

extension RejectsTests {
    /// A CDN log record that time admission refuses stores its own line,
    /// object or string (docs/semantics.md "Never silent"), not the start of
    /// a message of several records, in every CDN format.
    @Test func aRefusedCdnRecordStoresItsOwnLineOrObject() throws {
        func line(_ format: String, _ ts: Int64) -> String {
            var b = Beacon(event: .segment, ts: ts, sessionId: "c1")
            b.videoId = "v1"; b.httpStatus = 200; b.bytes = 50_000; b.seq = 3; b.pop = "ams"; b.ip = "192.0.2.7"
            let bytes: [UInt8]
            switch format {
            case "edgecast": bytes = CdnLogGenerator.edgecast(b)
            case "cloudfront": bytes = CdnLogGenerator.cloudfront(b)
            case "fastly": bytes = CdnLogGenerator.fastly(b)
            default: bytes = CdnLogGenerator.akamai(b)
            }
            return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .newlines)
        }
        let future = Self.now + 3_600_000
        var cases: [(format: String, message: String, payload: String)] = []
        for f in ["cloudfront", "fastly", "akamai"] {
            let ok = line(f, Self.t0), late = line(f, future)
            cases.append((f, ok + "\n" + late + "\n" + ok + "\n", late))
        }
        let ok = line("edgecast", Self.t0), late = line("edgecast", future)
        cases.append(("edgecast", "[\(ok),\n \(late) ,\(ok)]", late))
        // The batch form: each record a JSON string holding the object.
        let quoted = String(decoding: try JSONSerialization.data(withJSONObject: [late], options: [.fragmentsAllowed]),
                            as: UTF8.self).dropFirst().dropLast()
        cases.append(("edgecast", "[\(ok), \(quoted)]", String(quoted)))
        for c in cases {
            let e = E(), format = try RecordFormats.named(c.format).forSource(named: "t")
            var applied = 0
            var bytes = Array(c.message.utf8)
            bytes.withUnsafeMutableBytes { raw in
                let m = UnsafeRawBufferPointer(raw)
                format.decode(m) { item in
                    if case .cdnLog = item { applied += 1 }
                    e.ingest(item, message: m, partition: 0, source: .file(name: "t", line: 1), nowMs: Self.now)
                }
            }
            let rows = e.takeRejects(nowMs: Self.now)
            #expect(applied >= 2, "\(c.format): \(c.message)")
            #expect(rows.map(\.reason) == ["ts_in_future"], "\(c.format)")
            #expect(rows.map { String(decoding: $0.payload, as: UTF8.self) } == [c.payload], "\(c.format)")
        }
    }
}
