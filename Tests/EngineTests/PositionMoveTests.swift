import Foundation
import Testing
import TestSupport
@testable import Engine

/// When Kafka moves a partition's position (docs/architecture.md "When
/// Kafka moves a position"): the decision alone, then the driver over an
/// in-memory source whose partitions lose offsets to retention or start
/// over as a recreated topic does. The real broker's side is in
/// KafkaTests and tests/interop/test_daemon.py.
@Suite struct PositionMoveTests {
    @Test func aMovedPartitionIsDecidedByTheFirstRecordFetchedAfterTheMove() {
        var m = PositionMoves()
        #expect(m.decide(3, offset: 10, next: 10) == nil, "not moved: nothing to decide")
        m.moved(3, at: 100)
        m.moved(3, at: 250)  // a second report keeps the first offset
        // Records fetched before the move are still queued: read as usual.
        #expect(m.decide(3, offset: 98, next: 98) == .pending)
        #expect(m.decide(3, offset: 99, next: 99) == .pending)
        // The first record at or past the offset Kafka could not serve.
        #expect(m.decide(3, offset: 160, next: 100) == .skipped(60))
        #expect(m.isEmpty)

        m.moved(1, at: 500)
        #expect(m.decide(1, offset: 0, next: 500) == .restarted)
        #expect(m.decide(1, offset: 1, next: 1) == nil)

        m.moved(2, at: 40)
        #expect(m.decide(2, offset: 40, next: 40) == .skipped(0))

        m.moved(4, at: 40)
        m.forget(4)
        #expect(m.decide(4, offset: 0, next: 40) == nil, "a released partition is not decided")

        m.moved(5, at: 70)
        #expect(m.decideEmpty(5, end: 0, next: 70) == .restarted)
        m.moved(5, at: 70)
        #expect(m.decideEmpty(5, end: 90, next: 70) == .skipped(20))
        #expect(m.decideEmpty(5, end: 90, next: 70) == nil)
    }

    typealias Harness = DriverTests.Harness

    /// Reads `src` (every partition owned) until nothing is left, in steps.
    func readAll(_ h: Harness, _ src: MemoryRecordSource) throws {
        for _ in 0..<10_000 {
            try h.driver.step()
            if !src.lag().values.contains(where: { $0 > 0 }) && src.pending.isEmpty { return }
        }
        Issue.record("the source was not read to its end")
    }

    @Test func aRecreatedPartitionIsReadFromItsNewStartAndCountedOnce() throws {
        let dir = DriverTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = DriverTests.source(partitions: 2, sessions: 60)
        let fresh = DriverTests.source(partitions: 2, sessions: 12, seed: 9).records[1]
        #expect(fresh.count > 0 && fresh.count < src.records[1].count)
        // The reference: the same records of partition 1 one after the other, no restart.
        let reference = MemoryRecordSource(name: "beacons", partitions: 2)
        for r in src.records[0] { reference.append(r, partition: 0) }
        for r in src.records[1] + fresh { reference.append(r, partition: 1) }
        _ = try DriverTests.uninterrupted(reference, sink: dir + "/reference")

        let h = try Harness(sink: dir + "/out")
        let d = try h.start(src)
        src.assign([0, 1])
        try readAll(h, src)
        try d.checkpoint(reason: "test")
        let before = d.book[1]!.next
        // The topic is recreated: partition 1 starts over with new records.
        src.recreate(1, with: fresh)
        try readAll(h, src)
        #expect(d.book[1]!.next == Int64(fresh.count))
        #expect(d.status.kafkaLogRestarts == 1 && d.status.kafkaOffsetsSkipped == 0)
        #expect(h.logBox.lines.contains {
            $0.contains("partition beacons[1] restarts at offset 0, below its next offset \(before)")
        }, "\(h.logBox.lines)")
        try d.finish()
        #expect(d.engine.counters.messages == Int64(reference.records.reduce(0) { $0 + $1.count }))
        let got = try DriverTests.overallTotals(dir + "/out"), want = try DriverTests.overallTotals(dir + "/reference")
        #expect(got == want, "\(got) != \(want)")
        #expect(want["views", default: 0] > 20)
        // The checkpoint holds the new offset: a restart goes on from there.
        let manifest = try d.store.manifests().last!
        #expect(manifest.partitions.first { $0.partition == 1 }?.nextOffset == Int64(fresh.count))
    }

    @Test func offsetsDeletedByRetentionAreSkippedCountedAndLogged() throws {
        let dir = DriverTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = DriverTests.source(partitions: 1, sessions: 60)
        let total = Int64(src.records[0].count)
        #expect(total > 2_000)
        let h = try Harness(sink: dir + "/out")
        let d = try h.start(src)
        src.assign([0])
        try d.step()  // the assignment
        try d.step()
        let read = d.book[0]!.next
        #expect(read > 0 && read < 1_200)
        src.expire(0, below: 1_200)
        try readAll(h, src)
        #expect(d.status.kafkaOffsetsSkipped == 1_200 - read && d.status.kafkaLogRestarts == 0)
        #expect(d.engine.counters.messages == total - (1_200 - read))
        #expect(h.logBox.lines.contains {
            $0.contains("DATA LOSS: partition beacons[0]: offsets \(read) to 1199 (\(1_200 - read)) were never read")
        }, "\(h.logBox.lines)")
        let metrics = MetricsServer.render(d.status)
        #expect(metrics.contains("qos_kafka_offsets_skipped_total \(1_200 - read)\n"))
        #expect(metrics.contains("qos_kafka_log_restarts_total 0\n"))
    }

    @Test func anEmptyRecreatedPartitionStillEndsTheInput() throws {
        let dir = DriverTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = DriverTests.source(partitions: 2, sessions: 30)
        let h = try Harness(sink: dir + "/out")
        h.options.untilCaughtUp = true
        let d = try h.start(src)
        src.assign([0, 1])
        try readAll(h, src)
        src.recreate(1, with: [])
        for _ in 0..<50 where !d.finished {
            try d.step()
            h.clock.advance(ms: 600)
        }
        #expect(d.finished, "the input ended")
        #expect(d.book[1]!.next == 0 && d.status.kafkaLogRestarts == 1)
        #expect(d.book[0]!.next == Int64(src.records[0].count))
    }
}
