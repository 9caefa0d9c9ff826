import ArgumentParser
import Engine
import QoSCore
#if canImport(Glibc)
import Glibc
#endif

/// Engine knobs shared by `replay` and `run`.
struct EngineOptions: ParsableArguments {
    @Option(help: "Window size, e.g. 2m, 10m, 1h, 90s.") var window: String = "2m"
    @Option(help: "Allowed lateness subtracted from the max ts for the watermark.") var lateness: String = "30s"
    @Option(help: "Reject beacons further than this behind the watermark.") var maxLateness: String = "24h"
    @Option(help: "Session inactivity timeout.") var sessionTimeout: String = "5m"
    @Option(help: "Maximum session length.") var sessionMax: String = "6h"
    @Option(help: "Distinct groups per table per window before new ones go to __other__.")
    var groupCap: Int = 100_000
    @Option(help: "A segment download slower than this (ms) is a slow request.") var slowRequestMs: Int64 = 200

    func config() throws -> EngineConfig {
        var c = EngineConfig()
        c.windowMs = try Duration.parse(window, "--window")
        c.latenessMs = try Duration.parse(lateness, "--lateness")
        c.maxLatenessMs = try Duration.parse(maxLateness, "--max-lateness")
        c.sessionTimeoutMs = try Duration.parse(sessionTimeout, "--session-timeout")
        c.sessionMaxMs = try Duration.parse(sessionMax, "--session-max")
        c.groupsPerWindowMax = groupCap
        c.slowRequestMs = slowRequestMs
        guard c.windowMs > 0 else { throw ValidationError("--window must be > 0") }
        if let problem = c.problem { throw ValidationError(problem) }
        return c
    }
}

enum Duration {
    /// `500ms`, `90s`, `2m`, `1h`, `1d` → milliseconds.
    static func parse(_ s: String, _ flag: String) throws -> Int64 {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (u, f) in units where s.hasSuffix(u) {
            if let v = Int64(s.dropLast(u.count)), v >= 0 {
                let (ms, overflow) = v.multipliedReportingOverflow(by: f)
                guard !overflow else { throw ValidationError("\(flag): '\(s)' is too long a duration") }
                return ms
            }
        }
        throw ValidationError("\(flag): '\(s)' is not a duration — use e.g. 500ms, 30s, 2m, 1h, 1d")
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the engine over NDJSON beacon files and write every table to the sink.",
        discussion: """
        Inputs are read in order as one partition (plain .ndjson, .ndjson.zst, or - for stdin). \
        Output is what `qos run` writes for the same beacons; replaying the same input twice \
        writes byte-identical files with the same names.
        """)

    @Argument(help: "NDJSON files (.ndjson, .ndjson.zst) or - for stdin.") var files: [String]
    @Option(help: "Output directory (the sink).") var sink: String = "output"
    @OptionGroup var engine: EngineOptions
    @Option(help: "ZSTD level for Parquet pages (0 = uncompressed).") var zstdLevel: Int = 3
    @Option(name: .customLong("geoip-db"), help: "MaxMind DB file (.mmdb); repeatable (City/Country and ASN).")
    var geoipDb: [String] = []
    @Option(help: "uap-core regexes.yaml (default /usr/share/uap-core/regexes.yaml).") var uaRegexes: String?
    @Flag(help: "No progress line even on a terminal.") var quiet = false
    @Option(help: "Also write every output file's rows as JSON lines to this file (for checking readers).")
    var jsonDump: String?

    func run() throws {
        try QoS.guarded {
            var o = ReplayOptions()
            o.inputs = files
            o.sink = sink
            o.config = try engine.config()
            o.zstdLevel = zstdLevel
            o.jsonDump = jsonDump
            o.enricher = try makeEnricher(geoip: geoipDb, uaRegexes: uaRegexes, log: { if !quiet { writeStderr($0 + "\n") } })
            o.progress = !quiet && isatty(2) != 0
            let summary = try ReplayJob(o).run()
            print(summary.text)
        }
    }
}
