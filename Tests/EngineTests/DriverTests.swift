import Foundation
import Testing
import TestSupport
@testable import Engine
import Generator
import Parquet
import QoSCore
import Sketches

/// The `qos run` driver in-process, without a broker: an in-memory source
/// plays the consumer group (assignment, revocation) and a manual clock
/// plays time, so rebalances, idleness, the checkpoint policy and a crash
/// between commit and publish are driven step by step (in the style of
/// swift-nio's EmbeddedChannel). The broker tests (tests/interop/test_daemon.py)
/// keep covering the real Kafka protocol.
@Suite struct DriverTests {
    static let start: Int64 = 1_767_225_600_000
    /// Wall clock well after the generated event times (nothing is `ts_in_future`).
    static let wall: Int64 = start + 10 * 3_600_000

    final class Harness {
        let sink: String
        let clock = ManualClock(wallMs: DriverTests.wall)
        var options = RunOptions()
        var driver: StreamDriver!
        /// The driver's log lines.
        let logBox = LogBox()

        init(sink: String, instance: String = "test-a") throws {
            self.sink = sink
            options.sink = sink
            options.instance = instance
            options.pollBatch = 500
            // Checkpoints only when a test asks for them, unless it sets a policy.
            options.checkpointIntervalMs = 3_600_000
            options.checkpointMinIntervalMs = 3_600_000
            // These tests compare every file; CompactionTests set their own policy.
            options.compaction.maxFiles = 1_000_000
            options.compaction.afterMs = .max / 2
            let box = logBox
            options.log = Logger { _, message in box.lines.append(message) }
        }

        @discardableResult
        func start(_ source: MemoryRecordSource) throws -> StreamDriver {
            driver = try StreamDriver(options, clock: clock)
            try driver.store.openState(accept: false, log: { _ in })
            try driver.attach(source)
            return driver
        }

        /// Polls until a poll returns nothing and no ownership change is pending.
        func drain(_ source: MemoryRecordSource) throws {
            var polls = 0
            repeat {
                try driver.step()
                polls += 1
            } while (source.lag().values.contains { $0 > 0 } || !source.pending.isEmpty) && polls < 10_000
        }
    }

    final class LogBox: @unchecked Sendable { var lines: [String] = [] }

    static func tempDir() -> String { makeTemporaryDirectory("qos-driver") }

    /// Generated beacons (with late, duplicate and malformed ones), keyed by
    /// session into `partitions` partitions like a Kafka producer would.
    static func source(partitions: Int, sessions: Int = 150, seed: UInt64 = 5, batchMs: Int64 = 0) -> MemoryRecordSource {
        var o = GeneratorOptions()
        o.seed = seed
        o.sessions = sessions
        o.rate = 20
        o.startMs = start
        o.lateFraction = 0.03
        o.duplicateFraction = 0.02
        o.malformedFraction = 0.02
        let src = MemoryRecordSource(name: "beacons", partitions: partitions)
        let messages = batchMs > 0 ? AnySequence(PlayerBatcher(TrafficGenerator(o), periodMs: batchMs)) : AnySequence(TrafficGenerator(o))
        for m in messages {
            var h: UInt32 = 2_166_136_261
            for b in m.key.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
            src.append(m.payload, partition: Int32(h % UInt32(partitions)))
        }
        return src
    }

    /// A copy of `source`'s records, ownership reset (a restarted process reads the same topic).
    static func reopen(_ source: MemoryRecordSource) -> MemoryRecordSource { source.reopened() }

    /// Every visible output file (not the checkpoint state), by relative path.
    static func visible(_ root: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(atPath: root)!
        while let rel = e.nextObject() as? String {
            guard rel.hasSuffix(".parquet"), !rel.hasPrefix("_") else { continue }
            out[rel] = try Data(contentsOf: URL(fileURLWithPath: root + "/" + rel))
        }
        return out
    }

    /// Sums of a few `overall` columns over every visible file (bases and
    /// late deltas). Not `late_events`: whether a beacon is late depends on
    /// whether its window was already written, i.e. on when checkpoints ran.
    static func overallTotals(_ root: String) throws -> [String: Int64] {
        var out: [String: Int64] = [:]
        for f in Inspector.parquetFiles(under: root + "/overall") {
            let r = try ParquetFileReader(bytes: Inspector.readFile(f))
            for name in ["views", "sessions_ended", "duplicates", "playing_ms", "rebuffer_count"] {
                guard case .int64(let v) = try r.column(named: name) else { continue }
                out[name, default: 0] += v.reduce(0) { $0 + ($1 ?? 0) }
            }
        }
        return out
    }

    /// Runs `source` with one owner of every partition from start to end of input.
    static func uninterrupted(_ source: MemoryRecordSource, sink: String, checkpointAfterPolls: Int? = nil) throws -> Harness {
        let h = try Harness(sink: sink)
        let d = try h.start(source)
        source.assign(source.ids)
        var polls = 0
        repeat {
            try d.step()
            polls += 1
            if polls == checkpointAfterPolls { try d.checkpoint(reason: "test") }
        } while source.lag().values.contains { $0 > 0 } || !source.pending.isEmpty
        try d.finish()
        return h
    }

    /// Two topics, each with its own beacons, as one source: stream 1's partitions are
    /// `StreamPartition` ids 65536, 65537.
    static func twoTopics() -> MemoryRecordSource {
        let a = source(partitions: 2, seed: 5), b = source(partitions: 2, seed: 6)
        let both = MemoryRecordSource(streams: ["beacons", "more"], partitionsPerStream: 2)
        for (stream, src) in [a, b].enumerated() {
            for p in 0..<2 {
                for r in src.records[p] { both.append(r, partition: StreamPartition(stream: stream, partition: Int32(p)).id) }
            }
        }
        return both
    }

    @Test func severalTopicsAreOnePipelineAndEachPartitionIsCheckpointedUnderItsTopic() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try Self.uninterrupted(Self.source(partitions: 2, seed: 5), sink: dir + "/a")
        _ = try Self.uninterrupted(Self.source(partitions: 2, seed: 6), sink: dir + "/b")
        let a = try Self.overallTotals(dir + "/a"), b = try Self.overallTotals(dir + "/b")

        let src = Self.twoTopics()
        let h = try Harness(sink: dir + "/both")
        h.options.topics = [TopicSpec(name: "beacons", format: "beacon-json"), TopicSpec(name: "more", format: "beacon-json")]
        let d = try h.start(src)
        src.assign(src.ids)
        for _ in 0..<5 { try d.step() }
        try d.checkpoint(reason: "test")
        let manifest = try #require(try d.store.manifests().last)
        #expect(Set(manifest.partitions.map { "\($0.topic)/\($0.partition)" }) == ["beacons/0", "beacons/1", "more/0", "more/1"])
        #expect(h.logBox.lines.contains { $0.contains("assigned partitions beacons[0, 1] more[0, 1]") })

        // A restart resumes each topic's partitions from their own checkpoints.
        let again = src.reopened()
        let h2 = try Harness(sink: dir + "/both")
        h2.options.topics = h.options.topics
        let d2 = try h2.start(again)
        again.assign(again.ids)
        try d2.step()
        for id in again.ids { #expect(d2.book[id]?.epochStart == d.book[id]?.next, "partition \(id) resumed elsewhere") }
        try h2.drain(again)
        try d2.finish()
        let both = try Self.overallTotals(dir + "/both")
        #expect(both.keys.sorted() == a.keys.sorted())
        for (k, v) in both { #expect(v == a[k]! + b[k]!, "\(k)") }
        #expect(both["views"]! > 100)
    }

    /// Players that batch their beacons (`qos generate --batch-seconds`, arrays
    /// of one session's beacons that leave up to 10 s late) give the same
    /// tables as one beacon per message: 10 s is within the allowed lateness.
    @Test func batchedBeaconsGiveTheSameTablesAsOneBeaconPerMessage() throws {
        let plain = Self.source(partitions: 3, sessions: 300)
        let batched = Self.source(partitions: 3, sessions: 300, batchMs: 10_000)
        let plainCount: Int = plain.records.map(\.count).reduce(0, +)
        let batchedCount: Int = batched.records.map(\.count).reduce(0, +)
        #expect(batchedCount < plainCount / 2)
        let a = Self.tempDir(), b = Self.tempDir()
        defer { for d in [a, b] { try? FileManager.default.removeItem(atPath: d) } }
        _ = try Self.uninterrupted(plain, sink: a)
        _ = try Self.uninterrupted(batched, sink: b)
        // Every column of every table but `rejects` (whose rows name their
        // message's Kafka offset, which batching changes), by table and window;
        // a file's name carries a key of the positions it covers.
        func tables(_ root: String) throws -> [String: [String: ParquetColumnData]] {
            var out: [String: [String: ParquetColumnData]] = [:]
            for (name, bytes) in try Self.visible(root) where !name.hasPrefix("rejects/") {
                let r = try ParquetFileReader(bytes: Array(bytes))
                let table = String(name[..<(name.range(of: "_k", options: .backwards)?.lowerBound ?? name.endIndex)])
                var columns: [String: ParquetColumnData] = [:]
                for field in r.schema { columns[field.name] = try r.column(named: field.name) }
                out[table] = columns
            }
            return out
        }
        let ta = try tables(a), tb = try tables(b)
        #expect(ta.count == 6 && ta.keys.sorted() == tb.keys.sorted())
        // Two columns may differ, by definition: `late_events` counts beacons
        // applied after their window closed, which depends on delivery order
        // (docs/semantics.md), and a small HLL sketch lists its coupons in
        // the order they came (the same coupons, the same estimate).
        var differ: [String] = []
        for (table, columns) in ta {
            #expect(columns.count > 5)
            for (column, values) in columns where tb[table]?[column] != values && column != "late_events" {
                guard column.hasSuffix("_hll"), case .byteArray(let x) = values, case .byteArray(let y)? = tb[table]?[column],
                      x.count == y.count else { differ.append("\(table).\(column)"); continue }
                for (u, v) in zip(x, y) where u != v {
                    let eu = try HLLSketch(bytes: u ?? []).estimate, ev = try HLLSketch(bytes: v ?? []).estimate
                    if eu != ev { differ.append("\(table).\(column): \(eu) vs \(ev)") }
                }
            }
        }
        #expect(differ == [])
        #expect(try Self.overallTotals(a)["duplicates", default: 0] > 0)
    }

    @Test func aTopicWithoutAFormatIsRefused() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let h = try Harness(sink: dir)
        h.options.topics = [TopicSpec(name: "beacons", format: "beacon-json")]
        let src = MemoryRecordSource(streams: ["beacons", "other"], partitionsPerStream: 1)
        #expect(throws: UserError.self) { try h.start(src) }
    }

    @Test func aCrashBetweenCommitAndPublishIsFinishedByTheNextStart() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try Self.uninterrupted(Self.source(partitions: 3), sink: dir + "/reference", checkpointAfterPolls: 4)

        struct Crash: Error {}
        let src = Self.source(partitions: 3)
        let h = try Harness(sink: dir + "/crashed")
        let d = try h.start(src)
        d.epochCommit.afterCommit = { throw Crash() }
        src.assign([0, 1, 2])
        for _ in 0..<4 { try d.step() }
        #expect(throws: Crash.self) { try d.checkpoint(reason: "test") }
        // Committed but not published: the epoch's files are staged, none is visible.
        #expect(d.store.epoch == 1)
        #expect(try Self.visible(dir + "/crashed").isEmpty)
        #expect(!CheckpointStore.listFiles(dir + "/crashed/_staging/test-a").isEmpty)

        // A new process on the same sink rolls the epoch forward and continues from its offsets.
        let again = Self.reopen(src)
        let h2 = try Harness(sink: dir + "/crashed")
        let d2 = try h2.start(again)
        #expect(try Self.visible(dir + "/crashed").count > 0)
        again.assign([0, 1, 2])
        try h2.drain(again)
        #expect(d2.book.ids == [0, 1, 2] && d2.book.unchangedThisEpoch == false)
        try d2.finish()

        let want = try Self.visible(dir + "/reference"), got = try Self.visible(dir + "/crashed")
        #expect(want.count > 20)
        #expect(want.keys.sorted() == got.keys.sorted())
        for (path, bytes) in want { #expect(got[path] == bytes, "\(path) differs") }
    }

    /// CMCD turns states into events with per-session memory (docs/cmcd.md):
    /// `qos run` checkpoints that memory with each partition, so a process
    /// killed after a checkpoint and started again writes exactly the files
    /// of a run that was never interrupted (played time, stalls and all).
    @Test func aRestartedCMCDStreamGoesOnFromItsCheckpointedSessionState() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var g = GeneratorOptions()
        g.seed = 9
        g.sessions = 150
        g.rate = 20
        g.startMs = Self.start
        let encoder = CMCDEncoder()
        let src = MemoryRecordSource(name: "cmcd", partitions: 2)
        for m in TrafficGenerator(g) {
            guard let record = m.beacon.flatMap({ encoder.encode($0) }) else { continue }
            var h: UInt32 = 2_166_136_261
            for b in m.key.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
            src.append(record, partition: Int32(h % 2))
        }
        func harness(_ sink: String) throws -> Harness {
            let h = try Harness(sink: sink)
            h.options.topics = [TopicSpec(name: "cmcd", format: "cmcd")]
            h.options.pollBatch = 200
            return h
        }
        /// A process that reads every partition and checkpoints after 4 polls.
        func checkpointedAfterFourPolls(_ sink: String) throws -> (Harness, StreamDriver, MemoryRecordSource) {
            let input = src.reopened()
            let h = try harness(sink)
            let d = try h.start(input)
            input.assign(input.ids)
            for _ in 0..<4 { try d.step() }
            try d.checkpoint(reason: "test")
            return (h, d, input)
        }
        // Reference: that process goes on to the end.
        let (r, rd, reference) = try checkpointedAfterFourPolls(dir + "/reference")
        try r.drain(reference)
        try rd.finish()

        // Killed: three more polls never checkpointed, then gone.
        let (_, d, _) = try checkpointedAfterFourPolls(dir + "/restarted")
        let manifest = try #require(try d.store.manifests().last)
        #expect(manifest.partitions.allSatisfy { !$0.formatState.isEmpty }, "no CMCD state in the checkpoint")
        for _ in 0..<3 { try d.step() }
        let again = src.reopened()
        let h2 = try harness(dir + "/restarted")
        let d2 = try h2.start(again)
        again.assign(again.ids)
        try h2.drain(again)
        try d2.finish()

        let want = try Self.visible(dir + "/reference"), got = try Self.visible(dir + "/restarted")
        #expect(want.count >= 6)  // every table (an epoch writes one file per table and hour)
        #expect(want.keys.sorted() == got.keys.sorted())
        for (path, bytes) in want { #expect(got[path] == bytes, "\(path) differs") }
        let totals = try Self.overallTotals(dir + "/restarted")
        #expect(totals == (try Self.overallTotals(dir + "/reference")) && totals["playing_ms", default: 0] > 0)
    }

    /// The format state is named by its format: the same partitions read
    /// with another format after a restart start, drop the old state (a
    /// log line says so) and do not take CMCD bytes for CloudFront's.
    @Test func aChangedTopicFormatDropsTheOldFormatsState() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let t = Self.start
        let src = MemoryRecordSource(name: "logs", partitions: 1)
        for i in 0..<20 { src.append(Array("sid=\"s\",ts=\(t + Int64(i) * 1000),e=ps,sta=p".utf8), partition: 0) }
        let h = try Harness(sink: dir + "/out")
        h.options.topics = [TopicSpec(name: "logs", format: "cmcd")]
        let d = try h.start(src)
        src.assign([0])
        try h.drain(src)
        try d.checkpoint(reason: "test")
        #expect(try d.store.manifests().last?.partitions.first?.formatState.isEmpty == false)

        let again = src.reopened()
        let h2 = try Harness(sink: dir + "/out", instance: "b")
        h2.options.topics = [TopicSpec(name: "logs", format: "cloudfront")]
        let d2 = try h2.start(again)
        again.assign([0])
        try d2.step()
        #expect(d2.book.ids == [0])
        #expect(h2.logBox.lines.contains { $0.contains("was read as cmcd before, now as cloudfront: its cmcd state is dropped") })
    }

    @Test func revocationMidEpochHandsPartitionsOverAtTheirCheckpoint() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try Self.uninterrupted(Self.source(partitions: 4), sink: dir + "/reference")
        let want = try Self.overallTotals(dir + "/reference")

        let srcA = Self.source(partitions: 4), srcB = Self.reopen(srcA)
        let a = try Harness(sink: dir + "/out", instance: "a"), b = try Harness(sink: dir + "/out", instance: "b")
        let da = try a.start(srcA), db = try b.start(srcB)
        srcA.assign([0, 1, 2, 3])
        for _ in 0..<3 { try da.step() }
        let readBeforeRevoke = da.book.nextOffsets
        #expect(readBeforeRevoke[2]! > 0 && readBeforeRevoke[3]! > 0)
        // Mid-epoch: the group moves 2 and 3 to b. a checkpoints them first.
        srcA.revoke([2, 3])
        try da.step()
        #expect(da.book.ids == [0, 1])
        #expect(Set(da.engine.partitions.keys) == [0, 1])
        srcB.assign([2, 3])
        try db.step()
        // b starts where a's checkpoint ended: nothing read twice, nothing skipped.
        #expect(db.book[2]?.seq == 1 && db.book[3]?.seq == 1)
        #expect(db.book[2]!.epochStart >= readBeforeRevoke[2]! && db.book[3]!.epochStart >= readBeforeRevoke[3]!)
        try a.drain(srcA)
        try b.drain(srcB)
        // Then everything back to a, which ends the input.
        srcB.revoke([2, 3])
        try db.step()
        #expect(db.book.isEmpty && db.engine.partitions.isEmpty)
        srcA.assign([2, 3])
        try a.drain(srcA)
        try da.finish()
        #expect(da.book.ids == [0, 1, 2, 3])
        #expect(da.engine.counters.messages + db.engine.counters.messages
                == Int64(srcA.records.reduce(0) { $0 + $1.count }))
        let got = try Self.overallTotals(dir + "/out")
        #expect(got == want, "\(got) != \(want)")
        #expect(want["views", default: 0] > 100)
    }

    @Test func aLostPartitionRestartsFromItsLastCheckpoint() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = Self.source(partitions: 2, sessions: 40)
        let h = try Harness(sink: dir + "/out")
        let d = try h.start(src)
        src.assign([0, 1])
        try h.drain(src)
        // Lost: another member already owns 1, so it is dropped before the checkpoint.
        src.revoke([1], lost: true)
        try d.step()
        #expect(d.book.ids == [0])
        #expect(h.logBox.lines.contains { $0.contains("revoked partitions [1] (lost)") })
        let manifests = try d.store.manifests()
        #expect(manifests.count == 1 && manifests[0].partitions.map(\.partition) == [0])
        // Its new owner finds no checkpoint of 1 and reads it from the beginning.
        let other = Self.reopen(src)
        let h2 = try Harness(sink: dir + "/out", instance: "b")
        let d2 = try h2.start(other)
        other.assign([1])
        try d2.step()
        #expect(d2.book[1]?.seq == 0 && d2.book[1]?.epochStart == 0)
    }

    @Test func anIdlePartitionStopsHoldingTheWatermarkBack() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let all = Self.source(partitions: 1, sessions: 60).records[0]
        // Partition 1 delivers only the first 50 beacons, then nothing; partition 0 keeps going.
        let src = MemoryRecordSource(name: "beacons", partitions: 2)
        for r in all.dropLast(40) { src.append(r, partition: 0) }
        for r in all.prefix(50) { src.append(r, partition: 1) }
        let h = try Harness(sink: dir + "/out")
        h.options.idleTimeoutMs = 30_000
        h.options.checkpointMinIntervalMs = 0
        let d = try h.start(src)
        src.assign([0, 1])
        try h.drain(src)
        let p1 = d.engine.partition(1).maxTs - d.o.config.latenessMs
        #expect(d.tracker.value(wallMs: h.clock.wallMs()) == p1)
        #expect(d.status.watermarkMs == nil || d.status.watermarkMs! <= p1)
        h.clock.advance(ms: 29_999)
        for r in all.dropLast(40).suffix(20) { src.append(r, partition: 0) }
        try d.step()
        #expect(d.tracker.value(wallMs: h.clock.wallMs()) == p1)
        let filesBefore = d.status.filesWritten
        h.clock.advance(ms: 1)
        for r in all.suffix(20) { src.append(r, partition: 0) }
        try d.step()
        // Partition 1 idle for the timeout, partition 0 active: the watermark
        // is partition 0's, and the windows it passed are written.
        let wm = d.engine.partition(0).maxTs - d.o.config.latenessMs
        #expect(wm > p1)
        #expect(d.tracker.value(wallMs: h.clock.wallMs()) == wm)
        #expect(d.status.watermarkMs == wm)
        #expect(d.status.filesWritten > filesBefore)
    }

    @Test func checkpointPolicyFollowsTheIntervals() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = Self.source(partitions: 1, sessions: 80)
        let h = try Harness(sink: dir + "/out")
        h.options.checkpointIntervalMs = 10_000
        h.options.checkpointMinIntervalMs = 2_000
        let d = try h.start(src)
        src.assign([0])
        try h.drain(src)
        // Windows are due, but the previous checkpoint (the start) is less than 2 s old.
        #expect(d.store.epoch == 0 && d.windowDueSince != nil)
        h.clock.advance(ms: 1_999)
        try d.step()
        #expect(d.store.epoch == 0)
        h.clock.advance(ms: 1)
        try d.step()
        #expect(d.store.epoch == 1 && d.status.filesWritten > 0 && d.windowDueSince == nil)
        // Nothing due and nothing read: the interval passes without a new manifest.
        h.clock.advance(ms: 10_000)
        try d.step()
        #expect(d.store.epoch == 1)
        // New records but no window due: a checkpoint after checkpoint_interval, not before.
        let ts = d.engine.partition(0).maxTs
        src.append(Array(#"{"event":"heartbeat","ts":\#(ts),"session_id":"x","seq":1}"#.utf8), partition: 0)
        h.clock.advance(ms: 9_999)
        try d.step()
        #expect(d.store.epoch == 1 && d.book[0]!.epochStart < d.book[0]!.next)
        h.clock.advance(ms: 1)
        try d.step()
        #expect(d.store.epoch == 2 && d.book.unchangedThisEpoch)
    }

    /// After an epoch the driver gives the heap's free pages back, at most
    /// once per `HeapTrim.intervalSeconds` (docs/architecture.md "The daemon's heap").
    @Test func theHeapIsTrimmedAfterAnEpochAtMostOncePerInterval() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = Self.source(partitions: 1, sessions: 80)
        let h = try Harness(sink: dir + "/out")
        let d = try h.start(src)
        final class Count { var n = 0 }
        let trims = Count()
        d.heapTrim = HeapTrim(intervalSeconds: 30, nowSeconds: h.clock.monotonicSeconds(), release: { trims.n += 1 })
        src.assign([0])
        try h.drain(src)
        try d.checkpoint(reason: "interval")
        #expect(d.store.epoch == 1 && trims.n == 0, "trimmed right after the start")
        h.clock.advance(ms: 29_999)
        try d.checkpoint(reason: "interval")
        #expect(trims.n == 0, "trimmed before the interval passed")
        h.clock.advance(ms: 1)
        try d.checkpoint(reason: "interval")
        #expect(trims.n == 1, "no trim after the epoch 30 s after the start")
        h.clock.advance(ms: 10_000)
        try d.checkpoint(reason: "interval")
        #expect(trims.n == 1 && d.heapTrim.trims == 1)
        h.clock.advance(ms: 20_000)
        try d.checkpoint(reason: "shutdown")
        #expect(trims.n == 2)
    }

    /// A clock whose monotonic time moves 50 ms at every read: `run` loops
    /// on its own, and a quiet second at the end of input passes.
    final class TickingClock: Clock, @unchecked Sendable {
        var monotonic = 1000.0
        func wallMs() -> Int64 { DriverTests.wall }
        func monotonicSeconds() -> Double { monotonic += 0.05; return monotonic }
    }

    /// `qos demo` at --duration: the traffic stops (`afterDuration`, once),
    /// and the run reads what is left before it stops, however far behind.
    @Test func atTheDurationTheRunReadsWhatIsLeftThenStops() throws {
        func run(drain: Bool) throws -> (messages: Int64, stops: Int, total: Int, closedAll: Bool) {
            let sink = DriverTests.tempDir()
            defer { try? FileManager.default.removeItem(atPath: sink) }
            let src = DriverTests.source(partitions: 3)
            // What the producers flush when they are stopped.
            let more = DriverTests.source(partitions: 3, sessions: 20, seed: 9)
            var o = RunOptions()
            o.sink = sink
            o.instance = "test-drain"
            o.pollBatch = 50  // far behind: at --duration nothing has been read yet
            o.durationSeconds = 0
            o.log = .silent
            var stops = 0
            if drain {
                o.afterDuration = {
                    stops += 1
                    for p in more.ids { for r in more.records[Int(p)] { src.append(r, partition: p) } }
                }
            }
            let d = try StreamDriver(o, clock: TickingClock())
            try d.store.openState(accept: false, log: { _ in })
            src.assign(src.ids)
            let status = try d.run(src)
            #expect(!status.drainCutShort)
            let c = status.counters
            return (c.messages, stops, src.records.reduce(0) { $0 + $1.count },
                    c.sessionsOpened > 0 && c.sessionsClosed == c.sessionsOpened)
        }
        let drained = try run(drain: true)
        #expect(drained.stops == 1)
        // Drained, the input ends: every session closes (and every window is written).
        #expect(drained.closedAll)
        #expect(drained.total > 3 * 50 && drained.messages == Int64(drained.total))
        let stopped = try run(drain: false)  // without it, the run stops at --duration
        #expect(stopped.messages < Int64(stopped.total))
    }

    /// A drain that cannot end (nothing assigned) stops after `drainLimitSeconds`.
    @Test func aDrainThatCannotEndStopsAtItsLimit() throws {
        let sink = DriverTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: sink) }
        var o = RunOptions()
        o.sink = sink
        o.instance = "test-drain"
        o.durationSeconds = 1
        o.drainLimitSeconds = 3
        o.log = .silent
        o.afterDuration = {}
        let clock = TickingClock()
        let d = try StreamDriver(o, clock: clock)
        try d.store.openState(accept: false, log: { _ in })
        let started = clock.monotonic
        let status = try d.run(DriverTests.source(partitions: 2))  // never assigned
        #expect(status.counters.messages == 0)
        #expect(clock.monotonic - started >= 4 && clock.monotonic - started < 5)
        #expect(status.drainCutShort, "the status says the drain stopped short")
    }
}

extension DriverTests {
    /// A process whose partitions the group took away while it was paused
    /// (the lost revoke not served yet) must not commit the epoch it was in:
    /// its successor resumes from the last checkpoint, and a commit now would
    /// count that stretch twice (docs/architecture.md "Fencing"). It stops
    /// before the commit point; a restart resumes from the last checkpoint.
    @Test func anEpochOfPartitionsTheGroupTookAwayIsNotCommitted() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = Self.source(partitions: 2)
        let h = try Harness(sink: dir + "/sink")
        let d = try h.start(src)
        src.assign(src.ids)
        for _ in 0..<3 { try d.step() }
        try d.checkpoint(reason: "test")
        let committed = try #require(try d.store.manifests().last).epoch
        let visible = Inspector.parquetFiles(under: h.sink).count
        for _ in 0..<3 { try d.step() }
        src.assignmentLost = true
        #expect(throws: SourceFenced.self) { try d.checkpoint(reason: "test") }
        #expect(try d.store.manifests().last?.epoch == committed)
        #expect(Inspector.parquetFiles(under: h.sink).count == visible)
        // The fence is what stopped it: with the assignment intact the same epoch commits.
        src.assignmentLost = false
        try d.checkpoint(reason: "test")
        #expect(try d.store.manifests().last.map { $0.epoch > committed } == true)
    }

    /// Instances "a" and "b" on one sink, each holding both partitions of
    /// the same records from the start, three polls in.
    static func twoReaders(sink: String) throws
        -> (MemoryRecordSource, MemoryRecordSource, StreamDriver, StreamDriver) {
        let srcA = source(partitions: 2), srcB = reopen(srcA)
        let da = try Harness(sink: sink, instance: "a").start(srcA), db = try Harness(sink: sink, instance: "b").start(srcB)
        srcA.assign([0, 1])
        srcB.assign([0, 1])
        for _ in 0..<3 { try da.step(); try db.step() }
        return (srcA, srcB, da, db)
    }

    /// Two daemons reading the same partitions into one sink (another
    /// --group on the same --sink, or a member resumed after the group gave
    /// its partitions away without librdkafka noticing yet): whichever
    /// checkpoints second finds the other's newer checkpoint sequence in the
    /// sink and stops before its commit point, so nothing is published twice
    /// (docs/architecture.md "Fencing"). A restart resumes from the newest
    /// checkpoint.
    @Test func aSecondReaderOfTheSamePartitionsIntoOneSinkIsRefused() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (srcA, srcB, da, db) = try Self.twoReaders(sink: dir + "/out")
        try da.checkpoint(reason: "test")
        let visible = try Self.visible(dir + "/out")
        #expect(!visible.isEmpty)
        let refused = #expect(throws: ConcurrentHolder.self) { try db.checkpoint(reason: "test") }
        #expect(refused?.otherInstance == "a" && refused?.ours == 1 && refused?.theirs == 1)
        #expect(refused?.description.contains("another --group") == true)
        #expect(try db.store.manifests().allSatisfy { $0.instance == "a" })
        #expect(try Self.visible(dir + "/out") == visible)
        // a, alone now, keeps committing; b restarted resumes from a's newest checkpoint.
        try da.step()
        try da.checkpoint(reason: "test")
        let srcC = Self.reopen(srcA)
        let c = try Harness(sink: dir + "/out", instance: "c")
        let dc = try c.start(srcC)
        srcA.revoke([0, 1])
        try da.step()
        srcC.assign([0, 1])
        try dc.step()
        #expect(dc.book[0]?.seq == 3 && dc.book[1]?.seq == 3)
        try c.drain(srcC)
        try dc.finish()
    }

    /// The same two readers racing: b passes both fences, then — paused
    /// right there — a commits the same checkpoint, then b's manifest lands
    /// too. b's check after its commit point finds a's and withdraws its
    /// manifest before publishing a file of it.
    @Test func aCheckpointCommittedInTheSameMomentAsAnotherHoldersIsWithdrawn() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (srcA, srcB, da, db) = try Self.twoReaders(sink: dir + "/out")
        srcB.whileFenceChecks = {
            srcB.whileFenceChecks = nil
            try da.checkpoint(reason: "test")
        }
        let refused = #expect(throws: ConcurrentHolder.self) { try db.checkpoint(reason: "test") }
        #expect(refused?.otherInstance == "a" && refused?.ours == 1 && refused?.theirs == 1)
        #expect(srcB.whileFenceChecks == nil, "the race was not staged")
        let manifests = try da.store.manifests()
        #expect(manifests.count == 1 && manifests.allSatisfy { $0.instance == "a" })
        // Only a's files are visible: a's alone, checkpointed again, adds nothing new.
        let visible = try Self.visible(dir + "/out")
        #expect(!visible.isEmpty)
        let other = try Harness(sink: dir + "/solo", instance: "a")
        let solo = Self.reopen(srcA), ds = try other.start(solo)
        solo.assign([0, 1])
        for _ in 0..<3 { try ds.step() }
        try ds.checkpoint(reason: "test")
        #expect(try Self.visible(dir + "/solo").count == visible.count)
    }
}
