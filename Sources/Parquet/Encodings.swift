// PLAIN encoding of the supported value types, and the RLE / bit-packing hybrid
// used for definition levels, dictionary indices and RLE booleans.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A Swift value type stored in one Parquet physical type.
protocol ParquetValue: Hashable {
    static var physical: PhysicalTypeCode { get }
    /// Appends the PLAIN encoding of `values` (booleans are bit-packed, so batch-only).
    static func appendPlain(_ values: [Self], to out: inout [UInt8])
    /// PLAIN size in bytes of one value (booleans: 1, an upper bound).
    static func plainSize(_ value: Self) -> Int
    /// Decodes `count` PLAIN values.
    static func decodePlain(_ c: inout ByteCursor, count: Int, into out: inout [Self]) throws
    /// Decodes `count` RLE-encoded values (BOOLEAN only; others throw).
    static func decodeRLE(_ c: inout ByteCursor, count: Int, into out: inout [Self]) throws
    /// Statistics: bytes of one value, and its ordering.
    var statisticsBytes: [UInt8] { get }
    static func statisticsLess(_ a: Self, _ b: Self) -> Bool
    /// Calls `body` with the value's bytes as a dictionary page tells
    /// values apart (`ColumnChunkWriter`'s dictionary: equal bytes, one
    /// entry): a byte array's bytes, a number's bit pattern.
    func withDictionaryBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R
    /// NaN: excluded from min/max (and then min/max are omitted).
    var isNaNValue: Bool { get }
    /// Bytes written as min_value / max_value (doubles: -0.0 / +0.0 for zeros).
    var statisticsMinBytes: [UInt8] { get }
    var statisticsMaxBytes: [UInt8] { get }
}

extension ParquetValue {
    var isNaNValue: Bool { false }
    var statisticsMinBytes: [UInt8] { statisticsBytes }
    var statisticsMaxBytes: [UInt8] { statisticsBytes }
}

extension ParquetValue where Self: FixedWidthInteger {
    static func appendPlain(_ values: [Self], to out: inout [UInt8]) {
        values.withUnsafeBytes { raw in
            if 1.littleEndian == 1 { out.append(contentsOf: raw) } else {
                for v in values { out.appendLE(v) }
            }
        }
    }
    static func plainSize(_ value: Self) -> Int { MemoryLayout<Self>.size }
    static func decodePlain(_ c: inout ByteCursor, count: Int, into out: inout [Self]) throws {
        let size = MemoryLayout<Self>.size
        let (total, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow else { throw c.fail("value count \(count) too large") }
        let range = try c.take(total, "PLAIN \(Self.self) values")
        c.bytes.withUnsafeBytes { raw in
            var p = range.lowerBound
            for _ in 0..<count {
                out.append(Self(littleEndian: raw.loadUnaligned(fromByteOffset: p, as: Self.self)))
                p += size
            }
        }
    }
    var statisticsBytes: [UInt8] { var b: [UInt8] = []; b.appendLE(self); return b }
    static func statisticsLess(_ a: Self, _ b: Self) -> Bool { a < b }
    func withDictionaryBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { withUnsafeBytes(of: self, body) }
}

extension Int32: ParquetValue { static var physical: PhysicalTypeCode { .int32 } }
extension Int64: ParquetValue { static var physical: PhysicalTypeCode { .int64 } }

extension Double: ParquetValue {
    static var physical: PhysicalTypeCode { .double }
    static func appendPlain(_ values: [Double], to out: inout [UInt8]) {
        for v in values { out.appendLE(v.bitPattern) }
    }
    static func plainSize(_ value: Double) -> Int { 8 }
    static func decodePlain(_ c: inout ByteCursor, count: Int, into out: inout [Double]) throws {
        var bits: [UInt64] = []
        try UInt64.decodePlainBits(&c, count: count, into: &bits)
        out.append(contentsOf: bits.lazy.map(Double.init(bitPattern:)))
    }
    var statisticsBytes: [UInt8] { var b: [UInt8] = []; b.appendLE(bitPattern); return b }
    static func statisticsLess(_ a: Double, _ b: Double) -> Bool { a < b }
    var isNaNValue: Bool { isNaN }
    var statisticsMinBytes: [UInt8] { (self == 0 ? -0.0 : self).statisticsBytes }
    var statisticsMaxBytes: [UInt8] { (self == 0 ? 0.0 : self).statisticsBytes }
    func withDictionaryBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { withUnsafeBytes(of: bitPattern, body) }
}

extension UInt64 {
    static func decodePlainBits(_ c: inout ByteCursor, count: Int, into out: inout [UInt64]) throws {
        let (total, overflow) = count.multipliedReportingOverflow(by: 8)
        guard !overflow else { throw c.fail("value count \(count) too large") }
        let range = try c.take(total, "PLAIN DOUBLE values")
        out.reserveCapacity(count)
        c.bytes.withUnsafeBytes { raw in
            for i in 0..<count {
                out.append(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: range.lowerBound + 8 * i,
                                                                  as: UInt64.self)))
            }
        }
    }
}

extension Bool: ParquetValue {
    static var physical: PhysicalTypeCode { .boolean }
    static func appendPlain(_ values: [Bool], to out: inout [UInt8]) {
        var byte: UInt8 = 0
        for (i, v) in values.enumerated() {
            if v { byte |= 1 << UInt8(i & 7) }
            if i & 7 == 7 { out.append(byte); byte = 0 }
        }
        if values.count & 7 != 0 { out.append(byte) }
    }
    static func plainSize(_ value: Bool) -> Int { 1 }
    static func decodePlain(_ c: inout ByteCursor, count: Int, into out: inout [Bool]) throws {
        let range = try c.take((count + 7) / 8, "PLAIN BOOLEAN values")
        for i in 0..<count {
            out.append(c.bytes[range.lowerBound + i >> 3] >> UInt8(i & 7) & 1 == 1)
        }
    }
    var statisticsBytes: [UInt8] { [self ? 1 : 0] }
    static func statisticsLess(_ a: Bool, _ b: Bool) -> Bool { !a && b }
    func withDictionaryBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { withUnsafeBytes(of: self ? UInt8(1) : 0, body) }
}

extension Array: ParquetValue where Element == UInt8 {
    static var physical: PhysicalTypeCode { .byteArray }
    static func appendPlain(_ values: [[UInt8]], to out: inout [UInt8]) {
        for v in values {
            out.appendLE(UInt32(truncatingIfNeeded: v.count))
            out.append(contentsOf: v)
        }
    }
    static func plainSize(_ value: [UInt8]) -> Int { 4 + value.count }
    static func decodePlain(_ c: inout ByteCursor, count: Int, into out: inout [[UInt8]]) throws {
        for _ in 0..<count {
            let n = try c.readLE(UInt32.self)
            guard n <= UInt32(Int32.max) else { throw c.fail("byte array length \(n)") }
            out.append(try c.readBytes(Int(n)))
        }
    }
    var statisticsBytes: [UInt8] { self }
    /// Unsigned byte order (Parquet's for BYTE_ARRAY statistics), compared
    /// eight bytes at a time: the generic element-wise compare was a visible
    /// part of writing the string columns (bench/results/speed.md §16), and
    /// `memcmp`, a call the compiler cannot see into, made it retain both
    /// arrays around every compare (section 39).
    static func statisticsLess(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in unsignedLess(x, y) } }
    }

    /// Whether `x` sorts before `y` as unsigned bytes (a prefix first).
    @inline(__always)
    static func unsignedLess(_ x: UnsafeRawBufferPointer, _ y: UnsafeRawBufferPointer) -> Bool {
        let n = Swift.min(x.count, y.count)
        var k = 0
        while k + 8 <= n {
            let a = UInt64(bigEndian: x.loadUnaligned(fromByteOffset: k, as: UInt64.self))
            let b = UInt64(bigEndian: y.loadUnaligned(fromByteOffset: k, as: UInt64.self))
            if a != b { return a < b }
            k += 8
        }
        while k < n {
            if x[k] != y[k] { return x[k] < y[k] }
            k += 1
        }
        return x.count < y.count
    }
    func withDictionaryBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { withUnsafeBytes(body) }
}

// MARK: - RLE / bit-packing hybrid

/// Number of bits needed for values up to `maxValue`.
func bitWidth(forMax maxValue: UInt32) -> Int {
    maxValue == 0 ? 0 : 32 - maxValue.leadingZeroBitCount
}

enum RleHybrid {
    /// Appends `values` (each < 2^bitWidth) as hybrid runs: repeats of 8+ become RLE
    /// runs, the rest bit-packed groups of 8 (the last one zero-padded).
    static func encode<T: BinaryInteger>(_ values: [T], bitWidth: Int, to out: inout [UInt8]) {
        var i = 0
        let n = values.count
        while i < n {
            let run = runLength(values, at: i)
            if run >= 8 {
                out.appendULEB128(UInt64(run) << 1)
                appendRleValue(UInt32(values[i]), bitWidth: bitWidth, to: &out)
                i += run
            } else {
                var end = min(i + 8, n)
                while end < n && runLength(values, at: end) < 8 { end = min(end + 8, n) }
                let groups = (end - i + 7) / 8
                out.appendULEB128(UInt64(groups) << 1 | 1)
                bitPack(values, i..<end, groups: groups, bitWidth: bitWidth, to: &out)
                i = end
            }
        }
    }

    private static func runLength<T: BinaryInteger>(_ v: [T], at i: Int) -> Int {
        var j = i + 1
        while j < v.count && v[j] == v[i] { j += 1 }
        return j - i
    }

    private static func appendRleValue(_ value: UInt32, bitWidth: Int, to out: inout [UInt8]) {
        for b in 0..<(bitWidth + 7) / 8 { out.append(UInt8(truncatingIfNeeded: value >> (8 * b))) }
    }

    private static func bitPack<T: BinaryInteger>(_ v: [T], _ r: Range<Int>, groups: Int,
                                                  bitWidth: Int, to out: inout [UInt8]) {
        var acc: UInt64 = 0
        var bits = 0
        for k in 0..<groups * 8 {
            let idx = r.lowerBound + k
            let value = idx < r.upperBound ? UInt64(v[idx]) : 0
            acc |= value << UInt64(bits)
            bits += bitWidth
            while bits >= 8 {
                out.append(UInt8(truncatingIfNeeded: acc))
                acc >>= 8
                bits -= 8
            }
        }
    }

    /// Decodes `count` values of `bitWidth` bits from the cursor (up to its end),
    /// appending them to `out`. A short final bit-packed run is accepted.
    static func decode(_ c: inout ByteCursor, count: Int, bitWidth: Int, into out: inout [UInt32]) throws {
        guard bitWidth >= 0 && bitWidth <= 32 else { throw c.fail("bit width \(bitWidth)") }
        var left = count
        while left > 0 {
            let header = try c.readULEB128()
            if header & 1 == 0 {
                let run = header >> 1
                var value: UInt32 = 0
                for b in 0..<(bitWidth + 7) / 8 { value |= UInt32(try c.readByte()) << (8 * b) }
                guard bitWidth == 32 || value >> UInt32(bitWidth) == 0 else {
                    throw c.fail("RLE value \(value) wider than \(bitWidth) bits")
                }
                let take = Int(min(run, UInt64(left)))
                out.append(contentsOf: repeatElement(value, count: take))
                left -= take
            } else {
                // Width 0 (a one-entry dictionary) packs any number of groups into 0 bytes.
                let groups = bitWidth == 0 ? min(header >> 1, UInt64(left)) : header >> 1
                guard bitWidth == 0 || groups <= UInt64(c.remaining) else { throw c.fail("bit-packed run past end") }
                let values = min(Int(groups) * 8, left)
                try unpack(&c, values: values, groups: Int(groups), bitWidth: bitWidth, into: &out)
                left -= values
            }
        }
    }

    private static func unpack(_ c: inout ByteCursor, values: Int, groups: Int, bitWidth: Int,
                               into out: inout [UInt32]) throws {
        let runBytes = groups * bitWidth
        let available = min(runBytes, c.remaining)
        let needed = (values * bitWidth + 7) / 8
        guard needed <= available else { throw c.fail("bit-packed run truncated") }
        let start = c.position
        let mask: UInt64 = bitWidth == 0 ? 0 : (UInt64(1) << UInt64(bitWidth)) - 1
        var acc: UInt64 = 0, bits = 0, p = start
        for _ in 0..<values {
            while bits < bitWidth {
                acc |= UInt64(c.bytes[p]) << UInt64(bits)
                p += 1
                bits += 8
            }
            out.append(UInt32(truncatingIfNeeded: acc & mask))
            acc >>= UInt64(bitWidth)
            bits -= bitWidth
        }
        c.position = start + available
    }
}
