import QoSCore

/// Drives any bytes through decoder + engine + Parquet encoding in process
/// and checks what must hold for every input (README "Numeric safety"):
/// every beacon is accepted, a duplicate or a reject with a reason; every
/// reject is a row; no written count, sum or derived value is negative,
/// wrapped or past what the beacon bounds allow. Used by the property test
/// (`FuzzPropertyTests`) and the libFuzzer target (`make fuzz`). A trap
/// anywhere is the other failure these find.
public final class EngineSelfCheck {
    public let engine: QoSEngine<DataSketchesKit>
    let writer: WindowFileWriter
    let nowMs: Int64
    /// The name of every message's position (built once: `SourceName`).
    static let sourceName = SourceName("check")
    /// Beacons and rejects the decoder found (objects of arrays counted singly).
    public private(set) var items: Int64 = 0
    public private(set) var rejectRows: Int64 = 0
    public private(set) var filesPlanned = 0
    public private(set) var problems: [String] = []
    var flushes = 0

    public init(nowMs: Int64, config: EngineConfig = EngineConfig()) {
        engine = QoSEngine(config: config)
        // Files are encoded (plan), never published: the sink is not touched.
        writer = WindowFileWriter(sink: FileSink(root: "/nonexistent/qos-self-check"), windowMs: config.windowMs,
                                  inputTag: "check", zstdLevel: 0)
        self.nowMs = nowMs
    }

    /// One message (a line of a file or a Kafka message).
    public func ingest(_ message: UnsafeRawBufferPointer, line: Int64) {
        BeaconDecoder.decodeEach(message, onBeacon: { _, _ in items += 1 }, onReject: { _, _ in items += 1 })
        engine.ingest(message: message, partition: 0, source: .file(name: Self.sourceName, line: line), nowMs: nowMs)
        if engine.replayWatermark >= engine.nextDueEnd { write(engine.flush(watermark: engine.replayWatermark)) }
    }

    /// End of input: writes every window and returns every problem found.
    public func finish() -> [String] {
        write(engine.finish())
        let c = engine.counters
        if c.accepted + c.duplicates + c.rejectedTotal != items {
            problem("accepted \(c.accepted) + duplicates \(c.duplicates) + rejected \(c.rejectedTotal) != \(items) decoded")
        }
        if rejectRows != c.rejectedTotal { problem("\(rejectRows) reject rows for \(c.rejectedTotal) rejects") }
        for (reason, n) in c.rejected where reason.isEmpty || n <= 0 { problem("reject reason '\(reason)' counted \(n)") }
        return problems
    }

    func problem(_ s: String) { if problems.count < 100 { problems.append(s) } }

    func write(_ windows: [WindowState<DataSketchesKit>]) {
        let rejects = engine.takeRejects(nowMs: nowMs)
        guard !windows.isEmpty || !rejects.isEmpty else { return }
        flushes += 1
        for w in windows { check(w) }
        rejectRows += Int64(rejects.count)
        for r in rejects where r.reason.isEmpty { problem("reject row without a reason") }
        do {
            filesPlanned += try writer.plan(windows, interner: engine.interner, flush: flushes, sourceRange: "check").count
            filesPlanned += try writer.planRejects(rejects, flush: flushes, sourceRange: "check").count
        } catch {
            problem("Parquet encoding failed: \(error)")
        }
    }

    func check(_ w: WindowState<DataSketchesKit>) {
        for t in MetricTable.allCases {
            for m in w.tables[t.rawValue].metrics {
                nonNegative(m, "\(t.name) metrics")
                nonNegative(m.segment, "\(t.name) segment metrics")
                if m.watchMs < 0 { problem("\(t.name) watch_ms \(m.watchMs)") }
                if let r = m.rebufferRatio, !(r >= 0 && r <= 1) { problem("\(t.name) rebuffer_ratio \(r)") }
                if let b = m.avgBitrateKbps, !(b >= 0 && b <= Double(BeaconLimits.bitrateKbpsMax)) {
                    problem("\(t.name) avg_bitrate_kbps \(b)")
                }
            }
        }
        for r in w.sessions { nonNegative(r, "sessions row") }
    }

    /// Every Int64 (or Int64?) stored property of `value` is ≥ 0: the counts
    /// and sums are, and a wrapped sum would not be.
    func nonNegative(_ value: Any, _ what: String) {
        for child in Mirror(reflecting: value).children {
            let v: Int64?
            switch child.value {
            case let x as Int64: v = x
            case let x as Int64?: v = x
            default: v = nil
            }
            if let v, v < 0 { problem("\(what): \(child.label ?? "?") = \(v)") }
        }
    }
}
