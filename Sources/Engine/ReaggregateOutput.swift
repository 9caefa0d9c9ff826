#if canImport(Glibc)
import Glibc
#endif

/// Where a roll-up may write (README *Roll-ups and compaction*): every
/// reader of a table sums the files under its directory, so a roll-up's
/// files must not land next to files they would be counted with.
extension ReaggregateJob {
    /// Refuses an output root that is the sink itself, lies inside one of
    /// its table or state directories, or holds (for a table being written)
    /// files other than roll-ups of this grain — another sink's windows, a
    /// roll-up of another grain.
    static func checkOutputRoot(_ options: ReaggregateOptions) throws {
        let out = options.outputRoot
        let sink = resolvedPath(options.sink), root = resolvedPath(out)
        if root == sink {
            throw UserError("--out '\(out)' is the sink itself: the roll-up's files would sit next to the windows "
                            + "they sum and every reader would count both — choose another directory "
                            + "(the default is <sink>/rollup_<grain>)")
        }
        for name in TableSchemas.schemaTables + ["_qos", "_staging", ".qos-compact"]
        where root == sink + "/" + name || root.hasPrefix(sink + "/" + name + "/") {
            throw UserError("--out '\(out)' is inside the sink's '\(name)' directory: the roll-up's files would be "
                            + "read as part of it — choose a directory outside the sink's tables")
        }
        let suffix = "_\(options.grainMs / 1000)s_rollup.parquet"
        for table in options.tables {
            let other = try Inspector.tableFiles(under: root + "/" + table).first { !$0.hasSuffix(suffix) }
            if let other {
                throw UserError("--out '\(out)' already holds other files of table \(table) ('\(other)'): the roll-up "
                                + "would be counted with them — choose an empty directory, or this grain's own")
            }
        }
    }

    /// `path` made absolute with symbolic links resolved as far as it
    /// exists; the rest (created later, as `mkdir -p` would) taken as
    /// written, `.` and `..` applied.
    static func resolvedPath(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : currentDirectory() + "/" + path
        var parts = absolute.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var rest: [String] = []
        var base = "/"
        while true {
            let candidate = "/" + parts.joined(separator: "/")
            if let r = realpath(candidate, nil) {
                base = String(cString: r)
                free(r)
                break
            }
            guard let last = parts.popLast() else { break }
            rest.insert(last, at: 0)
        }
        var out = base.split(separator: "/").map(String.init)
        for c in rest {
            if c == "." { continue }
            if c == ".." { _ = out.popLast(); continue }
            out.append(c)
        }
        return "/" + out.joined(separator: "/")
    }

    static func currentDirectory() -> String {
        guard let cwd = getcwd(nil, 0) else { return "." }
        defer { free(cwd) }
        return String(cString: cwd)
    }
}
