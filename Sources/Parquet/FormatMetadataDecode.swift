// Decoding of the parquet.thrift structs in FormatMetadata.swift. Unknown
// fields are skipped; missing required fields throw.

extension CompactReader {
    /// Reads an i32 field value, skipping if the wire type is unexpected.
    mutating func i32Field(_ t: CompactType) throws -> Int32? {
        guard t == .i32 || t == .i16 || t == .i64 else { try skip(t); return nil }
        return try readI32()
    }

    mutating func i64Field(_ t: CompactType) throws -> Int64? {
        guard t == .i32 || t == .i16 || t == .i64 else { try skip(t); return nil }
        return try readI64()
    }

    mutating func binaryField(_ t: CompactType) throws -> [UInt8]? {
        guard t == .binary else { try skip(t); return nil }
        return try readBinary()
    }

    mutating func stringField(_ t: CompactType) throws -> String? {
        try binaryField(t).map { String(decoding: $0, as: UTF8.self) }
    }

    func missing(_ field: String, in s: String) -> ParquetError {
        cursor.fail("\(s).\(field) missing")
    }

    mutating func readSchemaElement() throws -> SchemaElement {
        var e = SchemaElement()
        var hasName = false
        try readStruct { r, id, t in
            switch id {
            case 1: e.type = try r.i32Field(t)
            case 3: e.repetition = try r.i32Field(t)
            case 4: if let s = try r.stringField(t) { e.name = s; hasName = true }
            case 5: e.numChildren = try r.i32Field(t)
            case 6: e.convertedType = try r.i32Field(t)
            case 10 where t == .structure: e.logicalType = try r.readLogicalType()
            default: try r.skip(t)
            }
        }
        guard hasName else { throw missing("name", in: "SchemaElement") }
        return e
    }

    mutating func readLogicalType() throws -> LogicalTypeInfo? {
        var result: LogicalTypeInfo?
        try readStruct { r, id, t in
            guard t == .structure else { try r.skip(t); return }
            switch id {
            case 1: try r.skip(t); result = .string
            case 8: result = try r.readTimestampType()
            default: try r.skip(t); result = .other(id)
            }
        }
        return result
    }

    mutating func readTimestampType() throws -> LogicalTypeInfo {
        var utc = false, unit = 0
        try readStruct { r, id, t in
            switch id {
            case 1 where t == .boolTrue || t == .boolFalse: utc = try r.boolValue(t)
            case 2 where t == .structure:
                try r.readStruct { r2, uid, ut in unit = uid; try r2.skip(ut) }
            default: try r.skip(t)
            }
        }
        return .timestamp(utc: utc, unit: unit)
    }

    mutating func readStatistics() throws -> StatisticsMeta {
        var s = StatisticsMeta()
        try readStruct { r, id, t in
            switch id {
            case 3: s.nullCount = try r.i64Field(t)
            case 5: s.maxValue = try r.binaryField(t)
            case 6: s.minValue = try r.binaryField(t)
            case 9: s.nanCount = try r.i64Field(t)
            default: try r.skip(t)
            }
        }
        return s
    }

    mutating func readEnumList(_ t: CompactType) throws -> [Int32] {
        guard t == .list else { try skip(t); return [] }
        return try readList { r, et in
            guard et == .i32 else { throw r.cursor.fail("encodings list of \(et)") }
            return try r.readI32()
        }
    }

    mutating func readStringList(_ t: CompactType) throws -> [String] {
        guard t == .list else { try skip(t); return [] }
        return try readList { r, et in
            guard et == .binary else { throw r.cursor.fail("string list of \(et)") }
            return try r.readString()
        }
    }

    mutating func readColumnMeta() throws -> ColumnMeta {
        var c = ColumnMeta()
        var seen = Set<Int>()
        try readStruct { r, id, t in
            seen.insert(id)
            switch id {
            case 1: c.type = try r.i32Field(t) ?? -1
            case 2: c.encodings = try r.readEnumList(t)
            case 3: c.path = try r.readStringList(t)
            case 4: c.codec = try r.i32Field(t) ?? -1
            case 5: c.numValues = try r.i64Field(t) ?? -1
            case 6: c.totalUncompressedSize = try r.i64Field(t) ?? -1
            case 7: c.totalCompressedSize = try r.i64Field(t) ?? -1
            case 9: c.dataPageOffset = try r.i64Field(t) ?? -1
            case 11: c.dictionaryPageOffset = try r.i64Field(t)
            case 12 where t == .structure: c.statistics = try r.readStatistics()
            default: try r.skip(t)
            }
        }
        for (id, name) in [(1, "type"), (4, "codec"), (5, "num_values"), (7, "total_compressed_size"),
                           (9, "data_page_offset")] where !seen.contains(id) {
            throw missing(name, in: "ColumnMetaData")
        }
        return c
    }

    mutating func readColumnChunk() throws -> ColumnMeta {
        var meta: ColumnMeta?
        try readStruct { r, id, t in
            switch id {
            case 1: throw ParquetError.unsupported("column chunks in external files (file_path)")
            case 3 where t == .structure: meta = try r.readColumnMeta()
            case 8, 9: throw ParquetError.unsupported("encrypted column chunks")
            default: try r.skip(t)
            }
        }
        guard let m = meta else { throw missing("meta_data", in: "ColumnChunk") }
        return m
    }

    mutating func readRowGroup() throws -> RowGroupMeta {
        var g = RowGroupMeta()
        var hasRows = false
        try readStruct { r, id, t in
            switch id {
            case 1 where t == .list:
                g.columns = try r.readList { r2, et in
                    guard et == .structure else { throw r2.cursor.fail("columns list of \(et)") }
                    return try r2.readColumnChunk()
                }
            case 2: g.totalByteSize = try r.i64Field(t) ?? 0
            case 3: if let n = try r.i64Field(t) { g.numRows = n; hasRows = true }
            case 5: g.fileOffset = try r.i64Field(t)
            case 6: g.totalCompressedSize = try r.i64Field(t)
            default: try r.skip(t)
            }
        }
        guard hasRows else { throw missing("num_rows", in: "RowGroup") }
        return g
    }

    mutating func readKeyValue() throws -> (key: String, value: String?) {
        var key: String?, value: String?
        try readStruct { r, id, t in
            switch id {
            case 1: key = try r.stringField(t)
            case 2: value = try r.stringField(t)
            default: try r.skip(t)
            }
        }
        guard let k = key else { throw missing("key", in: "KeyValue") }
        return (k, value)
    }

    mutating func readFileMeta() throws -> FileMeta {
        var f = FileMeta()
        var seen = Set<Int>()
        try readStruct { r, id, t in
            seen.insert(id)
            switch (id, t) {
            case (1, _): f.version = try r.i32Field(t) ?? 0
            case (2, .list): f.schema = try r.readList { r2, _ in try r2.readSchemaElement() }
            case (3, _): f.numRows = try r.i64Field(t) ?? -1
            case (4, .list): f.rowGroups = try r.readList { r2, _ in try r2.readRowGroup() }
            case (5, .list): f.keyValue = try r.readList { r2, _ in try r2.readKeyValue() }
            case (6, _): f.createdBy = try r.stringField(t)
            case (8, _), (9, _): throw ParquetError.unsupported("encrypted footer")
            default: try r.skip(t)
            }
        }
        for (id, name) in [(2, "schema"), (3, "num_rows"), (4, "row_groups")] where !seen.contains(id) {
            throw missing(name, in: "FileMetaData")
        }
        return f
    }

    mutating func readPageHeader() throws -> PageHeaderMeta {
        var h = PageHeaderMeta()
        var seen = Set<Int>()
        try readStruct { r, id, t in
            seen.insert(id)
            switch (id, t) {
            case (1, _): h.type = try r.i32Field(t) ?? -1
            case (2, _): h.uncompressedPageSize = try r.i32Field(t) ?? -1
            case (3, _): h.compressedPageSize = try r.i32Field(t) ?? -1
            case (5, .structure): h.dataPage = try r.readDataPageHeader()
            case (7, .structure): try r.readDictionaryPageHeader(into: &h)
            case (8, .structure): h.dataPageV2 = try r.readDataPageHeaderV2()
            default: try r.skip(t)
            }
        }
        for (id, name) in [(1, "type"), (2, "uncompressed_page_size"), (3, "compressed_page_size")]
        where !seen.contains(id) {
            throw missing(name, in: "PageHeader")
        }
        return h
    }

    mutating func readDataPageHeader() throws -> DataPageHeaderMeta {
        var d = DataPageHeaderMeta()
        try readStruct { r, id, t in
            switch id {
            case 1: d.numValues = try r.i32Field(t) ?? -1
            case 2: d.encoding = try r.i32Field(t) ?? -1
            case 3: d.definitionLevelEncoding = try r.i32Field(t) ?? -1
            case 4: d.repetitionLevelEncoding = try r.i32Field(t) ?? -1
            default: try r.skip(t)
            }
        }
        return d
    }

    mutating func readDictionaryPageHeader(into h: inout PageHeaderMeta) throws {
        var n: Int32 = -1, enc: Int32 = EncodingCode.plain
        try readStruct { r, id, t in
            switch id {
            case 1: n = try r.i32Field(t) ?? -1
            case 2: enc = try r.i32Field(t) ?? -1
            default: try r.skip(t)
            }
        }
        h.dictionaryNumValues = n
        h.dictionaryEncoding = enc
    }

    mutating func readDataPageHeaderV2() throws -> DataPageHeaderV2Meta {
        var d = DataPageHeaderV2Meta()
        try readStruct { r, id, t in
            switch id {
            case 1: d.numValues = try r.i32Field(t) ?? -1
            case 2: d.numNulls = try r.i32Field(t) ?? -1
            case 3: d.numRows = try r.i32Field(t) ?? -1
            case 4: d.encoding = try r.i32Field(t) ?? -1
            case 5: d.definitionLevelsByteLength = try r.i32Field(t) ?? -1
            case 6: d.repetitionLevelsByteLength = try r.i32Field(t) ?? -1
            case 7 where t == .boolTrue || t == .boolFalse: d.isCompressed = try r.boolValue(t)
            default: try r.skip(t)
            }
        }
        return d
    }
}
