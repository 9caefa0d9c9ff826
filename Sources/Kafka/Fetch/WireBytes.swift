// The Kafka protocol's primitive types, written and read big-endian
// (docs/kafka-fetch.md "The wire"); records' varints are read by
// `BatchRecordReader`. Every read is bounds-checked: a
// broker's bytes are input, and a short or lying length is a
// `WireError`, never a read past the buffer.

/// A response or record batch that does not parse.
public struct WireError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ what: String) { description = what }
}

/// Builds a request: big-endian integers, int16-length strings, int32-count arrays.
struct WireWriter {
    private(set) var bytes: [UInt8] = []

    mutating func int8(_ v: Int8) { bytes.append(UInt8(bitPattern: v)) }
    mutating func int16(_ v: Int16) { append(UInt16(bitPattern: v)) }
    mutating func int32(_ v: Int32) { append(UInt32(bitPattern: v)) }
    mutating func int64(_ v: Int64) { append(UInt64(bitPattern: v)) }

    private mutating func append<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// A STRING (int16 length, UTF-8); nil is the NULLABLE_STRING null (-1).
    mutating func string(_ s: String?) {
        guard let s else { int16(-1); return }
        let utf8 = Array(s.utf8)
        precondition(utf8.count <= Int(Int16.max), "a Kafka string is at most 32767 bytes")
        int16(Int16(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// An ARRAY: its count, then each element.
    mutating func array<C: Collection>(_ c: C, _ element: (inout WireWriter, C.Element) -> Void) {
        int32(Int32(c.count))
        for e in c { element(&self, e) }
    }

    /// Overwrites 4 bytes at `at` (a size prefix written last).
    mutating func patchInt32(_ v: Int32, at: Int) {
        let u = UInt32(bitPattern: v)
        for i in 0..<4 { bytes[at + i] = UInt8(truncatingIfNeeded: u >> (24 - 8 * UInt32(i))) }
    }
}

/// Reads a response or record batch in place; `position` only moves forward.
struct WireReader {
    let base: UnsafeRawBufferPointer
    private(set) var position: Int
    let end: Int

    init(_ base: UnsafeRawBufferPointer, from: Int = 0, to: Int? = nil) {
        self.base = base
        position = from
        end = to ?? base.count
        precondition(0 <= from && from <= end && end <= base.count)
    }

    var remaining: Int { end - position }

    @inline(__always)
    mutating func need(_ n: Int, _ what: StaticString) throws(WireError) {
        guard n >= 0, n <= end - position else { throw WireError("truncated \(what)") }
    }

    private mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: StaticString) throws(WireError) -> T {
        try need(MemoryLayout<T>.size, what)
        let v = base.loadUnaligned(fromByteOffset: position, as: T.self)
        position += MemoryLayout<T>.size
        return T(bigEndian: v)
    }

    mutating func int8(_ what: StaticString) throws(WireError) -> Int8 { try load(Int8.self, what) }
    mutating func int16(_ what: StaticString) throws(WireError) -> Int16 { try load(Int16.self, what) }
    mutating func int32(_ what: StaticString) throws(WireError) -> Int32 { try load(Int32.self, what) }
    mutating func int64(_ what: StaticString) throws(WireError) -> Int64 { try load(Int64.self, what) }

    @inline(__always)
    mutating func skip(_ n: Int, _ what: StaticString) throws(WireError) {
        try need(n, what)
        position += n
    }

    /// A STRING or NULLABLE_STRING (nil for -1).
    mutating func string(_ what: StaticString) throws(WireError) -> String? {
        let n = Int(try int16(what))
        if n < 0 { return nil }
        try need(n, what)
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: base[position..<position + n]), as: UTF8.self)
        position += n
        return s
    }

    /// An ARRAY's count: 0 for the null array (-1); a count that the
    /// remaining bytes cannot hold at `minElementBytes` each is an error.
    mutating func arrayCount(_ what: StaticString, minElementBytes: Int) throws(WireError) -> Int {
        let n = Int(try int32(what))
        if n < 0 { return 0 }
        guard n <= remaining / max(1, minElementBytes) else { throw WireError("\(what): \(n) elements in \(remaining) bytes") }
        return n
    }
}
