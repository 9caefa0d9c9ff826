// Writes one column chunk: [dictionary page] data page+ (v1), with optional
// dictionary encoding that falls back to PLAIN when the dictionary grows past
// its bound, and chunk statistics.

import SecretHash

/// Settings shared by all column chunks of a file.
struct ChunkSettings {
    var compressor: ZstdCompressor?      // nil: UNCOMPRESSED
    var pageMaxRows: Int
    var pageMaxBytes: Int
    var dictionaryMaxBytes: Int          // 0: never use a dictionary
    var statistics: Bool
    var statisticsMaxBinaryLength: Int

    /// A column chunk of a single page whose body (and dictionary) is
    /// smaller than this is stored UNCOMPRESSED even in a compressed file:
    /// a zstd frame of so few bytes is no smaller (frame and block headers
    /// alone take several of them), and each compression call has a fixed
    /// cost of its own. Most chunks of a replay's small tables are this size
    /// (bench/results/speed.md §18). The codec is a column chunk's own
    /// (`ColumnMetaData.codec`), so readers take the mix.
    static let compressMinBytes = 64
}

/// Reusable scratch buffers, so that pages do not allocate per value.
struct PageScratch {
    var levels: [UInt8] = []
    var levelBytes: [UInt8] = []
    var indices: [UInt32] = []
    var body: [UInt8] = []
    var compressed: [UInt8] = []
}

struct ColumnChunkWriter<T: ParquetValue> {
    let values: [T?]
    let rows: Range<Int>
    let optional: Bool
    let useDictionary: Bool
    let settings: ChunkSettings

    /// The dictionary's entries by their bytes (`withDictionaryBytes`),
    /// numbered as `dictionaryEntries`: a keyed open-addressing table (the
    /// strings come from beacons), not a `Dictionary`, whose SipHash of
    /// each value cost ≈ 1.7 % of a replay (bench/results/speed.md section 40).
    private var dictionary = ByteStringIndex()
    private var dictionaryEntries: [T] = []
    private var dictionaryBytes = 0
    private var fellBack = false
    private var pageValues: [T] = []
    private var scratch = PageScratch()
    private var staged: [UInt8] = []          // data pages, written after the dictionary page
    private var usedPlain = false, usedDictionary = false
    private var uncompressedTotal = 0
    /// The chunk's compressor (nil: UNCOMPRESSED), settled at its first page (`settleCodec`).
    private var compressor: ZstdCompressor?
    private var codecSettled = false

    init(values: [T?], rows: Range<Int>, optional: Bool, useDictionary: Bool, settings: ChunkSettings) {
        self.values = values
        self.rows = rows
        self.optional = optional
        self.useDictionary = useDictionary && settings.dictionaryMaxBytes > 0
        self.settings = settings
    }

    /// Appends the chunk to `out` (whose count is the chunk's file offset) and
    /// returns its metadata.
    mutating func write(path: String, to out: inout [UInt8]) throws -> ColumnMeta {
        var row = rows.lowerBound
        while row < rows.upperBound {
            row = try writeDataPage(from: row, to: pageEnd(from: row))
        }
        let start = out.count
        var meta = ColumnMeta()
        if !dictionaryEntries.isEmpty {
            meta.dictionaryPageOffset = Int64(start)
            try writeDictionaryPage(to: &out)
        }
        meta.dataPageOffset = Int64(out.count)
        out.append(contentsOf: staged)
        meta.type = T.physical.rawValue
        meta.encodings = encodings()
        meta.path = [path]
        settleCodec(onlyPage: false)
        meta.codec = compressor == nil ? CodecCode.uncompressed : CodecCode.zstd
        meta.numValues = Int64(rows.count)
        meta.totalCompressedSize = Int64(out.count - start)
        meta.totalUncompressedSize = Int64(uncompressedTotal)
        if settings.statistics { meta.statistics = statistics() }
        return meta
    }

    private func encodings() -> [Int32] {
        var e: [Int32] = []
        if usedPlain || !dictionaryEntries.isEmpty { e.append(EncodingCode.plain) }
        if optional { e.append(EncodingCode.rle) }
        if usedDictionary { e.append(EncodingCode.rleDictionary) }
        return e
    }

    /// End of the page starting at `row`, by row count and estimated PLAIN bytes.
    private func pageEnd(from row: Int) -> Int {
        let limit = min(rows.upperBound, row + max(1, settings.pageMaxRows))
        var bytes = 0, r = row
        while r < limit && bytes < settings.pageMaxBytes {
            if let v = values[r] { bytes += T.plainSize(v) }
            r += 1
        }
        return r
    }

    /// Encodes rows `row..<end` (or fewer, if the dictionary overflows) as one data page;
    /// returns the first row not written.
    private mutating func writeDataPage(from row: Int, to end: Int) throws -> Int {
        scratch.levels.removeAll(keepingCapacity: true)
        scratch.indices.removeAll(keepingCapacity: true)
        pageValues.removeAll(keepingCapacity: true)
        var dictMode = useDictionary && !fellBack
        var r = row
        while r < end {
            guard let v = values[r] else {
                scratch.levels.append(0)
                r += 1
                continue
            }
            if dictMode {
                let (found, h) = v.withDictionaryBytes { bytes in
                    let h = ByteStringIndex.hash(bytes)
                    return (dictionary.find(hash: h) { k in
                        dictionaryEntries[k].withDictionaryBytes { ByteStringIndex.equal($0, bytes) }
                    }, h)
                }
                if let idx = found {
                    scratch.indices.append(UInt32(idx))
                } else if dictionaryBytes + T.plainSize(v) > settings.dictionaryMaxBytes {
                    fellBack = true
                    if r > row { break }
                    dictMode = false
                    pageValues.append(v)
                } else {
                    let idx = dictionary.insert(hash: h)
                    assert(idx == dictionaryEntries.count, "the index numbers entries in order")
                    dictionaryEntries.append(v)
                    dictionaryBytes += T.plainSize(v)
                    scratch.indices.append(UInt32(idx))
                }
            } else {
                pageValues.append(v)
            }
            if optional { scratch.levels.append(1) }
            r += 1
        }
        // A page of nulls only, before any dictionary entry exists, is written PLAIN:
        // readers reject dictionary-encoded pages in a chunk without a dictionary page.
        try emitDataPage(rowCount: r - row, dictionaryEncoded: dictMode && !dictionaryEntries.isEmpty,
                         onlyPage: row == rows.lowerBound && r == rows.upperBound)
        return r
    }

    /// Settles the chunk's codec before its first page is written: the
    /// file's, unless the chunk is one page (`onlyPage`) whose body and
    /// dictionary are under `ChunkSettings.compressMinBytes`.
    private mutating func settleCodec(onlyPage: Bool) {
        guard !codecSettled else { return }
        codecSettled = true
        compressor = settings.compressor
        if onlyPage && scratch.body.count + dictionaryBytes < ChunkSettings.compressMinBytes { compressor = nil }
    }

    private mutating func emitDataPage(rowCount: Int, dictionaryEncoded: Bool, onlyPage: Bool) throws {
        scratch.body.removeAll(keepingCapacity: true)
        if optional {
            scratch.levelBytes.removeAll(keepingCapacity: true)
            RleHybrid.encode(scratch.levels, bitWidth: 1, to: &scratch.levelBytes)
            scratch.body.appendLE(UInt32(scratch.levelBytes.count))
            scratch.body.append(contentsOf: scratch.levelBytes)
        }
        let encoding: Int32
        if dictionaryEncoded {
            let width = bitWidth(forMax: UInt32(max(dictionaryEntries.count - 1, 0)))
            scratch.body.append(UInt8(width))
            RleHybrid.encode(scratch.indices, bitWidth: width, to: &scratch.body)
            encoding = EncodingCode.rleDictionary
            usedDictionary = true
        } else {
            T.appendPlain(pageValues, to: &scratch.body)
            encoding = EncodingCode.plain
            usedPlain = true
        }
        settleCodec(onlyPage: onlyPage)
        var header = PageHeaderMeta()
        header.type = PageTypeCode.dataPage
        header.dataPage = DataPageHeaderMeta(numValues: Int32(rowCount), encoding: encoding)
        var target = staged
        staged = []
        defer { staged = target }
        try emitPage(header, to: &target)
    }

    private mutating func writeDictionaryPage(to out: inout [UInt8]) throws {
        scratch.body.removeAll(keepingCapacity: true)
        T.appendPlain(dictionaryEntries, to: &scratch.body)
        var header = PageHeaderMeta()
        header.type = PageTypeCode.dictionaryPage
        header.dictionaryNumValues = Int32(dictionaryEntries.count)
        header.dictionaryEncoding = EncodingCode.plain
        try emitPage(header, to: &out)
    }

    /// Compresses `scratch.body`, fills in the sizes and appends header + body.
    private mutating func emitPage(_ header: PageHeaderMeta, to out: inout [UInt8]) throws {
        var h = header
        guard scratch.body.count <= Int(Int32.max) else {
            throw ParquetError.invalidArgument("a data page exceeds 2 GiB; lower dataPageMaxBytes")
        }
        h.uncompressedPageSize = Int32(scratch.body.count)
        precondition(codecSettled, "a chunk's codec is settled before its first page")
        if let z = compressor {
            try z.compress(scratch.body, into: &scratch.compressed)
            h.compressedPageSize = Int32(scratch.compressed.count)
        } else {
            h.compressedPageSize = h.uncompressedPageSize
        }
        let headerBytes = encodeThrift { $0.write(h) }
        out.append(contentsOf: headerBytes)
        out.append(contentsOf: compressor == nil ? scratch.body : scratch.compressed)
        uncompressedTotal += headerBytes.count + scratch.body.count
    }

    // MARK: statistics

    /// The extremes are kept as row numbers and the values compared where
    /// they lie: holding a byte array as the running minimum (or reading it
    /// out of `values`) cost a reference-count update per value
    /// (bench/results/speed.md section 39).
    private func statistics() -> StatisticsMeta {
        var stats = StatisticsMeta()
        var nulls = 0, nans = 0
        var lo = -1, hi = -1
        values.withUnsafeBufferPointer { values in
            for i in rows {
                guard values[i] != nil else { nulls += 1; continue }
                if values[i].unsafelyUnwrapped.isNaNValue { nans += 1; continue }
                if lo < 0 {
                    lo = i
                    hi = i
                    continue
                }
                if T.statisticsLess(values[i].unsafelyUnwrapped, values[lo].unsafelyUnwrapped) { lo = i }
                if T.statisticsLess(values[hi].unsafelyUnwrapped, values[i].unsafelyUnwrapped) { hi = i }
            }
        }
        stats.nullCount = Int64(nulls)
        if T.self == Double.self { stats.nanCount = Int64(nans) }
        guard nans == 0, lo >= 0 else { return stats }
        let minBytes = values[lo].unsafelyUnwrapped.statisticsMinBytes, maxBytes = values[hi].unsafelyUnwrapped.statisticsMaxBytes
        if T.self == [UInt8].self && max(minBytes.count, maxBytes.count) > settings.statisticsMaxBinaryLength {
            return stats
        }
        stats.minValue = minBytes
        stats.maxValue = maxBytes
        return stats
    }
}
