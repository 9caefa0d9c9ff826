import Foundation
import Testing
@testable import Engine
import QoSCore

/// The `overall` table's segment metrics are summed from the `cdn` table's
/// at the flush instead of being added beacon by beacon
/// (docs/architecture.md "Segment metrics added once"). These tests hold
/// the sums to what adding every segment beacon to one `SegmentMetrics`
/// gives, with the production sketches (a DDSketch made by merging must be
/// the one made by adding, byte for byte), and follow the state through
/// both snapshot versions.
@Suite struct OverallSegmentTests {
    static let t0: Int64 = 1_767_225_600_000
    static let cdns = ["akamai", "fastly", "cloudfront", "edgio", "bunny"]

    static var config: EngineConfig {
        var c = EngineConfig()
        c.windowMs = 60_000
        c.groupsPerWindowMax = 3  // the cdn table overflows into `__other__`
        return c
    }

    /// Sessions spread over three partitions, each starting with its cdn and
    /// pop, then segment beacons over three windows: statuses of every
    /// kind, some fields missing, and some beacons naming their own cdn/pop.
    static func beacons() -> [(partition: Int32, beacon: Beacon)] {
        var seed: UInt64 = 0x5EED  // a fixed linear congruential sequence
        func next(_ n: Int) -> Int {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((seed >> 33) % UInt64(n))
        }
        var out: [(Int32, Beacon)] = []
        for i in 0..<12 {
            let sid = "session-\(i)"
            var start = Beacon(event: .viewStart, ts: t0 + Int64(i), sessionId: sid)
            start.cdn = cdns[i % cdns.count]
            start.pop = ["fra", "iad"][i % 2]
            out.append((Int32(i % 3), start))
            for k in 0..<40 {
                var b = Beacon(event: .segment, ts: t0 + 1000 + Int64(k) * 4_000 + Int64(i), sessionId: sid)
                let statuses: [Int64?] = [200, 200, 206, 404, 503, 0, nil]
                b.httpStatus = statuses[next(statuses.count)]
                if next(5) != 0 { b.downloadMs = Int64(next(3000)) }
                if next(4) != 0 { b.ttfbMs = Int64(next(400)) }
                if next(6) != 0 { b.bytes = Int64(next(4_000_000)) }
                b.cache = ["HIT", "MISS", nil][next(3)]
                if next(7) == 0 { b.cdn = "own-\(next(4))"; b.pop = next(2) == 0 ? "lhr" : nil }
                out.append((Int32(i % 3), b))
            }
        }
        return out.sorted { $0.1.ts < $1.1.ts }
    }

    static func apply(_ items: some Sequence<(partition: Int32, beacon: Beacon)>, to e: QoSEngine<DataSketchesKit>) {
        for (n, item) in items.enumerated() {
            e.apply(item.beacon, partition: item.partition,
                    source: .memory(name: "t", partition: item.partition, index: Int64(n)), nowMs: t0 + 3_600_000)
        }
    }

    /// Every segment beacon added to one `SegmentMetrics` per window start.
    static func expected(_ items: [(partition: Int32, beacon: Beacon)]) -> [Int64: SegmentMetrics<DataSketchesKit>] {
        var out: [Int64: SegmentMetrics<DataSketchesKit>] = [:]
        for (_, b) in items where b.event == .segment {
            out[b.ts - b.ts % config.windowMs, default: SegmentMetrics()].add(b, slowMs: config.slowRequestMs)
        }
        return out
    }

    static func overall(_ w: WindowState<DataSketchesKit>) -> GroupMetrics<DataSketchesKit> {
        let t = w.tables[MetricTable.overall.rawValue]
        guard t.metrics.count == 1 else {
            Issue.record("window \(w.start): \(t.metrics.count) overall groups, not 1")
            return GroupMetrics()
        }
        return t.metrics[0]
    }

    static func expectSame(_ a: SegmentMetrics<DataSketchesKit>, _ b: SegmentMetrics<DataSketchesKit>) {
        #expect(a == b)
        #expect(a.downloadSketch.serialized() == b.downloadSketch.serialized())
        #expect(a.ttfbSketch.serialized() == b.ttfbSketch.serialized())
        #expect(a.throughputSketch.serialized() == b.throughputSketch.serialized())
    }

    @Test func overallSegmentMetricsAreEverySegmentBeacon() throws {
        let items = Self.beacons()
        let e = QoSEngine<DataSketchesKit>(config: Self.config)
        Self.apply(items, to: e)
        // Between beacons, no partition's `overall` group holds segment metrics.
        for p: Int32 in 0..<3 {
            for w in e.partition(p).aggregator.allStates {
                let held = w.tables[MetricTable.overall.rawValue].metrics.filter { $0.hasSegment }
                #expect(held.isEmpty)
            }
        }
        let windows = e.finish().filter { !$0.isDelta }
        let want = Self.expected(items)
        #expect(want.count == 3 && want.values.allSatisfy { $0.requests > 50 })
        #expect(Set(want.keys).isSubset(of: windows.map(\.start)))
        #expect(windows.contains { $0.tables[MetricTable.cdn.rawValue].hasOther })
        for w in windows {  // the sessions close in a window of their own
            Self.expectSame(Self.overall(w).segment, want[w.start] ?? SegmentMetrics())
        }
    }

    @Test func aSegmentForAWrittenWindowReachesTheLateDeltasOverall() throws {
        var config = Self.config
        config.latenessMs = 0
        let e = QoSEngine<DataSketchesKit>(config: config)
        let t0 = Self.t0
        func send(_ b: Beacon) {
            e.apply(b, partition: 0, source: .memory(name: "t", partition: 0, index: 0), nowMs: t0 + 600_000)
        }
        var start = Beacon(event: .viewStart, ts: t0, sessionId: "s")
        start.cdn = "akamai"
        send(start)
        var seg = Beacon(event: .segment, ts: t0 + 1000, sessionId: "s")
        seg.downloadMs = 120
        send(seg)
        seg.ts = t0 + 130_000
        send(seg)
        let first = e.flush(watermark: e.replayWatermark)
        #expect(first.first?.start == t0 && first.first?.isDelta == false)
        #expect(first.first.map { Self.overall($0).segment.requests } == 1)
        seg.ts = t0 + 2000
        seg.downloadMs = 4000
        seg.cdn = "fastly"  // its own cdn: the slow path of `contributeSegment`
        send(seg)
        let delta = try #require(e.flush(watermark: e.replayWatermark).first { $0.isDelta })
        var want = SegmentMetrics<DataSketchesKit>()
        want.add(seg, slowMs: config.slowRequestMs)
        Self.expectSame(Self.overall(delta).segment, want)
    }

    /// A window whose only contribution is a segment beacon naming its own
    /// cdn (its session started, unplayed, in the window before) gets its
    /// `overall` row from the flush.
    @Test func aWindowWithOnlyASegmentHasItsOverallRow() throws {
        let e = QoSEngine<DataSketchesKit>(config: Self.config)
        func send(_ b: Beacon) {
            e.apply(b, partition: 0, source: .memory(name: "t", partition: 0, index: 0), nowMs: Self.t0 + 3_600_000)
        }
        send(Beacon(event: .viewStart, ts: Self.t0, sessionId: "s"))
        var seg = Beacon(event: .segment, ts: Self.t0 + 65_000, sessionId: "s")
        seg.cdn = "fastly"
        seg.downloadMs = 300
        send(seg)
        let second = try #require(e.finish().first { $0.start == Self.t0 + 60_000 && !$0.isDelta })
        #expect(second.tables[MetricTable.video.rawValue].isEmpty)  // nothing but the segment reached it
        var want = SegmentMetrics<DataSketchesKit>()
        want.add(seg, slowMs: Self.config.slowRequestMs)
        Self.expectSame(Self.overall(second).segment, want)
    }

    /// A snapshot of version 3 (an older binary's) holds `overall` segment
    /// metrics that `cdn` holds too; restored, they are not counted twice.
    /// One of version 4 holds none, and restores to the same files.
    @Test func snapshotsOfBothVersionsRestoreToTheSameSums() throws {
        let items = Self.beacons()
        let cut = items.count / 2
        let whole = QoSEngine<DataSketchesKit>(config: Self.config)
        Self.apply(items, to: whole)
        let want = whole.finish()

        func resumed(_ snapshot: (QoSEngine<DataSketchesKit>, Int32) throws -> [UInt8]) throws -> [WindowState<DataSketchesKit>] {
            let first = QoSEngine<DataSketchesKit>(config: Self.config)
            Self.apply(items.prefix(cut), to: first)
            let second = QoSEngine<DataSketchesKit>(config: Self.config)
            for p: Int32 in 0..<3 { try second.restore(partition: p, from: try snapshot(first, p)) }
            Self.apply(items.dropFirst(cut), to: second)
            return second.finish()
        }
        let v4 = try resumed { e, p in
            let bytes = e.snapshot(partition: p)
            #expect(bytes.starts(with: Array("QOSPART4".utf8)))
            return bytes
        }
        let v3 = try resumed { e, p in
            // What a version 3 writer held: `overall` filled beacon by beacon.
            for w in e.partition(p).aggregator.allStates { w.fillOverallSegment(cap: Self.config.groupsPerWindowMax) }
            var bytes = Array(e.snapshot(partition: p).dropLast(4))
            bytes[7] = UInt8(ascii: "3")
            CRC32C.seal(&bytes)
            return bytes
        }
        for got in [v4, v3] {
            #expect(got.count == want.count)
            for (a, b) in zip(got, want) {
                #expect(a.start == b.start && a.isDelta == b.isDelta)
                Self.expectSame(Self.overall(a).segment, Self.overall(b).segment)
            }
        }
        #expect(want.filter { Self.overall($0).segment.requests > 0 }.count == 3)
    }
}
