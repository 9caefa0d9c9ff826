import ArgumentParser
import Engine
import Generator
import QoSCore

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write realistic synthetic beacon traffic (deterministic for a --seed).",
        discussion: """
        Sessions start by a Poisson process; each plays a scripted view (startup, \
        segments, stalls, seeks, pauses, ladder shifts, errors). Problem knobs: \
        --slow-startup, --rebuffer-rate, --slow-pop, --failing-player, and delivery \
        faults --late-fraction, --duplicate-fraction, --malformed-fraction.
        """)

    @Option(help: "Random seed: the same seed and options give the same bytes.") var seed: UInt64 = 1
    @Option(help: "Number of playback sessions.") var sessions: Int = 1000
    @Option(help: "Beacons per second of event time (density of session starts).") var rate: Double = 2000
    @Option(help: "Event time of the first session, epoch milliseconds (default 2026-01-01T00:00:00Z).")
    var startMs: Int64 = 1_767_225_600_000
    @Option(name: .shortAndLong, help: "Output file (.ndjson, or .ndjson.zst for zstd), - for stdout.")
    var out: String = "-"
    @Option(help: "Startup-time multiplier (2 = twice as slow).") var slowStartup: Double = 1
    @Option(help: "Stall-probability multiplier.") var rebufferRate: Double = 1
    @Option(help: "Degrade one CDN PoP, as cdn/pop (e.g. fastly/ams).") var slowPop: String?
    @Option(help: "Break one player version, as name@version (e.g. shaka-player@4.7.11).") var failingPlayer: String?
    @Option(help: "Share of beacons delivered 1–10 min late.") var lateFraction: Double = 0
    @Option(help: "Share of beacons delivered twice.") var duplicateFraction: Double = 0
    @Option(help: "Share of extra malformed messages.") var malformedFraction: Double = 0
    @Flag(help: "Put country/region explicitly into view_start beacons.") var explicitGeo = false
    @Flag(help: "Print the generator's IP-range table as CSV (input of tools/build_mmdb.py) and exit.")
    var geoTable = false

    func validate() throws {
        guard sessions >= 0 else { throw ValidationError("--sessions must be ≥ 0") }
        guard rate > 0 else { throw ValidationError("--rate must be > 0") }
        for (n, v) in [("--late-fraction", lateFraction), ("--duplicate-fraction", duplicateFraction),
                       ("--malformed-fraction", malformedFraction)] where !(0...1).contains(v) {
            throw ValidationError("\(n) must be between 0 and 1")
        }
    }

    var options: GeneratorOptions {
        var o = GeneratorOptions()
        o.seed = seed; o.sessions = sessions; o.rate = rate; o.startMs = startMs
        o.slowStartup = slowStartup; o.rebufferRate = rebufferRate
        o.slowPop = slowPop; o.failingPlayer = failingPlayer
        o.lateFraction = lateFraction; o.duplicateFraction = duplicateFraction
        o.malformedFraction = malformedFraction; o.explicitGeo = explicitGeo
        return o
    }

    func run() throws {
        if geoTable { print(Catalog.geoCSV(), terminator: ""); return }
        try QoS.guarded {
            let sink = try LineSink(path: out)
            var n = 0
            for m in TrafficGenerator(options) {
                try sink.writeLine(m.payload)
                n += 1
            }
            try sink.close()
            if out != "-" { writeStderr("wrote \(n) messages to \(out)\n") }
        }
    }
}
