@testable import Sketches

/// A growing protobuf writer: the tests build ddsketch.proto messages in
/// the forms `DDSketch.protobufBytes` never writes (map entries, unpacked
/// counts, unknown fields).
struct ProtoWriter {
    var buffer: [UInt8] = []
    mutating func rawVarint(_ v0: UInt64) {
        var v = v0
        while v >= 0x80 {
            buffer.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        buffer.append(UInt8(v))
    }
    mutating func rawFixed64(_ v: UInt64) { for i in 0 ..< 8 { buffer.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func tag(_ field: Int, _ wire: Int) { rawVarint(UInt64(field << 3 | wire)) }
    mutating func varint(field: Int, _ v: UInt64) { tag(field, 0); rawVarint(v) }
    mutating func fixed64(field: Int, _ v: UInt64) { tag(field, 1); rawFixed64(v) }
    mutating func bytes(field: Int, _ b: [UInt8]) {
        tag(field, 2)
        rawVarint(UInt64(b.count))
        buffer += b
    }
}

