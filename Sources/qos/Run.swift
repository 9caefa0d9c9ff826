import ArgumentParser
import Engine
import QoSCore
#if canImport(Glibc)
import Glibc
#endif

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Consume beacons from Kafka and write windowed Parquet partitions, exactly once.",
        discussion: """
        \(SettingsHelp.layering); keys (file key, QOS_<KEY>, --<key-with-dashes>): \(SettingsHelp.keys) \
        (\(SettingsHelp.replayOnlyKeys): for qos replay, checked and ignored here). \
        An unknown key or a bad value is an error. Any librdkafka property passes through: `kafka:` in the file, QOS_KAFKA_SASL_MECHANISM=… in the \
        environment (underscores become dots), or --kafka sasl.mechanism=PLAIN. Offsets and open-session \
        state are checkpointed under <sink>/_qos with the files they produced; Kafka's committed offsets \
        are for lag monitoring only. A start whose checkpoint state does not cover the files already \
        published, or comes from another Kafka cluster, is refused (see --accept-state-loss); a sink \
        deleted under the running daemon stops it. SIGTERM/SIGINT: flush what can be flushed, checkpoint, exit 0.
        """)

    @Option(help: "YAML config file (keys as in the discussion above).") var config: String?
    @Option(help: ArgumentHelp("Kafka bootstrap servers (default \(Defaults.brokers)).")) var brokers: String?
    @Option(help: ArgumentHelp("Topic to consume, NAME or NAME:FORMAT (formats: \(RecordFormats.names)); repeatable, one per topic (default \(Defaults.topic)).")) var topic: [String] = []
    @Option(help: ArgumentHelp("Input format of topics given without one (default \(RecordFormats.defaultName)).")) var format: String?
    @Option(help: "The fastly format's field names for your own log format, name=json_key,… (e.g. status=resp_status,elapsed_ms=duration); names in README, Fastly.")
    var fastlyFields: String?
    @Option(help: ArgumentHelp("Consumer group (default \(Defaults.group)).")) var group: String?
    @OptionGroup var output: OutputOptions
    @OptionGroup var engine: EngineOptions
    @Option(help: ArgumentHelp("Idle partition timeout, wall clock \(defaultDuration(Defaults.idleTimeoutMs)).")) var idleTimeout: String?
    @Option(help: ArgumentHelp("Checkpoint at least this often \(defaultDuration(Defaults.checkpointIntervalMs)).")) var checkpointInterval: String?
    @Option(help: ArgumentHelp("Checkpoint at most this often for windows that become due \(defaultDuration(Defaults.checkpointMinIntervalMs)): windows closed while catching up share a checkpoint; window latency grows by at most this much."))
    var checkpointMinInterval: String?
    @Option(help: ArgumentHelp("Compact a table's hour directory before it would hold more than this many files (default \(Defaults.compactFiles)).")) var compactFiles: String?
    @Option(help: ArgumentHelp("Compact an hour to one file per table once the watermark is this far past its end \(defaultDuration(Defaults.compactAfterMs)).")) var compactAfter: String?
    @Option(help: "Instance id, unique per running process (default host-pid).") var instance: String?
    @Option(help: "librdkafka property key=value; repeatable.") var kafka: [String] = []
    @Option(help: ArgumentHelp("Who fetches records: native (our own Fetch requests to each partition leader over plain TCP; librdkafka keeps the group and offsets, and any partition or broker the native path does not read — TLS, SASL, codecs other than zstd, message format 0/1) or librdkafka (default \(Defaults.fetchPath)); docs/kafka-fetch.md."))
    var fetchPath: String?
    @Option(help: ArgumentHelp("Port for the live QoS page (/), /metrics and /healthz: a number (0 = any free port) or off (default \(Defaults.metricsPort.map(String.init) ?? "off")).")) var metricsPort: String?
    @Option(help: ArgumentHelp("Address the live page, /metrics and /healthz listen on (default \(Defaults.metricsHost), loopback only; 0.0.0.0 for every interface)."))
    var metricsHost: String?
    @Option(help: "Alert rules as YAML flow text, e.g. '[{table: cdn, metric: rebuffer_ratio, above: 0.05, min_volume: 50}]'; usually an alerts: list in --config (README Alerts).")
    var alerts: String?
    @Option(help: "Stop after this many seconds (for tests and demos).") var duration: Double?
    @Option(help: ArgumentHelp("Tests: pause this many ms before and after each compaction's swap.", visibility: .hidden))
    var testCompactionPauseMs: Int = 0
    @Flag(help: "Start even if the checkpoint state in <sink>/_qos does not cover the files already published (a manifest or _qos deleted or restored from an old backup), belongs to another sink, or was taken from another Kafka cluster; windows already published may then be counted again. Needed once.")
    var acceptStateLoss = false
    @Flag(help: "Batch mode: when every assigned partition is read to its end, close all sessions, write every window (like qos replay), checkpoint and exit.")
    var untilCaughtUp = false

    func configuration() throws -> Configuration {
        try loadConfiguration(file: config) { l in
            l.set(.brokers, flag: brokers)
            l.set(topics: topic)
            l.set(.format, flag: format)
            l.set(.fastly_fields, flag: fastlyFields)
            l.set(.group, flag: group)
            l.set(.fetch_path, flag: fetchPath)
            output.apply(to: &l)
            engine.apply(to: &l)
            l.set(.idle_timeout, flag: idleTimeout)
            l.set(.checkpoint_interval, flag: checkpointInterval)
            l.set(.checkpoint_min_interval, flag: checkpointMinInterval)
            l.set(.compact_files, flag: compactFiles)
            l.set(.compact_after, flag: compactAfter)
            l.set(.instance, flag: instance)
            l.set(.metrics_port, flag: metricsPort)
            l.set(.metrics_host, flag: metricsHost)
            l.set(.alerts, flag: alerts)
            try l.set(kafka: kafka)
        }
    }

    func options(_ c: Configuration) throws -> RunOptions {
        var o = c.runOptions()
        o.enricher = try makeEnricher(geoip: c.geoipDb, uaRegexes: c.uaRegexes, log: o.log.info, warn: o.log.warn)
        o.durationSeconds = duration
        o.untilCaughtUp = untilCaughtUp
        o.acceptStateLoss = acceptStateLoss
        o.compactionPauseMs = testCompactionPauseMs
        return o
    }

    func run() throws {
        try QoS.guarded {
            let c = try configuration()
            var o = try options(c)
            if let port = c.metricsPort {
                let environment = o.environment
                let server = try MetricsServer(host: c.metricsHost, port: port)
                server.staleAfterSeconds = max(60, Double(o.checkpointIntervalMs) / 1000 * 6)
                server.start()
                let live = LiveReport(sink: c.sink, environment: environment)
                server.addRoutes { live.route($0) }
                o.log("qos run: /metrics and /healthz on \(c.metricsHost):\(server.port)")
                o.log("qos run: live QoS page at http://\(c.metricsHost):\(server.port)/")
                o.onCheckpoint = { server.publish($0); live.update($0) }
            }
            installStopHandlers()
            _ = try RunJob(o).run()
            // Posts still queued at the stop get their timeout, not more.
            o.alerts?.webhooks.drain(seconds: o.alerts!.webhooks.timeoutSeconds + 1)
        }
    }
}

/// SIGTERM / SIGINT set the stop flag; the loop checkpoints and exits 0.
func installStopHandlers() {
    signal(SIGTERM) { _ in runStopRequested = 1 }
    signal(SIGINT) { _ in runStopRequested = 1 }
}
