// ParquetFileReader: footer, schema, row-group info, typed columns.

/// Statistics of one column chunk as stored (min/max are PLAIN bytes of one value,
/// byte arrays without length prefix).
public struct ParquetStatistics: Sendable, Equatable {
    public var nullCount: Int?
    public var minValue: [UInt8]?
    public var maxValue: [UInt8]?
    public var nanCount: Int?
}

/// Value encodings named in ColumnMetaData.encodings.
public enum ParquetEncoding: Int32, Sendable, Equatable {
    case plain = 0, plainDictionary = 2, rle = 3, bitPacked = 4, deltaBinaryPacked = 5
    case deltaLengthByteArray = 6, deltaByteArray = 7, rleDictionary = 8, byteStreamSplit = 9
}

/// Metadata of one column chunk.
public struct ParquetColumnChunkInfo: Sendable {
    /// CompressionCodec enum value (0 UNCOMPRESSED, 1 SNAPPY, 6 ZSTD, ...).
    public var codec: Int
    public var encodings: [ParquetEncoding]
    public var numValues: Int
    public var compressedSize: Int
    public var uncompressedSize: Int
    public var hasDictionaryPage: Bool
    public var statistics: ParquetStatistics?
}

/// Metadata of one row group.
public struct ParquetRowGroupInfo: Sendable {
    public var numRows: Int
    public var totalByteSize: Int
    public var columns: [ParquetColumnChunkInfo]
}

/// Reads a whole Parquet file held in memory. Flat schemas of BOOLEAN, INT32,
/// INT64, DOUBLE and BYTE_ARRAY columns; UNCOMPRESSED or ZSTD; PLAIN or dictionary
/// values; v1 and v2 data pages. Malformed input throws `ParquetError`, never traps.
public struct ParquetFileReader: Sendable {
    public let schema: [ParquetField]
    public let keyValueMetadata: [(key: String, value: String)]
    public let numRows: Int
    public let createdBy: String?
    public let rowGroups: [ParquetRowGroupInfo]

    private let bytes: [UInt8]
    private let meta: FileMeta
    private let dataEnd: Int

    public init(bytes: [UInt8]) throws {
        let (meta, footerStart) = try Self.readFooter(bytes)
        self.bytes = bytes
        self.meta = meta
        self.dataEnd = footerStart
        schema = try Self.fields(meta.schema)
        keyValueMetadata = meta.keyValue.map { ($0.key, $0.value ?? "") }
        createdBy = meta.createdBy
        guard let n = Int(exactly: meta.numRows), n >= 0 else {
            throw ParquetError.corrupt("footer: num_rows \(meta.numRows)")
        }
        numRows = n
        rowGroups = try Self.checkRowGroups(meta, schema: schema)
    }

    /// Value of the first key-value pair with `key`.
    public func metadataValue(forKey key: String) -> String? {
        keyValueMetadata.first { $0.key == key }?.value
    }

    /// Index of the column called `name`.
    public func columnIndex(named name: String) -> Int? {
        schema.firstIndex { $0.name == name }
    }

    /// All values of column `index`, row groups concatenated.
    public func column(_ index: Int) throws -> ParquetColumnData {
        try checkColumn(index)
        return try decode(index, groups: 0..<rowGroups.count)
    }

    /// All values of the column called `name`.
    public func column(named name: String) throws -> ParquetColumnData {
        guard let i = columnIndex(named: name) else {
            throw ParquetError.invalidArgument("no column named '\(name)'")
        }
        return try column(i)
    }

    /// Values of column `index` in row group `rowGroup`.
    public func column(_ index: Int, rowGroup: Int) throws -> ParquetColumnData {
        try checkColumn(index)
        guard rowGroups.indices.contains(rowGroup) else {
            throw ParquetError.invalidArgument("row group \(rowGroup) out of range 0..<\(rowGroups.count)")
        }
        return try decode(index, groups: rowGroup..<rowGroup + 1)
    }

    private func checkColumn(_ index: Int) throws {
        guard schema.indices.contains(index) else {
            throw ParquetError.invalidArgument("column \(index) out of range 0..<\(schema.count)")
        }
    }

    private func decode(_ index: Int, groups: Range<Int>) throws -> ParquetColumnData {
        switch schema[index].physical {
        case .boolean: return .boolean(try values(index, groups))
        case .int32: return .int32(try values(index, groups))
        case .int64: return .int64(try values(index, groups))
        case .double: return .double(try values(index, groups))
        case .byteArray: return .byteArray(try values(index, groups))
        }
    }

    private func values<T: ParquetValue>(_ index: Int, _ groups: Range<Int>) throws -> [T?] {
        var out: [T?] = []
        let total = groups.reduce(0) { $0 + rowGroups[$1].numRows }
        out.reserveCapacity(min(total, 1 << 24))
        for g in groups {
            var reader = ColumnChunkReader<T>(
                file: bytes, meta: meta.rowGroups[g].columns[index], optional: schema[index].optional,
                numRows: rowGroups[g].numRows, dataEnd: dataEnd,
                context: "column '\(schema[index].name)' row group \(g)")
            try reader.read(into: &out)
        }
        return out
    }

    // MARK: footer

    private static func readFooter(_ bytes: [UInt8]) throws -> (FileMeta, Int) {
        guard bytes.count >= 12 else {
            throw ParquetError.corrupt("file is \(bytes.count) bytes, too short for Parquet")
        }
        guard Array(bytes[0..<4]) == parquetMagic else { throw ParquetError.corrupt("missing leading PAR1 magic") }
        let tail = Array(bytes[(bytes.count - 4)...])
        if tail == Array("PARE".utf8) { throw ParquetError.unsupported("encrypted file (PARE)") }
        guard tail == parquetMagic else { throw ParquetError.corrupt("missing trailing PAR1 magic (truncated?)") }
        var c = ByteCursor(bytes, range: (bytes.count - 8)..<(bytes.count - 4), context: "footer")
        let length = Int(try c.readLE(UInt32.self))
        guard length <= bytes.count - 12 else {
            // 12: the leading and trailing PAR1 and the 4-byte length itself.
            throw ParquetError.corrupt("footer length \(length) + 12 > file size \(bytes.count) (the footer, its length and both PAR1 magics must fit)")
        }
        let start = bytes.count - 8 - length
        var r = CompactReader(bytes, range: start..<(bytes.count - 8), context: "footer")
        return (try r.readFileMeta(), start)
    }

    private static func fields(_ elements: [SchemaElement]) throws -> [ParquetField] {
        guard let root = elements.first else { throw ParquetError.corrupt("footer: empty schema") }
        guard Int(root.numChildren ?? -1) == elements.count - 1 else {
            throw ParquetError.unsupported("nested schema (root has \(root.numChildren ?? -1) children, "
                                           + "\(elements.count - 1) elements follow)")
        }
        return try elements.dropFirst().map(field)
    }

    private static func field(_ e: SchemaElement) throws -> ParquetField {
        guard (e.numChildren ?? 0) == 0, let t = e.type else {
            throw ParquetError.unsupported("nested column '\(e.name)'")
        }
        let physical: ParquetPhysicalType
        switch PhysicalTypeCode(rawValue: t) {
        case .boolean: physical = .boolean
        case .int32: physical = .int32
        case .int64: physical = .int64
        case .double: physical = .double
        case .byteArray: physical = .byteArray
        default: throw ParquetError.unsupported("column '\(e.name)' has physical type \(t)")
        }
        let rep = e.repetition ?? 0
        guard rep == 0 || rep == 1 else {
            throw ParquetError.unsupported("column '\(e.name)' has repetition \(rep) (repeated fields)")
        }
        return ParquetField(name: e.name, physical: physical, logical: logical(e, physical), optional: rep == 1)
    }

    private static func logical(_ e: SchemaElement, _ p: ParquetPhysicalType) -> ParquetLogicalType {
        switch (e.logicalType, p) {
        case (.string?, .byteArray): return .string
        case (.timestamp(true, 2)?, .int64): return .timestampMicrosUTC
        case (nil, .byteArray) where e.convertedType == ConvertedTypeCode.utf8: return .string
        case (nil, .int64) where e.convertedType == ConvertedTypeCode.timestampMicros: return .timestampMicrosUTC
        default: return .none
        }
    }

    private static func checkRowGroups(_ meta: FileMeta, schema: [ParquetField]) throws -> [ParquetRowGroupInfo] {
        var total: Int64 = 0
        var infos: [ParquetRowGroupInfo] = []
        for (g, group) in meta.rowGroups.enumerated() {
            guard group.numRows >= 0, group.numRows <= Int64(Int32.max) * 64 else {
                throw ParquetError.corrupt("row group \(g): num_rows \(group.numRows)")
            }
            let (sum, overflow) = total.addingReportingOverflow(group.numRows)
            guard !overflow else { throw ParquetError.corrupt("row group \(g): row count overflow") }
            total = sum
            guard group.columns.count == schema.count else {
                throw ParquetError.corrupt("row group \(g) has \(group.columns.count) columns, schema \(schema.count)")
            }
            for (c, field) in zip(group.columns, schema) {
                guard c.type == physicalCode(field.physical).rawValue, c.path.last == field.name else {
                    throw ParquetError.corrupt("row group \(g): column chunk \(c.path) does not match field '\(field.name)'")
                }
            }
            infos.append(ParquetRowGroupInfo(numRows: Int(group.numRows), totalByteSize: Int(group.totalByteSize),
                                             columns: group.columns.map(chunkInfo)))
        }
        guard total == meta.numRows else {
            throw ParquetError.corrupt("footer: num_rows \(meta.numRows) but row groups hold \(total)")
        }
        return infos
    }

    private static func chunkInfo(_ c: ColumnMeta) -> ParquetColumnChunkInfo {
        ParquetColumnChunkInfo(
            codec: Int(c.codec), encodings: c.encodings.compactMap(ParquetEncoding.init(rawValue:)),
            numValues: Int(c.numValues), compressedSize: Int(c.totalCompressedSize),
            uncompressedSize: Int(c.totalUncompressedSize), hasDictionaryPage: (c.dictionaryPageOffset ?? 0) > 0,
            statistics: c.statistics.map {
                ParquetStatistics(nullCount: $0.nullCount.map { Int($0) }, minValue: $0.minValue,
                                  maxValue: $0.maxValue, nanCount: $0.nanCount.map { Int($0) })
            })
    }
}
