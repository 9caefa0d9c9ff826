import Foundation
import Testing
@testable import Engine
import QoSCore
import Kafka

/// The typed configuration of run / replay / demo: layering, and an error —
/// never a silent fallback — for every unknown key and bad value.
@Suite struct ConfigurationTests {
    func resolve(yaml: String? = nil, env: [(String, String)] = [], flags: (inout ConfigurationLayers) throws -> Void = { _ in })
        throws -> Configuration {
        var l = ConfigurationLayers()
        if let yaml { try l.load(yaml: yaml, path: "c.yaml") }
        try l.load(environment: env.map { (name: $0.0, value: $0.1) })
        try flags(&l)
        return try l.resolve()
    }

    func error(yaml: String? = nil, env: [(String, String)] = [], flags: (inout ConfigurationLayers) throws -> Void = { _ in })
        -> String? {
        do { _ = try resolve(yaml: yaml, env: env, flags: flags) } catch let e as ConfigurationError {
            return e.description
        } catch { return "not a ConfigurationError: \(error)" }
        return nil
    }

    /// The default instance id (host-pid) is one the settings accept, and
    /// the ids operators write (pod names, host names) are too.
    @Test func instanceIdsAreOnePathComponent() {
        #expect(RunOptions.isValidInstance(RunOptions.defaultInstance()))
        for ok in ["videoqos-7f9c-0", "vm-15849", "qos_a.b"] { #expect(RunOptions.isValidInstance(ok)) }
        for bad in ["", ".", "..", "../x", "a/b", "a b", "ä", String(repeating: "a", count: 201)] {
            #expect(!RunOptions.isValidInstance(bad))
        }
    }

    @Test func defaultsAreTheNamedConstants() throws {
        let c = try resolve()
        #expect(c == Configuration())
        #expect(c.brokers == Defaults.brokers && c.sink == Defaults.sink && c.zstdLevel == Defaults.zstdLevel)
        #expect(c.engine == EngineConfig() && c.metricsPort == 9309 && c.instance == nil)
        #expect(c.idleTimeoutMs == Defaults.idleTimeoutMs && c.checkpointIntervalMs == Defaults.checkpointIntervalMs)
    }

    @Test func flagsBeatEnvironmentBeatFileBeatDefaults() throws {
        let yaml = "window: 10m\nlateness: 1m\ntopic: from-file\nzstd_level: 5\nkafka:\n  client.id: file\n  acks: all\n"
        let env = [("QOS_LATENESS", "2m"), ("QOS_TOPIC", "from-env"), ("QOS_KAFKA_CLIENT_ID", "env"), ("QOS_BIN", "/x/qos")]
        let c = try resolve(yaml: yaml, env: env) { l in
            l.set(topics: ["from-flag"])
            l.set(.sink, flag: nil)  // not given: no effect
            try l.set(kafka: ["acks=1"])
        }
        #expect(c.engine.windowMs == 600_000)       // file
        #expect(c.engine.latenessMs == 120_000)     // env over file
        #expect(c.topics == [TopicSpec(name: "from-flag")])  // flag over env over file
        #expect(c.sink == Defaults.sink)            // default
        #expect(c.zstdLevel == 5)
        #expect(c.kafka == ["client.id": "env", "acks": "1"])  // merged property by property
    }

    @Test func everyKeyIsReadFromEveryLayer() throws {
        let values: [Configuration.Key: String] = [
            .brokers: "b:1", .topics: "t", .format: "beacon-json", .group: "g", .sink: "s", .window: "1h", .lateness: "1s", .max_lateness: "1h",
            .session_timeout: "1m", .session_max: "1h", .idle_timeout: "3s", .checkpoint_interval: "4s",
            .checkpoint_min_interval: "5s", .instance: "i", .geoip_db: "a.mmdb", .ua_regexes: "r.yaml", .zstd_level: "0",
            .group_cap: "7", .slow_request_ms: "9", .slow_response_ms: "11", .metrics_port: "off", .metrics_host: "0.0.0.0",
            .fastly_fields: "status=resp_status,elapsed_ms=duration",
            .late_flush_interval: "30s", .compact_files: "20", .compact_after: "2h",
            .s3_endpoint: "http://minio:9000", .s3_region: "eu-west-1", .s3_path_style: "false", .s3_connect_timeout: "1500ms",
            .alerts: "[{table: cdn, metric: failed_request_rate, above: 0.05}]", .workers: "4",
            .fetch_path: "librdkafka",
        ]
        var expected = Configuration()
        (expected.brokers, expected.topics, expected.group, expected.sink) = ("b:1", [TopicSpec(name: "t")], "g", "s")
        expected.engine.windowMs = 3_600_000; expected.engine.latenessMs = 1000; expected.engine.maxLatenessMs = 3_600_000
        expected.engine.sessionTimeoutMs = 60_000; expected.engine.sessionMaxMs = 3_600_000
        expected.engine.groupsPerWindowMax = 7; expected.engine.slowRequestMs = 9
        expected.engine.slowResponseMs = 11
        (expected.idleTimeoutMs, expected.checkpointIntervalMs, expected.checkpointMinIntervalMs) = (3000, 4000, 5000)
        expected.instance = "i"; expected.geoipDb = ["a.mmdb"]; expected.uaRegexes = "r.yaml"; expected.zstdLevel = 0
        expected.metricsPort = nil; expected.metricsHost = "0.0.0.0"
        expected.fastlyFields = ["status": "resp_status", "elapsed_ms": "duration"]
        (expected.lateFlushIntervalMs, expected.compactFiles, expected.compactAfterMs) = (30_000, 20, 7_200_000)
        (expected.s3Endpoint, expected.s3Region, expected.s3PathStyle) = ("http://minio:9000", "eu-west-1", false)
        expected.s3ConnectTimeoutMs = 1500
        expected.workers = 4
        expected.fetchPath = "librdkafka"
        #expect(try resolve(yaml: "fetch_path: librdkafka").runOptions().fetchPath == .librdkafka)
        #expect(try resolve(yaml: "brokers: b:1").runOptions().fetchPath == .native)
        #expect(error(yaml: "fetch_path: rdkafka")?.contains("fetch_path: 'rdkafka' (from config file 'c.yaml') is not native or librdkafka") == true)
        #expect(error(yaml: "workers: 0")?.contains("workers: '0' (from config file 'c.yaml') is not an integer from 1 to 64") == true)
        #expect(error(yaml: "workers: 65") != nil)
        #expect(error(yaml: "compact_files: 1")?.contains("compact_files: '1' (from config file 'c.yaml') is not an integer ≥ 2") == true)
        expected.alerts = try AlertRules.parse(yaml: "[{table: cdn, metric: failed_request_rate, above: 0.05}]")
        #expect(Set(values.keys).union([.kafka]) == Set(Configuration.Key.allCases))

        let yaml = values.map { "\($0.key.rawValue): \"\($0.value)\"" }.joined(separator: "\n")
        #expect(try resolve(yaml: yaml) == expected)
        #expect(try resolve(yaml: yaml).replayOptions().workers == 4)
        #expect(try resolve(env: values.map { ($0.key.environmentName, $0.value) }) == expected)
        let viaFlags = try resolve { l in
            for (k, v) in values where k != .geoip_db { l.set(k, flag: v) }
            l.set(geoipDb: ["a.mmdb"])
        }
        #expect(viaFlags == expected)
    }

    /// An s3:// sink's store: the settings go over the AWS_* variables the sink reads.
    @Test func s3SettingsGoOverTheAWSVariables() throws {
        let c = try resolve(yaml: "s3_path_style: true\ns3_region: eu-west-1", env: [("QOS_S3_ENDPOINT", "https://minio:9000")])
        let env = c.runOptions().environment
        #expect(env["QOS_S3_ENDPOINT"] == "https://minio:9000" && env["QOS_S3_REGION"] == "eu-west-1" && env["QOS_S3_PATH_STYLE"] == "true")
        #expect(c.replayOptions().environment["QOS_S3_REGION"] == "eu-west-1")
        let storage = try S3Storage(location: "s3://b-1/p", environment: env.merging(["AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s",
                                                                                      "AWS_REGION": "us-west-2", "AWS_ENDPOINT_URL": "http://x"]) { $1 })
        #expect(storage.client.config.endpoint == "https://minio:9000" && storage.client.config.region == "eu-west-1")
        #expect(storage.client.config.pathStyle && storage.client.config.bucket == "b-1" && storage.client.config.prefix == "p")
        #expect(error(yaml: "s3_endpoint: minio:9000")?.contains("s3_endpoint: 'minio:9000' (from config file 'c.yaml') is not an http:// or https:// address") == true)
        #expect(error(env: [("QOS_S3_PATH_STYLE", "maybe")])?.contains("is not true or false") == true)
    }

    @Test func topicsEachWithAFormat() throws {
        let want = [TopicSpec(name: "beacons"), TopicSpec(name: "cdn.logs-1", format: "beacon-json")]
        #expect(try resolve(yaml: "topics: [beacons, cdn.logs-1:beacon-json]").topics == want)
        #expect(try resolve(yaml: "topics:\n  - beacons\n  - cdn.logs-1:beacon-json\n").topics == want)
        #expect(try resolve(env: [("QOS_TOPICS", "beacons,cdn.logs-1:beacon-json")]).topics == want)
        #expect(try resolve { $0.set(topics: ["beacons", "cdn.logs-1:beacon-json"]) }.topics == want)
        // `topic` (one topic), the key of earlier versions, is still read.
        #expect(try resolve(yaml: "topic: old").topics == [TopicSpec(name: "old")])
        #expect(try resolve(env: [("QOS_TOPIC", "old")]).topics == [TopicSpec(name: "old")])
        // The format of topics given without one, resolved for the run.
        let c = try resolve(yaml: "topics: [a, b:beacon-json]\nformat: beacon-json")
        #expect(c.runOptions().topics.map(\.format) == ["beacon-json", "beacon-json"])
        #expect(c.runOptions().topic == "a")

        #expect(error(yaml: "topics: [beacons:nope]")?.contains("topics: 'beacons:nope' (from config file 'c.yaml') is not a list of topics, each NAME or NAME:FORMAT") == true)
        #expect(error(yaml: "topics: [bad topic]")?.contains("'bad topic'") == true)
        #expect(error(yaml: "topics: []")?.contains("topics:") == true)
        #expect(error(yaml: "topics: [a, a]") == "topics: 'a' is listed twice — list each topic once")
        #expect(error(yaml: "format: xml")?.contains("format: 'xml' (from config file 'c.yaml') is not an input format: beacon-json") == true)
        #expect(error { $0.set(.format, flag: "xml") }?.contains("(from --format)") == true)
    }

    @Test func fastlyFieldsNameACustomersOwnKeys() throws {
        let c = try resolve(yaml: "fastly_fields:\n  status: resp_status\n  elapsed_ms: duration\n")
        #expect(c.fastlyFields == ["status": "resp_status", "elapsed_ms": "duration"])
        #expect(try resolve(env: [("QOS_FASTLY_FIELDS", "status=resp_status,elapsed_ms=duration")]).fastlyFields == c.fastlyFields)
        // The format the daemon and replay get reads those keys.
        let format = try RecordFormats.named("fastly", settings: c.formatSettings).forSource(named: "t")
        var records: [CdnLogRecord] = []
        let line = #"{"timestamp":"2026-01-01T00:00:01Z","resp_status":503,"duration":250,"pop":"AMS","client_ip":"192.0.2.1"}"#
        Array(line.utf8).withUnsafeBytes { b in format.decode(b) { if case .cdnLog(let r) = $0 { records.append(r) } } }
        #expect(records.count == 1 && records.first?.status == 503 && records.first?.serveMs == 250)
        let plain = try RecordFormats.named("fastly", settings: FormatSettings()).forSource(named: "t")
        var rejected = 0
        Array(line.utf8).withUnsafeBytes { b in plain.decode(b) { if case .reject = $0 { rejected += 1 } } }
        #expect(rejected == 1, "the default field names do not read this log")
        #expect(error(yaml: "fastly_fields:\n  statuz: x\n")?.contains("unknown fastly_fields key 'statuz'") == true)
        #expect(error(env: [("QOS_FASTLY_FIELDS", "status")])?.contains("fastly_fields: 'status'") == true)
    }

    @Test func yamlScalarsAreReadAsWritten() throws {
        // YAML 1.1 would read `off` as false; the setting means "off".
        let c = try resolve(yaml: "metrics_port: off\ngeoip_db: [a.mmdb, b.mmdb]\nkafka:\n  enable.idempotence: true\n")
        #expect(c.metricsPort == nil)
        #expect(c.geoipDb == ["a.mmdb", "b.mmdb"])
        #expect(c.kafka == ["enable.idempotence": "true"])
        #expect(try resolve(yaml: "geoip_db: one.mmdb").geoipDb == ["one.mmdb"])
        #expect(try resolve(env: [("QOS_GEOIP_DB", "a.mmdb,b.mmdb")]).geoipDb == ["a.mmdb", "b.mmdb"])
        #expect(try resolve(yaml: "").brokers == Defaults.brokers)  // an empty file sets nothing
    }

    @Test func unknownKeysNameTheValidOnes() {
        let file = error(yaml: "windw: 2m")
        #expect(file?.contains("config file 'c.yaml': unknown key 'windw'") == true, "\(file ?? "no error")")
        #expect(file?.contains("valid keys: brokers, topics, format") == true)
        let env = error(env: [("QOS_WINDW", "2m")])
        #expect(env?.contains("environment variable QOS_WINDW is not a qos setting") == true, "\(env ?? "no error")")
        #expect(env?.contains("QOS_WINDOW") == true && env?.contains("QOS_KAFKA_<PROPERTY>") == true)
        #expect(error(env: [("QOS_KAFKA", "x")])?.contains("QOS_KAFKA is not a qos setting") == true)
        // Not QOS_: not ours.
        #expect(error(env: [("WINDOW", "x"), ("QOS_BIN", "x")]) == nil)
        // JSON decoded directly (not through the layers) checks too.
        #expect(throws: ConfigurationError.unknownKey("windw", origin: nil)) {
            try JSONDecoder().decode(Configuration.self, from: Data(#"{"windw": "2m"}"#.utf8))
        }
    }

    /// Every kind of bad value, from each layer: one line naming key, value, origin and form.
    @Test(arguments: [
        ("window", "2x", "a whole number of seconds > 0"), ("window", "0s", "a whole number of seconds > 0"),
        ("window", "90", "a whole number of seconds > 0"),
        // Files are named in whole seconds: these would share or misstate names.
        ("window", "1ms", "a whole number of seconds > 0"), ("window", "1500ms", "a whole number of seconds > 0"),
        ("lateness", "-5s", "a duration such as"), ("lateness", "1.5m", "a duration such as"),
        ("max_lateness", "99999999999999999d", "a duration such as"),
        ("session_timeout", "", "a duration such as"), ("idle_timeout", "soon", "a duration such as"),
        ("checkpoint_interval", "10", "a duration such as"), ("checkpoint_min_interval", "2 s", "a duration such as"),
        ("session_max", "6hours", "a duration such as"),
        ("zstd_level", "fast", "an integer from 0"), ("zstd_level", "23", "an integer from 0"), ("zstd_level", "-1", "an integer from 0"),
        ("group_cap", "0", "an integer ≥ 1"), ("group_cap", "1e5", "an integer ≥ 1"),
        ("slow_request_ms", "-1", "≥ 0"), ("slow_request_ms", "200ms", "≥ 0"),
        ("metrics_port", "65536", "a port number"), ("metrics_port", "no", "a port number"),
        ("brokers", "", "a non-empty string"), ("instance", "", "a name of letters"),
        // An instance names directories of the sink: no path out of it.
        ("instance", "../../evil", "a name of letters"), ("instance", "a/b", "a name of letters"), ("instance", "..", "a name of letters"),
    ])
    func badValuesAreErrors(key: String, value: String, form: String) throws {
        let k = try #require(Configuration.Key(rawValue: key))
        let fromEnv = error(env: [(k.environmentName, value)])
        #expect(fromEnv == "\(key): '\(value)' (from environment variable \(k.environmentName)) is not \(k.expected)")
        #expect(k.expected.contains(form))
        let fromFlag = error { $0.set(k, flag: value) }
        #expect(fromFlag == "\(key): '\(value)' (from \(k.flag)) is not \(k.expected)")
        let fromFile = error(yaml: "\(key): \"\(value)\"")
        #expect(fromFile == "\(key): '\(value)' (from config file 'c.yaml') is not \(k.expected)")
    }

    @Test func badShapesInTheFileAreErrors() {
        #expect(error(yaml: "window:")?.hasPrefix("window: '' (from config file 'c.yaml')") == true)
        #expect(error(yaml: "window: [2m]")?.hasPrefix("window: ") == true)
        #expect(error(yaml: "kafka: acks")?.hasPrefix("kafka: 'acks' (from config file 'c.yaml') is not a mapping") == true)
        #expect(error(yaml: "geoip_db: {a: b}")?.hasPrefix("geoip_db: ") == true)
        #expect(error(yaml: "- window")?.contains("must be a YAML mapping") == true)
        #expect(error(yaml: "window: [")?.contains("is not valid YAML") == true)
        #expect(error { try $0.set(kafka: ["acks"]) } == "--kafka 'acks': expected key=value, e.g. --kafka security.protocol=SSL")
        #expect(error { try $0.set(kafka: ["=1"]) }?.hasPrefix("--kafka '=1'") == true)
    }

    /// A key written twice would silently take its last value; refused,
    /// naming both lines (also under an alias, in `kafka` and `fastly_fields`).
    @Test func aKeyWrittenTwiceInTheFileIsAnError() {
        #expect(error(yaml: "window: 2m\nlateness: 5s\nwindow: 5m")
                == "config file 'c.yaml' sets 'window' twice (lines 1 and 3) — keep one")
        #expect(error(yaml: "topics: [a]\ntopic: b") == "config file 'c.yaml' sets 'topics' twice (lines 1 and 2) — keep one")
        #expect(error(yaml: "kafka:\n  acks: all\n  acks: 1")
                == "config file 'c.yaml' sets kafka property 'acks' twice (lines 2 and 3) — keep one")
        #expect(error(yaml: "fastly_fields: {status: a, status: b}")?.hasPrefix("config file 'c.yaml' sets fastly_fields 'status' twice") == true)
        #expect(error(yaml: "window: 2m\nkafka: {acks: all, linger.ms: 5}") == nil)
    }

    /// `--config /dev/zero` read until memory ran out; a config file is bounded.
    @Test func aConfigPathThatNeverEndsIsAnError() {
        var l = ConfigurationLayers()
        #expect(throws: ConfigurationError.file("config file: '/dev/zero' is larger than \(16 << 20) bytes")) {
            try l.load(file: "/dev/zero")
        }
    }

    /// Nesting thousands deep overflowed the composer's stack (a crash); now
    /// one line. A wrong value is echoed clipped, not whole.
    @Test func deeplyNestedOrHugeValuesAreShortErrors() {
        let deep = "window: " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(error(yaml: deep) == "config file 'c.yaml' is not valid YAML: line 1: nested deeper than 512 levels "
                + "(indentation, `- ` and `[`/`{` counted) — fix its syntax")
        let listed = "window:\n" + String(repeating: "- ", count: 50_000) + "x"
        #expect(error(yaml: listed)?.contains("line 2: nested deeper than 512 levels") == true)
        let long = error(yaml: "window: " + String(repeating: "9", count: 5_000) + "x") ?? ""
        #expect(long.contains("… (5001 characters)' (from config file 'c.yaml')"), "\(long)")
        #expect(long.count < 400)
    }

    @Test func valuesThatDoNotFitTogetherAreErrors() {
        let e = error(env: [("QOS_MAX_LATENESS", "30d")])
        #expect(e?.contains("must stay below 24.8 days") == true, "\(e ?? "no error")")
        // A window the daemon would write only after a month, a session that ends at every beacon.
        #expect(error(env: [("QOS_WINDOW", "2d")])?.hasPrefix("window must be at most 1 day (got 172800 s)") == true)
        #expect(error(env: [("QOS_WINDOW", "1d")]) == nil)
        #expect(error(env: [("QOS_SESSION_TIMEOUT", "0s")]) == "session_timeout must be > 0")
        #expect(error(env: [("QOS_SESSION_MAX", "0s")]) == "session_max must be > 0")
        #expect(error(env: [("QOS_SESSION_TIMEOUT", "1ms")]) == nil)
    }

    @Test func durationTextRoundTrips() {
        for (text, ms) in [("500ms", Int64(500)), ("90s", 90_000), ("2m", 120_000), ("1h", 3_600_000), ("1d", 86_400_000), ("0s", 0)] {
            #expect(DurationText.milliseconds(text) == ms)
        }
        for ms: Int64 in [1, 1500, 90_000, 120_000, 3_600_000, 86_400_000, 0] {
            #expect(DurationText.milliseconds(DurationText.format(ms)) == ms)
        }
        #expect(DurationText.format(120_000) == "2m")
        #expect(throws: UserError.self) { try DurationText.parse("9999999999999999999d", "--grain") }
    }

    /// README "The daemon", Settings, lists exactly the keys of `Configuration.Key`.
    @Test func readmeListsTheKeys() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try #require(readme.range(of: "- **Settings**"))
        let end = try #require(readme.range(of: "- **Time bound.**", range: start.upperBound..<readme.endIndex))
        let text = String(readme[start.upperBound..<end.lowerBound])
        // Keys are written `key` followed by a space, comma, colon or "(": not `QOS_…`, `--…`, `file.yaml`.
        let listed = Set(text.matches(of: /`([a-z][a-z0-9_]*)`/).map { String($0.1) })
        #expect(listed == Set(Configuration.Key.allCases.map(\.rawValue)), "README keys differ: \(listed.symmetricDifference(Configuration.Key.allCases.map(\.rawValue)))")
    }
}
