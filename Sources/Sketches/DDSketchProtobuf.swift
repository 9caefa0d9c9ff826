// Hand-written protobuf (proto3) codec for DataDog's ddsketch.proto
// (DataDog/sketches-py ddsketch/pb/ddsketch.proto):
//   DDSketch     { IndexMapping mapping = 1; Store positiveValues = 2; Store negativeValues = 3;
//                  double zeroCount = 4; }
//   IndexMapping { double gamma = 1; double indexOffset = 2; Interpolation interpolation = 3; }
//   Store        { map<sint32, double> binCounts = 1; repeated double contiguousBinCounts = 2 [packed];
//                  sint32 contiguousBinIndexOffset = 3; }
// Canonical output: mapping {gamma} (offset 0 and NONE are proto3 defaults, omitted);
// positiveValues only when non-empty, as packed contiguous counts over [minKey, maxKey]
// with the zigzag offset minKey (omitted when 0); no negativeValues; zeroCount when != 0.
// sketches-py reads only the contiguous fields; we read both forms.

extension DDSketch {
    /// The canonical message's lengths: bins written (`minKey…maxKey`), the
    /// packed counts' bytes, the positive store's bytes, the whole message.
    private var protobufLayout: (bins: Int, countsLen: Int, storeLen: Int, total: Int) {
        let n = positiveCount > 0 ? maxKey - minKey + 1 : 0
        let countsLen = 8 * n
        let storeLen = n == 0 ? 0
            : 1 + varintSize(UInt64(countsLen)) + countsLen
                + (minKey != 0 ? 1 + varintSize(zigzag(Int32(minKey))) : 0)
        let total = 11 + (n == 0 ? 0 : 1 + varintSize(UInt64(storeLen)) + storeLen) + (zeros != 0 ? 9 : 0)
        return (n, countsLen, storeLen, total)
    }

    public func protobufBytes() -> [UInt8] {
        // One buffer of the exact size, written in place.
        let layout = protobufLayout
        return [UInt8](unsafeUninitializedCapacity: layout.total) { buffer, written in
            write(into: UnsafeMutableBufferPointer(rebasing: buffer[..<layout.total]), layout)
            written = layout.total
        }
    }

    /// Writes `protobufBytes()` into `buffer`, which must hold exactly
    /// `protobufByteCount` bytes: a checkpoint writes every sketch of every
    /// open window group straight into its own buffer this way, with no
    /// array per sketch (bench/results/speed.md section 58).
    public func writeProtobuf(into buffer: UnsafeMutableBufferPointer<UInt8>) {
        write(into: buffer, protobufLayout)
    }

    /// `writeProtobuf` with the layout its caller already computed.
    private func write(into buffer: UnsafeMutableBufferPointer<UInt8>,
                       _ layout: (bins: Int, countsLen: Int, storeLen: Int, total: Int)) {
        let (n, countsLen, storeLen, total) = layout
        precondition(buffer.count == total, "writeProtobuf needs exactly protobufByteCount bytes")
        var out = SizedByteWriter(buffer)
        out.tag(1, 2)
        out.rawVarint(9)
        out.fixed64(field: 1, gamma.bitPattern)
        if n > 0 {
            out.tag(2, 2)
            out.rawVarint(UInt64(storeLen))
            out.tag(2, 2)
            out.rawVarint(UInt64(countsLen))
            bins.withUnsafeBufferPointer { b in
                let from = minKey - offset
                for i in from ..< (from + n) { out.rawFixed64(b[i].bitPattern) }
            }
            if minKey != 0 { out.varint(field: 3, zigzag(Int32(minKey))) }
        }
        if zeros != 0 { out.fixed64(field: 4, zeros.bitPattern) }
        precondition(out.count == total, "protobufLayout disagrees with the bytes written")
    }

    /// `protobufBytes().count`, without building the bytes (Parquet row
    /// group sizing runs over every sketch before the sketches are written).
    public var protobufByteCount: Int { protobufLayout.total }

    /// Decodes a ddsketch.proto message. Only the logarithmic mapping (interpolation NONE)
    /// with index offset 0 is supported; a non-empty negative store is rejected.
    public init(protobuf: [UInt8], binLimit: Int = DDSketch.defaultBinLimit) throws {
        var gamma = 0.0, indexOffset = 0.0, interpolation: UInt64 = 0
        var positive: [(Int, Double)] = [], zero = 0.0
        var r = ProtoReader(protobuf[...])
        while let (field, wire) = try r.tag() {
            switch (field, wire) {
            case (1, 2):
                var m = ProtoReader(try r.lengthDelimited())
                while let (f, w) = try m.tag() {
                    switch (f, w) {
                    case (1, 1): gamma = Double(bitPattern: try m.fixed64())
                    case (2, 1): indexOffset = Double(bitPattern: try m.fixed64())
                    case (3, 0): interpolation = try m.varint()
                    default: try m.skip(wire: w)
                    }
                }
            case (2, 2): positive += try Self.readStore(try r.lengthDelimited())
            case (3, 2):
                if try Self.readStore(try r.lengthDelimited()).contains(where: { $0.1 != 0 }) {
                    throw SketchError.unsupported("DDSketch with negative values")
                }
            case (4, 1): zero = Double(bitPattern: try r.fixed64())
            default: try r.skip(wire: wire)
            }
        }
        guard interpolation == 0 else { throw SketchError.unsupported("DDSketch interpolation \(interpolation)") }
        guard indexOffset == 0 else { throw SketchError.unsupported("DDSketch index offset \(indexOffset)") }
        guard gamma > 1, gamma.isFinite else { throw SketchError.invalidFormat("DDSketch gamma \(gamma)") }
        guard zero >= 0, zero <= DDSketch.countMax else { throw SketchError.invalidFormat("DDSketch zeroCount \(zero)") }
        // KeyMapping.from_gamma_offset: relative accuracy (gamma - 1) / (gamma + 1).
        // A huge gamma rounds it to 1 (or 0 once gamma + 1 overflows): refused,
        // not left to the initializer's precondition.
        let accuracy = (gamma - 1) / (gamma + 1)
        guard accuracy > 0 && accuracy < 1 else {
            throw SketchError.invalidFormat("DDSketch gamma \(gamma) (relative accuracy \(accuracy))")
        }
        self.init(relativeAccuracy: accuracy, binLimit: binLimit)
        // Only keys a finite positive value maps to (`add` refuses values
        // above maxPossible and counts those below minPossible as zero): a
        // key past them reads back as an infinite percentile.
        let lowest = key(minPossible), highest = key(maxPossible)
        if let bad = positive.first(where: { $0.1 != 0 && ($0.0 < lowest || $0.0 > highest) }) {
            throw SketchError.invalidFormat("DDSketch bin key \(bad.0) is outside the keys of finite values (\(lowest)...\(highest))")
        }
        zeros = zero
        var total = zero
        // Highest key first so collapsing (if the range exceeds binLimit) happens once.
        for (k, c) in positive.sorted(by: { $0.0 > $1.0 }) where c != 0 {
            guard c > 0, c.isFinite else { throw SketchError.invalidFormat("DDSketch bin count \(c)") }
            total += c
            guard total <= DDSketch.countMax else {
                throw SketchError.invalidFormat("DDSketch count \(total) above \(DDSketch.countMax) (2^53)")
            }
            addKey(k, weight: c)
        }
    }

    /// Store: (key, count) pairs from both the map and the contiguous encoding.
    static func readStore(_ data: ArraySlice<UInt8>) throws -> [(Int, Double)] {
        var r = ProtoReader(data)
        var pairs: [(Int, Double)] = [], contiguous: [Double] = [], base = 0
        while let (field, wire) = try r.tag() {
            switch (field, wire) {
            case (1, 2):
                var e = ProtoReader(try r.lengthDelimited())
                var key = 0, count = 0.0
                while let (f, w) = try e.tag() {
                    switch (f, w) {
                    case (1, 0): key = Int(unzigzag(try e.varint()))
                    case (2, 1): count = Double(bitPattern: try e.fixed64())
                    default: try e.skip(wire: w)
                    }
                }
                pairs.append((key, count))
            case (2, 2):
                var p = ProtoReader(try r.lengthDelimited())
                while !p.atEnd { contiguous.append(Double(bitPattern: try p.fixed64())) }
            case (2, 1): contiguous.append(Double(bitPattern: try r.fixed64()))
            case (3, 0): base = Int(unzigzag(try r.varint()))
            default: try r.skip(wire: wire)
            }
        }
        for (i, c) in contiguous.enumerated() { pairs.append((base + i, c)) }
        return pairs
    }
}

/// Bytes of `v` as a protobuf varint.
func varintSize(_ v: UInt64) -> Int { v == 0 ? 1 : (64 - v.leadingZeroBitCount + 6) / 7 }

func zigzag(_ v: Int32) -> UInt64 { UInt64(UInt32(bitPattern: (v << 1) ^ (v >> 31))) }
func unzigzag(_ v: UInt64) -> Int32 {
    let u = UInt32(truncatingIfNeeded: v)
    return Int32(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
}

struct ProtoReader {
    var data: ArraySlice<UInt8>
    init(_ data: ArraySlice<UInt8>) { self.data = data }
    var atEnd: Bool { data.isEmpty }

    mutating func varint() throws -> UInt64 {
        var v: UInt64 = 0, shift: UInt64 = 0
        while let b = data.popFirst() {
            guard shift < 64 else { throw SketchError.invalidFormat("protobuf varint too long") }
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
        throw SketchError.truncated("protobuf varint")
    }
    mutating func fixed64() throws -> UInt64 {
        guard data.count >= 8 else { throw SketchError.truncated("protobuf fixed64") }
        var v: UInt64 = 0
        for i in 0 ..< 8 { v |= UInt64(data[data.startIndex + i]) << UInt64(8 * i) }
        data.removeFirst(8)
        return v
    }
    mutating func lengthDelimited() throws -> ArraySlice<UInt8> {
        let n = try varint()
        guard n <= UInt64(data.count) else { throw SketchError.truncated("protobuf length-delimited field") }
        let s = data.prefix(Int(n))
        data.removeFirst(Int(n))
        return s
    }
    /// nil at the end of the message.
    mutating func tag() throws -> (field: Int, wire: Int)? {
        if data.isEmpty { return nil }
        let t = try varint()
        guard t >> 3 > 0, t >> 3 < (1 << 29) else { throw SketchError.invalidFormat("protobuf field number 0") }
        return (Int(t >> 3), Int(t & 7))
    }
    mutating func skip(wire: Int) throws {
        switch wire {
        case 0: _ = try varint()
        case 1: _ = try fixed64()
        case 2: _ = try lengthDelimited()
        case 5:
            guard data.count >= 4 else { throw SketchError.truncated("protobuf fixed32") }
            data.removeFirst(4)
        default: throw SketchError.invalidFormat("protobuf wire type \(wire)")
        }
    }
}
