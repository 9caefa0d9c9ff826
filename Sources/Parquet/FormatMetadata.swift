// The parquet.thrift structs this module uses (fields we write or read), and
// their compact-protocol encoding. Field ids follow apache/parquet-format.

enum PhysicalTypeCode: Int32 {
    case boolean = 0, int32 = 1, int64 = 2, int96 = 3, float = 4, double = 5
    case byteArray = 6, fixedLenByteArray = 7
}

enum EncodingCode {
    static let plain: Int32 = 0
    static let plainDictionary: Int32 = 2
    static let rle: Int32 = 3
    static let bitPacked: Int32 = 4
    static let rleDictionary: Int32 = 8
}

enum CodecCode {
    static let uncompressed: Int32 = 0
    static let snappy: Int32 = 1
    static let zstd: Int32 = 6
}

enum PageTypeCode {
    static let dataPage: Int32 = 0
    static let indexPage: Int32 = 1
    static let dictionaryPage: Int32 = 2
    static let dataPageV2: Int32 = 3
}

enum ConvertedTypeCode {
    static let utf8: Int32 = 0
    static let timestampMillis: Int32 = 9
    static let timestampMicros: Int32 = 10
}

/// LogicalType union, reduced to what we distinguish.
enum LogicalTypeInfo: Equatable {
    case string
    case timestamp(utc: Bool, unit: Int)   // unit: TimeUnit field id (1 ms, 2 us, 3 ns)
    case other(Int)                        // union field id
}

struct SchemaElement: Equatable {
    var type: Int32?
    var repetition: Int32?
    var name: String = ""
    var numChildren: Int32?
    var convertedType: Int32?
    var logicalType: LogicalTypeInfo?
}

struct StatisticsMeta: Equatable {
    var nullCount: Int64?
    var maxValue: [UInt8]?
    var minValue: [UInt8]?
    var nanCount: Int64?
}

struct ColumnMeta {
    var type: Int32 = 0
    var encodings: [Int32] = []
    var path: [String] = []
    var codec: Int32 = 0
    var numValues: Int64 = 0
    var totalUncompressedSize: Int64 = 0
    var totalCompressedSize: Int64 = 0
    var dataPageOffset: Int64 = 0
    var dictionaryPageOffset: Int64?
    var statistics: StatisticsMeta?
}

struct RowGroupMeta {
    var columns: [ColumnMeta] = []
    var totalByteSize: Int64 = 0
    var numRows: Int64 = 0
    var fileOffset: Int64?
    var totalCompressedSize: Int64?
    var ordinal: Int16?
}

struct FileMeta {
    var version: Int32 = 1
    var schema: [SchemaElement] = []
    var numRows: Int64 = 0
    var rowGroups: [RowGroupMeta] = []
    var keyValue: [(key: String, value: String?)] = []
    var createdBy: String?
    var columnOrderCount = 0   // all TYPE_ORDER
}

struct DataPageHeaderMeta {
    var numValues: Int32 = 0
    var encoding: Int32 = 0
    var definitionLevelEncoding: Int32 = EncodingCode.rle
    var repetitionLevelEncoding: Int32 = EncodingCode.rle
}

struct DataPageHeaderV2Meta {
    var numValues: Int32 = 0
    var numNulls: Int32 = 0
    var numRows: Int32 = 0
    var encoding: Int32 = 0
    var definitionLevelsByteLength: Int32 = 0
    var repetitionLevelsByteLength: Int32 = 0
    var isCompressed = true
}

struct PageHeaderMeta {
    var type: Int32 = 0
    var uncompressedPageSize: Int32 = 0
    var compressedPageSize: Int32 = 0
    var dataPage: DataPageHeaderMeta?
    var dictionaryNumValues: Int32?      // DictionaryPageHeader.num_values
    var dictionaryEncoding: Int32?
    var dataPageV2: DataPageHeaderV2Meta?
}

// MARK: - Encoding

extension CompactWriter {
    mutating func write(_ e: SchemaElement) {
        if let t = e.type { i32(1, t) }
        if let r = e.repetition { i32(3, r) }
        string(4, e.name)
        if let n = e.numChildren { i32(5, n) }
        if let c = e.convertedType { i32(6, c) }
        if let l = e.logicalType { structure(10) { $0.write(l) } }
    }

    mutating func write(_ l: LogicalTypeInfo) {
        switch l {
        case .string:
            structure(1) { _ in }
        case .timestamp(let utc, let unit):
            structure(8) { w in
                w.bool(1, utc)
                w.structure(2) { $0.structure(unit) { _ in } }
            }
        case .other(let id):
            structure(id) { _ in }
        }
    }

    mutating func write(_ s: StatisticsMeta) {
        if let n = s.nullCount { i64(3, n) }
        if let m = s.maxValue { binary(5, m) }
        if let m = s.minValue { binary(6, m) }
        if let n = s.nanCount { i64(9, n) }
    }

    mutating func write(_ c: ColumnMeta) {
        i32(1, c.type)
        list(2, c.encodings.count, .i32) { w in for e in c.encodings { w.varint(Int64(e)) } }
        list(3, c.path.count, .binary) { w in for p in c.path { w.rawBinary(Array(p.utf8)) } }
        i32(4, c.codec)
        i64(5, c.numValues)
        i64(6, c.totalUncompressedSize)
        i64(7, c.totalCompressedSize)
        i64(9, c.dataPageOffset)
        if let d = c.dictionaryPageOffset { i64(11, d) }
        if let s = c.statistics { structure(12) { $0.write(s) } }
    }

    mutating func write(_ g: RowGroupMeta) {
        list(1, g.columns.count, .structure) { w in
            for c in g.columns {
                w.element { cw in
                    cw.i64(2, 0)
                    cw.structure(3) { $0.write(c) }
                }
            }
        }
        i64(2, g.totalByteSize)
        i64(3, g.numRows)
        if let o = g.fileOffset { i64(5, o) }
        if let t = g.totalCompressedSize { i64(6, t) }
        if let o = g.ordinal { i16(7, o) }
    }

    mutating func write(_ f: FileMeta) {
        i32(1, f.version)
        list(2, f.schema.count, .structure) { w in for e in f.schema { w.element { $0.write(e) } } }
        i64(3, f.numRows)
        list(4, f.rowGroups.count, .structure) { w in for g in f.rowGroups { w.element { $0.write(g) } } }
        if !f.keyValue.isEmpty {
            list(5, f.keyValue.count, .structure) { w in
                for kv in f.keyValue {
                    w.element { e in
                        e.string(1, kv.key)
                        if let v = kv.value { e.string(2, v) }
                    }
                }
            }
        }
        if let c = f.createdBy { string(6, c) }
        if f.columnOrderCount > 0 {
            list(7, f.columnOrderCount, .structure) { w in
                for _ in 0..<f.columnOrderCount { w.element { $0.structure(1) { _ in } } }
            }
        }
    }

    mutating func write(_ h: PageHeaderMeta) {
        i32(1, h.type)
        i32(2, h.uncompressedPageSize)
        i32(3, h.compressedPageSize)
        if let d = h.dataPage {
            structure(5) { w in
                w.i32(1, d.numValues)
                w.i32(2, d.encoding)
                w.i32(3, d.definitionLevelEncoding)
                w.i32(4, d.repetitionLevelEncoding)
            }
        }
        if let n = h.dictionaryNumValues {
            structure(7) { w in
                w.i32(1, n)
                w.i32(2, h.dictionaryEncoding ?? EncodingCode.plain)
            }
        }
    }
}

/// Serializes a top-level struct (no enclosing field header).
func encodeThrift(_ body: (inout CompactWriter) -> Void) -> [UInt8] {
    var w = CompactWriter()
    w.beginStruct()
    body(&w)
    w.endStruct()
    return w.bytes
}
