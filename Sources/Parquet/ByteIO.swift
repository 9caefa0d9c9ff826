// Little-endian output helpers and a bounds-checked input cursor.

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    @inline(__always)
    mutating func appendULEB128(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(v))
    }
}

/// Reads a byte range of an array; every read checks bounds and throws
/// `ParquetError.corrupt` naming `context` instead of trapping.
struct ByteCursor {
    let bytes: [UInt8]
    var position: Int
    let end: Int
    let context: String

    init(_ bytes: [UInt8], range: Range<Int>? = nil, context: String) {
        self.bytes = bytes
        let r = range ?? 0..<bytes.count
        self.position = r.lowerBound
        self.end = r.upperBound
        self.context = context
    }

    var remaining: Int { end - position }
    var isAtEnd: Bool { position >= end }

    func fail(_ what: String) -> ParquetError {
        .corrupt("\(context): \(what) at byte \(position)")
    }

    mutating func need(_ n: Int, _ what: String) throws {
        guard n >= 0, n <= remaining else {
            throw fail("truncated \(what) (need \(n) bytes, \(max(remaining, 0)) left)")
        }
    }

    mutating func readByte() throws -> UInt8 {
        try need(1, "byte")
        defer { position += 1 }
        return bytes[position]
    }

    mutating func readLE<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        try need(size, "\(T.self)")
        let value = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: position, as: T.self) }
        position += size
        return T(littleEndian: value)
    }

    mutating func readULEB128() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try readByte()
            guard shift < 64 else { throw fail("varint too long") }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func readBytes(_ n: Int) throws -> [UInt8] {
        try need(n, "byte string")
        defer { position += n }
        return Array(bytes[position..<position + n])
    }

    /// Skips `n` bytes and returns their range.
    mutating func take(_ n: Int, _ what: String) throws -> Range<Int> {
        try need(n, what)
        defer { position += n }
        return position..<position + n
    }
}
