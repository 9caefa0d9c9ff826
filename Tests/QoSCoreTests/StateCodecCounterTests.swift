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

    /// The segment metrics sit in a box a new group does not have yet, so
    /// they are counted on their own.
    @Test func counterCountIsEveryInt64FieldOfTheMetrics() {
        let own = Self.int64Fields(GroupMetrics<ExactKit>()), segment = Self.int64Fields(SegmentMetrics<ExactKit>())
        #expect(own > 20 && segment == 8)
        #expect(GroupMetrics<ExactKit>.counterCount == own + segment)
    }

    @Test func everyCounterSurvivesEncodeDecodeInPlace() throws {
        var m = GroupMetrics<ExactKit>()
        var i: Int64 = 0
        m.visitCounters { i += 1; $0 = i * 1_000_003 }  // a distinct value per counter
        m.segment.visitCounters { i += 1; $0 = i * 1_000_003 }
        var w = StateWriter()
        m.encode(&w)
        var r = StateReader(w.bytes)
        let back = try GroupMetrics<ExactKit>.decode(&r)
        #expect(back == m)
        var seen: [Int64] = []
        var copy = back
        copy.visitCounters { seen.append($0) }
        copy.segment.visitCounters { seen.append($0) }
        #expect(seen == (1...i).map { $0 * 1_000_003 })
    }

    /// A group without segment metrics goes through a checkpoint without
    /// getting a box for them; one with them keeps them. Copies do not
    /// share changes (the box is copied on write), and a group whose box
    /// holds nothing equals one without a box.
    @Test func segmentMetricsAreBoxedOnlyWhereThereAreSome() throws {
        func roundTrip(_ m: GroupMetrics<ExactKit>) throws -> GroupMetrics<ExactKit> {
            var w = StateWriter()
            m.encode(&w)
            var r = StateReader(w.bytes)
            return try GroupMetrics<ExactKit>.decode(&r)
        }
        var plain = GroupMetrics<ExactKit>()
        plain.views = 3
        plain.startupSketch.add(120)
        let back = try roundTrip(plain)
        #expect(!plain.hasSegment && !back.hasSegment && back == plain)
        #expect(back.segment == SegmentMetrics<ExactKit>())

        var cdn = GroupMetrics<ExactKit>()
        cdn.segment.requests = 2
        cdn.segment.ttfbSketch.add(40)
        let copy = cdn
        cdn.segment.requests += 1
        #expect(copy.segment.requests == 2 && cdn.segment.requests == 3)
        let cdnBack = try roundTrip(cdn)
        #expect(cdnBack.hasSegment && cdnBack == cdn && cdnBack != plain)

        var merged = plain
        merged.merge(plain)
        #expect(!merged.hasSegment)
        merged.merge(cdn)
        #expect(merged.hasSegment && merged.segment == cdn.segment)

        var emptied = GroupMetrics<ExactKit>()
        emptied.segment = SegmentMetrics<ExactKit>()
        #expect(emptied.hasSegment && emptied == GroupMetrics<ExactKit>())
        #expect(!(try roundTrip(emptied)).hasSegment)
    }
}
