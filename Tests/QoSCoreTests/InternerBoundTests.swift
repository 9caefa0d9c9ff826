import Testing
import PropertyBased
import Generator
@testable import QoSCore

/// The interners hold the strings still referenced, not every string ever
/// seen: a new `video_id` (or player version, error code) per beacon must
/// not grow memory for the daemon's life, and rebuilding them must not
/// change any result.
@Suite struct InternerBoundTests {
    /// `windows` windows of 2 min, each with `perWindow` sessions that start
    /// and end inside it, every one on a video, version and error code of its own.
    static func feed(_ h: Harness, windows: Int, perWindow: Int, check: (Int) -> Void) {
        for w in 0..<windows {
            let base = Int64(w) * min2 + 1_000_000_000
            for i in 0..<perWindow {
                let sid = "w\(w)s\(i)", unique = "\(w)-\(i)"
                h.beacon("view_start", base + Int64(i), sid, ["video_id": "v" + unique, "player_version": "p" + unique])
                h.beacon("error", base + Int64(i) + 1, sid, ["error_code": "e" + unique, "fatal": true])
            }
            h.flushAtWatermark()
            check(w)
        }
    }

    @Test func manyDistinctVideoIdsOverManyWindowsKeepTheInternersBounded() {
        let h = Harness()
        h.engine.internerRebuild.floor = 2_000
        var dims: [Int] = [], values: [Int] = []
        Self.feed(h, windows: 40, perWindow: 500) { _ in
            dims.append(h.engine.interner.count)
            values.append(h.engine.values.count)
        }
        // 20 000 distinct videos and 40 000 distinct values were seen. At a
        // flush, open sessions (they close 5 min after their last beacon)
        // and two windows' groups are referenced: a few windows' worth. An
        // interner holds at most twice that (or the floor), so its size
        // stops growing: the second half of the run peaks no higher than the first.
        #expect(dims.max()! < 4_000 && values.max()! < 8_000)
        #expect(dims[20...].max()! <= dims[..<20].max()!)
        #expect(values[20...].max()! <= values[..<20].max()!)
        h.finish()
        // The rows still carry every string.
        let rows = h.sessionRows
        #expect(rows.count == 20_000)
        #expect(Set(rows.map(\.videoId)).count == 20_000)
        #expect(rows.allSatisfy { $0.fatalErrorCode == "e" + $0.videoId.dropFirst() && $0.playerVersion == "p" + $0.videoId.dropFirst() })
    }

    /// One written window, its groups named with the interner of its flush.
    struct Written: Equatable {
        var label: String
        var groups: [String]
        var metrics: [GroupMetrics<ExactKit>]
        var sessions: [SessionRow]
        var rejects: [RejectRow]
    }

    /// Everything the engine writes, in order, over `messages` spread on
    /// `partitions` partitions, flushing after every message.
    static func transcript(_ messages: [GeneratedMessage], partitions: Int32, rebuildAlways: Bool) -> [Written] {
        let engine = QoSEngine<ExactKit>()
        engine.internerRebuild.always = rebuildAlways
        var out: [Written] = []
        func record(_ windows: [WindowState<ExactKit>]) {
            for w in windows {
                var groups: [String] = [], metrics: [GroupMetrics<ExactKit>] = []
                for t in MetricTable.allCases {
                    let agg = w.tables[t.rawValue]
                    for (k, m) in zip(agg.keys, agg.metrics) {
                        let names = k.ids.prefix(t.dimensions.count).map { engine.interner.string($0) }
                        groups.append("\(t.name)|\(names.joined(separator: "/"))")
                        metrics.append(m)
                    }
                }
                out.append(Written(label: "\(w.start)|\(w.isDelta)", groups: groups, metrics: metrics,
                                   sessions: Array(w.sessions), rejects: []))
            }
            let rejects = engine.takeRejects(nowMs: 4_000_000_000_000)
            if !rejects.isEmpty {
                out.append(Written(label: "rejects", groups: [], metrics: [], sessions: [], rejects: rejects))
            }
        }
        for (i, m) in messages.enumerated() {
            m.payload.withUnsafeBytes {
                engine.ingest(message: $0, partition: PropertyTests.partitionOf(m, partitions),
                              source: .file(name: "gen", line: Int64(i + 1)), nowMs: 4_000_000_000_000)
            }
            record(engine.flush(watermark: engine.replayWatermark))
        }
        record(engine.finish())
        return out
    }

    @Test func rebuildingAtEveryFlushChangesNoOutput() async {
        await propertyCheck(count: 4, input: Gen.int(in: 1...1_000_000)) { seed in
            let messages = PropertyTests.generate(seed: UInt64(seed), sessions: 150)
            let plain = Self.transcript(messages, partitions: 3, rebuildAlways: false)
            let rebuilt = Self.transcript(messages, partitions: 3, rebuildAlways: true)
            #expect(plain.count > 3 && plain.contains { !$0.sessions.isEmpty })
            #expect(plain == rebuilt)
        }
    }
}
