import ArgumentParser
import Engine
import QoSCore
import Yams
#if canImport(Glibc)
import Glibc
#endif

/// `qos run` settings: defaults < config file (YAML) < QOS_* environment < flags.
/// Keys (file / env / flag): brokers / QOS_BROKERS / --brokers, topic, group,
/// sink, window, lateness, max_lateness, session_timeout, session_max,
/// idle_timeout, checkpoint_interval, checkpoint_min_interval, instance, geoip_db (list), ua_regexes,
/// zstd_level; `kafka:` map / QOS_KAFKA_<PROP> (dots as underscores) /
/// --kafka key=value pass through to librdkafka.
struct RunSettings {
    static let keys = ["metrics_port", "metrics_host", "brokers", "topic", "group", "sink", "window", "lateness", "max_lateness",
                       "session_timeout", "session_max", "idle_timeout", "checkpoint_interval", "checkpoint_min_interval", "instance",
                       "geoip_db", "ua_regexes", "zstd_level", "kafka", "group_cap", "slow_request_ms"]
    var values: [String: String] = [:]
    var geoip: [String] = []
    var kafka: [String: String] = [:]

    mutating func load(file path: String) throws {
        let text: String
        do { text = String(decoding: try Inspector.readFile(path), as: UTF8.self) } catch let e as UserError {
            throw UserError("config file: \(e.message)")
        }
        let node: Any?
        do { node = try Yams.load(yaml: text) } catch {
            throw UserError("config file '\(path)' is not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "") — fix its syntax")
        }
        guard let map = node as? [String: Any] else { throw UserError("config file '\(path)' must be a YAML mapping of keys") }
        for (k, v) in map {
            guard RunSettings.keys.contains(k) else {
                throw UserError("config file '\(path)': unknown key '\(k)' — valid keys: \(RunSettings.keys.joined(separator: ", "))")
            }
            switch k {
            case "kafka":
                guard let m = v as? [String: Any] else { throw UserError("config file '\(path)': 'kafka' must be a mapping of librdkafka properties") }
                for (pk, pv) in m { kafka[pk] = "\(pv)" }
            case "geoip_db":
                geoip = (v as? [Any])?.map { "\($0)" } ?? ["\(v)"]
            default:
                values[k] = "\(v)"
            }
        }
    }

    mutating func loadEnvironment() throws {
        for (name, value) in Self.environment() where name.hasPrefix("QOS_") {
            let key = name.dropFirst(4).lowercased()
            if key.hasPrefix("kafka_") {
                kafka[key.dropFirst(6).replacingUnderscores()] = value
            } else if key == "geoip_db" {
                geoip = value.split(separator: ",").map(String.init)
            } else if RunSettings.keys.contains(key) {
                values[key] = value
            } else if key != "bin" {
                throw UserError("environment variable \(name) is not a qos setting — valid: \(RunSettings.keys.map { "QOS_" + $0.uppercased() }.joined(separator: ", "))")
            }
        }
    }

    static func environment() -> [(String, String)] {
        var out: [(String, String)] = []
        var p = environ
        while let e = p.pointee {
            let s = String(cString: e)
            if let eq = s.firstIndex(of: "=") { out.append((String(s[..<eq]), String(s[s.index(after: eq)...]))) }
            p += 1
        }
        return out
    }
}

extension Substring {
    func replacingUnderscores() -> String { String(map { $0 == "_" ? "." : $0 }) }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Consume beacons from Kafka and write windowed Parquet partitions, exactly once.",
        discussion: """
        Settings come from defaults, then --config (YAML), then QOS_* environment variables, then flags. \
        Any librdkafka property passes through: `kafka:` in the file, QOS_KAFKA_SASL_MECHANISM=… in the \
        environment (underscores become dots), or --kafka sasl.mechanism=PLAIN. Offsets and open-session \
        state are checkpointed under <sink>/_qos with the files they produced; Kafka's committed offsets \
        are for lag monitoring only. A start whose checkpoint state does not cover the files already \
        published, or comes from another Kafka cluster, is refused (see --accept-state-loss); a sink \
        deleted under the running daemon stops it. SIGTERM/SIGINT: flush what can be flushed, checkpoint, exit 0.
        """)

    @Option(help: "YAML config file.") var config: String?
    @Option(help: "Kafka bootstrap servers (default localhost:9092).") var brokers: String?
    @Option(help: "Topic to consume (default beacons).") var topic: String?
    @Option(help: "Consumer group (default videoqos).") var group: String?
    @Option(help: "Output directory (default output).") var sink: String?
    @Option(help: "Window size (default 2m).") var window: String?
    @Option(help: "Allowed lateness (default 30s).") var lateness: String?
    @Option(help: "Maximum lateness before rejecting (default 24h).") var maxLateness: String?
    @Option(help: "Session inactivity timeout (default 5m).") var sessionTimeout: String?
    @Option(help: "Maximum session length (default 6h).") var sessionMax: String?
    @Option(help: "Idle partition timeout, wall clock (default 30s).") var idleTimeout: String?
    @Option(help: "Checkpoint at least this often (default 10s).") var checkpointInterval: String?
    @Option(help: "Checkpoint at most this often for windows that become due (default 2s): windows closed while catching up share a checkpoint; window latency grows by at most this much.")
    var checkpointMinInterval: String?
    @Option(help: "Instance id, unique per running process (default host-pid).") var instance: String?
    @Option(name: .customLong("geoip-db"), help: "MaxMind DB file (.mmdb); repeatable (City/Country and ASN).")
    var geoipDb: [String] = []
    @Option(help: "uap-core regexes.yaml (default /usr/share/uap-core/regexes.yaml).") var uaRegexes: String?
    @Option(help: "librdkafka property key=value; repeatable.") var kafka: [String] = []
    @Option(help: "Port for /metrics and /healthz: a number (0 = any free port) or off (default 9309).")
    var metricsPort: String?
    @Option(help: "Address /metrics and /healthz listen on (default 127.0.0.1, loopback only; 0.0.0.0 for every interface).")
    var metricsHost: String?
    @Option(help: "Stop after this many seconds (for tests and demos).") var duration: Double?
    @Flag(help: "Start even if the checkpoint state in <sink>/_qos does not cover the files already published (a manifest or _qos deleted or restored from an old backup), belongs to another sink, or was taken from another Kafka cluster; windows already published may then be counted again. Needed once.")
    var acceptStateLoss = false
    @Flag(help: "Batch mode: when every assigned partition is read to its end, close all sessions, write every window (like qos replay), checkpoint and exit.")
    var untilCaughtUp = false

    func settings() throws -> RunSettings {
        var s = RunSettings()
        if let config { try s.load(file: config) }
        try s.loadEnvironment()
        let flags: [(String, String?)] = [
            ("brokers", brokers), ("topic", topic), ("group", group), ("sink", sink), ("window", window),
            ("lateness", lateness), ("max_lateness", maxLateness), ("session_timeout", sessionTimeout),
            ("session_max", sessionMax), ("idle_timeout", idleTimeout), ("checkpoint_interval", checkpointInterval),
            ("checkpoint_min_interval", checkpointMinInterval),
            ("instance", instance), ("ua_regexes", uaRegexes), ("metrics_port", metricsPort),
            ("metrics_host", metricsHost)]
        for (k, v) in flags { if let v { s.values[k] = v } }
        if !geoipDb.isEmpty { s.geoip = geoipDb }
        for kv in kafka {
            guard let eq = kv.firstIndex(of: "=") else { throw UserError("--kafka '\(kv)': expected key=value, e.g. --kafka security.protocol=SSL") }
            s.kafka[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
        }
        return s
    }

    func options(_ s: RunSettings) throws -> RunOptions {
        var o = RunOptions()
        let v = s.values
        o.brokers = v["brokers"] ?? o.brokers
        o.topic = v["topic"] ?? o.topic
        o.group = v["group"] ?? o.group
        o.sink = v["sink"] ?? o.sink
        o.instance = v["instance"] ?? o.instance
        var c = EngineConfig()
        if let x = v["window"] { c.windowMs = try Duration.parse(x, "window") }
        if let x = v["lateness"] { c.latenessMs = try Duration.parse(x, "lateness") }
        if let x = v["max_lateness"] { c.maxLatenessMs = try Duration.parse(x, "max_lateness") }
        if let x = v["session_timeout"] { c.sessionTimeoutMs = try Duration.parse(x, "session_timeout") }
        if let x = v["session_max"] { c.sessionMaxMs = try Duration.parse(x, "session_max") }
        if let x = v["group_cap"] { c.groupsPerWindowMax = Int(x) ?? c.groupsPerWindowMax }
        if let x = v["slow_request_ms"] { c.slowRequestMs = Int64(x) ?? c.slowRequestMs }
        guard c.windowMs > 0 else { throw UserError("window must be > 0 — e.g. 2m") }
        if let problem = c.problem { throw UserError(problem) }
        o.config = c
        if let x = v["idle_timeout"] { o.idleTimeoutMs = try Duration.parse(x, "idle_timeout") }
        if let x = v["checkpoint_interval"] { o.checkpointIntervalMs = try Duration.parse(x, "checkpoint_interval") }
        if let x = v["checkpoint_min_interval"] {
            o.checkpointMinIntervalMs = try Duration.parse(x, "checkpoint_min_interval")
        }
        if let x = v["zstd_level"] { o.zstdLevel = Int(x) ?? 3 }
        o.kafka = s.kafka
        o.enricher = try makeEnricher(geoip: s.geoip, uaRegexes: v["ua_regexes"], log: o.log.info)
        o.durationSeconds = duration
        o.untilCaughtUp = untilCaughtUp
        o.acceptStateLoss = acceptStateLoss
        return o
    }

    func run() throws {
        try QoS.guarded {
            let s = try settings()
            var o = try options(s)
            let setting = s.values["metrics_port"] ?? "9309"
            guard setting == "off" || Int(setting) != nil else {
                throw UserError("metrics_port '\(setting)' must be a port number or off")
            }
            if let port = Int(setting) {
                let host = s.values["metrics_host"] ?? "127.0.0.1"
                let server = try MetricsServer(host: host, port: port)
                server.staleAfterSeconds = max(60, Double(o.checkpointIntervalMs) / 1000 * 6)
                server.start()
                o.log("qos run: /metrics and /healthz on \(host):\(server.port)")
                o.onCheckpoint = { server.publish($0) }
            }
            installStopHandlers()
            _ = try RunJob(o).run()
        }
    }
}

/// SIGTERM / SIGINT set the stop flag; the loop checkpoints and exits 0.
func installStopHandlers() {
    signal(SIGTERM) { _ in runStopRequested = 1 }
    signal(SIGINT) { _ in runStopRequested = 1 }
}
