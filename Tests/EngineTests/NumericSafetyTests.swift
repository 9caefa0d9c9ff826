import Foundation
import Testing
import TestSupport
@testable import Engine
import Parquet
import QoSCore

/// Values no player can honestly send (README "Rejects"): the decoder
/// rejects them, and every sum the engine computes saturates instead of
/// trapping, so the process survives whatever gets past the bounds.
@Suite struct NumericSafetyTests {
    static let t0: Int64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z

    func tempDir() -> String { makeTemporaryDirectory("qos-numeric") }

    func line(_ event: String, _ ms: Int64, _ sid: String, _ extra: String = "") -> String {
        #"{"event":"\#(event)","ts":\#(NumericSafetyTests.t0 + ms),"session_id":"\#(sid)"\#(extra)}"#
    }

    func replay(_ text: String, prefix: [UInt8] = []) throws -> (ReplaySummary, String) {
        let dir = tempDir()
        try Data(prefix + Array(text.utf8)).write(to: URL(fileURLWithPath: dir + "/in.ndjson"))
        var o = ReplayOptions()
        o.inputs = [dir + "/in.ndjson"]
        o.sink = dir + "/out"
        o.nowMs = { NumericSafetyTests.t0 + 86_400_000 }
        return (try ReplayJob(o).run(), dir + "/out")
    }

    /// A session that starts and plays, then one poison beacon.
    func playing(_ sid: String, poison: String) -> [String] {
        [line("view_start", 0, sid), line("play_start", 1000, sid, #","bitrate_kbps":3000"#),
         line("heartbeat", 11000, sid, poison), line("view_end", 20000, sid, #","played_ms":9000"#)]
    }

    /// Each case trapped (arithmetic overflow) in `qos replay` before the
    /// bounds and the saturating sums; now each poison beacon is a reject
    /// with the field's name and everything around it is counted.
    @Test func poisonBeaconsAreRejectedAndTheRestCounted() throws {
        var lines: [String] = []
        lines += playing("a", poison: #","played_ms":9000000000000000000,"bitrate_kbps":3000"#)
        lines += playing("b", poison: #","played_ms":1000,"bitrate_kbps":4000000000000000000"#)
        for sid in ["c1", "c2"] {
            lines += playing(sid, poison: #","played_ms":1000"#)
            lines.append(line("segment", 12000, sid, #","bytes":5000000000000000000,"download_ms":100"#))
            lines.append(line("segment", 13000, sid, #","bytes":1000,"download_ms":5000000000000000000"#))
            lines.append(line("rebuffer_start", 14000, sid))
            lines.append(line("rebuffer_end", 15000, sid, #","duration_ms":5000000000000000000"#))
        }
        lines += [line("rebuffer_start", 14000, "a"), line("rebuffer_end", 15000, "a", #","duration_ms":9223372036854775807"#)]
        let (s, out) = try replay(lines.joined(separator: "\n") + "\n")
        #expect(s.counters.rejected == ["invalid_value:played_ms": 1, "invalid_value:bitrate_kbps": 1,
                                        "invalid_value:bytes": 2, "invalid_value:download_ms": 2,
                                        "invalid_value:duration_ms": 3])
        #expect(s.counters.accepted == Int64(lines.count) - 9)
        let rejects = Inspector.parquetFiles(under: out + "/rejects")
        let rows = try rejects.reduce(0) { try $0 + ParquetFileReader(bytes: Inspector.readFile($1)).numRows }
        #expect(rows == 9)
    }

    /// What the decoder would reject, applied to the engine directly (as a
    /// future field without a bound would be): the sums saturate at
    /// Int64.max and are counted, nothing traps, nothing wraps negative,
    /// and the windows are written as Parquet.
    @Test func engineSumsSaturateInsteadOfTrapping() throws {
        let engine = QoSEngine<DataSketchesKit>()
        let now = NumericSafetyTests.t0 + 86_400_000
        func send(_ event: EventType, _ ms: Int64, _ sid: String, _ set: (inout Beacon) -> Void = { _ in }) {
            var b = Beacon(event: event, ts: NumericSafetyTests.t0 + ms, sessionId: sid)
            set(&b)
            engine.apply(b, partition: 0, source: .file(name: "t", line: 0), nowMs: now)
        }
        let before = SaturationCounter.total
        for sid in ["a", "b"] {
            send(.viewStart, 0, sid)
            send(.playStart, 1000, sid) { $0.bitrateKbps = 4_000_000_000_000_000_000 }
            send(.heartbeat, 11000, sid) { $0.playedMs = 9_000_000_000_000_000_000 }
            send(.segment, 12000, sid) { $0.bytes = 5_000_000_000_000_000_000; $0.downloadMs = 5_000_000_000_000_000_000 }
            send(.rebufferStart, 13000, sid)
            send(.rebufferEnd, 14000, sid) { $0.durationMs = .max }
            send(.seekStart, 15000, sid)
            send(.seekEnd, 16000, sid)
        }
        let windows = engine.finish()
        #expect(SaturationCounter.total > before)
        var m = GroupMetrics<DataSketchesKit>()
        for w in windows { for x in w.tables[MetricTable.overall.rawValue].metrics { m.merge(x) } }
        #expect(m.playingMs == .max && m.bitrateMsSum == .max && m.rebufferMs == .max)
        #expect(m.segment.bytes == .max && m.segment.downloadMsSum == .max)
        #expect(m.watchMs == .max && m.rebufferRatio != nil && m.avgBitrateKbps != nil)
        for w in windows {
            for x in w.tables.flatMap(\.metrics) {
                #expect(x.playingMs >= 0 && x.rebufferMs >= 0 && x.bitrateMsSum >= 0 && x.watchMs >= 0)
                #expect(x.segment.bytes >= 0 && x.segment.downloadMsSum >= 0)
            }
            for r in w.sessions { #expect(r.playingMs >= 0 && r.rebufferMs >= 0 && r.bitrateMsSum >= 0) }
        }
        let dir = tempDir()
        let writer = WindowFileWriter(sink: FileSink(root: dir), windowMs: engine.config.windowMs, inputTag: "t")
        let files = try writer.plan(windows, interner: engine.interner, flush: 1, sourceRange: "t")
        #expect(files.contains { $0.table == "overall" } && files.contains { $0.table == "sessions" })
    }

    @Test func saturationsAreExposedInMetricsAndTheReplaySummary() {
        var status = RunStatus()
        status.saturatedValues = 3
        #expect(MetricsServer.render(status).contains("\nqos_saturated_values_total 3\n"))
        status.tablesAtGroupCap = 4
        #expect(MetricsServer.render(status).contains("\nqos_group_cap_reached_total 4\n"))
        var summary = ReplaySummary()
        #expect(!summary.text.contains("saturated"))
        summary.saturatedValues = 2
        #expect(summary.text.contains("sums saturated at Int64.max: 2"))
    }

    @Test func aByteOrderMarkBeforeTheFirstBeaconIsAccepted() throws {
        let text = [line("view_start", 0, "s"), line("view_end", 1000, "s")].joined(separator: "\n") + "\n"
        let (s, _) = try replay(text, prefix: [0xEF, 0xBB, 0xBF])
        #expect(s.counters.rejected.isEmpty && s.counters.accepted == 2)
    }

    @Test func tsBeforeTheYear2000IsRejected() throws {
        let text = #"{"event":"view_start","ts":0,"session_id":"z"}"# + "\n"
            + #"{"event":"view_start","ts":946684799999,"session_id":"y"}"# + "\n"
            + #"{"event":"view_start","ts":946684800000,"session_id":"x"}"# + "\n"
        let (s, out) = try replay(text)
        #expect(s.counters.rejected == ["invalid_value:ts": 2] && s.counters.accepted == 1)
        #expect(Inspector.parquetFiles(under: out + "/overall").allSatisfy { !$0.contains("1970") })
    }
}
