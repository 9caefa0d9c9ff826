import QoSCore
import Kafka

/// The settings of `qos run`, `qos replay` and `qos demo`: one typed value,
/// decoded from the layers defaults < YAML config file < `QOS_*` environment
/// < flags (`ConfigurationLayers`). README "The daemon", Settings, lists the
/// keys; a test keeps that list, `--help` and `Key` equal.
///
/// Every value arrives as text (a YAML scalar, an environment variable, a
/// flag) and is parsed here, so each layer gets the same checks: an unknown
/// key or a bad value is a `ConfigurationError` naming the key, the value
/// and the expected form — never a silent fallback to the default.
public struct Configuration: Decodable, Equatable, Sendable {
    /// Kafka bootstrap servers.
    public var brokers = Defaults.brokers
    /// Topics to consume, each with its input format (`beacons`,
    /// `cdnlogs:edgecast`); a topic without one has `format`'s.
    public var topics = [TopicSpec(name: Defaults.topic)]
    /// The input format of `qos replay`'s files and of topics given without one.
    public var format = RecordFormats.defaultName
    /// The `fastly` format's field names, for a customer's own log format
    /// (README "Input: CDN access logs", Fastly): our name → their JSON key.
    public var fastlyFields: [String: String] = [:]
    /// Consumer group.
    public var group = Defaults.group
    /// `native` (our own Fetch requests where the brokers allow, librdkafka
    /// for the rest) or `librdkafka` (docs/kafka-fetch.md).
    public var fetchPath = Defaults.fetchPath
    /// Output directory.
    public var sink = Defaults.sink
    /// The engine's event-time knobs: window, lateness, max_lateness,
    /// session_timeout, session_max, group_cap, slow_request_ms.
    public var engine = Defaults.engine
    public var idleTimeoutMs = Defaults.idleTimeoutMs
    public var checkpointIntervalMs = Defaults.checkpointIntervalMs
    public var checkpointMinIntervalMs = Defaults.checkpointMinIntervalMs
    /// Late deltas are written at most this often per table and hour directory.
    public var lateFlushIntervalMs = Defaults.lateFlushIntervalMs
    /// Compaction in the daemon: files per hour directory, and after how long a closed hour.
    public var compactFiles = Defaults.compactFiles
    public var compactAfterMs = Defaults.compactAfterMs
    /// Instance id, unique per running process (nil: host-pid).
    public var instance: String?
    /// MaxMind DB files (City/Country and ASN).
    public var geoipDb: [String] = []
    /// uap-core regexes.yaml.
    public var uaRegexes = Defaults.uaRegexes
    /// ZSTD level of Parquet pages, 0 (uncompressed) ... 22.
    public var zstdLevel = Defaults.zstdLevel
    /// librdkafka properties passed through unchanged.
    public var kafka: [String: String] = [:]
    /// Port of /metrics and /healthz (0: any free port; nil: off).
    public var metricsPort = Defaults.metricsPort
    public var metricsHost = Defaults.metricsHost
    /// An `s3://` sink's store (docs/object-storage.md); nil: the `AWS_*` variables' or the default.
    public var s3Endpoint: String?
    public var s3Region: String?
    public var s3PathStyle: Bool?
    /// An `s3://` sink's connect timeout (ms); nil: 3 s.
    public var s3ConnectTimeoutMs: Int64?
    /// Alert rules evaluated on every written window (README "Alerts").
    public var alerts: [AlertRule] = []
    /// `qos replay`'s engine threads (docs/architecture.md "Sharding").
    public var workers = 1

    public init() {}

    /// Every key of a config file; `QOS_<KEY>` in the environment and
    /// `--<key-with-dashes>` on the command line.
    public enum Key: String, CodingKey, CaseIterable, Sendable {
        case brokers, topics, format, group, sink, window, lateness
        case max_lateness, session_timeout, session_max, idle_timeout, checkpoint_interval, checkpoint_min_interval
        case instance, geoip_db, ua_regexes, zstd_level, kafka, group_cap, slow_request_ms, slow_response_ms, metrics_port, metrics_host
        case fastly_fields, alerts, workers, fetch_path
        case late_flush_interval, compact_files, compact_after
        case s3_endpoint, s3_region, s3_path_style, s3_connect_timeout

        /// The environment variable: `QOS_MAX_LATENESS`.
        public var environmentName: String { "QOS_" + rawValue.uppercased() }
        /// The flag: `--max-lateness`; `--topic` (repeatable) for `topics`.
        public var flag: String { self == .topics ? "--topic" : "--" + rawValue.replacingOccurrences(of: "_", with: "-") }

        /// Keys only `qos replay` uses: `qos run` checks them in its file
        /// and environment (a shared config file) and has no flag for them.
        public static let replayOnly: Set<Key> = [.workers]

        /// Keys of earlier versions, still read: `topic` (one topic) is `topics`.
        public static let aliases: [String: Key] = ["topic": .topics]

        /// What a value must look like.
        public var expected: String {
            switch self {
            case .window: "a whole number of seconds > 0 such as 90s, 2m, 1h"
            case .lateness, .max_lateness, .session_timeout, .session_max, .idle_timeout, .checkpoint_interval,
                 .checkpoint_min_interval, .late_flush_interval, .compact_after, .s3_connect_timeout: DurationText.form
            case .compact_files: "an integer ≥ 2"
            case .workers: "an integer from 1 to \(Defaults.replayWorkersMax)"
            case .zstd_level: "an integer from 0 (uncompressed) to \(Defaults.zstdLevelMax)"
            case .group_cap: "an integer ≥ 1"
            case .slow_request_ms, .slow_response_ms: "an integer number of milliseconds ≥ 0"
            case .metrics_port: "a port number 0-65535 (0 = any free port) or off"
            case .geoip_db: "a list of .mmdb paths"
            case .topics: "a list of topics, each NAME or NAME:FORMAT (formats: \(RecordFormats.names))"
            case .format: "an input format: \(RecordFormats.names)"
            case .kafka: "a mapping of librdkafka properties"
            case .fastly_fields: "a mapping of field names to your log's JSON keys (name=key,… in the environment or a flag), names: \(FastlyFieldMap.names.keys.sorted().joined(separator: ", "))"
            case .alerts: "a list of alert rules (README \"Alerts\"), e.g. [{table: cdn, metric: rebuffer_ratio, above: 0.05}]"
            case .brokers, .group, .sink, .ua_regexes, .metrics_host, .s3_region: "a non-empty string"
            case .fetch_path: "native or librdkafka"
            case .instance: "a name of letters, digits, '.', '_' and '-' (it names the instance's directories in the sink)"
            case .s3_endpoint: "an http:// or https:// address such as http://minio:9000"
            case .s3_path_style: "true or false"
            }
        }

        /// The keys joined for an error message.
        public static var list: String { allCases.map(\.rawValue).joined(separator: ", ") }
    }

    /// Keys outside `Key` (to name an unknown one).
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        self.init()
        for k in try decoder.container(keyedBy: AnyKey.self).allKeys where Key(rawValue: k.stringValue) == nil {
            if Key.aliases[k.stringValue] != nil { continue }
            throw ConfigurationError.unknownKey(k.stringValue, origin: nil)
        }
        let c = try decoder.container(keyedBy: Key.self)
        func text(_ k: Key) throws -> String? {
            guard c.contains(k) else { return nil }
            guard let s = try? c.decode(String.self, forKey: k) else { throw ConfigurationError.badValue(k, "(not text)") }
            return s
        }
        func string(_ k: Key) throws -> String? {
            guard let s = try text(k) else { return nil }
            guard !s.isEmpty else { throw ConfigurationError.badValue(k, s) }
            return s
        }
        func duration(_ k: Key) throws -> Int64? {
            guard let s = try text(k) else { return nil }
            guard let ms = DurationText.milliseconds(s) else { throw ConfigurationError.badValue(k, s) }
            return ms
        }
        func integer(_ k: Key, _ range: ClosedRange<Int64>) throws -> Int64? {
            guard let s = try text(k) else { return nil }
            guard s.allSatisfy({ $0.isASCII }), let v = Int64(s), range.contains(v) else { throw ConfigurationError.badValue(k, s) }
            return v
        }

        brokers = try string(.brokers) ?? brokers
        if let f = try string(.format) {
            guard RecordFormats.all.contains(where: { $0.name == f }) else { throw ConfigurationError.badValue(.format, f) }
            format = f
        }
        if c.contains(.topics) {
            // A list, or one topic (a flag's or an old `topic:` value).
            guard let list = (try? c.decode([String].self, forKey: .topics)) ?? (try? c.decode(String.self, forKey: .topics)).map({ [$0] }),
                  !list.isEmpty else {
                throw ConfigurationError.badValue(.topics, "(not a list of topics)")
            }
            topics = try list.map { text in
                guard let t = TopicSpec(parsing: text) else { throw ConfigurationError.badValue(.topics, text) }
                return t
            }
            var seen = Set<String>()
            for t in topics where !seen.insert(t.name).inserted {
                throw ConfigurationError.invalid("topics: '\(t.name)' is listed twice — list each topic once")
            }
        }
        group = try string(.group) ?? group
        if let f = try string(.fetch_path) {
            guard ["native", "librdkafka"].contains(f) else { throw ConfigurationError.badValue(.fetch_path, f) }
            fetchPath = f
        }
        sink = try string(.sink) ?? sink
        if let w = try duration(.window) {
            // Files are named by the window's start and size in whole seconds
            // (WindowFileWriter): a window of 1500ms or 1ms would be named as
            // another, and windows shorter than a second would share a name.
            guard w > 0, w % 1000 == 0 else { throw ConfigurationError.badValue(.window, try text(.window) ?? "") }
            engine.windowMs = w
        }
        engine.latenessMs = try duration(.lateness) ?? engine.latenessMs
        engine.maxLatenessMs = try duration(.max_lateness) ?? engine.maxLatenessMs
        engine.sessionTimeoutMs = try duration(.session_timeout) ?? engine.sessionTimeoutMs
        engine.sessionMaxMs = try duration(.session_max) ?? engine.sessionMaxMs
        engine.groupsPerWindowMax = try integer(.group_cap, 1...Int64(Int32.max)).map { Int($0) } ?? engine.groupsPerWindowMax
        engine.slowRequestMs = try integer(.slow_request_ms, 0...Int64.max) ?? engine.slowRequestMs
        engine.slowResponseMs = try integer(.slow_response_ms, 0...Int64.max) ?? engine.slowResponseMs
        idleTimeoutMs = try duration(.idle_timeout) ?? idleTimeoutMs
        checkpointIntervalMs = try duration(.checkpoint_interval) ?? checkpointIntervalMs
        checkpointMinIntervalMs = try duration(.checkpoint_min_interval) ?? checkpointMinIntervalMs
        lateFlushIntervalMs = try duration(.late_flush_interval) ?? lateFlushIntervalMs
        compactFiles = try integer(.compact_files, 2...1_000_000).map { Int($0) } ?? compactFiles
        compactAfterMs = try duration(.compact_after) ?? compactAfterMs
        workers = try integer(.workers, 1...Int64(Defaults.replayWorkersMax)).map { Int($0) } ?? workers
        if let i = try string(.instance) {
            guard RunOptions.isValidInstance(i) else { throw ConfigurationError.badValue(.instance, i) }
            instance = i
        }
        if let e = try string(.s3_endpoint) {
            guard e.hasPrefix("http://") || e.hasPrefix("https://") else { throw ConfigurationError.badValue(.s3_endpoint, e) }
            s3Endpoint = e
        }
        s3Region = try string(.s3_region) ?? s3Region
        if let ms = try duration(.s3_connect_timeout) {
            guard ms > 0 else { throw ConfigurationError.badValue(.s3_connect_timeout, "0") }
            s3ConnectTimeoutMs = ms
        }
        if c.contains(.s3_path_style) {
            // YAML `true` decodes as a Bool; the environment and flags give text.
            if let b = try? c.decode(Bool.self, forKey: .s3_path_style) {
                s3PathStyle = b
            } else {
                let t = try text(.s3_path_style) ?? ""
                switch t.lowercased() {
                case "true", "1", "yes": s3PathStyle = true
                case "false", "0", "no": s3PathStyle = false
                default: throw ConfigurationError.badValue(.s3_path_style, t)
                }
            }
        }
        if c.contains(.geoip_db) {
            guard let list = try? c.decode([String].self, forKey: .geoip_db), !list.contains("") else {
                throw ConfigurationError.badValue(.geoip_db, "(not a list of paths)")
            }
            geoipDb = list
        }
        uaRegexes = try string(.ua_regexes) ?? uaRegexes
        zstdLevel = try integer(.zstd_level, 0...Int64(Defaults.zstdLevelMax)).map { Int($0) } ?? zstdLevel
        if c.contains(.fastly_fields) {
            // A mapping (YAML) or name=key,name=key (environment, flag).
            var map: [String: String] = [:]
            if let m = try? c.decode([String: String].self, forKey: .fastly_fields) {
                map = m
            } else if let text = try? c.decode(String.self, forKey: .fastly_fields) {
                for pair in text.split(separator: ",") {
                    guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
                        throw ConfigurationError.badValue(.fastly_fields, text)
                    }
                    map[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
                }
            } else {
                throw ConfigurationError.badValue(.fastly_fields, "(not a mapping)")
            }
            do { _ = try FastlyFieldMap(mapping: map) } catch let e as UserError {
                throw ConfigurationError.invalid("fastly_fields: \(e.message)")
            }
            fastlyFields = map
        }
        if c.contains(.kafka) {
            guard let map = try? c.decode([String: String].self, forKey: .kafka) else {
                throw ConfigurationError.badValue(.kafka, "(not a mapping)")
            }
            kafka = map
        }
        if let p = try text(.metrics_port) {
            if p == "off" { metricsPort = nil } else {
                guard p.allSatisfy({ $0.isASCII }), let n = Int(p), (0...65535).contains(n) else {
                    throw ConfigurationError.badValue(.metrics_port, p)
                }
                metricsPort = n
            }
        }
        metricsHost = try string(.metrics_host) ?? metricsHost
        if let rules = try text(.alerts) {
            do { alerts = try AlertRules.parse(yaml: rules) } catch let e as AlertRuleError {
                throw ConfigurationError.alertRule(e, origin: nil)
            }
        }
        if let problem = engine.problem { throw ConfigurationError.invalid(problem) }
    }

    /// What formats take from the configuration (checked when decoded).
    public var formatSettings: FormatSettings {
        FormatSettings(fastlyFields: fastlyFields.isEmpty ? nil : try! FastlyFieldMap(mapping: fastlyFields))
    }

    /// `qos run`'s options (everything but what only the CLI knows: the
    /// enricher, duration, batch mode, state-loss acceptance, callbacks).
    public func runOptions() -> RunOptions {
        var o = RunOptions()
        o.brokers = brokers
        o.topics = topics.map { TopicSpec(name: $0.name, format: $0.format ?? format) }
        o.formatSettings = formatSettings
        o.group = group
        o.fetchPath = fetchPath == "librdkafka" ? .librdkafka : .native
        o.sink = sink
        o.config = engine
        o.zstdLevel = zstdLevel
        o.kafka = kafka
        if let instance { o.instance = instance }
        o.idleTimeoutMs = idleTimeoutMs
        o.checkpointIntervalMs = checkpointIntervalMs
        o.checkpointMinIntervalMs = checkpointMinIntervalMs
        o.lateFlushIntervalMs = lateFlushIntervalMs
        o.compaction.maxFiles = compactFiles
        o.compaction.afterMs = compactAfterMs
        if !alerts.isEmpty { o.alerts = AlertPipeline(rules: alerts, log: o.log) }
        o.environment = s3Environment(o.environment)
        return o
    }

    /// The environment an `s3://` sink reads, with the s3_* settings over the `AWS_*` variables.
    public func s3Environment(_ base: [String: String]) -> [String: String] {
        var env = base
        if let s3Endpoint { env["QOS_S3_ENDPOINT"] = s3Endpoint }
        if let s3Region { env["QOS_S3_REGION"] = s3Region }
        if let s3PathStyle { env["QOS_S3_PATH_STYLE"] = s3PathStyle ? "true" : "false" }
        if let s3ConnectTimeoutMs { env["QOS_S3_CONNECT_TIMEOUT"] = "\(s3ConnectTimeoutMs)ms" }
        return env
    }

    /// `qos replay`'s options (inputs, enricher and progress are the CLI's).
    public func replayOptions() -> ReplayOptions {
        var o = ReplayOptions()
        // Checked against the registry when decoded.
        o.format = try! RecordFormats.named(format, settings: formatSettings)
        o.sink = sink
        o.config = engine
        o.zstdLevel = zstdLevel
        o.lateFlushIntervalMs = lateFlushIntervalMs
        o.workers = workers
        o.environment = s3Environment(o.environment)
        return o
    }
}

/// Where a setting came from, for error messages.
public enum ConfigurationOrigin: Equatable, Sendable, CustomStringConvertible {
    case file(String)
    case environment(String)
    case flag(String)

    public var description: String {
        switch self {
        case .file(let path): "config file '\(path)'"
        case .environment(let name): "environment variable \(name)"
        case .flag(let flag): flag
        }
    }
}

/// A setting that cannot be used, in one line naming the key, the value, where
/// it came from and what it should look like.
public enum ConfigurationError: OperatorError, Equatable {
    /// A key no setting has.
    case unknownKey(String, origin: ConfigurationOrigin?)
    /// A value that does not parse; `origin` is filled in by `ConfigurationLayers`.
    case badValue(Configuration.Key, String, origin: ConfigurationOrigin? = nil)
    /// Values that parse but do not fit together, or a malformed flag.
    case invalid(String)
    /// A config file that cannot be read or is not a YAML mapping.
    case file(String)
    /// An alert rule that cannot be used (its index and field); `origin` as for `badValue`.
    case alertRule(AlertRuleError, origin: ConfigurationOrigin? = nil)

    public var description: String {
        switch self {
        case .unknownKey(let k, let origin):
            if case .environment(let name) = origin {
                let valid = Configuration.Key.allCases.filter { $0 != .kafka }.map(\.environmentName) + ["QOS_KAFKA_<PROPERTY>"]
                return "environment variable \(name) is not a qos setting — valid: \(valid.joined(separator: ", "))"
            }
            return "\(origin?.description ?? "configuration"): unknown key '\(Self.clipped(k))' — valid keys: \(Configuration.Key.list)"
        case .badValue(let k, let v, let origin):
            return "\(k.rawValue): '\(Self.clipped(v))'\(origin.map { " (from \($0))" } ?? "") is not \(k.expected)"
        case .invalid(let s), .file(let s):
            return s
        case .alertRule(let e, let origin):
            return "\(e.description)\(origin.map { " (in \($0))" } ?? "")"
        }
    }

    /// A value or key as echoed in an error: at most `shownMax` characters,
    /// so a wrong value of a megabyte is not printed whole.
    static func clipped(_ text: String) -> String {
        text.count <= shownMax ? text : text.prefix(shownMax) + "… (\(text.count) characters)"
    }
    static let shownMax = 120
}
