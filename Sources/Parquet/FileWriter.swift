// writeParquet: validation, row-group split, column chunks, footer.

let parquetMagic: [UInt8] = Array("PAR1".utf8)

/// Serializes a flat table to a complete Parquet file.
///
/// - Parameters:
///   - schema: one field per column, in order.
///   - columns: the values, same order and physical type as `schema`, all of equal length;
///     required (non-optional) columns must not contain nil.
/// - Returns: the file bytes. Same input and options give identical bytes.
/// - Throws: `ParquetError.invalidArgument` for inconsistent input,
///   `ParquetError.compression` if libzstd fails.
public func writeParquet(schema: [ParquetField], columns: [ParquetColumnData],
                         options: ParquetWriterOptions = ParquetWriterOptions()) throws -> [UInt8] {
    let numRows = try validate(schema: schema, columns: columns, options: options)
    let settings = try ChunkSettings(options)
    var out = parquetMagic
    var groups: [RowGroupMeta] = []
    for (ordinal, rows) in rowGroupRanges(columns: columns, numRows: numRows, options: options).enumerated() {
        groups.append(try writeRowGroup(schema: schema, columns: columns, rows: rows,
                                        ordinal: ordinal, settings: settings, out: &out))
    }
    appendFooter(schema: schema, numRows: numRows, groups: groups, options: options, out: &out)
    return out
}

/// The same file as `writeParquet(schema:columns:options:)` over the same
/// values, asking `column(i, rows)` for column `i`'s values of one row group
/// at a time (`rows.count` values, rows `rows` of the whole), so only one
/// column chunk's values are in memory at once (a `sessions` file of 500 000
/// rows needs about 1 KB a row as whole columns). `rowSize(r)` is row `r`'s
/// estimated PLAIN size (`parquetEstimatedRowSize`): it places the row-group
/// boundaries exactly where the whole-column writer would.
public func writeParquet(schema: [ParquetField], rowCount: Int, rowSize: (Int) -> Int,
                         options: ParquetWriterOptions = ParquetWriterOptions(),
                         column: (Int, Range<Int>) throws -> ParquetColumnData) throws -> [UInt8] {
    try validate(schema: schema, options: options)
    let settings = try ChunkSettings(options)
    var out = parquetMagic
    var groups: [RowGroupMeta] = []
    for (ordinal, rows) in rowGroupRanges(rowSize: rowSize, numRows: rowCount, options: options).enumerated() {
        var group = RowGroupMeta()
        group.fileOffset = Int64(out.count)
        group.numRows = Int64(rows.count)
        group.ordinal = Int16(truncatingIfNeeded: ordinal)
        for (i, field) in schema.enumerated() {
            let data = try column(i, rows)
            try validate(field: field, data: data, count: rows.count, first: schema[0].name)
            group.columns.append(try writeChunk(field: field, data: data, rows: 0..<rows.count, settings: settings, out: &out))
        }
        group.totalByteSize = group.columns.reduce(0) { $0 + $1.totalUncompressedSize }
        group.totalCompressedSize = group.columns.reduce(0) { $0 + $1.totalCompressedSize }
        groups.append(group)
    }
    appendFooter(schema: schema, numRows: rowCount, groups: groups, options: options, out: &out)
    return out
}

extension ChunkSettings {
    /// The column chunk settings `options` ask for (both `writeParquet`s).
    init(_ options: ParquetWriterOptions) throws {
        self.init(compressor: try Parquet.compressor(for: options.compression),
                  pageMaxRows: min(max(1, options.dataPageMaxRows), Int(Int32.max)),
                  pageMaxBytes: max(1, options.dataPageMaxBytes),
                  dictionaryMaxBytes: max(0, options.dictionaryMaxBytes),
                  statistics: options.writeStatistics,
                  statisticsMaxBinaryLength: options.statisticsMaxBinaryLength)
    }
}

/// The file's footer after its row groups: the metadata, its length, the magic.
private func appendFooter(schema: [ParquetField], numRows: Int, groups: [RowGroupMeta],
                          options: ParquetWriterOptions, out: inout [UInt8]) {
    var meta = FileMeta()
    meta.schema = schemaElements(schema)
    meta.numRows = Int64(numRows)
    meta.rowGroups = groups
    meta.keyValue = options.keyValueMetadata.map { ($0.key, Optional($0.value)) }
    meta.createdBy = options.createdBy
    meta.columnOrderCount = schema.count
    let footer = encodeThrift { $0.write(meta) }
    out.append(contentsOf: footer)
    out.appendLE(UInt32(footer.count))
    out.append(contentsOf: parquetMagic)
}

/// The estimated PLAIN size of one value for the row-group split of the
/// streaming `writeParquet`: `byteCount` is the value's length for byte
/// arrays (0 for null), ignored for the fixed-size types.
public func parquetEstimatedSize(_ physical: ParquetPhysicalType, byteCount: Int) -> Int {
    switch physical {
    case .boolean: return 1
    case .int32: return 4
    case .int64, .double: return 8
    case .byteArray: return 4 + byteCount
    }
}

/// The schema and metadata checks of `validate(schema:columns:options:)`.
private func validate(schema: [ParquetField], options: ParquetWriterOptions) throws {
    func bad(_ m: String) -> ParquetError { .invalidArgument(m) }
    guard !schema.isEmpty else { throw bad("schema has no columns") }
    var seen = Set<String>()
    for field in schema {
        guard !field.name.isEmpty else { throw bad("empty column name") }
        guard seen.insert(field.name.lowercased()).inserted else {
            throw bad("duplicate column name '\(field.name)' (names must differ beyond case)")
        }
        try checkLogical(field)
    }
    for kv in options.keyValueMetadata {
        if kv.key == "ARROW:schema" || kv.key == "pandas" || kv.key.hasPrefix("org.apache.spark.") {
            throw bad("key-value metadata key '\(kv.key)' is reserved")
        }
    }
}

/// The per-column checks of `validate(schema:columns:options:)` for one chunk.
private func validate(field: ParquetField, data: ParquetColumnData, count: Int, first: String) throws {
    func bad(_ m: String) -> ParquetError { .invalidArgument(m) }
    guard data.physicalType == field.physical else {
        throw bad("column '\(field.name)' is \(field.physical) but its data is \(data.physicalType)")
    }
    guard data.count == count else {
        throw bad("column '\(field.name)' has \(data.count) values, '\(first)' has \(count)")
    }
    if !field.optional && data.hasNulls {
        throw bad("required column '\(field.name)' contains nulls")
    }
}

private func compressor(for c: ParquetCompression) throws -> ZstdCompressor? {
    switch c {
    case .uncompressed: return nil
    case .zstd(let level): return try ZstdCompressor(level: level)
    }
}

/// Checks the input; returns the row count.
private func validate(schema: [ParquetField], columns: [ParquetColumnData],
                      options: ParquetWriterOptions) throws -> Int {
    func bad(_ m: String) -> ParquetError { .invalidArgument(m) }
    guard !schema.isEmpty else { throw bad("schema has no columns") }
    guard schema.count == columns.count else {
        throw bad("schema has \(schema.count) fields but \(columns.count) columns were given")
    }
    var seen = Set<String>()
    for (field, data) in zip(schema, columns) {
        guard !field.name.isEmpty else { throw bad("empty column name") }
        guard seen.insert(field.name.lowercased()).inserted else {
            throw bad("duplicate column name '\(field.name)' (names must differ beyond case)")
        }
        guard data.physicalType == field.physical else {
            throw bad("column '\(field.name)' is \(field.physical) but its data is \(data.physicalType)")
        }
        guard data.count == columns[0].count else {
            throw bad("column '\(field.name)' has \(data.count) values, '\(schema[0].name)' has \(columns[0].count)")
        }
        try checkLogical(field)
        if !field.optional && data.hasNulls {
            throw bad("required column '\(field.name)' contains nulls")
        }
    }
    for kv in options.keyValueMetadata {
        if kv.key == "ARROW:schema" || kv.key == "pandas" || kv.key.hasPrefix("org.apache.spark.") {
            throw bad("key-value metadata key '\(kv.key)' is reserved")
        }
    }
    return columns[0].count
}

private func checkLogical(_ field: ParquetField) throws {
    switch field.logical {
    case .none: return
    case .string where field.physical == .byteArray: return
    case .timestampMicrosUTC where field.physical == .int64: return
    default:
        throw ParquetError.invalidArgument(
            "column '\(field.name)': logical type \(field.logical) needs another physical type than \(field.physical)")
    }
}

extension ParquetColumnData {
    /// Whether any value is null.
    public var hasNulls: Bool {
        switch self {
        case .boolean(let v): return v.contains(nil)
        case .int32(let v): return v.contains(nil)
        case .int64(let v): return v.contains(nil)
        case .double(let v): return v.contains(nil)
        case .byteArray(let v): return v.contains(nil)
        }
    }

    /// Estimated PLAIN bytes of row `i`.
    func estimatedSize(_ i: Int) -> Int {
        switch self {
        case .boolean: return 1
        case .int32: return 4
        case .int64, .double: return 8
        case .byteArray(let v): return 4 + (v[i]?.count ?? 0)
        }
    }
}

/// Splits `0..<numRows` into row groups bounded by rows and estimated bytes.
func rowGroupRanges(columns: [ParquetColumnData], numRows: Int, options: ParquetWriterOptions) -> [Range<Int>] {
    rowGroupRanges(rowSize: { r in columns.reduce(0) { $0 + $1.estimatedSize(r) } }, numRows: numRows, options: options)
}

/// As above, with each row's estimated size (the sum over its columns).
func rowGroupRanges(rowSize: (Int) -> Int, numRows: Int, options: ParquetWriterOptions) -> [Range<Int>] {
    let maxRows = max(1, options.rowGroupMaxRows)
    let maxBytes = max(1, options.rowGroupMaxBytes)
    var ranges: [Range<Int>] = []
    var start = 0, bytes = 0, row = 0
    while row < numRows {
        bytes += rowSize(row)
        row += 1
        if row - start >= maxRows || bytes >= maxBytes {
            ranges.append(start..<row)
            start = row
            bytes = 0
        }
    }
    if start < numRows { ranges.append(start..<numRows) }
    return ranges
}

private func writeRowGroup(schema: [ParquetField], columns: [ParquetColumnData], rows: Range<Int>,
                           ordinal: Int, settings: ChunkSettings, out: inout [UInt8]) throws -> RowGroupMeta {
    var group = RowGroupMeta()
    group.fileOffset = Int64(out.count)
    group.numRows = Int64(rows.count)
    group.ordinal = Int16(truncatingIfNeeded: ordinal)
    for (field, data) in zip(schema, columns) {
        let meta = try writeChunk(field: field, data: data, rows: rows, settings: settings, out: &out)
        group.columns.append(meta)
    }
    group.totalByteSize = group.columns.reduce(0) { $0 + $1.totalUncompressedSize }
    group.totalCompressedSize = group.columns.reduce(0) { $0 + $1.totalCompressedSize }
    return group
}

private func writeChunk(field: ParquetField, data: ParquetColumnData, rows: Range<Int>,
                        settings: ChunkSettings, out: inout [UInt8]) throws -> ColumnMeta {
    func chunk<T: ParquetValue>(_ values: [T?], dictionary: Bool = false) throws -> ColumnMeta {
        var w = ColumnChunkWriter(values: values, rows: rows, optional: field.optional,
                                  useDictionary: dictionary, settings: settings)
        return try w.write(path: field.name, to: &out)
    }
    switch data {
    case .boolean(let v): return try chunk(v)
    case .int32(let v): return try chunk(v)
    case .int64(let v): return try chunk(v)
    case .double(let v): return try chunk(v)
    case .byteArray(let v): return try chunk(v, dictionary: field.logical == .string)
    }
}

/// Root element plus one leaf per field.
func schemaElements(_ schema: [ParquetField]) -> [SchemaElement] {
    var root = SchemaElement()
    root.name = "schema"
    root.numChildren = Int32(schema.count)
    return [root] + schema.map { f in
        var e = SchemaElement()
        e.type = physicalCode(f.physical).rawValue
        e.repetition = f.optional ? 1 : 0
        e.name = f.name
        switch f.logical {
        case .none: break
        case .string:
            e.convertedType = ConvertedTypeCode.utf8
            e.logicalType = .string
        case .timestampMicrosUTC:
            e.convertedType = ConvertedTypeCode.timestampMicros
            e.logicalType = .timestamp(utc: true, unit: 2)
        }
        return e
    }
}

func physicalCode(_ p: ParquetPhysicalType) -> PhysicalTypeCode {
    switch p {
    case .boolean: return .boolean
    case .int32: return .int32
    case .int64: return .int64
    case .double: return .double
    case .byteArray: return .byteArray
    }
}
