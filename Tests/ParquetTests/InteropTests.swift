import Foundation
import Testing
@testable import Parquet
import SplitMix

/// A file we write for the external readers, with what they must see.
struct InteropCase {
    var name: String
    var schema: [ParquetField]
    var columns: [ParquetColumnData]
    var options: ParquetWriterOptions
}


func expectedDuckDBType(_ f: ParquetField) -> String {
    switch (f.physical, f.logical) {
    case (.byteArray, .string): return "VARCHAR"
    case (.byteArray, _): return "BLOB"
    case (.int64, .timestampMicrosUTC): return "TIMESTAMP WITH TIME ZONE"
    case (.int64, _): return "BIGINT"
    case (.int32, _): return "INTEGER"
    case (.double, _): return "DOUBLE"
    case (.boolean, _): return "BOOLEAN"
    }
}

func expectedArrowType(_ f: ParquetField) -> String {
    switch (f.physical, f.logical) {
    case (.byteArray, .string): return "string"
    case (.byteArray, _): return "binary"
    case (.int64, .timestampMicrosUTC): return "timestamp[us, tz=UTC]"
    case (.int64, _): return "int64"
    case (.int32, _): return "int32"
    case (.double, _): return "double"
    case (.boolean, _): return "bool"
    }
}

func allKindsTable(rows: Int, seed: UInt64, optional: Bool, nullRate: Double, unique: Bool)
    -> ([ParquetField], [ParquetColumnData]) {
    var rng = SplitMix64(seed: seed)
    let kinds = ColumnKind.allCases
    let schema = kinds.map { $0.field("col_\($0)", optional: optional) }
    let columns = kinds.map { randomColumn($0, rows: rows, optional: optional, nullRate: nullRate,
                                           uniqueStrings: unique, rng: &rng) }
    return (schema, columns)
}

func interopCases() -> [InteropCase] {
    var cases: [InteropCase] = []
    func add(_ name: String, _ t: ([ParquetField], [ParquetColumnData]), _ configure: (inout ParquetWriterOptions) -> Void) {
        var o = ParquetWriterOptions()
        o.keyValueMetadata = [("videoqos.spec", "0.1"), ("window", "2026-11-25T10:00Z/PT1M ü")]
        configure(&o)
        cases.append(InteropCase(name: name, schema: t.0, columns: t.1, options: o))
    }
    add("zstd_dict_nulls_rowgroups", allKindsTable(rows: 1500, seed: 1, optional: true, nullRate: 0.2, unique: false)) {
        $0.rowGroupMaxRows = 400
        $0.dataPageMaxRows = 150
    }
    add("uncompressed_plain", allKindsTable(rows: 700, seed: 2, optional: true, nullRate: 0.3, unique: false)) {
        $0.compression = .uncompressed
        $0.dictionaryMaxBytes = 0
    }
    add("zstd_dict_fallback", allKindsTable(rows: 2000, seed: 3, optional: true, nullRate: 0.1, unique: true)) {
        $0.dictionaryMaxBytes = 2000
        $0.dataPageMaxRows = 100
        $0.compression = .zstd(level: 9)
    }
    add("required_zstd", allKindsTable(rows: 900, seed: 4, optional: false, nullRate: 0, unique: false)) {
        $0.compression = .zstd(level: 1)
    }
    add("all_nulls", allKindsTable(rows: 50, seed: 5, optional: true, nullRate: 1.0, unique: false)) { _ in }
    add("bytes_row_groups", allKindsTable(rows: 1000, seed: 6, optional: true, nullRate: 0.05, unique: true)) {
        $0.rowGroupMaxBytes = 20_000
        $0.dataPageMaxBytes = 2_000
    }
    add("empty", allKindsTable(rows: 0, seed: 7, optional: true, nullRate: 0, unique: false)) { _ in }
    for seed in 10..<14 {
        let t = randomTable(rows: 150, seed: UInt64(seed))
        add("random_\(seed)", (t.schema, t.columns)) { $0 = t.options }
    }
    return cases
}

@Suite struct InteropTests {
    @Test func pyarrowAndDuckDBReadOurFiles() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cases = interopCases()
        var paths: [String] = []
        for c in cases {
            let url = dir.appendingPathComponent("\(c.name).parquet")
            let bytes = try writeParquet(schema: c.schema, columns: c.columns, options: c.options)
            try Data(bytes).write(to: url)
            paths.append(url.path)
        }
        let out = dir.appendingPathComponent("read.json")
        try runOracle("parquet_read.py", [out.path] + paths)
        let results = try readJSON(out)
        for (c, path) in zip(cases, paths) {
            let result = try #require(results[path] as? [String: Any], "no result for \(c.name)")
            try checkReader("pyarrow", result["pyarrow"], c)
            try checkReader("duckdb", result["duckdb"], c)
            let arrow = result["pyarrow"] as? [String: Any]
            #expect(arrow?["num_rows"] as? Int == c.columns[0].count, "\(c.name)")
            let kv = arrow?["metadata"] as? [String: String]
            #expect(kv == Dictionary(uniqueKeysWithValues: c.options.keyValueMetadata.map { ($0.key, $0.value) }),
                    "\(c.name)")
        }
    }

    private func checkReader(_ reader: String, _ any: Any?, _ c: InteropCase) throws {
        let r = try #require(any as? [String: Any], "\(reader) gave no result for \(c.name)")
        if let error = r["error"] { Issue.record("\(reader) failed on \(c.name): \(error)"); return }
        if reader == "duckdb" {
            let mismatches = try #require(r["filter_mismatches"] as? [String])
            #expect(mismatches.isEmpty, "\(c.name): DuckDB filters disagree (statistics?): \(mismatches.prefix(5))")
        }
        let types = try #require(r["types"] as? [String: String])
        let columns = try #require(r["columns"] as? [String: Any])
        #expect(types.count == c.schema.count, "\(reader) \(c.name): column count")
        for (field, data) in zip(c.schema, c.columns) {
            let expectedType = reader == "duckdb" ? expectedDuckDBType(field) : expectedArrowType(field)
            #expect(types[field.name] == expectedType, "\(reader) \(c.name).\(field.name) type")
            let got = jsonStrings(columns[field.name])
            let want = canonical(data, logical: field.logical)
            let same = got == want
            #expect(same, "\(reader) \(c.name).\(field.name): values differ at row \(firstDifference(got, want))")
        }
    }

    @Test func ourReaderReadsPyarrowFiles() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try runOracle("parquet_write.py", [dir.path])
        let expected = try readJSON(dir.appendingPathComponent("expected.json"))
        #expect(expected.count >= 5)
        for (file, anyCase) in expected.sorted(by: { $0.key < $1.key }) {
            let e = try #require(anyCase as? [String: Any])
            let bytes = try [UInt8](Data(contentsOf: dir.appendingPathComponent(file)))
            let reader = try ParquetFileReader(bytes: bytes)
            #expect(reader.numRows == e["num_rows"] as? Int, "\(file)")
            #expect(reader.rowGroups.count == e["num_row_groups"] as? Int, "\(file)")
            #expect(reader.metadataValue(forKey: "origin") == "pyarrow oracle", "\(file)")
            let fields = try #require(e["fields"] as? [[String: Any]])
            let columns = try #require(e["columns"] as? [String: Any])
            #expect(reader.schema.map(describe) == fields.map(describe), "\(file) schema")
            for (i, field) in reader.schema.enumerated() {
                let got = canonical(try reader.column(i), logical: field.logical)
                let want = jsonStrings(columns[field.name])
                let same = got == want
                #expect(same, "\(file).\(field.name): values differ at row \(firstDifference(got, want))")
            }
        }
    }
}

func describe(_ f: ParquetField) -> String {
    let logical = f.logical == .string ? "string" : f.logical == .timestampMicrosUTC ? "timestampMicrosUTC" : "none"
    return "\(f.name):\(f.physical):\(logical):\(f.optional)"
}

func describe(_ d: [String: Any]) -> String {
    "\(d["name"] ?? ""):\(d["physical"] ?? ""):\(d["logical"] ?? ""):\((d["optional"] as? Bool) ?? false)"
}

func firstDifference(_ a: [String?]?, _ b: [String?]?) -> String {
    guard let a, let b else { return "(missing column)" }
    if a.count != b.count { return "(counts \(a.count) vs \(b.count))" }
    guard let i = a.indices.first(where: { a[$0] != b[$0] }) else { return "-" }
    return "\(i): \(a[i] ?? "null") vs \(b[i] ?? "null")"
}
