// Reads one flat column chunk (dictionary page, v1 / v2 data pages, PLAIN or
// dictionary values, ZSTD or uncompressed) back into optional values.

extension ParquetValue {
    /// RLE-encoded values (only BOOLEAN supports it).
    static func decodeRLE(_ c: inout ByteCursor, count: Int, into out: inout [Self]) throws {
        throw ParquetError.unsupported("RLE encoding for \(Self.self) values")
    }
}

extension Bool {
    static func decodeRLE(_ c: inout ByteCursor, count: Int, into out: inout [Bool]) throws {
        let n = try c.readLE(UInt32.self)
        var sub = ByteCursor(c.bytes, range: try c.take(Int(n), "RLE boolean run"), context: c.context)
        var bits: [UInt32] = []
        try RleHybrid.decode(&sub, count: count, bitWidth: 1, into: &bits)
        out.append(contentsOf: bits.lazy.map { $0 != 0 })
    }
}

/// One page body, decompressed: `bytes[range]`.
private struct PageBody {
    var bytes: [UInt8]
    var range: Range<Int>
}

struct ColumnChunkReader<T: ParquetValue> {
    let file: [UInt8]
    let meta: ColumnMeta
    let optional: Bool
    let numRows: Int
    /// Chunks must lie inside `4..<dataEnd` (the footer starts at dataEnd).
    let dataEnd: Int
    let context: String

    private var dictionary: [T]?
    private var levels: [UInt32] = []
    private var pageValues: [T] = []

    init(file: [UInt8], meta: ColumnMeta, optional: Bool, numRows: Int, dataEnd: Int, context: String) {
        self.file = file
        self.meta = meta
        self.optional = optional
        self.numRows = numRows
        self.dataEnd = dataEnd
        self.context = context
    }

    private func corrupt(_ m: String) -> ParquetError { .corrupt("\(context): \(m)") }

    /// Appends the chunk's `numRows` values to `out`.
    mutating func read(into out: inout [T?]) throws {
        guard meta.numValues == Int64(numRows) else {
            throw corrupt("num_values \(meta.numValues) but the row group has \(numRows) rows")
        }
        guard [CodecCode.uncompressed, CodecCode.zstd, CodecCode.snappy].contains(meta.codec) else {
            throw ParquetError.unsupported(
                "\(context): compression codec \(meta.codec) (only UNCOMPRESSED, ZSTD and SNAPPY)")
        }
        var cursor = ByteCursor(file, range: try chunkRange(), context: context)
        var done = 0
        while done < numRows {
            guard !cursor.isAtEnd else { throw corrupt("chunk ends after \(done) of \(numRows) values") }
            done += try readPage(&cursor, remaining: numRows - done, into: &out)
        }
    }

    private func chunkRange() throws -> Range<Int> {
        var start = meta.dataPageOffset
        if let d = meta.dictionaryPageOffset, d > 0, d < start { start = d }
        let length = meta.totalCompressedSize
        guard start >= 4, length >= 0, start <= Int64(dataEnd), length <= Int64(dataEnd) - start else {
            throw corrupt("chunk [\(start), +\(length)) outside the data area 4..<\(dataEnd)")
        }
        return Int(start)..<Int(start + length)
    }

    /// Reads one page; returns the number of values (rows) it added.
    private mutating func readPage(_ cursor: inout ByteCursor, remaining: Int, into out: inout [T?]) throws -> Int {
        var hr = CompactReader(file, range: cursor.position..<cursor.end, context: "\(context): page header")
        let header = try hr.readPageHeader()
        cursor.position = hr.position
        guard header.compressedPageSize >= 0, header.uncompressedPageSize >= 0 else {
            throw corrupt("negative page size")
        }
        let body = try cursor.take(Int(header.compressedPageSize), "page body")
        switch header.type {
        case PageTypeCode.dictionaryPage:
            try readDictionary(header, body)
            return 0
        case PageTypeCode.dataPage:
            guard let d = header.dataPage else { throw corrupt("DATA_PAGE without data_page_header") }
            return try readDataPageV1(header, d, body, remaining: remaining, into: &out)
        case PageTypeCode.dataPageV2:
            guard let d = header.dataPageV2 else { throw corrupt("DATA_PAGE_V2 without data_page_header_v2") }
            return try readDataPageV2(header, d, body, remaining: remaining, into: &out)
        default:
            return 0   // index pages and unknown page types are skipped
        }
    }

    private func decompress(_ range: Range<Int>, size: Int, compressed: Bool = true) throws -> PageBody {
        if meta.codec == CodecCode.uncompressed || !compressed {
            guard size == range.count else {
                throw corrupt("page sizes differ (\(size) vs \(range.count)) without compression")
            }
            return PageBody(bytes: file, range: range)
        }
        let out = meta.codec == CodecCode.snappy
            ? try snappyDecompress(file, range: range, expectedSize: size)
            : try zstdDecompress(file, range: range, expectedSize: size)
        return PageBody(bytes: out, range: 0..<out.count)
    }

    private mutating func readDictionary(_ h: PageHeaderMeta, _ range: Range<Int>) throws {
        guard dictionary == nil else { throw corrupt("second dictionary page") }
        let n = Int(h.dictionaryNumValues ?? -1)
        guard n >= 0 else { throw corrupt("dictionary page without num_values") }
        guard h.dictionaryEncoding == EncodingCode.plain || h.dictionaryEncoding == EncodingCode.plainDictionary else {
            throw ParquetError.unsupported("\(context): dictionary page encoding \(h.dictionaryEncoding ?? -1)")
        }
        let body = try decompress(range, size: Int(h.uncompressedPageSize))
        var c = ByteCursor(body.bytes, range: body.range, context: "\(context): dictionary page")
        var values: [T] = []
        try T.decodePlain(&c, count: n, into: &values)
        dictionary = values
    }

    private mutating func readDataPageV1(_ h: PageHeaderMeta, _ d: DataPageHeaderMeta, _ range: Range<Int>,
                                         remaining: Int, into out: inout [T?]) throws -> Int {
        let n = Int(d.numValues)
        guard n >= 0, n <= remaining else { throw corrupt("page num_values \(n) (\(remaining) rows left)") }
        let body = try decompress(range, size: Int(h.uncompressedPageSize))
        var c = ByteCursor(body.bytes, range: body.range, context: "\(context): data page")
        var nonNull = n
        if optional {
            guard d.definitionLevelEncoding == EncodingCode.rle else {
                throw ParquetError.unsupported("\(context): definition level encoding \(d.definitionLevelEncoding)")
            }
            let length = try c.readLE(UInt32.self)
            var lc = ByteCursor(body.bytes, range: try c.take(Int(length), "definition levels"), context: c.context)
            nonNull = try readLevels(&lc, count: n)
        }
        try decodeValues(&c, encoding: d.encoding, count: nonNull)
        scatter(count: n, into: &out)
        return n
    }

    private mutating func readDataPageV2(_ h: PageHeaderMeta, _ d: DataPageHeaderV2Meta, _ range: Range<Int>,
                                         remaining: Int, into out: inout [T?]) throws -> Int {
        let n = Int(d.numValues)
        guard n >= 0, n <= remaining else { throw corrupt("page num_values \(n) (\(remaining) rows left)") }
        let repLen = Int(d.repetitionLevelsByteLength), defLen = Int(d.definitionLevelsByteLength)
        guard repLen >= 0, defLen >= 0, repLen <= range.count, defLen <= range.count - repLen else {
            throw corrupt("v2 level lengths \(repLen)+\(defLen) exceed page size \(range.count)")
        }
        let defRange = range.lowerBound + repLen..<range.lowerBound + repLen + defLen
        var nonNull = n
        if optional {
            var lc = ByteCursor(file, range: defRange, context: "\(context): definition levels")
            nonNull = try readLevels(&lc, count: n)
        }
        let valuesRange = defRange.upperBound..<range.upperBound
        let body = try decompress(valuesRange, size: Int(h.uncompressedPageSize) - repLen - defLen,
                                  compressed: d.isCompressed)
        var c = ByteCursor(body.bytes, range: body.range, context: "\(context): data page v2")
        try decodeValues(&c, encoding: d.encoding, count: nonNull)
        scatter(count: n, into: &out)
        return n
    }

    /// Decodes `count` definition levels (max level 1); returns how many are 1.
    private mutating func readLevels(_ c: inout ByteCursor, count: Int) throws -> Int {
        levels.removeAll(keepingCapacity: true)
        try RleHybrid.decode(&c, count: count, bitWidth: 1, into: &levels)
        return levels.reduce(0) { $0 + Int($1) }
    }

    private mutating func decodeValues(_ c: inout ByteCursor, encoding: Int32, count: Int) throws {
        pageValues.removeAll(keepingCapacity: true)
        switch encoding {
        case EncodingCode.plain:
            try T.decodePlain(&c, count: count, into: &pageValues)
        case EncodingCode.plainDictionary, EncodingCode.rleDictionary:
            try decodeDictionaryIndices(&c, count: count)
        case EncodingCode.rle:
            try T.decodeRLE(&c, count: count, into: &pageValues)
        default:
            throw ParquetError.unsupported("\(context): value encoding \(encoding)")
        }
    }

    private mutating func decodeDictionaryIndices(_ c: inout ByteCursor, count: Int) throws {
        guard let dict = dictionary else { throw corrupt("dictionary-encoded page without dictionary page") }
        guard count > 0 else { return }
        let width = Int(try c.readByte())
        var indices: [UInt32] = []
        try RleHybrid.decode(&c, count: count, bitWidth: width, into: &indices)
        pageValues.reserveCapacity(count)
        for i in indices {
            guard Int(i) < dict.count else { throw corrupt("dictionary index \(i) >= \(dict.count)") }
            pageValues.append(dict[Int(i)])
        }
    }

    /// Merges `pageValues` with the page's levels into `out`.
    private func scatter(count: Int, into out: inout [T?]) {
        guard optional else {
            for v in pageValues { out.append(v) }
            return
        }
        var k = 0
        for l in levels.prefix(count) {
            if l != 0 { out.append(pageValues[k]); k += 1 } else { out.append(nil) }
        }
    }
}
