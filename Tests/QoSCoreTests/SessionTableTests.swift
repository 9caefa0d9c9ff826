@testable import QoSCore
import SecretHash
import Testing

#if os(Linux)
/// The allocator's (mimalloc's) block size of an allocation (not in the Swift Glibc module).
@_silgen_name("malloc_usable_size") private func mallocUsableSize(_ block: UnsafeMutableRawPointer?) -> Int
#endif

@Suite struct SessionTableTests {
    /// Random inserts and removals (many colliding probe runs in a small id
    /// space) agree with a Dictionary at every step.
    @Test func agreesWithADictionary() {
        var rng = SystemRandomNumberGenerator()
        var table = SessionTable()
        var ref: [String: SessionState] = [:]
        for step in 0..<20_000 {
            let id = "s-\(Int.random(in: 0..<(step < 10_000 ? 3_000 : 300), using: &rng))"
            if let s = ref[id] {
                #expect(table.lookup(id) === s)
                if Bool.random(using: &rng) { table.remove(s); ref[id] = nil }
            } else {
                #expect(table.lookup(id) == nil)
                let s = SessionState(id: id, ts: Int64(step))
                table.insert(s)
                ref[id] = s
            }
            #expect(table.count == ref.count)
        }
        for (id, s) in ref {
            #expect(table.lookup(id) === s)
            let found = Array(id.utf8).withUnsafeBytes { table.lookup($0) }
            #expect(found === s)
        }
        #expect(Set(table.values.map(\.id)) == Set(ref.keys))
        for s in ref.values { table.remove(s) }
        #expect(table.count == 0 && table.values.isEmpty)
    }

    /// The hash before the per-process secret (multiply-xorshift from a
    /// fixed seed), kept here to build an attack on it.
    static func fixedSeedHash(_ b: [UInt8]) -> UInt32 {
        var h: UInt64 = 0x243F_6A88_85A3_08D3 ^ UInt64(b.count)
        var i = 0
        while i + 8 <= b.count {
            var w: UInt64 = 0
            for k in 0..<8 { w |= UInt64(b[i + k]) << (8 * UInt64(k)) }
            h = (h ^ w) &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 29
            i += 8
        }
        if i < b.count {
            var w: UInt64 = 0, shift: UInt64 = 0
            while i < b.count { w |= UInt64(b[i]) << shift; shift += 8; i += 1 }
            h = (h ^ w) &* 0x9E37_79B9_7F4A_7C15
        }
        h ^= h >> 33; h &*= 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33; h &*= 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return UInt32(truncatingIfNeeded: h)
    }

    /// Ids chosen offline to share their low hash bits (what anyone sending
    /// beacons could do against a hash with a fixed seed) do not pile up in
    /// one probe run: the table's hash has a secret drawn per process
    /// (docs/architecture.md "Keys from anyone"). Under the fixed-seed
    /// hash these 2 000 ids share 4 of the table's 4 096 home buckets, so
    /// they fill runs of about 500 that every lookup walks; the test fails
    /// if that hash comes back.
    @Test func idsChosenToCollideDoNotFormOneProbeRun() {
        let hex = Array("0123456789abcdef".utf8)
        var chosen: [[UInt8]] = []
        var id = Array("flood-0000000000000000".utf8)
        var n: UInt64 = 0
        while chosen.count < 2_000 {
            n += 1
            var x = n
            for k in 6..<22 { id[k] = hex[Int(x & 15)]; x >>= 4 }
            if Self.fixedSeedHash(id) & 0x3FF == 0 { chosen.append(id) }
        }
        var table = SessionTable()
        for id in chosen { table.insert(SessionState(id: String(decoding: id, as: UTF8.self), ts: 0)) }
        #expect(table.count == chosen.count)
        #expect(table.longestRun() < 100, "the chosen ids formed a probe run of \(table.longestRun())")
        for id in chosen { #expect(id.withUnsafeBytes { table.lookup($0) } != nil) }
    }

    /// Each process draws its own secrets: two draws differ, and under
    /// other secrets the same ids hash differently.
    @Test func hashSecretsAreDrawnAtRandom() {
        var g = SystemRandomNumberGenerator()
        let a = SecretHash(using: &g), b = SecretHash(using: &g)
        #expect(a.start != b.start && a.factor != b.factor)
        #expect(a.factor & 1 == 1 && a.final & 1 == 1)
        let ids = (0..<64).map { Array("session-\($0)".utf8) }
        let differ = ids.filter { id in id.withUnsafeBytes { a.hash($0) != b.hash($0) } }
        #expect(differ.count == ids.count)
    }

    /// A lookup with the caller's hash finds what a plain lookup finds, and
    /// prefetch hints (for ids present, absent, and on an empty table)
    /// change nothing.
    @Test func lookupsWithAGivenHashAndPrefetchHintsAgree() {
        var table = SessionTable()
        Array("none".utf8).withUnsafeBytes { id in
            table.prefetch(hash: SessionTable.hash(id), session: false)
            table.prefetch(hash: SessionTable.hash(id), session: true)
        }
        let sessions = (0..<5_000).map { SessionState(id: "id-\($0)", ts: 0) }
        for s in sessions { table.insert(s) }
        for k in 0..<10_000 {
            let id = Array("id-\(k)".utf8)
            id.withUnsafeBytes { raw in
                let h = SessionTable.hash(raw)
                table.prefetch(hash: h, session: false)
                table.prefetch(hash: h, session: true)
                let found = table.lookup(raw, hash: h)
                #expect(found === table.lookup(raw))
                #expect(found === (k < 5_000 ? sessions[k] : nil))
            }
        }
        #expect(table.count == 5_000)
    }

    /// The session hint goes to the id's own session, found by the tag its
    /// bucket keeps, not to whichever session holds its home bucket; an id
    /// not in the table gets none. (A 16-bit tag can match another id's:
    /// ≈ 1 in 65 536 per bucket looked at, so the bounds allow a few.)
    @Test func theSessionHintFindsTheIdsOwnSession() {
        var table = SessionTable()
        // 5 000 ids in 8 192 buckets: about a third are not in their home bucket.
        let sessions = (0..<5_000).map { SessionState(id: "hint-\($0)", ts: 0) }
        for s in sessions { table.insert(s) }
        var own = 0, other = 0, absentHinted = 0
        for k in 0..<10_000 {
            Array("hint-\(k)".utf8).withUnsafeBytes { raw in
                let hinted = table.prefetchAddress(hash: SessionTable.hash(raw), session: true)
                guard k < 5_000 else { if hinted != nil { absentHinted += 1 }; return }
                if hinted == UnsafeRawPointer(Unmanaged.passUnretained(sessions[k]).toOpaque()) { own += 1 } else { other += 1 }
            }
        }
        #expect(own >= 4_990, "\(own) of 5 000 hints went to the id's own session, \(other) elsewhere")
        #expect(absentHinted <= 10, "\(absentHinted) of 5 000 absent ids got a hint")
    }

    #if os(Linux)
    /// `SessionState.instanceBytesMax`, the span the session prefetch
    /// covers, bounds an instance (the allocator's block holds it) and is
    /// not far above it (a stale bound would hint lines of other objects).
    @Test func aSessionFitsItsPrefetchSpan() {
        let s = SessionState(id: "a-session", ts: 0)
        let block = mallocUsableSize(Unmanaged.passUnretained(s).toOpaque())
        #expect(block <= SessionState.instanceBytesMax)
        #expect(block + 64 > SessionState.instanceBytesMax)
    }
    #endif

    /// The table holds one reference to each session it holds, and gives it
    /// back on removal and when it goes: nothing leaks, nothing is freed
    /// while the table or its caller still has it.
    @Test func theTableOwnsItsSessionsOneReferenceEach() {
        final class Probe { weak var s: SessionState? }
        var probes: [Probe] = []
        do {
            var table = SessionTable()
            for k in 0..<1_000 {
                let p = Probe()
                let s = SessionState(id: "own-\(k)", ts: 0)
                p.s = s
                probes.append(p)
                table.insert(s)  // grows several times
            }
            // Only the table keeps them now.
            #expect(probes.allSatisfy { $0.s != nil })
            for k in stride(from: 0, to: 1_000, by: 2) {
                let s = table.lookup("own-\(k)")!
                table.remove(s)
                #expect(s.id == "own-\(k)")  // the caller's reference still holds it
            }
            #expect(table.count == 500)
            for k in 0..<1_000 { #expect((probes[k].s != nil) == (k % 2 == 1)) }
            #expect(table.values.count == 500 && table.values.allSatisfy { $0.id.hasPrefix("own-") })
        }
        // The table went: it gave back the rest.
        #expect(probes.allSatisfy { $0.s == nil })
    }

    /// The engine reads a beacon's session unretained (`QoSEngine.apply`):
    /// a session closed by its own beacon (a `view_end` on a session the
    /// beacon opened, a gap) is kept in `retired` until the beacon is done,
    /// then let go; nothing is held between beacons. (That no freed session
    /// is read was checked by running these suites under AddressSanitizer:
    /// bench/results/speed.md section 38.)
    @Test func sessionsClosedWhileTheirBeaconIsAppliedAreLetGoAfterIt() {
        let h = Harness()
        let gap = h.config.sessionTimeoutMs
        h.beacon("view_end", 1_000, "opened-and-ended", ["reason": "error"])
        #expect(h.engine.retired.isEmpty)
        #expect(h.engine.partition(0).sessions.lookup("opened-and-ended") == nil)
        h.beacon("view_start", 2_000, "gapped")
        h.beacon("play_start", 2_500, "gapped")
        let before = h.engine.partition(0).sessions.lookup("gapped")
        h.beacon("heartbeat", 2_500 + gap + 1, "gapped", ["played_ms": 100])
        #expect(h.engine.retired.isEmpty)
        let after = h.engine.partition(0).sessions.lookup("gapped")
        #expect(before != nil && after != nil && before !== after)
        #expect(before?.closed == true && after?.closed == false)
        #expect(h.engine.counters.sessionsOpened == 3 && h.engine.counters.sessionsClosed == 2)
        h.finish()
        #expect(h.engine.retired.isEmpty)
        let ended = h.sessionRows.filter { $0.sessionId == "opened-and-ended" }
        #expect(ended.count == 1 && ended.first?.closeReason == .error && ended.first?.beacons == 1)
        #expect(h.sessionRows.filter { $0.sessionId == "gapped" }.map(\.beacons).sorted() == [1, 2])
    }

    /// Emptied, the table gives its grown buckets back and works as new.
    @Test func anEmptiedTableShrinks() {
        var table = SessionTable()
        let sessions = (0..<10_000).map { SessionState(id: "s\($0)", ts: 0) }
        for s in sessions { table.insert(s) }
        #expect(table.capacity >= 16_384)
        for s in sessions.dropLast() { table.remove(s) }
        #expect(table.capacity >= 16_384 && table.lookup("s9999") === sessions.last)
        table.remove(sessions.last!)
        #expect(table.count == 0 && table.capacity == 8 && table.lookup("s9999") == nil)
        for s in sessions.prefix(100) { table.insert(s) }
        #expect(table.count == 100 && sessions.prefix(100).allSatisfy { table.lookup($0.id) === $0 })
    }

    @Test func emptyAndLongIds() {
        var table = SessionTable()
        let ids = ["", "a", String(repeating: "x", count: 128), "é-ü", "12345678", "123456789"]
        for id in ids { table.insert(SessionState(id: id, ts: 0)) }
        for id in ids { #expect(table.lookup(id)?.id == id) }
        #expect(table.lookup("1234567") == nil)
    }

    /// `idEquals` compares every byte of an inline id (by words, then the
    /// tail): an id of each inline length, against itself and against the
    /// same id with one byte changed at each position, a viewer id stored
    /// right after it in the same bytes.
    @Test func idEqualsSeesEveryByte() {
        for n in 1...48 {
            let id = String((0..<n).map { Character(UnicodeScalar(UInt8(0x61 + $0 % 26))) })
            let s = SessionState(id: id, ts: 1)
            if n < 48 { s.viewerId = String(repeating: "v", count: 48 - n) }
            #expect(Array(id.utf8).withUnsafeBytes { s.idEquals($0) })
            for k in 0..<n {
                var other = Array(id.utf8)
                other[k] = UInt8(ascii: "0")
                #expect(!other.withUnsafeBytes { s.idEquals($0) }, "length \(n), byte \(k)")
            }
            #expect(!Array(id.utf8.dropLast()).withUnsafeBytes { s.idEquals($0) })
        }
    }

    /// Ids and viewer ids keep their exact bytes whether they are stored
    /// inline or spilled (too long for the 48 inline bytes).
    @Test func idsRoundTripInlineAndSpilled() {
        let uuid = "2f1c9a4e-8b7d-4c3e-9f10-0a1b2c3d4e5f"
        let ids = ["", "x", "968d212178ef3e47-285458e6", uuid, String(repeating: "é", count: 24),
                   String(repeating: "z", count: 49), String(repeating: "q", count: 128)]
        let viewers: [String?] = [nil, "", "viewer-75b2a3bbdb6e14da", uuid, String(repeating: "v", count: 128)]
        for id in ids {
            for v in viewers {
                let s = SessionState(id: id, ts: 1)
                #expect(s.id == id && s.viewerId == nil)
                s.viewerId = v
                #expect(s.id == id && s.viewerId == v)
                let found = Array(id.utf8).withUnsafeBytes { s.idEquals($0) }
                #expect(found)
                let other = Array((id + "!").utf8).withUnsafeBytes { s.idEquals($0) }
                #expect(!other)
                s.viewerId = nil
                #expect(s.viewerId == nil && s.id == id)
            }
        }
    }
}
