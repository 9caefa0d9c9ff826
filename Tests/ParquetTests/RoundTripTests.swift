import Testing
import PropertyBased
@testable import Parquet
import SplitMix

struct RandomTable {
    var schema: [ParquetField] = []
    var columns: [ParquetColumnData] = []
    var options = ParquetWriterOptions()
}

func randomTable(rows: Int, seed: UInt64) -> RandomTable {
    var rng = SplitMix64(seed: seed)
    var t = RandomTable()
    let ncols = Int.random(in: 1...7, using: &rng)
    let uniqueStrings = Bool.random(using: &rng)
    for i in 0..<ncols {
        let kind = ColumnKind.allCases.randomElement(using: &rng)!
        let optional = Bool.random(using: &rng)
        let nullRate = [0.0, 0.1, 0.5, 1.0].randomElement(using: &rng)!
        t.schema.append(kind.field("c\(i)_\(kind)", optional: optional))
        t.columns.append(randomColumn(kind, rows: rows, optional: optional, nullRate: nullRate,
                                      uniqueStrings: uniqueStrings, rng: &rng))
    }
    t.options.compression = Bool.random(using: &rng) ? .uncompressed : .zstd(level: Int.random(in: 1...6, using: &rng))
    t.options.rowGroupMaxRows = [1, 7, 50, 1_000_000].randomElement(using: &rng)!
    t.options.rowGroupMaxBytes = [300, 128 << 20].randomElement(using: &rng)!
    t.options.dataPageMaxRows = [1, 3, 20, 20_000].randomElement(using: &rng)!
    t.options.dataPageMaxBytes = [64, 1 << 20].randomElement(using: &rng)!
    t.options.dictionaryMaxBytes = [0, 1, 40, 200, 1 << 20].randomElement(using: &rng)!
    t.options.writeStatistics = Bool.random(using: &rng)
    t.options.keyValueMetadata = [("qos.spec", "1"), ("window", "ünï \(seed)")]
    return t
}

@Suite struct RoundTripTests {
    @Test func randomTablesRoundTrip() async {
        await propertyCheck(count: 60, input: Gen.int(in: 0...400), Gen.int(in: 0...Int.max)) { rows, seed in
            let t = randomTable(rows: rows, seed: UInt64(seed))
            let bytes = try writeParquet(schema: t.schema, columns: t.columns, options: t.options)
            let again = try writeParquet(schema: t.schema, columns: t.columns, options: t.options)
            #expect(bytes == again, "output must be deterministic")
            let r = try ParquetFileReader(bytes: bytes)
            #expect(r.schema == t.schema)
            #expect(r.numRows == rows)
            #expect(r.keyValueMetadata.map { "\($0.key)=\($0.value)" } == t.options.keyValueMetadata.map { "\($0.key)=\($0.value)" })
            #expect(r.rowGroups.reduce(0) { $0 + $1.numRows } == rows)
            #expect(r.rowGroups.allSatisfy { $0.numRows <= t.options.rowGroupMaxRows })
            for i in t.schema.indices {
                let same = sameData(try r.column(i), t.columns[i])
                #expect(same, "column \(t.schema[i].name) rows \(rows) seed \(seed)")
            }
            for chunk in r.rowGroups.flatMap(\.columns) where chunk.encodings.contains(.rleDictionary) {
                #expect(chunk.hasDictionaryPage, "dictionary-encoded chunk without dictionary page")
            }
            if t.options.writeStatistics { try checkStatistics(r, t) }
        }
    }

    @Test func dictionaryFallsBackToPlainMidChunk() throws {
        let values: [String?] = (0..<1000).map { $0 % 10 == 0 ? nil : "value-\($0 % 300)" }
        var options = ParquetWriterOptions()
        options.dataPageMaxRows = 100
        options.dictionaryMaxBytes = 1500
        let bytes = try writeParquet(schema: [.string("s")], columns: [.strings(values)], options: options)
        let r = try ParquetFileReader(bytes: bytes)
        let chunk = r.rowGroups[0].columns[0]
        #expect(chunk.hasDictionaryPage)
        #expect(chunk.encodings == [.plain, .rle, .rleDictionary])
        #expect(try r.column(0).stringValues == values)
    }

    @Test func smallDictionaryStaysDictionaryEncoded() throws {
        let values: [String?] = (0..<5000).map { ["NL", "DE", "FR", nil][$0 % 4] }
        let bytes = try writeParquet(schema: [.string("country")], columns: [.strings(values)])
        let r = try ParquetFileReader(bytes: bytes)
        #expect(r.rowGroups[0].columns[0].encodings == [.plain, .rle, .rleDictionary])
        #expect(r.rowGroups[0].columns[0].codec == 6)
        #expect(try r.column(0).stringValues == values)
        #expect(bytes.count < 600)
    }

    @Test func multipleRowGroupsByRowsAndBytes() throws {
        let n = 2500
        let ids: [Int64?] = (0..<n).map { Int64($0) }
        var options = ParquetWriterOptions()
        options.rowGroupMaxRows = 1000
        var r = try ParquetFileReader(bytes: writeParquet(schema: [.int64("id", optional: false)],
                                                          columns: [.int64(ids)], options: options))
        #expect(r.rowGroups.map(\.numRows) == [1000, 1000, 500])
        #expect(try r.column(0, rowGroup: 2) == .int64(Array(ids[2000...])))
        options.rowGroupMaxRows = 1_000_000
        options.rowGroupMaxBytes = 8 * 600
        r = try ParquetFileReader(bytes: writeParquet(schema: [.int64("id", optional: false)],
                                                      columns: [.int64(ids)], options: options))
        #expect(r.rowGroups.map(\.numRows) == [600, 600, 600, 600, 100])
        #expect(try r.column(0) == .int64(ids))
    }

    @Test func emptyTable() throws {
        let bytes = try writeParquet(schema: [.string("s"), .int64("n")], columns: [.strings([]), .int64([])])
        let r = try ParquetFileReader(bytes: bytes)
        #expect(r.numRows == 0)
        #expect(r.rowGroups.isEmpty)
        #expect(try r.column(0) == .byteArray([]))
    }

    @Test func statisticsFollowTheRules() throws {
        let schema: [ParquetField] = [.string("s"), .double("d"), .double("z"), .int32("i"), .boolean("b")]
        let cols: [ParquetColumnData] = [
            .strings(["b", "a", "é", nil, "ab"]), .double([1, .nan, -3, nil, 2]),
            .double([0.0, -0.0, nil, 0, 0]), .int32([5, -7, nil, 3, 0]), .boolean([true, nil, true, true, true]),
        ]
        let r = try ParquetFileReader(bytes: writeParquet(schema: schema, columns: cols))
        let st = r.rowGroups[0].columns.map { $0.statistics! }
        #expect(st[0].minValue == Array("a".utf8) && st[0].maxValue == Array("é".utf8) && st[0].nullCount == 1)
        #expect(st[1].minValue == nil && st[1].maxValue == nil && st[1].nanCount == 1)
        #expect(st[2].minValue == (-0.0).statisticsBytes && st[2].maxValue == (0.0).statisticsBytes)
        #expect(st[3].minValue == Int32(-7).statisticsBytes && st[3].maxValue == Int32(5).statisticsBytes)
        #expect(st[4].minValue == [1] && st[4].maxValue == [1] && st[4].nullCount == 1)
    }

    /// Each chunk's min / max are its rows' extremes, in row groups that
    /// start past row 0 (the writer compares the values where they lie and
    /// keeps the extremes as row numbers: bench/results/speed.md section 39).
    @Test func statisticsAreTheExtremesOfEachRowGroup() throws {
        var rng = SplitMix64(seed: 38)
        let n = 1_000
        let strings: [[UInt8]?] = (0..<n).map { _ in
            rng.next() % 7 == 0 ? nil : (0..<Int(rng.next() % 21)).map { _ in [0x00, 0x41, 0x7F, 0x80, 0xFF][Int(rng.next() % 5)] }
        }
        let ints: [Int64?] = (0..<n).map { _ in rng.next() % 5 == 0 ? nil : Int64(bitPattern: rng.next()) >> 40 }
        var options = ParquetWriterOptions()
        options.rowGroupMaxRows = 300
        let r = try ParquetFileReader(bytes: writeParquet(schema: [.blob("b"), .int64("i")],
                                                          columns: [.byteArray(strings), .int64(ints)], options: options))
        #expect(r.rowGroups.count == 4)
        var first = 0
        for g in r.rowGroups {
            let rows = first..<(first + Int(g.numRows))
            first = rows.upperBound
            let b = strings[rows].compactMap { $0 }, i = ints[rows].compactMap { $0 }
            let sb = g.columns[0].statistics!, si = g.columns[1].statistics!
            #expect(sb.minValue == b.min { $0.lexicographicallyPrecedes($1) })
            #expect(sb.maxValue == b.max { $0.lexicographicallyPrecedes($1) })
            #expect(sb.nullCount == rows.count - b.count)
            #expect(si.minValue == i.min()!.statisticsBytes && si.maxValue == i.max()!.statisticsBytes)
            #expect(si.nullCount == rows.count - i.count)
        }
    }

    @Test func invalidInputIsRejected() {
        #expect(throws: ParquetError.self) {
            try writeParquet(schema: [.int64("a", optional: false)], columns: [.int64([1, nil])])
        }
        #expect(throws: ParquetError.self) {
            try writeParquet(schema: [.int64("a"), .int64("A")], columns: [.int64([1]), .int64([2])])
        }
        #expect(throws: ParquetError.self) {
            try writeParquet(schema: [.int64("a")], columns: [.int32([1])])
        }
        #expect(throws: ParquetError.self) {
            try writeParquet(schema: [.int64("a"), .int64("b")], columns: [.int64([1]), .int64([1, 2])])
        }
        var o = ParquetWriterOptions()
        o.keyValueMetadata = [("ARROW:schema", "x")]
        #expect(throws: ParquetError.self) { try writeParquet(schema: [.int64("a")], columns: [.int64([1])], options: o) }
    }
}

/// Recomputes min / max / null count per chunk and compares with the footer.
func checkStatistics(_ r: ParquetFileReader, _ t: RandomTable) throws {
    for (g, group) in r.rowGroups.enumerated() {
        for (i, chunk) in group.columns.enumerated() {
            guard let st = chunk.statistics else { Issue.record("no statistics"); continue }
            let data = try r.column(i, rowGroup: g)
            let (nulls, lo, hi) = expectedStats(data)
            #expect(st.nullCount == nulls)
            if st.minValue != nil || st.maxValue != nil {
                #expect(st.minValue == lo && st.maxValue == hi, "stats of \(t.schema[i].name) group \(g)")
            } else if case .byteArray = data {
                #expect(lo == nil || max(lo!.count, hi!.count) > 256)
            } else if case .double = data {} else {
                #expect(lo == nil, "missing min/max for \(t.schema[i].name)")
            }
        }
    }
}

func expectedStats(_ d: ParquetColumnData) -> (Int, [UInt8]?, [UInt8]?) {
    func mm<T: ParquetValue>(_ v: [T?], _ less: (T, T) -> Bool) -> (Int, [UInt8]?, [UInt8]?) {
        let nn = v.compactMap { $0 }
        guard let lo = nn.min(by: less), let hi = nn.max(by: less) else { return (v.count, nil, nil) }
        return (v.count - nn.count, lo.statisticsMinBytes, hi.statisticsMaxBytes)
    }
    switch d {
    case .boolean(let v): return mm(v) { !$0 && $1 }
    case .int32(let v): return mm(v, <)
    case .int64(let v): return mm(v, <)
    case .double(let v):
        if v.contains(where: { $0?.isNaN == true }) { return (v.filter { $0 == nil }.count, nil, nil) }
        return mm(v, <)
    case .byteArray(let v): return mm(v) { $0.lexicographicallyPrecedes($1) }
    }
}

/// A compressed file stores a column chunk of one small page uncompressed
/// (`ChunkSettings.compressMinBytes`): each chunk says its own codec.
@Suite struct SmallChunkCodecTests {
    /// One INT64 column of `rows` distinct values: a page body of 8 × rows bytes (PLAIN, required).
    static func file(rows: Int, pageRows: Int = 20_000) throws -> ParquetFileReader {
        var o = ParquetWriterOptions()
        o.compression = .zstd(level: 3)
        o.dataPageMaxRows = pageRows
        let values: [Int64?] = (0..<rows).map { Int64($0) * 1_000_003 }
        let bytes = try writeParquet(schema: [.int64("v", optional: false)], columns: [.int64(values)], options: o)
        let r = try ParquetFileReader(bytes: bytes)
        guard case .int64(let back) = try r.column(0) else { throw ParquetError.corrupt("not INT64") }
        #expect(back == values)
        return r
    }

    @Test func aChunkUnderTheBoundIsStoredUncompressedAndOneAtItIsCompressed() throws {
        #expect(ChunkSettings.compressMinBytes == 64)
        #expect(try Self.file(rows: 7).rowGroups[0].columns[0].codec == 0, "56 bytes: UNCOMPRESSED")
        #expect(try Self.file(rows: 8).rowGroups[0].columns[0].codec == 6, "64 bytes: ZSTD")
        #expect(try Self.file(rows: 1000).rowGroups[0].columns[0].codec == 6)
    }

    @Test func aChunkOfSeveralSmallPagesKeepsTheFileCodec() throws {
        // Three pages of 24 bytes: not one small page, so compressed as the file says.
        #expect(try Self.file(rows: 7, pageRows: 3).rowGroups[0].columns[0].codec == 6)
    }

    @Test func aSmallDictionaryChunkCountsItsDictionary() throws {
        var o = ParquetWriterOptions()
        o.compression = .zstd(level: 3)
        // Two rows, one page of indices (a few bytes) but a 70-byte dictionary.
        let long = String(repeating: "x", count: 31)
        let values: [String?] = [long + "a", long + "b"]
        let bytes = try writeParquet(schema: [.string("s", optional: false)], columns: [.strings(values)], options: o)
        let r = try ParquetFileReader(bytes: bytes)
        #expect(r.rowGroups[0].columns[0].encodings.contains(.rleDictionary))
        #expect(r.rowGroups[0].columns[0].codec == 6)
        #expect(try r.column(0).stringValues == values)
    }
}
