// Thrift compact protocol: just what parquet.thrift needs.
// Spec: apache/thrift doc/specs/thrift-compact-protocol.md.

enum CompactType: UInt8 {
    case boolTrue = 1, boolFalse = 2, i8 = 3, i16 = 4, i32 = 5, i64 = 6
    case double = 7, binary = 8, list = 9, set = 10, map = 11, structure = 12
}

@inline(__always) func zigzag(_ v: Int64) -> UInt64 {
    UInt64(bitPattern: (v << 1) ^ (v >> 63))
}

@inline(__always) func unzigzag(_ v: UInt64) -> Int64 {
    Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1)
}

/// Encoder. Fields must be written in increasing id order inside a struct.
struct CompactWriter {
    private(set) var bytes: [UInt8] = []
    private var lastFieldID: Int = 0
    private var savedIDs: [Int] = []

    init() { bytes.reserveCapacity(256) }

    mutating func fieldHeader(_ id: Int, _ type: CompactType) {
        let delta = id - lastFieldID
        if delta > 0 && delta <= 15 {
            bytes.append(UInt8(delta << 4) | type.rawValue)
        } else {
            bytes.append(type.rawValue)
            bytes.appendULEB128(zigzag(Int64(id)))
        }
        lastFieldID = id
    }

    mutating func beginStruct() {
        savedIDs.append(lastFieldID)
        lastFieldID = 0
    }

    mutating func endStruct() {
        bytes.append(0)
        lastFieldID = savedIDs.removeLast()
    }

    mutating func i32(_ id: Int, _ v: Int32) { fieldHeader(id, .i32); varint(Int64(v)) }
    mutating func i64(_ id: Int, _ v: Int64) { fieldHeader(id, .i64); varint(v) }
    mutating func i16(_ id: Int, _ v: Int16) { fieldHeader(id, .i16); varint(Int64(v)) }
    mutating func i8(_ id: Int, _ v: Int8) { fieldHeader(id, .i8); bytes.append(UInt8(bitPattern: v)) }
    mutating func bool(_ id: Int, _ v: Bool) { fieldHeader(id, v ? .boolTrue : .boolFalse) }
    mutating func binary(_ id: Int, _ v: [UInt8]) { fieldHeader(id, .binary); rawBinary(v) }
    mutating func string(_ id: Int, _ v: String) { binary(id, Array(v.utf8)) }

    /// A struct-typed field whose body is written by `body`.
    mutating func structure(_ id: Int, _ body: (inout CompactWriter) -> Void) {
        fieldHeader(id, .structure)
        beginStruct()
        body(&self)
        endStruct()
    }

    /// A list field; `body` writes the elements with the `raw*` / `element` methods.
    mutating func list(_ id: Int, _ count: Int, _ elem: CompactType, _ body: (inout CompactWriter) -> Void) {
        fieldHeader(id, .list)
        if count <= 14 {
            bytes.append(UInt8(count << 4) | elem.rawValue)
        } else {
            bytes.append(0xF0 | elem.rawValue)
            bytes.appendULEB128(UInt64(count))
        }
        body(&self)
    }

    /// One struct element of a list.
    mutating func element(_ body: (inout CompactWriter) -> Void) {
        beginStruct()
        body(&self)
        endStruct()
    }

    mutating func varint(_ v: Int64) { bytes.appendULEB128(zigzag(v)) }
    mutating func rawByte(_ b: UInt8) { bytes.append(b) }

    mutating func rawBinary(_ v: [UInt8]) {
        bytes.appendULEB128(UInt64(v.count))
        bytes.append(contentsOf: v)
    }
}

/// Decoder over a byte range; throws `ParquetError.corrupt` on malformed input.
struct CompactReader {
    var cursor: ByteCursor
    private var depth = 0
    static let maxDepth = 64

    init(_ bytes: [UInt8], range: Range<Int>? = nil, context: String) {
        cursor = ByteCursor(bytes, range: range, context: context)
    }

    var position: Int { cursor.position }

    /// Reads struct fields until the stop byte, calling `field(&reader, id, type)` for each.
    /// The callback must consume the value (or call `skip`).
    mutating func readStruct(_ field: (inout CompactReader, Int, CompactType) throws -> Void) throws {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { throw cursor.fail("thrift nesting too deep") }
        var last = 0
        while true {
            let b = try cursor.readByte()
            if b == 0 { return }
            let type = try compactType(b & 0x0F)
            let delta = Int(b >> 4)
            let id: Int
            if delta != 0 {
                id = last + delta
            } else {
                id = Int(try readI16())
            }
            last = id
            try field(&self, id, type)
        }
    }

    mutating func compactType(_ raw: UInt8) throws -> CompactType {
        guard let t = CompactType(rawValue: raw) else { throw cursor.fail("bad thrift type \(raw)") }
        return t
    }

    mutating func readI64() throws -> Int64 { unzigzag(try cursor.readULEB128()) }

    mutating func readI32() throws -> Int32 {
        let v = try readI64()
        guard let r = Int32(exactly: v) else { throw cursor.fail("i32 out of range") }
        return r
    }

    mutating func readI16() throws -> Int16 {
        let v = try readI64()
        guard let r = Int16(exactly: v) else { throw cursor.fail("i16 out of range") }
        return r
    }

    mutating func readI8() throws -> Int8 { Int8(bitPattern: try cursor.readByte()) }

    mutating func readBinary() throws -> [UInt8] {
        let n = try cursor.readULEB128()
        guard n <= UInt64(cursor.remaining) else { throw cursor.fail("binary length \(n) past end") }
        return try cursor.readBytes(Int(n))
    }

    mutating func readString() throws -> String {
        String(decoding: try readBinary(), as: UTF8.self)
    }

    /// Value of a bool field: encoded in its type nibble.
    func boolValue(_ type: CompactType) throws -> Bool {
        switch type {
        case .boolTrue: return true
        case .boolFalse: return false
        default: throw cursor.fail("expected bool, got \(type)")
        }
    }

    /// Reads a list header; the count is checked against the bytes left.
    mutating func readListHeader() throws -> (count: Int, elem: CompactType) {
        let b = try cursor.readByte()
        let elem = try compactType(b & 0x0F)
        var count = UInt64(b >> 4)
        if count == 15 { count = try cursor.readULEB128() }
        guard count <= UInt64(cursor.remaining) else { throw cursor.fail("list size \(count) past end") }
        return (Int(count), elem)
    }

    mutating func readList<T>(_ element: (inout CompactReader, CompactType) throws -> T) throws -> [T] {
        let (count, elem) = try readListHeader()
        var out: [T] = []
        out.reserveCapacity(count)
        for _ in 0..<count { out.append(try element(&self, elem)) }
        return out
    }

    /// Skips a value of `type`.
    mutating func skip(_ type: CompactType) throws {
        switch type {
        case .boolTrue, .boolFalse: return
        case .i8: _ = try cursor.readByte()
        case .i16, .i32, .i64: _ = try cursor.readULEB128()
        case .double: _ = try cursor.take(8, "double")
        case .binary: _ = try readBinary()
        case .list, .set: try skipList()
        case .map: try skipMap()
        case .structure: try readStruct { r, _, t in try r.skip(t) }
        }
    }

    private mutating func skipList() throws {
        let (count, elem) = try readListHeader()
        try nested {
            for _ in 0..<count {
                if elem == .boolTrue || elem == .boolFalse { _ = try $0.cursor.readByte() } else { try $0.skip(elem) }
            }
        }
    }

    private mutating func skipMap() throws {
        let n = try cursor.readULEB128()
        guard n != 0 else { return }
        guard n <= UInt64(cursor.remaining) else { throw cursor.fail("map size past end") }
        let kv = try cursor.readByte()
        let k = try compactType(kv >> 4), v = try compactType(kv & 0x0F)
        try nested {
            for _ in 0..<Int(n) {
                if k == .boolTrue || k == .boolFalse { _ = try $0.cursor.readByte() } else { try $0.skip(k) }
                if v == .boolTrue || v == .boolFalse { _ = try $0.cursor.readByte() } else { try $0.skip(v) }
            }
        }
    }

    private mutating func nested(_ body: (inout CompactReader) throws -> Void) throws {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { throw cursor.fail("thrift nesting too deep") }
        try body(&self)
    }
}
