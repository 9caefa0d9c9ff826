import Parquet
import QoSCore

/// The merge of a row table's files (`sessions`, `rejects`, `alerts`) into
/// one file, one column at a time: the compaction of an hour directory (rows
/// ordered by window, then as the engine orders a window's rows) and `qos
/// reaggregate`'s roll-up (rows of the output window, re-windowed, ordered by
/// the key alone). docs/architecture.md "Compaction", "Memory of a compaction".
///
/// Only the sort key's columns are decoded for every row of the hour; each
/// other column is decoded across the inputs, written out and dropped before
/// the next (`writeParquet(schema:rowCount:rowSize:options:column:)`), so the
/// merge holds about one column of the hour instead of all of them. The
/// bytes equal those of merging whole decoded files (a test keeps them
/// equal): the same order, and row groups split at the same rows since each
/// row's estimated size is summed first from the columns whose size varies.
enum RowTableMerge {
    /// One input file, parsed up to its footer (its bytes stay in memory:
    /// compressed, they are a small part of the decoded columns).
    struct Input {
        let path: String
        let reader: ParquetFileReader
        var rows: Int { reader.numRows }
    }

    /// The order of a table's rows within a window: its key columns after `window_start`.
    enum Key {
        case int64(String)
        case string(String)
    }

    static func key(_ table: String) -> [Key] {
        if table == "sessions" { return [.int64("closed_at"), .string("session_id")] }
        if table == TableSchemas.alertsTable { return [.string("rule"), .string("dimensions")] }
        return [.int64("ingested_at")]
    }

    /// The merged file, its row count, and the windows its inputs' rows had (ms).
    struct Result {
        var bytes: [UInt8]
        var rows: Int
        var windowStarts: [Int64]
        var windowMs: Int64
    }

    /// Merges the rows of `paths` (files of `table`) into one file.
    /// - Parameters:
    ///   - window: keep only the rows whose window starts in it (ms); all when nil.
    ///   - rewindow: write the rows with these window bounds (ms) instead of
    ///     their own, ordered by the table's key alone (`qos reaggregate`'s
    ///     roll-up); when nil, by their window first (compaction).
    ///   - metadata: the file's key-value metadata, given the inputs' window
    ///     starts and length (ms).
    static func merge(table: String, paths: [String], window: Range<Int64>? = nil,
                      rewindow: (start: Int64, end: Int64)? = nil, options: ParquetWriterOptions,
                      metadata: (_ starts: [Int64], _ windowMs: Int64) -> [(key: String, value: String)]) throws -> Result {
        let schema = TableReader.rowSchema(table)
        var inputs: [Input] = []
        var starts = Set<Int64>()
        var ms: Int64 = 0
        var windowStart: [Int64] = []  // µs, as stored
        for p in paths {
            let r = try TableReader.open(p, table: table)
            try TableReader.checkSchema(r, schema, p, table)
            let ws = try TableReader.int64s(r, "window_start", p)
            let w = try TableReader.window(ws, TableReader.int64s(r, "window_end", p), p)
            // Compaction keeps each row's window: one file holds one window
            // length (`TableReader.window` refuses a mix on reading it back).
            if rewindow == nil, w.ms != 0, ms != 0, w.ms != ms {
                throw UserError("'\(p)' holds \(w.ms / 1000) s windows, the other files merged with it \(ms / 1000) s ones "
                                + "— cannot merge windows of different lengths into one file")
            }
            starts.formUnion(w.starts)
            if w.ms != 0 { ms = w.ms }
            windowStart += ws
            inputs.append(Input(path: p, reader: r))
        }
        var rows = Array(windowStart.indices)
        if let window {
            let lo = window.lowerBound *| 1000, hi = window.upperBound *| 1000
            rows = rows.filter { windowStart[$0] >= lo && windowStart[$0] < hi }
        }
        let order = try sortOrder(key(table), rows: rows, windowStart: rewindow == nil ? windowStart : nil,
                                  schema: schema, inputs: inputs)
        assert(order.count == rows.count, "the order covers every kept row once")
        let sizes = try rowSizes(schema: schema, inputs: inputs, count: windowStart.count)
        var opts = options
        let sorted = starts.sorted()
        opts.keyValueMetadata = metadata(sorted, ms)
        let n = order.count
        let bytes = try writeParquet(schema: schema, rowCount: n, rowSize: { sizes[order[$0]] }, options: opts) { i, range in
            let f = schema[i]
            if let rewindow, f.name == "window_start" || f.name == "window_end" {
                let v = (f.name == "window_start" ? rewindow.start : rewindow.end) *| 1000
                return .int64([Int64?](repeating: v, count: range.count))
            }
            return try column(f, of: inputs).permuted(Array(order[range]))
        }
        return Result(bytes: bytes, rows: n, windowStarts: sorted, windowMs: ms)
    }

    /// `rows` (indices over the inputs' rows, in input order) sorted by
    /// window (when `windowStart` is given), the table's key, then index: the
    /// order a merge of whole files sorts them in.
    static func sortOrder(_ key: [Key], rows: [Int], windowStart: [Int64]?, schema: [ParquetField],
                          inputs: [Input]) throws -> [Int] {
        var ints: [[Int64]] = []
        var strings: [[String]] = []
        for k in key {
            switch k {
            case .int64(let name):
                guard case .int64(let v) = try column(field(name, schema), of: inputs) else {
                    preconditionFailure("\(name) is INT64")
                }
                ints.append(v.map { $0! })  // a required column: `column` checked it for nulls
            case .string(let name):
                guard let v = try column(field(name, schema), of: inputs).stringValues else {
                    preconditionFailure("\(name) is a string")
                }
                strings.append(v.map { $0! })
            }
        }
        // Without window ordering every row sorts as if in one window.
        let ws = windowStart ?? [Int64](repeating: 0, count: ints.first?.count ?? strings.first?.count ?? 0)
        var order = rows
        switch (ints.count, strings.count) {
        case (1, 1):
            let t = ints[0], s = strings[0]
            order.sort { (ws[$0], t[$0], s[$0], $0) < (ws[$1], t[$1], s[$1], $1) }
        case (0, 2):
            let a = strings[0], b = strings[1]
            order.sort { (ws[$0], a[$0], b[$0], $0) < (ws[$1], a[$1], b[$1], $1) }
        case (1, 0):
            let t = ints[0]
            order.sort { (ws[$0], t[$0], $0) < (ws[$1], t[$1], $1) }
        default:
            preconditionFailure("no row table has this key")
        }
        return order
    }

    /// Each row's estimated PLAIN size over every column (`parquetEstimatedSize`):
    /// the fixed-size columns' sum, plus each byte-array column's values,
    /// decoded one column at a time.
    static func rowSizes(schema: [ParquetField], inputs: [Input], count: Int) throws -> [Int] {
        let fixed = schema.filter { $0.physical != .byteArray }.reduce(0) {
            $0 + parquetEstimatedSize($1.physical, byteCount: 0)
        }
        var sizes = [Int](repeating: fixed, count: count)
        for f in schema where f.physical == .byteArray {
            guard case .byteArray(let v) = try column(f, of: inputs) else { preconditionFailure("\(f.name) is BYTE_ARRAY") }
            for (i, x) in v.enumerated() { sizes[i] += parquetEstimatedSize(.byteArray, byteCount: x?.count ?? 0) }
        }
        return sizes
    }

    /// Column `f` of every input, concatenated in input order; a null in a
    /// required column is an error naming its file.
    static func column(_ f: ParquetField, of inputs: [Input]) throws -> ParquetColumnData {
        var all = ParquetColumnData.empty(f.physical)
        for input in inputs {
            let c = try TableReader.column(input.reader, f.name, input.path)
            guard c.physicalType == f.physical, c.count == input.rows else {
                throw UserError("'\(input.path)' is corrupt: column '\(f.name)' does not match the file's schema or row count")
            }
            if !f.optional && c.hasNulls { throw UserError("'\(input.path)': null in non-null column '\(f.name)'") }
            all.append(c)
        }
        return all
    }

    static func field(_ name: String, _ schema: [ParquetField]) -> ParquetField {
        guard let f = schema.first(where: { $0.name == name }) else { preconditionFailure("no column \(name)") }
        return f
    }
}
