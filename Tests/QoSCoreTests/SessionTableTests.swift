@testable import QoSCore
import Testing

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
