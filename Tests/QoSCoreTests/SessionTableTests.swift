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

    @Test func emptyAndLongIds() {
        var table = SessionTable()
        let ids = ["", "a", String(repeating: "x", count: 128), "é-ü", "12345678", "123456789"]
        for id in ids { table.insert(SessionState(id: id, ts: 0)) }
        for id in ids { #expect(table.lookup(id)?.id == id) }
        #expect(table.lookup("1234567") == nil)
    }
}
