// Parquet module: a small, dependency-free (besides libzstd) writer and reader
// for flat Parquet files. Public API types live here; the layers are:
//   ThriftCompact.swift      Thrift compact protocol encoder / decoder
//   FormatMetadata*.swift    parquet.thrift structs we use, encode + decode
//   ByteIO.swift             little-endian buffers and a bounds-checked cursor
//   Encodings.swift          PLAIN and RLE / bit-packed hybrid
//   Compression.swift        ZSTD through libzstd; Snappy.swift: read-only Snappy
//   ColumnWriter.swift       pages of one column chunk (dictionary, fallback, stats)
//   FileWriter.swift         writeParquet: row groups, footer
//   ColumnReader.swift       pages of one column chunk back to values
//   FileReader.swift         ParquetFileReader

/// Physical (storage) type of a column.
public enum ParquetPhysicalType: Sendable, Equatable, CaseIterable {
    case boolean, int32, int64, double, byteArray
}

/// Logical annotation of a column. `.string` requires `.byteArray`,
/// `.timestampMicrosUTC` (Int64 microseconds since the epoch, UTC) requires `.int64`.
public enum ParquetLogicalType: Sendable, Equatable {
    case none, string, timestampMicrosUTC
}

/// One flat column of the schema. `optional` columns may hold nulls.
public struct ParquetField: Sendable, Equatable {
    public var name: String
    public var physical: ParquetPhysicalType
    public var logical: ParquetLogicalType
    public var optional: Bool

    public init(name: String, physical: ParquetPhysicalType,
                logical: ParquetLogicalType = .none, optional: Bool = true) {
        self.name = name
        self.physical = physical
        self.logical = logical
        self.optional = optional
    }

    /// UTF-8 string column (BYTE_ARRAY + STRING).
    public static func string(_ name: String, optional: Bool = true) -> ParquetField {
        ParquetField(name: name, physical: .byteArray, logical: .string, optional: optional)
    }
    /// Raw bytes column (BYTE_ARRAY, no logical type; DuckDB shows BLOB).
    public static func blob(_ name: String, optional: Bool = true) -> ParquetField {
        ParquetField(name: name, physical: .byteArray, optional: optional)
    }
    public static func int64(_ name: String, optional: Bool = true) -> ParquetField {
        ParquetField(name: name, physical: .int64, optional: optional)
    }
    public static func int32(_ name: String, optional: Bool = true) -> ParquetField {
        ParquetField(name: name, physical: .int32, optional: optional)
    }
    public static func double(_ name: String, optional: Bool = true) -> ParquetField {
        ParquetField(name: name, physical: .double, optional: optional)
    }
    public static func boolean(_ name: String, optional: Bool = true) -> ParquetField {
        ParquetField(name: name, physical: .boolean, optional: optional)
    }
    /// TIMESTAMP(MICROS, isAdjustedToUTC=true) stored as Int64 microseconds.
    public static func timestamp(_ name: String, optional: Bool = true) -> ParquetField {
        ParquetField(name: name, physical: .int64, logical: .timestampMicrosUTC, optional: optional)
    }
}

/// The values of one column; `nil` is a null. Strings are UTF-8 bytes in `.byteArray`.
public enum ParquetColumnData: Sendable, Equatable {
    case boolean([Bool?])
    case int32([Int32?])
    case int64([Int64?])
    case double([Double?])
    case byteArray([[UInt8]?])

    /// A string column as UTF-8 bytes.
    public static func strings(_ values: [String?]) -> ParquetColumnData {
        .byteArray(values.map { $0.map { Array($0.utf8) } })
    }

    /// Number of values (rows), nulls included.
    public var count: Int {
        switch self {
        case .boolean(let v): return v.count
        case .int32(let v): return v.count
        case .int64(let v): return v.count
        case .double(let v): return v.count
        case .byteArray(let v): return v.count
        }
    }

    public var physicalType: ParquetPhysicalType {
        switch self {
        case .boolean: return .boolean
        case .int32: return .int32
        case .int64: return .int64
        case .double: return .double
        case .byteArray: return .byteArray
        }
    }

    /// Byte-array values decoded as UTF-8 (invalid sequences are repaired with U+FFFD);
    /// nil when the column is not a byte-array column.
    public var stringValues: [String?]? {
        guard case .byteArray(let v) = self else { return nil }
        return v.map { $0.map { String(decoding: $0, as: UTF8.self) } }
    }
}

/// Errors thrown by the writer (`invalidArgument`) and the reader (the others).
/// The message names what is wrong.
public enum ParquetError: Error, Equatable, CustomStringConvertible {
    /// The writer was given inconsistent input.
    case invalidArgument(String)
    /// The file is truncated or malformed.
    case corrupt(String)
    /// A valid Parquet feature this implementation does not read.
    case unsupported(String)
    /// libzstd failed.
    case compression(String)

    public var description: String {
        switch self {
        case .invalidArgument(let m): return "parquet: invalid argument: \(m)"
        case .corrupt(let m): return "parquet: corrupt file: \(m)"
        case .unsupported(let m): return "parquet: unsupported: \(m)"
        case .compression(let m): return "parquet: compression: \(m)"
        }
    }
}

/// Page compression codec used by the writer.
public enum ParquetCompression: Sendable, Equatable {
    case uncompressed
    case zstd(level: Int)
}

/// Writer knobs. Defaults follow docs/semantics.md §5 (ZSTD, dictionary strings, statistics).
public struct ParquetWriterOptions: Sendable {
    public var compression: ParquetCompression = .zstd(level: 3)
    /// A new row group starts when the current one reaches this many rows ...
    public var rowGroupMaxRows: Int = 1_000_000
    /// ... or this many estimated (PLAIN, uncompressed) bytes.
    public var rowGroupMaxBytes: Int = 128 << 20
    /// A data page ends at this many rows or estimated bytes.
    public var dataPageMaxRows: Int = 20_000
    public var dataPageMaxBytes: Int = 1 << 20
    /// Dictionary-encode STRING columns while the dictionary (PLAIN bytes) stays within
    /// this bound; past it the chunk's remaining pages fall back to PLAIN. 0 disables.
    public var dictionaryMaxBytes: Int = 1 << 20
    /// Write min/max/null_count statistics per column chunk.
    public var writeStatistics: Bool = true
    /// Byte-array min/max longer than this are omitted (null_count is still written).
    public var statisticsMaxBinaryLength: Int = 256
    /// Footer key/value metadata, in this order. Reserved keys (`ARROW:schema`,
    /// `pandas`, `org.apache.spark.*`) are rejected.
    public var keyValueMetadata: [(key: String, value: String)] = []
    /// `NAME version X.Y.Z (build HASH)`.
    public var createdBy: String = "videoqos version 0.1.0 (build 0)"

    public init() {}
}
