import Testing
@testable import QoSCore

/// A beacon repeating the `(session_id, seq)` of a session that has closed
/// is a duplicate (docs/semantics.md §1), not the start of a phantom session
/// with `missing_start` and the played time counted again — for one session
/// timeout of event time after the close (`ClosedSessions`).
@Suite struct ClosedSessionsTests {
    /// A played session ended by `view_end`, then its `view_end` delivered again.
    func endedThenRepeated(_ h: Harness, repeatAt ts: Int64 = 4000) {
        h.beacon("view_start", 1000, "A", ["seq": 0, "video_id": "v"])
        h.beacon("play_start", 2000, "A", ["seq": 1])
        h.beacon("heartbeat", 3000, "A", ["seq": 2, "played_ms": 1000])
        h.beacon("view_end", 4000, "A", ["seq": 3, "played_ms": 1000, "reason": "ended"])
        h.beacon("view_end", ts, "A", ["seq": 3, "played_ms": 1000, "reason": "ended"])
    }

    @Test func aRepeatedViewEndAfterTheCloseIsADuplicate() {
        let h = Harness()
        endedThenRepeated(h)
        h.finish()
        let m = h.metrics(0)
        #expect(m.duplicates == 1 && h.engine.counters.duplicates == 1)
        #expect(m.sessionsEnded == 1 && m.completed == 1 && m.missingStart == 0 && m.playingMs == 2000)
        #expect(h.sessionRows.count == 1)
        // In the closed session's groups, as for an open session's duplicate.
        #expect(h.metrics(0, .video, ["v"]).duplicates == 1)
    }

    @Test func aNewSeqAfterTheCloseOpensANewSessionThatKeepsTheOldSeqs() {
        let h = Harness()
        endedThenRepeated(h)
        h.beacon("heartbeat", 5000, "A", ["seq": 4, "played_ms": 500])   // a new session (docs/semantics.md §2)
        h.beacon("heartbeat", 2500, "A", ["seq": 1, "played_ms": 500])   // a repeat of the first session's
        h.finish()
        let m = h.metrics(0)
        #expect(m.duplicates == 2 && m.missingStart == 1 && h.sessionRows.count == 2)
        #expect(h.sessionRows.map(\.beacons).sorted() == [1, 4])
    }

    @Test func theRecordExpiresOneSessionTimeoutAfterTheClose() {
        let h = Harness()
        endedThenRepeated(h, repeatAt: 4000)
        // The watermark passes close + timeout (and lateness) on another session.
        let beyond = 4000 + h.config.sessionTimeoutMs + h.config.latenessMs
        h.beacon("heartbeat", beyond, "B", ["seq": 0])
        #expect(h.engine.partition(0).closedSessions.count <= 1)  // A's, until the next beacon's check
        h.beacon("heartbeat", beyond + 1, "B", ["seq": 1])
        #expect(h.engine.partition(0).closedSessions.entry("A") == nil)
        h.beacon("view_end", 4000, "A", ["seq": 3, "reason": "ended"])   // now a new session, as before
        h.finish()
        #expect(h.engine.counters.duplicates == 1 && h.sessionRows.filter { $0.sessionId == "A" }.count == 2)
    }

    /// Entries leave memory in close order, not expiry order; an entry past
    /// its expiry must count as gone all the same, or a restored engine
    /// (whose entries are in expiry order) would decide otherwise.
    @Test func anEntryPastItsExpiryIsGoneWhateverTheCloseOrder() throws {
        func run(restoreBeforeRepeat: Bool) throws -> (duplicates: Int64, sessions: Int) {
            let h = Harness()
            h.beacon("view_start", 1000, "A", ["seq": 0])
            h.beacon("heartbeat", 100_000, "A", ["seq": 1])
            h.beacon("view_end", 100_000, "A", ["seq": 2])      // A's entry expires at 400 000
            h.beacon("view_start", 2000, "B", ["seq": 0])
            h.beacon("view_end", 2000, "B", ["seq": 1])         // closed after A; expires at 302 000
            h.beacon("heartbeat", 380_000, "C", ["seq": 0])     // watermark 350 000: B's expired, A's not
            var engine = h.engine
            if restoreBeforeRepeat {
                engine = QoSEngine<ExactKit>(config: h.config)
                try engine.restore(partition: 0, from: h.engine.snapshot(partition: 0))
            }
            let repeatLine = Harness.json([("event", "view_end"), ("ts", 2000), ("session_id", "B"), ("seq", 1)])
            Array(repeatLine.utf8).withUnsafeBytes {
                engine.ingest(message: $0, partition: 0, source: .file(name: "t", line: 9), nowMs: h.nowMs)
            }
            return (engine.counters.duplicates, engine.partition(0).sessions.count)
        }
        let straight = try run(restoreBeforeRepeat: false), restored = try run(restoreBeforeRepeat: true)
        #expect(straight.duplicates == 0 && restored.duplicates == 0)
        #expect(straight.sessions == restored.sessions)
    }

    @Test func sessionsWithoutSeqAndTheEndOfInputLeaveNoRecord() {
        let h = Harness()
        h.beacon("view_start", 1000, "A")
        h.beacon("view_end", 2000, "A")
        #expect(h.engine.partition(0).closedSessions.isEmpty)
        h.beacon("view_start", 3000, "B", ["seq": 0])
        h.finish()
        #expect(h.engine.partition(0).closedSessions.isEmpty)
    }

    /// Restored from a checkpoint between the close and the repeat, the
    /// engine decides as one that ran through (docs/semantics.md §2: a replay after a crash
    /// makes the same decisions); equal states give equal snapshot bytes.
    @Test func theRecordIsCheckpointed() throws {
        let h = Harness()
        h.beacon("view_start", 1000, "A", ["seq": 0, "video_id": "v", "cdn": "c"])
        h.beacon("view_end", 4000, "A", ["seq": 1])
        let snap = h.engine.snapshot(partition: 0)
        let restored = QoSEngine<ExactKit>(config: h.config)
        try restored.restore(partition: 0, from: snap)
        #expect(restored.partition(0).closedSessions.entry("A") == h.engine.partition(0).closedSessions.entry("A").map {
            var e = $0
            e.dims = restored.partition(0).closedSessions.entry("A")!.dims  // ids of the restored interner
            return e
        })
        #expect(restored.snapshot(partition: 0) == snap)
        let repeatLine = Harness.json([("event", "view_end"), ("ts", 4000), ("session_id", "A"), ("seq", 1)])
        Array(repeatLine.utf8).withUnsafeBytes {
            restored.ingest(message: $0, partition: 0, source: .file(name: "t", line: 3), nowMs: h.nowMs)
        }
        #expect(restored.counters.duplicates == 1 && restored.counters.sessionsOpened == 0)
        let w = restored.finish()
        let video = w.flatMap { win in zip(win.tables[MetricTable.video.rawValue].keys, win.tables[MetricTable.video.rawValue].metrics)
            .filter { restored.interner.string($0.0.a) == "v" }.map(\.1.duplicates) }
        #expect(video.reduce(0, +) == 1)
    }

    /// A version-2 snapshot (before closed sessions were kept) still restores.
    @Test func aVersion2SnapshotRestores() throws {
        let h = Harness()
        h.beacon("view_start", 1000, "A", ["seq": 0])
        h.beacon("heartbeat", 2000, "A", ["seq": 1, "played_ms": 700])
        var v3 = h.engine.snapshot(partition: 0)
        // Version 3 ends with the cdn_edge flag (false) and no closed sessions (0): drop both and the CRC.
        #expect(Array(v3.suffix(6).prefix(2)) == [0, 0])
        v3.removeLast(6)
        var v2 = v3
        v2[7] = UInt8(ascii: "2")
        CRC32C.seal(&v2)
        let restored = QoSEngine<ExactKit>(config: h.config)
        try restored.restore(partition: 0, from: v2)
        #expect(restored.snapshot(partition: 0) == h.engine.snapshot(partition: 0))
    }
}
