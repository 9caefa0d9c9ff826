import Foundation
import Testing
@testable import Engine
import Parquet
import QoSCore
import SplitMix

/// The compaction of a row table one column at a time (`RowTableMerge`)
/// writes the bytes a merge of whole decoded files writes: the same order
/// (window, the table's key, input order) and the same row-group splits.
@Suite struct RowTableMergeTests {
    static let w: Int64 = 120_000
    static let hour: Int64 = 1_767_225_600_000  // 2026-01-01T00:00Z

    /// A file of `table` with `rows` random rows of windows among `windows`
    /// (in file order: a file holds its windows in order). Key values come
    /// from few choices, so rows tie on them (down to the input order);
    /// strings are ASCII and not, optional columns sometimes null.
    static func file(_ table: String, rows: Int, windows: [Int64], rng: inout SplitMix64) throws -> [UInt8] {
        let schema = TableReader.rowSchema(table)
        var starts = (0..<rows).map { _ in windows.randomElement(using: &rng)! }
        starts.sort()
        let words = ["a", "b", "ses-1", "ses-10", "ses-2", "é", "e\u{301}", "z", "日本"]
        let columns: [ParquetColumnData] = schema.map { f in
            let optional = f.optional
            func maybe<T>(_ v: T) -> T? { optional && Int.random(in: 0..<4, using: &rng) == 0 ? nil : v }
            switch (f.name, f.physical) {
            case ("window_start", _): return .int64(starts.map { $0 * 1000 })  // µs
            case ("window_end", _): return .int64(starts.map { ($0 + w) * 1000 })
            case (_, .boolean): return .boolean((0..<rows).map { _ in maybe(Bool.random(using: &rng)) })
            case (_, .int32): return .int32((0..<rows).map { _ in maybe(Int32.random(in: 0..<3, using: &rng)) })
            case (_, .int64): return .int64((0..<rows).map { _ in maybe(Int64.random(in: 0..<3, using: &rng)) })
            case (_, .double): return .double((0..<rows).map { _ in maybe(Double(Int.random(in: 0..<5, using: &rng)) / 2) })
            case (_, .byteArray):
                return .byteArray((0..<rows).map { _ in maybe(Array(words.randomElement(using: &rng)!.utf8)) })
            }
        }
        var o = ParquetWriterOptions()
        o.keyValueMetadata = [("videoqos.spec_version", WindowFileWriter.specVersion), ("videoqos.table", table)]
        return try writeParquet(schema: schema, columns: columns, options: o)
    }

    /// The reference: every file decoded whole, concatenated, sorted and
    /// written whole (what `Compactor.merge` and `qos reaggregate` did before
    /// they went column by column). `window` / `rewindow` as in `RowTableMerge.merge`.
    static func wholeFileMerge(_ table: String, _ paths: [String], _ options: ParquetWriterOptions,
                               window: Range<Int64>? = nil, rewindow: (start: Int64, end: Int64)? = nil) throws -> [UInt8] {
        let schema = TableReader.rowSchema(table)
        var cols = schema.map { ParquetColumnData.empty($0.physical) }
        var starts = Set<Int64>(), ms: Int64 = 0
        for p in paths {
            let rf = try TableReader.readRowFile(p, table: table)
            starts.formUnion(rf.info.windowStarts)
            ms = rf.info.windowMs
            for i in cols.indices { cols[i].append(rf.columns[i]) }
        }
        func index(_ name: String) -> Int { schema.firstIndex { $0.name == name }! }
        func ints(_ name: String) -> [Int64] {
            guard case .int64(let v) = cols[index(name)] else { return [] }
            return v.map { $0! }
        }
        if let window {
            let ws = ints("window_start")
            cols = cols.map { $0.permuted(ws.indices.filter { ws[$0] >= window.lowerBound * 1000 && ws[$0] < window.upperBound * 1000 }) }
        }
        if let rewindow {
            let n = cols[0].count
            cols[index("window_start")] = .int64([Int64?](repeating: rewindow.start * 1000, count: n))
            cols[index("window_end")] = .int64([Int64?](repeating: rewindow.end * 1000, count: n))
        }
        func strings(_ name: String) -> [String] { cols[index(name)].stringValues!.map { $0! } }
        let ws = ints("window_start")
        var order = Array(ws.indices)
        switch table {
        case "sessions":
            let c = ints("closed_at"), id = strings("session_id")
            order.sort { (ws[$0], c[$0], id[$0], $0) < (ws[$1], c[$1], id[$1], $1) }
        case "alerts":
            let r = strings("rule"), d = strings("dimensions")
            order.sort { (ws[$0], r[$0], d[$0], $0) < (ws[$1], r[$1], d[$1], $1) }
        default:
            let t = ints("ingested_at")
            order.sort { (ws[$0], t[$0], $0) < (ws[$1], t[$1], $1) }
        }
        var o = options
        o.keyValueMetadata = Compactor.metadata(table, starts.sorted(), ms, paths.count, dims: nil)
        return try writeParquet(schema: schema, columns: cols.map { $0.permuted(order) }, options: o)
    }

    /// Five files of `table` in `dir`: of one window and of several, in no
    /// window order, one empty.
    static func inputs(_ table: String, in dir: String) throws -> [String] {
        var rng = SplitMix64(seed: 17)
        let windows = (0..<5).map { hour + $0 * w }
        var paths: [String] = []
        for (i, rows) in [40, 0, 1, 97, 23].enumerated() {
            let ws = i == 3 ? windows : [windows[(7 * i) % windows.count]]
            let p = "\(dir)/\(table)-\(i).parquet"
            try Data(file(table, rows: rows, windows: ws, rng: &rng)).write(to: URL(fileURLWithPath: p))
            paths.append(p)
        }
        return paths
    }

    @Test(arguments: ["sessions", "rejects", "alerts"])
    func columnByColumnEqualsWholeFiles(table: String) throws {
        let dir = DriverTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let paths = try Self.inputs(table, in: dir)
        for (rowsPerGroup, bytesPerGroup) in [(1_000_000, 128 << 20), (13, 128 << 20), (1_000_000, 900)] {
            var o = ParquetWriterOptions()
            o.rowGroupMaxRows = rowsPerGroup
            o.rowGroupMaxBytes = bytesPerGroup
            let merged = try Compactor.merge(table: table, paths: paths, options: o)
            let reference = try Self.wholeFileMerge(table, paths, o)
            #expect(merged.rows == 161)
            let same = merged.bytes == reference  // not the bytes themselves in a failure's message
            #expect(same, "\(table), row groups of \(rowsPerGroup) rows / \(bytesPerGroup) bytes")
            let r = try ParquetFileReader(bytes: merged.bytes)
            #expect(rowsPerGroup == 1_000_000 && bytesPerGroup > 1_000_000 ? r.rowGroups.count == 1 : r.rowGroups.count > 2)
        }
    }

    /// `qos reaggregate`'s roll-up: the rows of some windows only, written
    /// into one coarser window, ordered by the table's key alone.
    @Test(arguments: ["sessions", "rejects"])
    func rollUpKeepsTheWindowsRowsRewindowed(table: String) throws {
        let dir = DriverTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let paths = try Self.inputs(table, in: dir)
        let keep = (Self.hour + Self.w)..<(Self.hour + 4 * Self.w), out = (start: Self.hour, end: Self.hour + 10 * Self.w)
        var o = ParquetWriterOptions()
        o.rowGroupMaxRows = 11
        let merged = try RowTableMerge.merge(table: table, paths: paths, window: keep, rewindow: out, options: o) { s, ms in
            Compactor.metadata(table, s, ms, paths.count, dims: nil)
        }
        let reference = try Self.wholeFileMerge(table, paths, o, window: keep, rewindow: out)
        let same = merged.bytes == reference
        #expect(same)
        #expect(merged.rows > 0 && merged.rows < 161)
        let r = try ParquetFileReader(bytes: merged.bytes)
        guard case .int64(let ws) = try r.column(named: "window_start") else { Issue.record("window_start"); return }
        #expect(Set(ws) == [out.start * 1000])
    }
}
