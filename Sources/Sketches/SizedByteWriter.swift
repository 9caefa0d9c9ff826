/// Writes a serialized sketch whose exact length is known up front straight
/// into its array's storage (`[UInt8](unsafeUninitializedCapacity:)`):
/// appending each value to an array cost about 100 instructions a value
/// (bench/results/speed.md section 49). Every write is bounds-checked.
struct SizedByteWriter {
    private let base: UnsafeMutableBufferPointer<UInt8>
    private(set) var count = 0
    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) { base = buffer }

    @inline(__always) mutating func byte(_ b: UInt8) {
        precondition(count < base.count, "serialized sketch larger than its computed length")
        base[count] = b
        count += 1
    }

    /// `v` in little-endian byte order.
    @inline(__always) mutating func littleEndian<T: FixedWidthInteger>(_ v: T) {
        let n = MemoryLayout<T>.size
        precondition(count + n <= base.count, "serialized sketch larger than its computed length")
        UnsafeMutableRawPointer(base.baseAddress! + count).storeBytes(of: v.littleEndian, as: T.self)
        count += n
    }

    mutating func bytes(_ b: [UInt8]) {
        precondition(count + b.count <= base.count, "serialized sketch larger than its computed length")
        b.withUnsafeBufferPointer { src in
            if let from = src.baseAddress { (base.baseAddress! + count).initialize(from: from, count: src.count) }
        }
        count += b.count
    }
}

// The protobuf encodings `DDSketch.protobufBytes` writes.
extension SizedByteWriter {
    mutating func rawVarint(_ v0: UInt64) {
        var v = v0
        while v >= 0x80 {
            byte(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        byte(UInt8(v))
    }
    @inline(__always) mutating func rawFixed64(_ v: UInt64) { littleEndian(v) }
    mutating func tag(_ field: Int, _ wire: Int) { rawVarint(UInt64(field << 3 | wire)) }
    mutating func varint(field: Int, _ v: UInt64) { tag(field, 0); rawVarint(v) }
    mutating func fixed64(field: Int, _ v: UInt64) { tag(field, 1); rawFixed64(v) }
}
