import Testing
@testable import Parquet

/// `writeParquet(schema:rowCount:rowSize:column:)` — one row group's column
/// at a time — writes the same bytes as the whole-column writer, row-group
/// split included (the `sessions` table relies on it: golden bytes).
@Suite struct StreamingWriterTests {
    @Test func sameBytesAsTheWholeColumnWriter() throws {
        for seed in UInt64(1)...60 {
            let rows = [0, 1, 5, 37, 300][Int(seed % 5)]
            let t = randomTable(rows: rows, seed: seed)
            guard rows > 0 else { continue }
            let whole = try writeParquet(schema: t.schema, columns: t.columns, options: t.options)
            var asked: [Range<Int>] = []
            let streamed = try writeParquet(
                schema: t.schema, rowCount: rows,
                rowSize: { r in t.columns.reduce(0) { $0 + $1.estimatedSize(r) } },
                options: t.options) { i, range in
                    if i == 0 { asked.append(range) }
                    return t.columns[i].slice(range)
                }
            #expect(streamed == whole, "seed \(seed), rows \(rows)")
            let r = try ParquetFileReader(bytes: streamed)
            #expect(asked.count == r.rowGroups.count, "seed \(seed): one call per row group and column")
        }
    }

    @Test func estimatedSizeMatchesTheColumns() {
        let c = ParquetColumnData.strings(["ab", nil, "héllo"])
        #expect((0..<3).map { c.estimatedSize($0) } == [
            parquetEstimatedSize(.byteArray, byteCount: 2), parquetEstimatedSize(.byteArray, byteCount: 0),
            parquetEstimatedSize(.byteArray, byteCount: 6)])
        #expect(ParquetColumnData.int64([1]).estimatedSize(0) == parquetEstimatedSize(.int64, byteCount: 0))
        #expect(ParquetColumnData.boolean([true]).estimatedSize(0) == parquetEstimatedSize(.boolean, byteCount: 0))
    }

    @Test func aChunkOfTheWrongLengthIsRefused() {
        let schema = [ParquetField.int64("a", optional: false)]
        #expect(throws: ParquetError.self) {
            _ = try writeParquet(schema: schema, rowCount: 3, rowSize: { _ in 8 }) { _, _ in .int64([1, 2]) }
        }
    }
}

extension ParquetColumnData {
    func slice(_ r: Range<Int>) -> ParquetColumnData {
        switch self {
        case .boolean(let v): return .boolean(Array(v[r]))
        case .int32(let v): return .int32(Array(v[r]))
        case .int64(let v): return .int64(Array(v[r]))
        case .double(let v): return .double(Array(v[r]))
        case .byteArray(let v): return .byteArray(Array(v[r]))
        }
    }
}
