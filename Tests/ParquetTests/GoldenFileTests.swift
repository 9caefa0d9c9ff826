import Testing
@testable import Parquet

/// The 223-byte file from a public Parquet reference, accepted by pyarrow, DuckDB and Spark.
let goldenHex = "504152311500151815182c150615001506150600000100000002000000030000001500152415242c1506150015061506000002000000030502000000686902000000796f1502193c4806736368656d611504001502250018016100150c250218017325004c1c0000001606191c192c26001c15021915001918016115001606163a163a2608000026001c150c192500061918017315001606164616462642000016800116062608168001140000281f737769667470712076657273696f6e20302e312e3020286275696c64203029192c1c00001c0000009300000050415231"

func hexBytes(_ s: String) -> [UInt8] {
    let chars = Array(s.utf8)
    return stride(from: 0, to: chars.count, by: 2).map { i in
        UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16)!
    }
}

let goldenSchema: [ParquetField] = [.int32("a", optional: false), .string("s", optional: true)]
let goldenColumns: [ParquetColumnData] = [.int32([1, 2, 3]), .strings(["hi", nil, "yo"])]

@Suite struct GoldenFileTests {
    @Test func writerReproducesGoldenFileByteForByte() throws {
        var options = ParquetWriterOptions()
        options.compression = .uncompressed
        options.dictionaryMaxBytes = 0
        options.writeStatistics = false
        options.createdBy = "swiftpq version 0.1.0 (build 0)"
        let bytes = try writeParquet(schema: goldenSchema, columns: goldenColumns, options: options)
        let golden = hexBytes(goldenHex)
        #expect(golden.count == 223)
        #expect(bytes == golden)
        if bytes != golden {
            let firstDiff = zip(bytes, golden).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            Issue.record("first difference at byte \(firstDiff ?? min(bytes.count, golden.count)), sizes \(bytes.count) vs \(golden.count)")
        }
    }

    @Test func readerReadsGoldenFile() throws {
        let r = try ParquetFileReader(bytes: hexBytes(goldenHex))
        #expect(r.schema == goldenSchema)
        #expect(r.numRows == 3)
        #expect(r.rowGroups.count == 1)
        #expect(r.createdBy == "swiftpq version 0.1.0 (build 0)")
        #expect(try r.column(0) == goldenColumns[0])
        #expect(try r.column(named: "s") == goldenColumns[1])
        #expect(try r.column(named: "s").stringValues == ["hi", nil, "yo"])
        #expect(r.rowGroups[0].columns[1].encodings == [.plain, .rle])
    }
}
