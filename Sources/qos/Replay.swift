import ArgumentParser
import Engine
import QoSCore
#if canImport(Glibc)
import Glibc
#endif

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Run the engine over NDJSON beacon (or CDN access-log) files and write every table to the sink.",
        discussion: """
        Inputs are read in order as one partition (plain .ndjson, .ndjson.zst, .gz, or - for stdin). \
        Output is what `qos run` writes for the same beacons; replaying the same input twice \
        writes byte-identical files with the same names. \(SettingsHelp.layering), as for `qos run`: \
        a daemon's config file and QOS_* environment give the replay the daemon's window, lateness, \
        sessions, group cap, slow-request threshold, ZSTD level, sink, enrichment and `workers`; keys replay has no \
        use for (brokers, topics, group, instance, idle_timeout, checkpoint_*, metrics_*, kafka) are \
        checked and ignored.
        """)

    @Argument(help: "Input files (.ndjson, .ndjson.zst, .gz) or - for stdin.") var files: [String]
    @Option(help: "YAML config file, the one of `qos run` (see qos run --help).") var config: String?
    @OptionGroup var output: OutputOptions
    @OptionGroup var engine: EngineOptions
    @Option(help: ArgumentHelp("Input format of the files: \(RecordFormats.names) (default \(RecordFormats.defaultName)); a CDN log format writes the cdn_edge table.")) var format: String?
    @Flag(help: "No progress line even on a terminal.") var quiet = false
    @Option(help: "The fastly format's field names for your own log format, name=json_key,… (e.g. status=resp_status,elapsed_ms=duration); names in README, Fastly.")
    var fastlyFields: String?
    @Option(help: "Also write every output file's rows as JSON lines to this file (for checking readers).")
    var jsonDump: String?
    @Option(help: ArgumentHelp("Engine threads, 1 to \(Defaults.replayWorkersMax): sessions sharded by a hash of their id over N engines, their windows merged into the same tables as one engine's (default 1: one engine thread; README, Performance). Config key `workers`, QOS_WORKERS."))
    var workers: String?

    func run() throws {
        try QoS.guarded {
            let c = try loadConfiguration(file: config) { l in
                output.apply(to: &l)
                engine.apply(to: &l)
                l.set(.format, flag: format)
                l.set(.fastly_fields, flag: fastlyFields)
                l.set(.workers, flag: workers)
            }
            var o = c.replayOptions()
            o.inputs = files
            o.jsonDump = jsonDump
            o.enricher = try makeEnricher(geoip: c.geoipDb, uaRegexes: c.uaRegexes, log: { if !quiet { writeStderr($0 + "\n") } },
                                          warn: { writeStderr("warning: " + $0 + "\n") })  // --quiet or not
            o.progress = !quiet && isatty(2) != 0
            let summary = try ReplayJob(o).run()
            print(summary.text)
        }
    }
}
