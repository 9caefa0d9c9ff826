import Testing
@testable import QoSCore

/// The checkpoint codec's counter list is the metrics' counter fields: a
/// counter added to `GroupMetrics` without being checkpointed would be lost
/// at every restart.
@Suite struct StateCodecCounterTests {
    /// Every stored Int64 of the metrics, nested values (the segment metrics) included.
    static func int64Fields(_ value: Any) -> Int {
        Mirror(reflecting: value).children.reduce(0) { n, child in
            if child.value is Int64 { return n + 1 }
            if Mirror(reflecting: child.value).displayStyle == .struct { return n + int64Fields(child.value) }
            return n
        }
    }

    @Test func counterCountIsEveryInt64FieldOfTheMetrics() {
        #expect(GroupMetrics<ExactKit>.counterCount == Self.int64Fields(GroupMetrics<ExactKit>()))
    }

    @Test func everyCounterSurvivesEncodeDecodeInPlace() throws {
        var m = GroupMetrics<ExactKit>()
        var i: Int64 = 0
        m.visitCounters { i += 1; $0 = i * 1_000_003 }  // a distinct value per counter
        var w = StateWriter()
        m.encode(&w)
        var r = StateReader(w.bytes)
        let back = try GroupMetrics<ExactKit>.decode(&r)
        #expect(back == m)
        var seen: [Int64] = []
        var copy = back
        copy.visitCounters { seen.append($0) }
        #expect(seen == (1...i).map { $0 * 1_000_003 })
    }
}
