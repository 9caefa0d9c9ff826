import ArgumentParser
import Engine
#if canImport(Glibc)
import Glibc
#endif

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write one self-contained HTML page of the sink's QoS: KPIs, charts over time, breakdowns, rejects.",
        discussion: """
        Reads every table of --sink (overall, video, geo, device, cdn, sessions, rejects, and cdn_edge when \
        present) for the windows starting in [--from, --to), merges each window's files (base, late deltas, \
        other instances: counters summed, HLL sketches unioned, DDSketches merged, rates and percentiles \
        recomputed) and writes --out: KPI tiles (views, unique viewers, plays, startup p50/p95, rebuffer \
        ratio, VSF / EBVS / VPF rates, CDN failed-request rate, peak concurrent plays, rejected beacons), time series of the overall table (one point \
        per window; above 600 windows each point merges several whole windows exactly, the step is printed \
        on the page), sortable breakdowns (CDN × PoP, device type, player, player × version from the \
        sessions table, country, video, trending videos: the last hour against the one before), the \
        cdn_edge PoP view, and the rejects by reason. A sink of CDN access logs alone (no overall table) \
        gives the cdn_edge view over its windows. The file has no external references: it opens from \
        disk offline; light and dark mode follow the system. `qos run` and `qos demo` serve the same page, \
        live, at / on the operations port.

        TIMES: epoch milliseconds, 2026-01-01 or 2026-01-01T10:00:00Z (UTC).
        """)

    @Option(help: "The sink to read (the --sink of qos replay / run; an s3:// sink is read from a local copy of the hours of --from/--to).") var sink: String = "output"
    @Option(help: "Start of the time range (inclusive, window start).") var from: String?
    @Option(help: "End of the time range (exclusive).") var to: String?
    @Option(help: "The HTML file to write.") var out: String = "report.html"
    @Flag(help: "No progress line even on a terminal.") var quiet = false

    func validate() throws {
        if let from { _ = try Reaggregate.time(from, "--from") }
        if let to { _ = try Reaggregate.time(to, "--to") }
    }

    func run() throws {
        var o = ReportOptions()
        o.sink = sink
        if let from { o.fromMs = try Reaggregate.time(from, "--from") }
        if let to { o.toMs = try Reaggregate.time(to, "--to") }
        let progress: ((String) -> Void)? = !quiet && isatty(2) != 0 ? { writeStderr("\r\u{1B}[K" + $0) } : nil
        try QoS.guarded {
            let (local, cleanup) = try S3Reading.localCopy(forReport: o)
            defer { S3Reading.removeCopy(cleanup) }
            o.sink = local
            if cleanup != nil { o.sinkName = sink }
            let text = try ReportBuilder.write(o, to: out, progress: progress)
            if progress != nil { writeStderr("\r\u{1B}[K") }
            print(text)
        }
    }
}
