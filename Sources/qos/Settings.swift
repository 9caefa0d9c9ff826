import ArgumentParser
import Engine
import QoSCore

/// Reads the settings of `run`, `replay` and `demo`: defaults < `--config`
/// (YAML) < `QOS_*` environment < the command's flags (`flags` sets them).
func loadConfiguration(file: String?, flags: (inout ConfigurationLayers) throws -> Void) throws -> Configuration {
    var layers = ConfigurationLayers()
    if let file { try layers.load(file: file) }
    try layers.load(environment: ConfigurationLayers.processEnvironment())
    try flags(&layers)
    return try layers.resolve()
}

/// "(default 2m)" for a duration default in a help text.
func defaultDuration(_ ms: Int64) -> String { "(default \(DurationText.format(ms)))" }

/// The engine's event-time knobs, shared by `run` and `replay` (keys window,
/// lateness, max_lateness, session_timeout, session_max, group_cap, slow_request_ms).
struct EngineOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Window size, whole seconds up to 1d, e.g. 2m, 10m, 1h, 90s \(defaultDuration(Defaults.engine.windowMs)).")) var window: String?
    @Option(help: ArgumentHelp("Allowed lateness subtracted from the max ts for the watermark \(defaultDuration(Defaults.engine.latenessMs)).")) var lateness: String?
    @Option(help: ArgumentHelp("Reject beacons further than this behind the watermark \(defaultDuration(Defaults.engine.maxLatenessMs)).")) var maxLateness: String?
    @Option(help: ArgumentHelp("Session inactivity timeout \(defaultDuration(Defaults.engine.sessionTimeoutMs)).")) var sessionTimeout: String?
    @Option(help: ArgumentHelp("Maximum session length \(defaultDuration(Defaults.engine.sessionMaxMs)).")) var sessionMax: String?
    @Option(help: ArgumentHelp("Distinct groups per table per window before new ones go to __other__ (default \(Defaults.engine.groupsPerWindowMax)).")) var groupCap: String?
    @Option(help: ArgumentHelp("A segment download slower than this (ms) is a slow request (default \(Defaults.engine.slowRequestMs)).")) var slowRequestMs: String?
    @Option(help: ArgumentHelp("A CDN log record served slower than this (ms) is a slow response (default \(Defaults.engine.slowResponseMs)).")) var slowResponseMs: String?

    func apply(to l: inout ConfigurationLayers) {
        l.set(.window, flag: window)
        l.set(.lateness, flag: lateness)
        l.set(.max_lateness, flag: maxLateness)
        l.set(.session_timeout, flag: sessionTimeout)
        l.set(.session_max, flag: sessionMax)
        l.set(.group_cap, flag: groupCap)
        l.set(.slow_request_ms, flag: slowRequestMs)
        l.set(.slow_response_ms, flag: slowResponseMs)
    }
}

/// Settings of Parquet output and enrichment, shared by `run` and `replay`.
struct OutputOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Output directory, the sink, or s3://bucket/prefix (default \(Defaults.sink)).")) var sink: String?
    @Option(help: "An s3:// sink's endpoint, e.g. http://minio:9000 (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS S3).")
    var s3Endpoint: String?
    @Option(help: "An s3:// sink's signing region (default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1).") var s3Region: String?
    @Option(help: "An s3:// sink's addressing: true for endpoint/bucket/key, false for bucket.endpoint/key (default: true when an endpoint is given).")
    var s3PathStyle: String?
    @Option(help: "How long an s3:// sink's store may take to accept a connection (default 3s); the start-up check of the sink gives up after 3 attempts of 3 s.")
    var s3ConnectTimeout: String?
    @Option(help: ArgumentHelp("ZSTD level for Parquet pages, 0 (uncompressed) to \(Defaults.zstdLevelMax) (default \(Defaults.zstdLevel)).")) var zstdLevel: String?
    @Option(name: .customLong("geoip-db"), help: "MaxMind DB file (.mmdb); repeatable (City/Country and ASN).")
    var geoipDb: [String] = []
    @Option(help: ArgumentHelp("uap-core regexes.yaml (default \(Defaults.uaRegexes)).")) var uaRegexes: String?
    @Option(help: ArgumentHelp("Write late corrections at most this often, one file per table and hour directory (qos run: wall clock; qos replay: event time) \(defaultDuration(Defaults.lateFlushIntervalMs)).")) var lateFlushInterval: String?

    func apply(to l: inout ConfigurationLayers) {
        l.set(.sink, flag: sink)
        l.set(.s3_endpoint, flag: s3Endpoint)
        l.set(.s3_region, flag: s3Region)
        l.set(.s3_path_style, flag: s3PathStyle)
        l.set(.s3_connect_timeout, flag: s3ConnectTimeout)
        l.set(.zstd_level, flag: zstdLevel)
        l.set(geoipDb: geoipDb)
        l.set(.ua_regexes, flag: uaRegexes)
        l.set(.late_flush_interval, flag: lateFlushInterval)
    }
}

/// The settings' text for `--help`: the keys come from `Configuration.Key`.
enum SettingsHelp {
    static var keys: String { Configuration.Key.allCases.map(\.rawValue).joined(separator: ", ") }
    static var replayOnlyKeys: String {
        Configuration.Key.allCases.filter(Configuration.Key.replayOnly.contains).map(\.rawValue).joined(separator: ", ")
    }
    static let layering = "Settings come from defaults, then --config (YAML), then QOS_* environment variables, then flags"
}
