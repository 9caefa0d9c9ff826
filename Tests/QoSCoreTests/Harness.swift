import QoSCore

/// Drives a `QoSEngine<ExactKit>` with JSON beacons and collects the
/// windows it writes, merging each window's base and late-delta states.
final class Harness {
    let engine: QoSEngine<ExactKit>
    private(set) var written: [WindowState<ExactKit>] = []
    /// Reject rows taken by every flush.
    private(set) var rejectRows: [RejectRow] = []
    var nowMs: Int64 = 4_000_000_000_000
    var line: Int64 = 0

    init(_ configure: (inout EngineConfig) -> Void = { _ in }) {
        var c = EngineConfig()
        c.tsMinMs = 0  // the metric tests count time from the epoch
        configure(&c)
        engine = QoSEngine(config: c)
    }

    var config: EngineConfig { engine.config }

    /// Sends one message (a JSON text) on `partition`.
    func send(_ json: String, partition: Int32 = 0) {
        line += 1
        var bytes = Array(json.utf8)
        bytes.withUnsafeMutableBytes { raw in
            engine.ingest(message: UnsafeRawBufferPointer(raw), partition: partition,
                          source: .file(name: "test", line: line), nowMs: nowMs)
        }
    }

    /// Sends one beacon built from its fields.
    func beacon(_ event: String, _ ts: Int64, _ sid: String = "s1", _ extra: [String: Any] = [:],
                partition: Int32 = 0) {
        var fields: [(String, Any)] = [("event", event), ("ts", ts), ("session_id", sid)]
        fields += extra.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        send(Harness.json(fields), partition: partition)
    }

    static func json(_ fields: [(String, Any)]) -> String {
        let body = fields.map { k, v -> String in
            switch v {
            case let s as String: return "\"\(k)\":\"\(s)\""
            case let b as Bool: return "\"\(k)\":\(b)"
            default: return "\"\(k)\":\(v)"
            }
        }
        return "{" + body.joined(separator: ",") + "}"
    }

    func flush(_ watermark: Int64) {
        written += engine.flush(watermark: watermark)
        rejectRows += engine.takeRejects(nowMs: nowMs)
    }
    func finish() {
        written += engine.finish()
        rejectRows += engine.takeRejects(nowMs: nowMs)
    }

    /// Flushes at the replay watermark (what `qos replay` does between messages).
    func flushAtWatermark() { flush(engine.replayWatermark) }

    /// The merged metrics of `table`'s group (dimension strings) in the window starting at `start`.
    func metrics(_ start: Int64, _ table: MetricTable = .overall, _ dims: [String] = [],
                 deltaOnly: Bool = false) -> GroupMetrics<ExactKit> {
        var m = GroupMetrics<ExactKit>()
        for w in written where w.start == start && (!deltaOnly || w.isDelta) {
            let t = w.tables[table.rawValue]
            for (i, k) in t.keys.enumerated() where names(k, table) == dims { m.merge(t.metrics[i]) }
        }
        return m
    }

    /// Sum of a metric over every written window (base and deltas).
    func total(_ table: MetricTable = .overall, _ f: (GroupMetrics<ExactKit>) -> Int64) -> Int64 {
        written.reduce(0) { acc, w in acc + w.tables[table.rawValue].metrics.reduce(0) { $0 + f($1) } }
    }

    func names(_ k: GroupKey, _ table: MetricTable) -> [String] {
        Array(k.ids.prefix(table.dimensions.count)).map { engine.interner.string($0) }
    }

    var sessionRows: [SessionRow] { written.flatMap(\.sessions) }
    func windows(start: Int64) -> [WindowState<ExactKit>] { written.filter { $0.start == start } }
}

let min2: Int64 = 120_000
