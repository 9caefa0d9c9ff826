import Testing
@testable import QoSCore

/// `WindowState.absorb` / `mergedByWindow`: a flush merging partitions'
/// shares of a window (bench/results/speed.md section 65 moves the groups
/// out of the absorbed share instead of copying them).
@Suite struct WindowAbsorbTests {
    typealias State = WindowState<ExactKit>

    /// A share holding `keys` in the video table, each group with `views`
    /// its key's `a` and one viewer and one startup value named after it.
    static func share(_ keys: [UInt32], tag: String, start: Int64 = 0) -> State {
        let w = State(start: start, end: start + 120_000, isDelta: false)
        let t = MetricTable.video.rawValue
        for k in keys {
            let j = w.tables[t].slot(GroupKey(k), cap: .max)
            w.tables[t].metrics[j].views = Int64(k)
            w.tables[t].metrics[j].viewers.insert("\(tag)-\(k)")
            w.tables[t].metrics[j].startupSketch.add(Double(k))
        }
        return w
    }

    /// Groups are taken in the absorbed share's own order, so the group
    /// cap sends the same keys to `__other__` as merging them in place
    /// did; counters add up, sketches merge, and the absorbed share's
    /// tables are left empty.
    @Test func keepsTheGroupOrderUnderTheCapAndEmptiesTheShare() throws {
        let into = Self.share([1, 2, 3], tag: "p0")
        let from = Self.share([2, 4, 5, 6], tag: "p1")
        into.absorb(from, cap: 4)
        let t = into.tables[MetricTable.video.rawValue]
        // 1, 2, 3 were there and 2 merges; 4 takes the fourth slot, which
        // reaches the cap (4), so 5 goes to a new __other__ and 6 joins it.
        // (Taken in reverse, 6 would have had the slot.)
        #expect(t.keys == [GroupKey(1), GroupKey(2), GroupKey(3), GroupKey(4), .other])
        func metrics(_ k: GroupKey) throws -> GroupMetrics<ExactKit> { t.metrics[try #require(t.existingSlot(k))] }
        #expect(try metrics(GroupKey(2)).views == 4)
        #expect(try metrics(GroupKey(2)).viewers.items == ["p0-2", "p1-2"])
        #expect(try metrics(GroupKey(4)).startupSketch.values == [4])
        #expect(try metrics(.other).views == 11)
        #expect(try metrics(.other).viewers.items == ["p1-5", "p1-6"])
        #expect(from.tables.allSatisfy { $0.isEmpty })
    }

    /// Every partition's share of a window ends up in the first one, in
    /// time order, and each share's values are counted once.
    @Test func mergedByWindowSumsEveryShareOnce() {
        let shares = (0..<8).map { p in Self.share([1, UInt32(10 + p)], tag: "p\(p)", start: p % 2 == 0 ? 0 : 120_000) }
        let merged = State.mergedByWindow(shares, cap: 100)
        #expect(merged.map(\.start) == [0, 120_000])
        #expect(merged[0] === shares[0] && merged[1] === shares[1])
        for (w, parity) in zip(merged, [0, 1]) {
            let t = w.tables[MetricTable.video.rawValue]
            let ps = (0..<8).filter { $0 % 2 == parity }
            #expect(t.keys == [GroupKey(1)] + ps.map { GroupKey(UInt32(10 + $0)) })
            #expect(t.metrics[0].views == Int64(ps.count))
            #expect(t.metrics[0].viewers.items == Set(ps.map { "p\($0)-1" }))
            #expect(t.metrics.reduce(0) { $0 + $1.views } == Int64(ps.count) + ps.reduce(0) { $0 + Int64(10 + $1) })
        }
    }
}
