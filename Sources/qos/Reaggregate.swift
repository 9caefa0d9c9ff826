import ArgumentParser
import Engine
#if canImport(Glibc)
import Glibc
#endif

struct Reaggregate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reaggregate",
        abstract: "Roll written partitions up to a coarser window and/or fewer dimensions, or compact late deltas.",
        discussion: """
        ROLL-UP (default). Reads the table's files whose windows fall in the output windows overlapping \
        [--from, --to) — base files, late deltas and files of other writers alike — groups them by the \
        --grain window (a multiple of the source window: 10m, 1h, 1d, …) and the --dims kept, sums the \
        counters, merges the sketches (HLL union, DDSketch bins) and recomputes the derived columns \
        (rates, ratios, unique_viewers, percentiles, watch_ms). Every additive column and every sketch is \
        exactly what the engine computes with --window GRAIN; unique_viewers is re-estimated from the \
        merged HLL (same registers; its coupon estimate in LIST/SET mode, its HIP estimate while the union \
        only added coupons, the composite estimator once two sketches in HLL mode were unioned). Exceptions: concurrent_plays is a point sample — \
        summed over the files and dropped dimensions of one source window, then the max over the source \
        windows; late_events is summed (it depends on when windows were written). sessions and rejects rows \
        are re-windowed by their own time (closed_at / ingested_at). Output: same schema (minus dropped \
        dimension columns), Hive layout <out>/<table>/dt=…/hour=…/<table>_<start>_<seconds>s_rollup.parquet, \
        each file published atomically; re-running replaces the same names.

        COMPACTION (--compact). Each window starting in [--from, --to) with several files in the sink becomes one file \
        (<table>_<start>_<seconds>s_compact_<hash>.parquet) in place. Per hour directory, a copy holding the \
        compacted files and hard links to the untouched ones is swapped in with one \
        renameat2(RENAME_EXCHANGE): a reader listing the directory sees either the old files or the new ones, \
        never a window missing or counted twice. A reader that listed the old files and opens a replaced one \
        afterwards gets "file not found" (retry), never a wrong number. Replaced files are deleted after \
        --grace. Where the swap is unavailable (non-Linux or a refusing file system) it falls back to \
        publish-then-unlink, where a reader can count a delta twice between two syscalls; the summary says so. \
        A killed compaction leaves the table either as it was or compacted, plus a <sink>/.qos-compact/ \
        directory that the next --compact finishes (adopting what was published meanwhile) and removes. A local sink is compacted by one process at a time and never while qos run runs \
        on it (the daemon compacts by itself; two compactions of one hour would count it twice): each refuses \
        to start while the other holds <sink>/_qos/sink.lock.

        MEMORY holds the groups (metric tables) or rows (sessions, rejects) of one output window plus one \
        input file, whatever the input size. Every input file is checked first: a corrupt file, a file of \
        another table or a newer videoqos.spec_version stops the command with its name, before anything \
        is written.

        TIMES: epoch milliseconds, 2026-01-01 or 2026-01-01T10:00:00Z (UTC); a time before 2000 (epoch seconds \
        given as milliseconds) or an impossible date (2026-02-30) is refused. --grain is at most 366d.
        """)

    @Option(help: "The sink to read (the --sink of qos replay / run; an s3:// sink is read from a local copy).") var sink: String = "output"
    @Option(help: "Table: overall, video, geo, device, cdn, sessions, rejects or cdn_edge.") var table: String?
    @Flag(help: "Every table of the sink.") var allTables = false
    @Option(help: "Output window: 10m, 1h, 1d, or any multiple of the source window up to 366d.") var grain: String?
    @Option(help: "Start of the time range (inclusive).") var from: String?
    @Option(help: "End of the time range (exclusive).") var to: String?
    @Option(help: "Dimensions to keep, comma-separated (\"\" = none, rows merge into one per window); default all.")
    var dims: String?
    @Option(help: "Output root: files go to <out>/<table>/dt=…/hour=…/ (default <sink>/rollup_<grain>, plus _by_<dims> when --dims drops some); not the sink, nor inside its tables, nor a directory holding other files of a table.")
    var out: String?
    @Flag(help: "Compact each window's base file and late deltas into one file in place (no --grain, --dims, --out).")
    var compact = false
    @Option(help: "Compaction: seconds to keep replaced files for readers still listing the old directory.")
    var grace: Double = 1
    @Option(help: ArgumentHelp("ZSTD level for Parquet pages, 0 (uncompressed) to \(Defaults.zstdLevelMax).")) var zstdLevel: Int = Defaults.zstdLevel
    @Flag(help: "No progress line even on a terminal.") var quiet = false

    func validate() throws {
        guard (table != nil) != allTables else { throw ValidationError("give exactly one of --table NAME and --all-tables") }
        if compact {
            guard grain == nil, dims == nil, out == nil else {
                throw ValidationError("--compact rewrites windows in place: it takes no --grain, --dims or --out")
            }
        } else {
            guard grain != nil else { throw ValidationError("--grain is required (e.g. 1h), or use --compact") }
        }
        if allTables && dims != nil { throw ValidationError("--dims needs a single --table") }
        guard grace >= 0 else { throw ValidationError("--grace must be ≥ 0") }
        if sink.hasPrefix("s3://") && !compact {  // --compact on s3:// is refused by run() in one line
            guard let out, !out.hasPrefix("s3://") else {
                throw ValidationError("an s3:// --sink is read into a local copy: give a local --out")
            }
        }
        if let from { _ = try Reaggregate.time(from, "--from") }
        if let to { _ = try Reaggregate.time(to, "--to") }
        if let grain {
            do { _ = try DurationText.parse(grain, "--grain") } catch let e as UserError { throw ValidationError(e.message) }
        }
    }

    static func time(_ s: String, _ flag: String) throws -> Int64 {
        guard let t = UTCTime.parse(s) else {
            throw ValidationError("\(flag): '\(s)' is not a time — use epoch ms, 2026-01-01 or 2026-01-01T10:00:00Z (a real date)")
        }
        guard t >= UTCTime.earliestMs else {
            throw ValidationError("\(flag): '\(s)' is before 2000 — times are epoch milliseconds (epoch seconds? append 000) "
                                  + "or a date such as 2026-01-01")
        }
        return t
    }

    func run() throws {
        var o = ReaggregateOptions()
        o.sink = sink
        o.tables = allTables ? TableSchemas.tableNames : [table!]
        o.skipMissingTables = allTables
        if let grain { o.grainMs = try DurationText.parse(grain, "--grain") }
        if let from { o.fromMs = try Reaggregate.time(from, "--from") }
        if let to { o.toMs = try Reaggregate.time(to, "--to") }
        o.dims = dims.map { $0.split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty } }
        o.out = out
        o.compact = compact
        o.graceSeconds = grace
        o.zstdLevel = zstdLevel
        o.progress = !quiet && isatty(2) != 0
        try QoS.guarded {
            // Object storage has no rename to swap an hour's files for their
            // merge: a reader listing meanwhile would count both (docs/object-storage.md).
            if compact && sink.hasPrefix("s3://") {
                throw UserError("--compact is not available on an s3:// sink: object storage cannot swap an hour's files "
                                + "for their merge atomically, a reader would count both — roll up with --grain into a local --out instead")
            }
            let (local, cleanup) = try S3Reading.localCopy(forReaggregate: o)
            defer { S3Reading.removeCopy(cleanup) }
            o.sink = local
            let summary = try ReaggregateJob(o).run()
            print(summary.text)
        }
    }
}

private extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
