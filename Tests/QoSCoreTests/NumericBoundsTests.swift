import Testing
@testable import QoSCore

/// The decoder's numeric bounds (README "Rejects") and the saturating sums
/// under them (README "Numeric safety").
@Suite struct NumericBoundsTests {
    func reasons(_ s: String) -> [String] {
        BeaconDecoder.decode(Array(s.utf8)).map { if case .reject(let r, _) = $0 { return r.code } else { return "ok" } }
    }

    func with(_ field: String, _ v: Int64) -> [String] {
        reasons(#"{"event":"segment","ts":1767225600000,"session_id":"s","\#(field)":\#(v)}"#)
    }

    @Test func eachBoundedFieldAcceptsItsMaximumAndRejectsOneMore() {
        let bounds: [(String, Int64)] = [
            ("played_ms", 86_400_000), ("duration_ms", 86_400_000), ("download_ms", 86_400_000),
            ("ttfb_ms", 86_400_000), ("bitrate_kbps", 10_000_000), ("bytes", 1 << 40),
            ("video_duration_ms", 1 << 40), ("playhead_ms", 1 << 40), ("seq", 4_294_967_295),
        ]
        for (field, max) in bounds {
            #expect(with(field, max) == ["ok"], "\(field) = \(max)")
            #expect(with(field, max + 1) == ["invalid_value:\(field)"], "\(field) = \(max + 1)")
            #expect(with(field, .max) == ["invalid_value:\(field)"], "\(field) = Int64.max")
            #expect(with(field, 0) == ["ok"])
        }
        #expect(reasons(#"{"event":"heartbeat","ts":1,"session_id":"s","played_ms":9000000000000000000}"#)
                == ["invalid_value:played_ms"])
        #expect(reasons(#"{"event":"heartbeat","ts":1,"session_id":"s","bitrate_kbps":4e18}"#) == ["wrong_type:bitrate_kbps"])
    }

    /// A key written twice (README "Input: beacons"): every value must be
    /// valid, the last one counts.
    @Test func aKeyWrittenTwiceTakesItsLastValueAndEachMustBeValid() {
        #expect(reasons(#"{"event":"heartbeat","ts":1,"session_id":"s","played_ms":99999999999,"played_ms":5}"#)
                == ["invalid_value:played_ms"])
        #expect(reasons(#"{"event":"heartbeat","ts":1,"session_id":"s","played_ms":5,"played_ms":99999999999}"#)
                == ["invalid_value:played_ms"])
        let items = BeaconDecoder.decode(Array(#"{"event":"heartbeat","ts":1,"session_id":"s","played_ms":7,"played_ms":5}"#.utf8))
        guard case .beacon(let b)? = items.first else { Issue.record("not a beacon"); return }
        #expect(b.playedMs == 5)
    }

    @Test func aByteOrderMarkStartingAMessageIsSkipped() {
        let bom = "\u{FEFF}"
        #expect(reasons(bom + #"{"event":"heartbeat","ts":1,"session_id":"s"}"#) == ["ok"])
        #expect(reasons(bom + #" [{"event":"heartbeat","ts":1,"session_id":"s"}]"#) == ["ok"])
        #expect(reasons(#" "# + bom + #"{"event":"heartbeat","ts":1,"session_id":"s"}"#) == ["invalid_json"])
        #expect(reasons(bom) == ["invalid_json"])
        #expect(reasons(bom + "5") == ["not_an_object"])
    }

    /// Unknown keys are skipped without validating their strings (README "Rejects").
    @Test func invalidUTF8InAnUnknownKeyIsAccepted() {
        var bytes = Array(#"{"event":"heartbeat","ts":1,"session_id":"s","extra":"x"}"#.utf8)
        bytes[bytes.count - 3] = 0xFF
        #expect(BeaconDecoder.decode(bytes).count == 1)
        if case .beacon = BeaconDecoder.decode(bytes)[0] {} else { Issue.record("rejected") }
    }

    @Test func sumsSaturateAndAreCounted() {
        let before = SaturationCounter.total
        var a = GroupMetrics<ExactKit>(), b = GroupMetrics<ExactKit>()
        a.playingMs = .max - 1; b.playingMs = 5
        a.segment.bytes = 1 << 62; b.segment.bytes = 1 << 62
        a.views = 3; b.views = 4
        a.merge(b)
        #expect(a.playingMs == .max && a.segment.bytes == .max && a.views == 7)
        #expect(a.watchMs == .max && a.rebufferRatio == 0)
        #expect(SaturationCounter.total >= before + 2)
        let low: Int64 = Int64.min +| -1, negative: Int64 = -3 *| Int64.max, high: Int64 = 3 *| Int64.max
        let product: Int64 = 6 *| 7, sum: Int64 = 40 +| 2
        #expect(low == .min && negative == .min && high == .max && product == 42 && sum == 42)
    }

    @Test func tsBeforeTheFloorIsRejectedByTheEngine() {
        let engine = QoSEngine<ExactKit>()
        for ts: Int64 in [0, BeaconLimits.tsMinMs - 1, BeaconLimits.tsMinMs] {
            engine.apply(Beacon(event: .viewStart, ts: ts, sessionId: "s\(ts)"), partition: 0,
                         source: .file(name: "t", line: 0), nowMs: 4_000_000_000_000)
        }
        #expect(engine.counters.rejected == ["invalid_value:ts": 2] && engine.counters.accepted == 1)
    }
}
