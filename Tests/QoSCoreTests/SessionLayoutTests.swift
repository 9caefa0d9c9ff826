@testable import QoSCore
import Testing

#if os(Linux)
/// The C `malloc_usable_size`, mimalloc's in this process (not in the Glibc
/// module map).
@_silgen_name("malloc_usable_size") private func mallocUsableSize(_ p: UnsafeMutableRawPointer?) -> Int
#endif

/// The compact `SessionState` layout: its size, and that every value it
/// stores in a narrower form (time offsets, 32/16-bit fields, the side
/// object) reads back exactly.
@Suite struct SessionLayoutTests {
    #if os(Linux)
    /// One block of mimalloc's 256-byte size class (README: memory per open
    /// session; under glibc it was a 256-byte chunk, 248 usable). A session
    /// that outgrows 256 bytes takes the next class, 320, and fails here.
    @Test func instanceFitsA256ByteBlock() {
        let s = SessionState(id: "968d212178ef3e47-285458e6", ts: 1_700_000_000_000)
        let usable = withExtendedLifetime(s) { mallocUsableSize(Unmanaged.passUnretained(s).toOpaque()) }
        #expect(usable <= 256, "a session takes \(usable) bytes")
    }
    #endif

    /// A `Beacon` is at most 128 bytes: the compiler copies it inline, not
    /// through `memcpy`, three times per beacon in the decode stage
    /// (bench/results/speed.md section 48). A field added past that, or the
    /// one-byte fields declared apart again, fails here.
    @Test func beaconFitsInlineCopies() {
        #expect(MemoryLayout<Beacon>.size <= 128, "Beacon is \(MemoryLayout<Beacon>.size) bytes")
    }

    /// Times at the extreme offsets allowed by the largest valid config, on
    /// both sides of the earliest `ts`, and after the earliest `ts` moves back.
    @Test func timesRoundTripAtTheBounds() {
        let t0: Int64 = 1_700_000_000_000
        let span = EngineConfig.sessionTimeSpanMaxMs
        let s = SessionState(id: "s", ts: t0)
        s.arrivalMark = t0 - 1_000
        s.latestTs = t0 + span
        s.viewStartTs = t0
        s.firstPlayTs = t0 + span - 1
        s.stallOpenTs = t0 + span
        s.seekOpenTs = nil
        #expect(s.earliestTs == t0 && s.latestTs == t0 + span && s.arrivalMark == t0 - 1_000)
        #expect(s.viewStartTs == t0 && s.firstPlayTs == t0 + span - 1 && s.stallOpenTs == t0 + span)
        #expect(s.seekOpenTs == nil)
        s.startupMs = span - 1
        #expect(s.startupMs == span - 1)

        let low = SessionState(id: "s", ts: t0)
        low.arrivalMark = t0 - span + 90
        low.latestTs = t0 + 50
        low.seekOpenTs = t0 + 40
        #expect(low.arrivalMark == t0 - span + 90)
        // The earliest ts moves back: the other times keep their values.
        low.earliestTs = t0 - span + 100
        #expect(low.earliestTs == t0 - span + 100 && low.latestTs == t0 + 50 && low.arrivalMark == t0 - span + 90)
        #expect(low.seekOpenTs == t0 + 40 && low.viewStartTs == nil)
        low.arrivalMark = .min
        #expect(low.arrivalMark == .min)
    }

    /// A checkpoint reader builds the session with `ts: 0` and then sets the
    /// times (earliest first) to values far from 0.
    @Test func freshSessionTakesAnyEarliestTs() {
        for t in [Int64(0), 5, 1_700_000_000_000, Int64(Int32.max) + 7, 4_000_000_000_000] {
            let s = SessionState(id: "r", ts: 0)
            s.earliestTs = t
            s.latestTs = t + 21_600_000
            s.arrivalMark = t - 30_000
            s.viewStartTs = t + 1
            #expect(s.earliestTs == t && s.latestTs == t + 21_600_000 && s.arrivalMark == t - 30_000)
            #expect(s.viewStartTs == t + 1)
        }
    }

    /// Values too wide for their compact field move to the side object and
    /// read back exactly; narrow again, they move back.
    @Test func wideValuesStayExact() {
        let s = SessionState(id: "w", ts: 0)
        let counts: [ReferenceWritableKeyPath<SessionState, Int64>] = [
            \.beacons, \.errors, \.rebufferCount, \.seekCount, \.upshifts, \.downshifts,
            \.maxPlayheadMs, \.playingMs, \.rebufferMs, \.seekMs, \.bitratePlayedMs, \.bitrateMsSum]
        let values: [Int64] = [0, 1, 65_534, 65_535, 65_536, 4_294_967_293, 4_294_967_294, 4_294_967_295,
                               4_294_967_296, .max, -1, .min, 7]
        for (i, k) in counts.enumerated() {
            for v in values {
                s[keyPath: k] = v
                #expect(s[keyPath: k] == v)
                // The others are unaffected.
                for (j, other) in counts.enumerated() where j < i { #expect(s[keyPath: other] == 7) }
            }
        }
        let optionals: [ReferenceWritableKeyPath<SessionState, Int64?>] = [\.currentBitrate, \.asn, \.videoDurationMs]
        for k in optionals {
            for v in values.map(Optional.some) + [nil] {
                s[keyPath: k] = v
                #expect(s[keyPath: k] == v)
            }
        }
        s.fatalErrorCode = 42
        #expect(s.fatalErrorCode == 42)
    }

    /// `startupMs` is a flag when it is `firstPlayTs − viewStartTs` (what the
    /// engine stores); any other value is kept as is.
    @Test func startupIsDerivedOrKept() {
        let s = SessionState(id: "u", ts: 1_000)
        #expect(s.startupMs == nil)
        s.viewStartTs = 1_000
        s.firstPlayTs = 1_750
        s.startupMs = 750
        #expect(s.startupMs == 750)
        s.startupMs = 123
        #expect(s.startupMs == 123)
        s.startupMs = nil
        #expect(s.startupMs == nil)
        let t = SessionState(id: "v", ts: 1_000)
        t.startupMs = 5
        #expect(t.startupMs == 5)
    }

    /// `seq` ranges past the first live in the side object; the set behaves
    /// as `SeqSet` does.
    @Test func seqRangesMatchSeqSet() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let s = SessionState(id: "q", ts: 0)
            var ref = SeqSet()
            for _ in 0..<300 {
                let seq = UInt32.random(in: 0..<400, using: &rng)
                #expect(s.acceptSeq(seq) == ref.insert(seq))
                #expect(s.seqs == ref)
            }
            let restored = SessionState(id: "q", ts: 0)
            for r in ref.ranges { restored.seqs.restore(r) }
            #expect(restored.seqs == ref)
        }
    }

    /// An engine at the largest valid time span: a session whose times use
    /// the whole offset range (late beacons that move its earliest `ts` back
    /// by nearly `max_lateness`) closes with exact facts.
    @Test func engineAtTheLargestValidSpan() {
        let h = Harness { c in
            c.maxLatenessMs = EngineConfig.sessionTimeSpanMaxMs - c.sessionMaxMs - c.sessionTimeoutMs - c.latenessMs
        }
        #expect(h.config.problem == nil)
        let t0: Int64 = 3_000_000_000_000
        let maxLate = h.config.maxLatenessMs
        // Another session moves the partition watermark far ahead.
        h.beacon("view_start", t0, "far")
        h.beacon("view_start", t0 + maxLate, "a", ["seq": 1])
        h.beacon("play_start", t0 + maxLate + 2_000, "a", ["seq": 2, "played_ms": 0])
        // Late beacons of `a`, each as late as admission allows.
        let wm = t0 + maxLate + 2_000 - h.config.latenessMs
        let early = wm - maxLate
        // 50 × the largest played_ms (24 h) passes 2^32: the wide field.
        for k in 0..<50 { h.beacon("heartbeat", early + Int64(k), "a", ["seq": 3 + k, "played_ms": 86_400_000]) }
        h.beacon("heartbeat", early + 100, "a", ["seq": 53, "played_ms": 1, "playhead_ms": 5_000_000_000])
        h.finish()
        let rows = h.written.flatMap(\.sessions).filter { $0.sessionId == "a" }
        #expect(rows.count == 1)
        if let r = rows.first {
            #expect(r.startTs == early && r.endTs == t0 + maxLate + 2_000)
            #expect(r.playingMs == 4_320_000_001 && r.maxPlayheadMs == 5_000_000_000 && r.beacons == 53)
            #expect(r.startupMs == 2_000)
        }
    }

    /// A checkpoint whose session times span 2^31 ms or more (written under a
    /// wider config) is refused with an error, not a trap.
    @Test func restoreRefusesTooWideSessions() throws {
        func snapshot(latest: Int64) -> [UInt8] {
            var w = StateWriter()
            for b in Array("QOSPART1".utf8) { w.uint(UInt64(b)) }
            w.int(0); w.int(1_000); w.int(.min)  // partition, max ts, written through
            w.uint(0)  // windows
            w.uint(1)  // sessions, in SessionSnapshot's encode order:
            w.string("s1")
            for v: Int64 in [0, latest, .min, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] { w.int(v) }
            for _ in 0..<8 { w.optInt(nil) }
            for _ in 0..<6 { w.bool(false) }
            for _ in 0..<5 { w.optString(nil) }
            w.optBool(nil)
            for _ in 0..<9 { w.string("unknown") }
            w.uint(0)  // seq ranges
            return w.bytes
        }
        let engine = QoSEngine<ExactKit>()
        let edge = Int64(Int32.max) - engine.config.sessionTimeoutMs
        try engine.restore(partition: 0, from: snapshot(latest: edge))
        #expect(engine.partitions[0]?.sessions.lookup("s1")?.latestTs == edge)
        #expect(throws: StateError.self) { try engine.restore(partition: 0, from: snapshot(latest: edge + 1)) }
        #expect(throws: StateError.self) { try engine.restore(partition: 0, from: snapshot(latest: .max)) }
    }
}
