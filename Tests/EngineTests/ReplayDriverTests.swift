import Foundation
import Testing
import TestSupport
@testable import Engine
import Parquet
import QoSCore

/// `qos replay` on the driver of `qos run`, stepped by hand: the files'
/// records come through the decode stage (`DecodeStage` over
/// `FileRecordSource`), the direct driver flushes after the record that
/// makes a window due and publishes without checkpoints (`DirectPublish`).
/// The whole replay's bytes are pinned by GoldenOutputTests.
@Suite struct ReplayDriverTests {
    /// 2026-01-01 00:00 UTC, a window boundary.
    static let t0: Int64 = 1_767_225_600_000

    static func tempDir() -> String { makeTemporaryDirectory("qos-replay-driver") }

    static func beacon(_ event: String, _ offsetMs: Int64, _ sid: String, _ seq: Int) -> String {
        #"{"event":"\#(event)","ts":\#(t0 + offsetMs),"session_id":"\#(sid)","seq":\#(seq)}"#
    }

    /// A direct driver over `path`, records decoded `batch` at a time.
    static func driver(_ path: String, sink: String, batch: Int) throws -> (StreamDriver, DecodeStage) {
        var o = RunOptions()
        o.sink = sink
        o.untilCaughtUp = true
        o.log = .silent
        let d = try StreamDriver(o, format: BeaconJSONFormat(), clock: ManualClock(wallMs: t0 + 10 * 3_600_000),
                                 directTag: "test")
        let stage = DecodeStage(FileRecordSource(paths: [path]), format: BeaconJSONFormat(), batchRecords: batch,
                                finite: true)
        try d.attach(stage)
        return (d, stage)
    }

    static func metadata(_ file: String, _ key: String) throws -> String? {
        try ParquetFileReader(bytes: Inspector.readFile(file)).metadataValue(forKey: key)
    }

    @Test func aWindowIsPublishedAfterTheRecordThatMakesItDueAndTheRestAtTheEndOfInput() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/in.ndjson"
        let lines = [
            Self.beacon("view_start", 1_000, "s1", 1),
            Self.beacon("heartbeat", 11_000, "s1", 2),
            "not json",
            Self.beacon("heartbeat", 21_000, "s1", 3),
            // Watermark 200 s − 30 s lateness passes the first window's end (120 s).
            Self.beacon("view_start", 200_000, "s2", 1),
            Self.beacon("heartbeat", 210_000, "s2", 2),
        ]
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let sink = dir + "/out"
        let (d, stage) = try Self.driver(path, sink: sink, batch: 2)
        defer { stage.close() }
        let direct = d.direct!

        try d.step()  // the files' partition 0 is assigned, answered through the decode thread
        #expect(d.book.ids == [0] && d.engine.counters.messages == 0)
        try d.step()  // lines 1–2
        try d.step()  // lines 3–4: nothing due yet, the reject is held
        #expect(d.engine.counters.messages == 4 && direct.flushes == 0 && d.engine.counters.rejectedTotal == 1)
        try d.step()  // lines 5–6: line 5 makes the first window due
        #expect(d.engine.counters.messages == 6 && direct.flushes == 1 && !d.finished)
        var steps = 0
        while !d.finished && steps < 100 { try d.step(); steps += 1 }
        #expect(d.finished && direct.flushes == 2 && d.book[0]?.next == 6)

        // No checkpoint state: a replay is run again, never resumed.
        #expect(!FileManager.default.fileExists(atPath: sink + "/_qos"))
        let overall = Inspector.parquetFiles(under: sink + "/overall").sorted()
        // The first window, published by line 5; the later ones (sessions close at their timeouts) at the end.
        let sources = try overall.map { try Self.metadata($0, "videoqos.source") }
        #expect(overall.count >= 2 && sources.first == "\(path):1..\(path):5")
        #expect(sources.dropFirst().allSatisfy { $0 == "\(path):1..end" })
        // The reject held since line 3 went out with the first flush, with its file:line.
        let rejects = Inspector.parquetFiles(under: sink + "/rejects")
        #expect(rejects.count == 1)
        if let f = rejects.first {
            #expect(try Self.metadata(f, "videoqos.kind") == "flush000001")
            let r = try ParquetFileReader(bytes: Inspector.readFile(f))
            guard case .byteArray(let source) = try r.column(named: "source") else { Issue.record("type"); return }
            #expect(source.map { $0.map { String(decoding: $0, as: UTF8.self) } } == ["\(path):3"])
        }
        #expect(d.status.filesWritten == Inspector.parquetFiles(under: sink).count)
    }

    /// A batch keeps beacons apart from rejects but delivers every record's
    /// items in input order, each beacon with its lent id's hash and place
    /// in the batch's bytes (the engine's thread prefetches with them).
    @Test func aBatchDeliversItemsInInputOrderWithTheirIdHashes() throws {
        let lines = [
            Self.beacon("view_start", 0, "s1", 1),
            "not json",
            "[" + Self.beacon("heartbeat", 1, "s2", 2) + ",1," + Self.beacon("heartbeat", 2, #"s\u0033"#, 3) + "]",
            #"{"event":"heartbeat","session_id":"s4"}"#,
        ]
        let batch = DecodedBatch()
        for (i, line) in lines.enumerated() {
            Array(line.utf8).withUnsafeBytes { raw in
                batch.append(RawRecord(bytes: raw, partition: 0, offset: Int64(i), position: .file(name: "f", line: Int64(i + 1))),
                             format: BeaconJSONFormat())
            }
        }
        var seen: [String] = []
        batch.deliver { record, items in
            var expected: [String] = []
            BeaconDecoder.decode(record.bytes) { item in
                guard case .beacon(var b) = item else { return expected.append("\(item)") }
                b.sessionId = ""
                expected.append("\(b.ts) \(b.event)")
            }
            var got: [String] = []
            items.forEach(beacon: { b, hash in
                if let id = b.sessionIdBytes(in: record.bytes) {
                    #expect(hash == SessionTable.hash(id))
                    seen.append(String(decoding: id, as: UTF8.self))
                } else {
                    seen.append(b.sessionId)
                }
                got.append("\(b.ts) \(b.event)")
            }, other: { got.append("\($0)") }, ahead: { _, _ in })
            #expect(got == expected)
        }
        #expect(seen == ["s1", "s2", "s3"])
        #expect(batch.beaconCount == 3 && batch.others.count == 3 && batch.order.count == 6)
        for (k, start) in batch.idStarts.enumerated() where start >= 0 {
            let id = batch.bytes[Int(start)..<(Int(start) + 2)]
            #expect(Array(id) == Array(seen[k].utf8))
        }
        #expect(batch.idStarts[2] == -1)  // an escaped id is built, not lent
    }

    /// A batch reused (`removeAll`, then filled again) swaps each decoded
    /// beacon into a slot an earlier batch used: every beacon delivered is
    /// the one its line decodes to, with none of the slot's old fields, for
    /// fills smaller and larger than the one before.
    @Test func aReusedBatchDeliversOnlyItsOwnBeacons() throws {
        func summary(_ b: Beacon) -> String {
            "\(b.event) \(b.ts) \(b.seq ?? 0) \(String(describing: b.live)) \(String(describing: b.reason)) "
                + "\(b.cache ?? "-") \(b.userAgent ?? "-") \(b.cdn ?? "-") \(b.videoId ?? "-") \(b.viewerId ?? "-") "
                + "\(b.playedMs ?? -1) \(b.httpStatus ?? -1) \(b.hasRareStrings)"
        }
        let rich = (0..<6).map { k in
            #"{"event":"view_end","ts":\#(Self.t0 + Int64(k)),"session_id":"r\#(k)","seq":\#(k),"live":true,"reason":"error","cache":"STALE","user_agent":"UA-\#(k)","cdn":"cdn-\#(k)","video_id":"v\#(k)","viewer_id":"w\#(k)","played_ms":5,"http_status":503}"#
        }
        let plain = (0..<3).map { Self.beacon("heartbeat", Int64(100 + $0), "p\($0)", $0) }
        let more = (0..<10).map { Self.beacon("segment", Int64(200 + $0), "m\($0)", $0) }
        let batch = DecodedBatch()
        for lines in [rich, plain, more, rich] {
            batch.removeAll()
            for (i, line) in lines.enumerated() {
                Array(line.utf8).withUnsafeBytes { raw in
                    batch.append(RawRecord(bytes: raw, partition: 0, offset: Int64(i), position: .file(name: "f", line: Int64(i + 1))),
                                 format: BeaconJSONFormat())
                }
            }
            var got: [String] = [], expected: [String] = []
            batch.deliver { record, items in
                BeaconDecoder.decode(record.bytes) { item in
                    if case .beacon(let b) = item { expected.append(summary(b)) }
                }
                items.forEach(beacon: { b, _ in got.append(summary(b)) }, other: { _ in Issue.record("not a beacon") },
                               ahead: { _, _ in })
            }
            #expect(got == expected)
            #expect(got.count == lines.count && batch.beaconCount == lines.count)
        }
        #expect(batch.beacons.count == 10)  // the largest fill's slots, kept
    }

    /// The prefetch hints: before beacon k, the id hashes of beacons k + 16
    /// (bucket) and k + 8 (session), lent ids only, none past the batch.
    @Test func aBatchHintsTheSessionsOfBeaconsAhead() {
        let batch = DecodedBatch()
        let lines = (0..<30).map { k in k == 20 ? Self.beacon("heartbeat", 0, #"e\u0031"#, 1) : Self.beacon("heartbeat", 0, "id-\(k)", 1) }
        for (k, line) in lines.enumerated() {
            Array(line.utf8).withUnsafeBytes { raw in
                batch.append(RawRecord(bytes: raw, partition: 0, offset: Int64(k), position: .kafka(topic: "t", partition: 0, offset: Int64(k))),
                             format: BeaconJSONFormat())
            }
        }
        func hash(_ k: Int) -> UInt32 { Array("id-\(k)".utf8).withUnsafeBytes { SessionTable.hash($0) } }
        var hints: [String] = []
        var k = 0
        batch.deliver { _, items in
            items.forEach(beacon: { _, _ in k += 1 }, other: { _ in }, ahead: { h, session in
                hints.append("\(k) \(session) \(h)")
            })
        }
        var expected: [String] = []
        for k in 0..<30 {
            if k + 16 < 30 && k + 16 != 20 { expected.append("\(k) false \(hash(k + 16))") }
            if k + 8 < 30 && k + 8 != 20 { expected.append("\(k) true \(hash(k + 8))") }
        }
        #expect(hints == expected)
    }

    /// Every record is delivered with the position it came with: lines of
    /// the batch's file (whose name the batch keeps once), lines of a later
    /// file in the same batch, other sources, and again after a recycle.
    @Test func aBatchDeliversEachRecordsOwnPosition() {
        let batch = DecodedBatch()
        let line = Array(Self.beacon("heartbeat", 0, "s", 1).utf8)
        func fill(_ positions: [SourcePosition]) -> [SourcePosition] {
            batch.removeAll()
            for (i, p) in positions.enumerated() {
                line.withUnsafeBytes { raw in
                    batch.append(RawRecord(bytes: raw, partition: 0, offset: Int64(i), position: p), format: BeaconJSONFormat())
                }
            }
            var got: [SourcePosition] = []
            batch.deliver { r, _ in got.append(r.position) }
            return got
        }
        let first: [SourcePosition] = [.file(name: "day-1/beacons.ndjson", line: 1), .file(name: "day-1/beacons.ndjson", line: 2),
                                       .file(name: "day-2/beacons.ndjson", line: 1), .kafka(topic: "t", partition: 3, offset: 9),
                                       .file(name: "day-1/beacons.ndjson", line: 3)]
        #expect(fill(first) == first)
        let second: [SourcePosition] = [.file(name: "day-2/beacons.ndjson", line: 2), .file(name: "day-2/beacons.ndjson", line: 3),
                                        .file(name: "day-3/beacons.ndjson", line: 1)]
        #expect(fill(second) == second)
        let third: [SourcePosition] = [.memory(name: "m", partition: 0, index: 0), .file(name: "day-3/beacons.ndjson", line: 2)]
        #expect(fill(third) == third)
    }

    /// A batch's next offsets: per partition, after its last record, in
    /// order of first appearance, whatever the runs.
    @Test func aBatchGivesEachPartitionsNextOffset() {
        let batch = DecodedBatch()
        #expect(batch.nextOffsets().isEmpty)
        let line = Array(Self.beacon("heartbeat", 0, "s", 1).utf8)
        for (p, o) in [(3, 10), (3, 11), (1, 4), (3, 12), (1, 5), (1, 6), (7, 0)] as [(Int32, Int64)] {
            line.withUnsafeBytes { raw in
                batch.append(RawRecord(bytes: raw, partition: p, offset: o, position: .kafka(topic: "t", partition: p, offset: o)),
                             format: BeaconJSONFormat())
            }
        }
        let next = batch.nextOffsets()
        #expect(next.map(\.0) == [3, 1, 7])
        #expect(next.map(\.1) == [13, 7, 1])
        batch.removeAll()  // a recycled batch starts over
        #expect(batch.nextOffsets().isEmpty)
        line.withUnsafeBytes { raw in
            batch.append(RawRecord(bytes: raw, partition: 1, offset: 9, position: .kafka(topic: "t", partition: 1, offset: 9)),
                         format: BeaconJSONFormat())
        }
        #expect(batch.nextOffsets().map(\.0) == [1] && batch.nextOffsets().map(\.1) == [10])
    }

    @Test func anEmptyInputEndsWithoutFiles() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/empty.ndjson"
        try "\n\n".write(toFile: path, atomically: true, encoding: .utf8)
        let (d, stage) = try Self.driver(path, sink: dir + "/out", batch: 4096)
        defer { stage.close() }
        var steps = 0
        while !d.finished && steps < 100 { try d.step(); steps += 1 }
        #expect(d.finished && d.direct!.flushes == 0 && d.status.filesWritten == 0)
        #expect(Inspector.parquetFiles(under: dir + "/out").isEmpty)
    }

    /// Ownership changes pass the decode thread in order: it polls again only
    /// after the driver answered (the in-memory source traps a poll before
    /// that), and a revoked partition's records stop at the revocation.
    @Test(arguments: [1, 3]) func theDecodeStageWaitsForTheDriverToAnswerOwnershipChanges(decoders: Int) throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = MemoryRecordSource(name: "beacons", partitions: 2)
        for i in 0..<300 {
            let p = Int32(i % 2)
            src.append(Array(Self.beacon("heartbeat", Int64(i) * 1000, "s\(p)", i / 2 + 1).utf8), partition: p)
        }
        src.assign([0, 1])
        src.revoke([1])
        var o = RunOptions()
        o.sink = dir + "/out"
        o.untilCaughtUp = true
        o.log = .silent
        let d = try StreamDriver(o, format: BeaconJSONFormat(), clock: ManualClock(wallMs: Self.t0 + 3_600_000),
                                 directTag: "mem")
        // What the driver had done when the decode thread completed the
        // revocation at the source (ordered by the stage's queues).
        let watched = Watched(src)
        let seen = Box()
        watched.onCompleteRevoke = { seen.releasedFirst = d.book[1] == nil }
        let stage = DecodeStage(watched, format: BeaconJSONFormat(), batchRecords: 40, finite: true, decoders: decoders)
        #expect(stage.decoders == decoders)
        defer { stage.close() }
        try d.attach(stage)
        var steps = 0
        while !stage.ended && steps < 1000 { try d.step(); steps += 1 }
        #expect(seen.releasedFirst == true)
        #expect(stage.ended && d.book.ids == [0] && d.book[0]?.next == 150)
        // Partition 1 was read up to the revocation only (one batch at most).
        #expect(d.engine.counters.messages >= 150 && d.engine.counters.messages <= 190)
        #expect(Set(d.engine.partitions.keys) == [0])
    }

    /// Every record and item, as the driver's side of a stage delivers them.
    static func delivered(by stage: DecodeStage) throws -> [String] {
        var out: [String] = []
        while !stage.ended {
            _ = try stage.pollDecoded(onRecord: { r, items in
                out.append("record \(r.partition)@\(r.offset) \(r.position)")
                items.forEach(beacon: { b, hash in out.append("beacon \(b.ts) \(b.event) \(b.seq ?? 0) \(hash)") },
                              other: { out.append("other \($0)") }, ahead: { _, _ in })
            }, onEvent: { e in
                out.append("event \(e)")
                if case .assigned(let ps) = e { try? stage.startAssigned(Dictionary(uniqueKeysWithValues: ps.map { ($0, nil) })) }
                if case .revoked = e { try? stage.completeRevoke() }
            })
        }
        return out
    }

    /// Several decoders deliver what one does, in the same order: batches,
    /// rejects, the files' boundaries and ownership changes, whichever lane
    /// each went through. A format that depends on earlier records (a CDN
    /// log) gets one decoder whatever is asked.
    @Test func decodersDeliverWhatOneDecoderDoesInTheSameOrder() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var paths: [String] = []
        for f in 0..<3 {
            var lines: [String] = []
            for i in 0..<(200 + 37 * f) {
                lines.append(i % 17 == 5 ? "not json \(i)" : Self.beacon(i % 9 == 0 ? "view_start" : "heartbeat", Int64(i) * 700, "s\(f)-\(i % 13)", i + 1))
            }
            let path = dir + "/in\(f).ndjson"
            try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            paths.append(path)
        }
        func run(_ decoders: Int) throws -> [String] {
            let stage = DecodeStage(FileRecordSource(paths: paths), format: BeaconJSONFormat(), batchRecords: 23, finite: true,
                                    decoders: decoders)
            defer { stage.close() }
            #expect(stage.decoders == decoders)
            return try Self.delivered(by: stage)
        }
        let one = try run(1)
        #expect(one.filter { $0.hasPrefix("record") }.count == 200 + 237 + 274)
        #expect(one.contains { $0.hasPrefix("other") } && one.contains { $0.hasPrefix("event") })
        for n in [2, 3, 4] { #expect(try run(n) == one, "\(n) decoders") }

        let cdn = try RecordFormats.named("edgecast")
        #expect(!cdn.decodesRecordsAlone && BeaconJSONFormat().decodesRecordsAlone)
        let stage = DecodeStage(FileRecordSource(paths: paths), format: cdn, finite: true, decoders: 4)
        defer { stage.close() }
        #expect(stage.decoders == 1)
    }

    /// Lines of mapped files are lent to the batches in place
    /// (`DecodedBatch.lend`), lines of files read with `read` are copied:
    /// both deliver the same records, bytes and items, with one decoder or
    /// several. Small batches of small files, so the reading thread has
    /// moved on to later files (and let go of earlier ones) while earlier
    /// batches are still being decoded and delivered: a batch that did not
    /// hold its file's mapping would read unmapped memory here.
    @Test func mappedLinesAreLentAndDeliverWhatCopiedLinesDo() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var paths: [String] = []
        for f in 0..<12 {
            var lines: [String] = []
            for i in 0..<(40 + 7 * f) {
                lines.append(i % 11 == 4 ? "{\"broken\": \(i)" : Self.beacon(i % 9 == 0 ? "view_start" : "heartbeat", Int64(i) * 900, "f\(f)-s\(i % 5)", i + 1))
            }
            let path = dir + "/in\(f).ndjson"
            try (lines.joined(separator: f % 2 == 0 ? "\n" : "\r\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            paths.append(path)
        }
        func run(decoders: Int, map: Bool) throws -> ([String], Int64, Int) {
            let files = FileRecordSource(paths: paths)
            files.mapFiles = map
            let stage = DecodeStage(files, format: BeaconJSONFormat(), batchRecords: 7, finite: true, decoders: decoders)
            defer { stage.close() }
            var out: [String] = [], lent = 0
            while !stage.ended {
                _ = try stage.pollDecoded(onRecord: { r, items in
                    out.append("record \(r.partition)@\(r.offset) \(r.position) \(String(decoding: r.bytes, as: UTF8.self))")
                    items.forEach(beacon: { b, hash in
                        out.append("beacon \(b.ts) \(b.event) \(b.sessionId) \(hash)")
                    }, other: { out.append("other \($0)") }, ahead: { _, _ in })
                }, onEvent: { e in
                    if case .assigned(let ps) = e { try? stage.startAssigned(Dictionary(uniqueKeysWithValues: ps.map { ($0, nil) })) }
                })
                lent += stage.lastBatchWasLent ? 1 : 0
            }
            return (out, stage.bytesDelivered, lent)
        }
        let copied = try run(decoders: 1, map: false)
        #expect(copied.2 == 0)
        #expect(copied.0.filter { $0.hasPrefix("record") }.count == (0..<12).reduce(0) { $0 + 40 + 7 * $1 })
        #expect(copied.0.contains { $0.hasPrefix("other") })
        // 1 decoder: records through `poll`; 3: lines staged as they are
        // cut (`FileRecordSource.pollLines`, `DecodedBatch.stageLine`),
        // lent from the mapping or copied.
        for (decoders, map) in [(1, true), (3, true), (3, false)] {
            let other = try run(decoders: decoders, map: map)
            #expect((other.2 > 0) == map, "batches lent their lines only from a mapped file")
            #expect(other.0 == copied.0, "\(decoders) decoders, mapped \(map)")
            #expect(other.1 == copied.1, "bytes delivered")
        }
    }

    /// A mapped file cut short after its lines were lent to a batch: the
    /// bytes past the cut read as zeros, and the batch says the file shrank
    /// (the driver checks before and after it applies a batch), so nothing
    /// read from the zeros is applied.
    @Test func aLentBatchWhoseFileShrankSaysSo() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let line = Self.beacon("heartbeat", 1000, "shrinking-session", 2)
        let count = 3 * page / (line.utf8.count + 1) + 5
        let path = dir + "/in.ndjson"
        try String(repeating: line + "\n", count: count).write(toFile: path, atomically: true, encoding: .utf8)
        let files = FileRecordSource(paths: [path])
        let batch = DecodedBatch()
        _ = try files.poll(maxRecords: 1, timeoutMs: 0, onRecord: { _ in }, onEvent: { _ in })
        try files.startAssigned([0: nil])
        let n = try files.poll(maxRecords: count, timeoutMs: 0, onRecord: { r in
            if batch.records.isEmpty { batch.lend(files.lender) }
            batch.stage(r)
        }, onEvent: { _ in })
        #expect(n == count && batch.lender != nil)
        try batch.checkLent()
        #expect(truncate(path, off_t(page)) == 0)
        batch.decodeStaged(format: BeaconJSONFormat())
        #expect(batch.beacons.count < count, "lines past the cut decoded as beacons")
        #expect { try batch.checkLent() } throws: { error in
            (error as? UserError)?.message.contains("'\(path)' shrank while it was being read") == true
        }
    }

    /// A source that fails stops the stage after the items before the
    /// failure, with any number of decoders; closing a stage mid-stream
    /// stops every thread (`close` returns).
    @Test(arguments: [1, 3]) func aSourceFailureArrivesAfterTheItemsBeforeIt(decoders: Int) throws {
        let src = MemoryRecordSource(name: "beacons", partitions: 1)
        for i in 0..<500 { src.append(Array(Self.beacon("heartbeat", Int64(i) * 1000, "s", i + 1).utf8), partition: 0) }
        src.assign([0])
        let failing = Failing(src, afterPolls: 6)
        let stage = DecodeStage(failing, format: BeaconJSONFormat(), batchRecords: 10, finite: true, decoders: decoders)
        defer { stage.close() }
        var records = 0
        #expect(throws: Failing.Failure.self) {
            while !stage.ended {
                records += try stage.pollDecoded(onRecord: { _, _ in }, onEvent: { e in
                    if case .assigned = e { try? stage.startAssigned([0: nil]) }
                })
            }
        }
        // Poll 1 assigns, polls 2–6 deliver 10 records each, poll 7 fails.
        #expect(records == 50)

        let open = DecodeStage(FileRecordSource(paths: []), format: BeaconJSONFormat(), finite: false, decoders: decoders)
        let busy = MemoryRecordSource(name: "beacons", partitions: 1)
        for i in 0..<2000 { busy.append(Array(Self.beacon("heartbeat", Int64(i), "s", i + 1).utf8), partition: 0) }
        busy.assign([0])
        let stopped = DecodeStage(busy, format: BeaconJSONFormat(), batchRecords: 7, finite: true, decoders: decoders)
        _ = try stopped.pollDecoded(onRecord: { _, _ in }, onEvent: { _ in try? stopped.startAssigned([0: nil]) })
        _ = try stopped.pollDecoded(onRecord: { _, _ in }, onEvent: { _ in })
        stopped.close()  // the poll thread and the decoders are blocked on full queues: close must still return
        open.close()
    }

    /// Polls `inner`, then throws from the poll after `afterPolls`.
    final class Failing: RecordSource, @unchecked Sendable {
        struct Failure: Error {}
        let inner: MemoryRecordSource
        let afterPolls: Int
        var polls = 0
        init(_ inner: MemoryRecordSource, afterPolls: Int) {
            self.inner = inner
            self.afterPolls = afterPolls
        }
        var name: String { inner.name }
        var partitionCount: Int { inner.partitionCount }
        func poll(maxRecords: Int, timeoutMs: Int, onRecord: (RawRecord) -> Void,
                  onEvent: (SourceEvent) -> Void) throws -> Int {
            polls += 1
            if polls > afterPolls { throw Failure() }
            return try inner.poll(maxRecords: maxRecords, timeoutMs: timeoutMs, onRecord: onRecord, onEvent: onEvent)
        }
        func startAssigned(_ start: [Int32: Int64?]) throws { try inner.startAssigned(start) }
        func completeRevoke() throws { try inner.completeRevoke() }
        func commit(_ next: [Int32: Int64]) { inner.commit(next) }
        func endOffset(_ partition: Int32) throws -> Int64 { try inner.endOffset(partition) }
        func idle(next: [Int32: Int64]) { inner.idle(next: next) }
        func lag() -> [Int32: Int64] { inner.lag() }
        func checkStillAssigned() throws { try inner.checkStillAssigned() }
        func close() { inner.close() }
    }

    final class Box: @unchecked Sendable { var releasedFirst: Bool? }

    /// A source that reports when its revocation is completed.
    final class Watched: RecordSource, @unchecked Sendable {
        let inner: MemoryRecordSource
        var onCompleteRevoke: () -> Void = {}
        init(_ inner: MemoryRecordSource) { self.inner = inner }
        var name: String { inner.name }
        var partitionCount: Int { inner.partitionCount }
        func poll(maxRecords: Int, timeoutMs: Int, onRecord: (RawRecord) -> Void,
                  onEvent: (SourceEvent) -> Void) throws -> Int {
            try inner.poll(maxRecords: maxRecords, timeoutMs: timeoutMs, onRecord: onRecord, onEvent: onEvent)
        }
        func startAssigned(_ start: [Int32: Int64?]) throws { try inner.startAssigned(start) }
        func completeRevoke() throws { onCompleteRevoke(); try inner.completeRevoke() }
        func commit(_ next: [Int32: Int64]) { inner.commit(next) }
        func endOffset(_ partition: Int32) throws -> Int64 { try inner.endOffset(partition) }
        func idle(next: [Int32: Int64]) { inner.idle(next: next) }
        func lag() -> [Int32: Int64] { inner.lag() }
        func checkStillAssigned() throws { try inner.checkStillAssigned() }
        func close() { inner.close() }
    }
}
