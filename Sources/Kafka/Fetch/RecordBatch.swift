// Record batches (message format v2) read in place from a Fetch
// response's record set (docs/kafka-fetch.md "Record batches").

import QoSCore

/// The fixed 61-byte header of a record batch.
struct RecordBatchHeader {
    static let size = 61
    /// Bytes before `batchLength` counts (baseOffset, batchLength).
    static let logOverhead = 12

    let baseOffset: Int64
    /// Bytes after the `batchLength` field.
    let batchLength: Int
    let magic: Int8
    let attributes: Int16
    let lastOffsetDelta: Int32
    let baseTimestamp: Int64
    let maxTimestamp: Int64
    let producerId: Int64
    let recordCount: Int

    /// 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    var compression: Int { Int(attributes & 0x7) }
    var logAppendTime: Bool { attributes & 0x8 != 0 }
    var isTransactional: Bool { attributes & 0x10 != 0 }
    var isControl: Bool { attributes & 0x20 != 0 }
    var lastOffset: Int64 { baseOffset &+ Int64(lastOffsetDelta) }
}

/// One step through a record set.
enum RecordSetItem {
    /// A whole batch: its header and where its records' bytes are.
    case batch(RecordBatchHeader, records: Range<Int>)
    /// The bytes left are the start of a batch cut off by the fetch's size
    /// limit: the next fetch starts at the offset after the last whole batch.
    case partial
    /// A message set of format 0 or 1 at this offset (not read here).
    case oldFormat(baseOffset: Int64)
    case end
}

/// Walks the batches of one partition's record set.
struct RecordSetReader {
    private var reader: WireReader

    init(_ buffer: UnsafeRawBufferPointer, range: Range<Int>) {
        reader = WireReader(buffer, from: range.lowerBound, to: range.upperBound)
    }

    /// The response the record set is in.
    var buffer: UnsafeRawBufferPointer { reader.base }

    mutating func next() throws(WireError) -> RecordSetItem {
        if reader.remaining == 0 { return .end }
        if reader.remaining < RecordBatchHeader.logOverhead + 5 { return .partial }
        let start = reader.position
        let baseOffset = try reader.int64("batch base offset")
        let length = Int(try reader.int32("batch length"))
        guard length >= 0 else { throw WireError("negative record batch length \(length)") }
        if length > reader.remaining { return .partial }
        let batchEnd = reader.position + length
        _ = try reader.int32("partition leader epoch")
        let magic = try reader.int8("magic")
        guard magic == 2 else { return .oldFormat(baseOffset: baseOffset) }
        guard length >= RecordBatchHeader.size - RecordBatchHeader.logOverhead else {
            throw WireError("record batch at offset \(baseOffset): \(length) bytes is shorter than its header")
        }
        let crc = UInt32(bitPattern: try reader.int32("crc"))
        let sealed = UnsafeRawBufferPointer(rebasing: reader.base[reader.position..<batchEnd])
        guard CRC32C.checksum(sealed) == crc else {
            throw WireError("record batch at offset \(baseOffset) fails its CRC-32C")
        }
        let attributes = try reader.int16("attributes")
        let lastOffsetDelta = try reader.int32("last offset delta")
        let baseTimestamp = try reader.int64("base timestamp")
        let maxTimestamp = try reader.int64("max timestamp")
        let producerId = try reader.int64("producer id")
        _ = try reader.int16("producer epoch")
        _ = try reader.int32("base sequence")
        let count = Int(try reader.int32("record count"))
        guard count >= 0, lastOffsetDelta >= 0 else {
            throw WireError("record batch at offset \(baseOffset): \(count) records, last offset delta \(lastOffsetDelta)")
        }
        assert(reader.position == start + RecordBatchHeader.size)
        let header = RecordBatchHeader(
            baseOffset: baseOffset, batchLength: length, magic: magic, attributes: attributes,
            lastOffsetDelta: lastOffsetDelta, baseTimestamp: baseTimestamp, maxTimestamp: maxTimestamp,
            producerId: producerId, recordCount: count)
        let records = reader.position..<batchEnd
        try reader.skip(batchEnd - reader.position, "records")
        return .batch(header, records: records)
    }
}

/// One record of a batch, its bytes lent from the batch's buffer.
struct BatchRecord {
    let offsetDelta: Int
    let timestampDelta: Int64
    let key: UnsafeRawBufferPointer?
    let value: UnsafeRawBufferPointer?
}

/// The records of one batch, uncompressed, in order. The hot loop of the
/// fetch path: it reads the buffer through a raw pointer, with every
/// length checked against the record's own end (docs/kafka-fetch.md
/// "Record batches").
struct BatchRecordReader {
    private let base: UnsafeRawPointer?
    private var position: Int
    private let end: Int
    private(set) var left: Int

    init(_ buffer: UnsafeRawBufferPointer, range: Range<Int>, count: Int) {
        precondition(range.lowerBound >= 0 && range.upperBound <= buffer.count, "records outside their buffer")
        base = buffer.baseAddress
        position = range.lowerBound
        end = range.upperBound
        left = count
    }

    /// A zigzag varint at `p`, before `e`: nil when it runs past `e` or
    /// over 10 bytes. Values written as 32-bit varints read the same.
    @inline(__always)
    private static func varint(_ b: UnsafeRawPointer, _ p: inout Int, _ e: Int) -> Int? {
        guard p < e else { return nil }
        let b0 = b.load(fromByteOffset: p, as: UInt8.self)
        if b0 < 0x80 {
            p += 1
            return Int(b0 >> 1) ^ -Int(b0 & 1)
        }
        var u = UInt64(b0 & 0x7f)
        var shift: UInt64 = 7
        var q = p + 1
        while q < e && shift < 70 {
            let bx = b.load(fromByteOffset: q, as: UInt8.self)
            q += 1
            u |= UInt64(bx & 0x7f) << shift
            if bx < 0x80 {
                p = q
                return Int(Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1))))
            }
            shift += 7
        }
        return nil
    }

    /// A length-prefixed field at `p` (-1: null), inside `e`.
    @inline(__always)
    private static func field(_ b: UnsafeRawPointer, _ p: inout Int, _ e: Int, nullable: Bool) -> UnsafeRawBufferPointer?? {
        guard let n = varint(b, &p, e) else { return nil }
        if n == -1 && nullable { return .some(nil) }
        guard n >= 0, n <= e - p else { return nil }
        defer { p += n }
        return .some(UnsafeRawBufferPointer(start: b + p, count: n))
    }

    /// The next record; nil after the batch's count.
    @inline(__always)
    mutating func next() throws(WireError) -> BatchRecord? {
        guard left > 0 else { return nil }
        left -= 1
        guard let b = base else { throw WireError("a batch of \(left + 1) records has no bytes") }
        let at = position
        var p = position
        guard let length = Self.varint(b, &p, end), length > 0, length <= end - p else { throw malformed(at) }
        let e = p + length
        position = e
        p += 1  // attributes (unused)
        guard let timestampDelta = Self.varint(b, &p, e),
              let offsetDelta = Self.varint(b, &p, e), offsetDelta >= 0, offsetDelta <= Int(Int32.max),
              let key = Self.field(b, &p, e, nullable: true),
              let value = Self.field(b, &p, e, nullable: true),
              let headers = Self.varint(b, &p, e), headers >= 0 else { throw malformed(at) }
        for _ in 0..<headers {
            guard Self.field(b, &p, e, nullable: false) != nil, Self.field(b, &p, e, nullable: true) != nil else {
                throw malformed(at)
            }
        }
        guard p == e else { throw malformed(at) }
        return BatchRecord(offsetDelta: offsetDelta, timestampDelta: Int64(timestampDelta), key: key, value: value)
    }

    private func malformed(_ at: Int) -> WireError {
        WireError("malformed record at byte \(at) of its batch")
    }
}

/// A control record's key: which end of a transaction its batch marks.
enum ControlRecord {
    case abort, commit, other

    init(key: UnsafeRawBufferPointer?) throws(WireError) {
        guard let key else { throw WireError("control record without a key") }
        var r = WireReader(key)
        _ = try r.int16("control record version")
        switch try r.int16("control record type") {
        case 0: self = .abort
        case 1: self = .commit
        default: self = .other
        }
    }
}
