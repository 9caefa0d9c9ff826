// Read-only Snappy (raw block format), so that default pyarrow files can be read.
// Format: google/snappy format_description.txt.

/// Decompresses one raw Snappy block whose size is known from the page header.
func snappyDecompress(_ bytes: [UInt8], range: Range<Int>, expectedSize: Int) throws -> [UInt8] {
    var c = ByteCursor(bytes, range: range, context: "page: snappy")
    let length = try c.readULEB128()
    guard length == UInt64(expectedSize), expectedSize <= maxPageSize else {
        throw c.fail("block holds \(length) bytes, header says \(expectedSize)")
    }
    var out: [UInt8] = []
    out.reserveCapacity(expectedSize)
    while !c.isAtEnd {
        let tag = try c.readByte()
        if tag & 3 == 0 {
            try snappyLiteral(tag, &c, &out)
        } else {
            let (len, offset) = try snappyCopyHeader(tag, &c)
            guard offset > 0, offset <= out.count, len <= expectedSize - out.count else {
                throw c.fail("bad copy (offset \(offset), length \(len))")
            }
            let start = out.count - offset
            for i in 0..<len { out.append(out[start + i]) }
        }
        guard out.count <= expectedSize else { throw c.fail("output exceeds \(expectedSize) bytes") }
    }
    guard out.count == expectedSize else { throw c.fail("block ended at \(out.count) of \(expectedSize) bytes") }
    return out
}

private func snappyLiteral(_ tag: UInt8, _ c: inout ByteCursor, _ out: inout [UInt8]) throws {
    var len = Int(tag >> 2)
    if len >= 60 {
        let extra = len - 59
        len = 0
        for i in 0..<extra { len |= Int(try c.readByte()) << (8 * i) }
    }
    let r = try c.take(len + 1, "literal")
    out.append(contentsOf: c.bytes[r])
}

private func snappyCopyHeader(_ tag: UInt8, _ c: inout ByteCursor) throws -> (length: Int, offset: Int) {
    switch tag & 3 {
    case 1:
        let low = Int(try c.readByte())
        return (4 + Int((tag >> 2) & 7), Int(tag >> 5) << 8 | low)
    case 2:
        return (1 + Int(tag >> 2), Int(try c.readLE(UInt16.self)))
    default:
        return (1 + Int(tag >> 2), Int(try c.readLE(UInt32.self)))
    }
}
