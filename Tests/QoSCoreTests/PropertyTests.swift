import Testing
import PropertyBased
import Generator
@testable import QoSCore
import SplitMix

/// Whole-engine properties over generated traffic: results must not depend
/// on how input is split across instances or on the window size.
@Suite struct PropertyTests {
    typealias Table = [String: GroupMetrics<ExactKit>]

    /// Runs the engine over `messages` (one partition, replay semantics)
    /// with flushes at the watermark after every message.
    static func run(_ messages: [GeneratedMessage], windowMs: Int64 = 120_000,
                    partitions: Int32 = 1) -> (Table, [SessionRow]) {
        var c = EngineConfig()
        c.windowMs = windowMs
        let engine = QoSEngine<ExactKit>(config: c)
        var out: [WindowState<ExactKit>] = []
        for (i, m) in messages.enumerated() {
            m.payload.withUnsafeBytes {
                engine.ingest(message: $0, partition: partitionOf(m, partitions), source: .file(name: "gen", line: Int64(i + 1)),
                              nowMs: 4_000_000_000_000)
            }
            // The instance watermark: min over partitions.
            out += engine.flush(watermark: engine.replayWatermark)
        }
        out += engine.finish()
        return (canonical(out, engine, bucketMs: windowMs), out.flatMap(\.sessions))
    }

    /// Every group of every table keyed by "bucket|table|dims", merged over
    /// files; `bucketMs` re-buckets windows (for roll-ups). The point-sample
    /// and processing-order columns (concurrent plays, late events) are left
    /// out: they are not additive over windows by definition.
    static func canonical(_ windows: [WindowState<ExactKit>], _ e: QoSEngine<ExactKit>, bucketMs: Int64) -> Table {
        var t: Table = [:]
        for w in windows {
            let bucket = w.start - ((w.start % bucketMs) + bucketMs) % bucketMs
            for table in MetricTable.allCases {
                let agg = w.tables[table.rawValue]
                for (i, k) in agg.keys.enumerated() {
                    let dims = k.ids.prefix(table.dimensions.count).map { e.interner.string($0) }
                    var m = agg.metrics[i]
                    m.concurrentPlays = 0
                    m.lateEvents = 0
                    t["\(bucket)|\(table.name)|\(dims.joined(separator: "/"))", default: GroupMetrics()].merge(m)
                }
            }
        }
        return t.filter { $0.value != GroupMetrics() }
    }

    static func partitionOf(_ m: GeneratedMessage, _ n: Int32) -> Int32 {
        Int32(m.key.utf8.reduce(0) { $0 &* 31 &+ Int($1) } & 0x7fff_ffff) % n
    }

    static func generate(seed: UInt64, sessions: Int, duplicates: Double = 0.02) -> [GeneratedMessage] {
        var o = GeneratorOptions()
        o.seed = seed
        o.sessions = sessions
        o.rate = 400
        o.duplicateFraction = duplicates
        o.slowPop = "fastly/ams"
        return Array(TrafficGenerator(o))
    }

    static func merged(_ a: Table, _ b: Table) -> Table {
        var out = a
        for (k, v) in b { out[k, default: GroupMetrics()].merge(v) }
        return out
    }

    static func rowKey(_ r: SessionRow) -> String { "\(r.sessionId)|\(r.closeTs)|\(r.beacons)|\(r.playingMs)" }

    @Test func splittingInputBySessionThenMergingEqualsTheWhole() async {
        await propertyCheck(count: 6, input: Gen.int(in: 1...1_000_000)) { seed in
            let messages = PropertyTests.generate(seed: UInt64(seed), sessions: 150)
            let half = { (m: GeneratedMessage) in m.key.utf8.reduce(0) { $0 &+ Int($1) } % 2 == 0 }
            let (whole, rows) = PropertyTests.run(messages)
            let (a, rowsA) = PropertyTests.run(messages.filter(half))
            let (b, rowsB) = PropertyTests.run(messages.filter { !half($0) })
            #expect(!whole.isEmpty)
            #expect(PropertyTests.merged(a, b) == whole)
            #expect(Set((rowsA + rowsB).map(PropertyTests.rowKey)) == Set(rows.map(PropertyTests.rowKey)))
        }
    }

    @Test func partitionsOfOneInstanceMergeToTheSingleParitionResult() async {
        await propertyCheck(count: 4, input: Gen.int(in: 1...1_000_000)) { seed in
            let messages = PropertyTests.generate(seed: UInt64(seed), sessions: 150)
            let (one, rows) = PropertyTests.run(messages)
            let (six, rows6) = PropertyTests.run(messages, partitions: 6)
            #expect(!one.isEmpty && one == six)
            #expect(Set(rows.map(PropertyTests.rowKey)) == Set(rows6.map(PropertyTests.rowKey)))
        }
    }

    /// A checkpoint (snapshot of every partition) restored into a fresh
    /// engine at random cut points continues to exactly the same result.
    @Test func snapshotAndRestoreAtAnyCutChangesNothing() async {
        await propertyCheck(count: 4, input: Gen.int(in: 1...1_000_000)) { seed in
            let messages = PropertyTests.generate(seed: UInt64(seed), sessions: 120)
            let (whole, rows) = PropertyTests.run(messages, partitions: 3)
            var cuts = SplitMix64(seed: UInt64(seed))
            let cutPoints = Set((0..<3).map { _ in Int(cuts.next() % UInt64(messages.count)) })
            var engine = QoSEngine<ExactKit>()
            var out: [WindowState<ExactKit>] = []
            var restored: Table = [:]
            var sessionRows: [SessionRow] = []
            for (i, m) in messages.enumerated() {
                if cutPoints.contains(i) {
                    // Windows are written with the interner of the engine that made them.
                    restored = PropertyTests.merged(restored, PropertyTests.canonical(out, engine, bucketMs: 120_000))
                    sessionRows += out.flatMap(\.sessions)
                    out = []
                    let fresh = QoSEngine<ExactKit>()
                    for id in engine.partitions.keys {
                        try? fresh.restore(partition: id, from: engine.snapshot(partition: id))
                    }
                    engine = fresh
                }
                m.payload.withUnsafeBytes {
                    engine.ingest(message: $0, partition: PropertyTests.partitionOf(m, 3),
                                  source: .file(name: "gen", line: Int64(i + 1)), nowMs: 4_000_000_000_000)
                }
                out += engine.flush(watermark: engine.replayWatermark)
            }
            out += engine.finish()
            restored = PropertyTests.merged(restored, PropertyTests.canonical(out, engine, bucketMs: 120_000))
            sessionRows += out.flatMap(\.sessions)
            #expect(cutPoints.count >= 1 && restored == whole)
            #expect(sessionRows.map(PropertyTests.rowKey).sorted() == rows.map(PropertyTests.rowKey).sorted())
        }
    }

    @Test func twoMinuteWindowsSummedToAnHourEqualHourWindows() async {
        await propertyCheck(count: 6, input: Gen.int(in: 1...1_000_000)) { seed in
            let messages = PropertyTests.generate(seed: UInt64(seed), sessions: 150)
            let (small, _) = PropertyTests.run(messages, windowMs: 120_000)
            let (hour, _) = PropertyTests.run(messages, windowMs: 3_600_000)
            var rolled: Table = [:]
            for (k, v) in small {
                let parts = k.split(separator: "|", maxSplits: 1)
                let start = Int64(parts[0])!
                let bucket = start - start % 3_600_000
                rolled["\(bucket)|\(parts[1])", default: GroupMetrics()].merge(v)
            }
            #expect(!hour.isEmpty)
            #expect(rolled == hour)
        }
    }
}
