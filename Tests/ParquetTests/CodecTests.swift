import Testing
import PropertyBased
@testable import Parquet
import SplitMix

/// The layers below the file format, each on its own.
@Suite struct ThriftCompactTests {
    @Test func fieldHeadersUseDeltasAndLongForm() {
        let bytes = encodeThrift { w in
            w.i32(1, 3)           // delta 1: 0x15, zigzag(3) = 6
            w.i64(17, -1)         // delta 16: long form 0x06, zigzag(17) = 34, value zigzag(-1) = 1
            w.bool(18, true)      // delta 1, type BOOL_TRUE: 0x11
            w.string(19, "hé")    // 0x18, length 3
        }
        #expect(bytes == [0x15, 0x06, 0x06, 0x22, 0x01, 0x11, 0x18, 0x03, 0x68, 0xC3, 0xA9, 0x00])
    }

    @Test func nestedStructsRestoreFieldIDs() throws {
        let bytes = encodeThrift { w in
            w.i32(3, 1)
            w.structure(5) { $0.i32(1, 2) }
            w.i32(6, 3)   // delta from 5, not from the inner 1
            w.list(7, 20, .i32) { l in for i in 0..<20 { l.varint(Int64(i)) } }
        }
        #expect(Array(bytes[0..<8]) == [0x35, 0x02, 0x2C, 0x15, 0x04, 0x00, 0x15, 0x06])
        #expect(Array(bytes[8..<11]) == [0x19, 0xF5, 0x14])   // list header: long form, size 20
        var r = CompactReader(bytes, context: "test")
        var seen: [Int] = [], list: [Int32] = []
        try r.readStruct { r, id, t in
            seen.append(id)
            switch id {
            case 5: try r.readStruct { r2, id2, _ in seen.append(100 + id2); _ = try r2.readI32() }
            case 7: list = try r.readList { r2, _ in try r2.readI32() }
            default: _ = try r.readI32()
            }
        }
        #expect(seen == [3, 5, 101, 6, 7])
        #expect(list == Array(0..<20))
        #expect(r.cursor.isAtEnd)
    }

    @Test func zigzagRoundTrips() async {
        await propertyCheck(input: Gen.int(in: Int.min...Int.max)) { v in
            #expect(unzigzag(zigzag(Int64(v))) == Int64(v))
        }
    }

    @Test func skipsUnknownFieldsOfEveryType() throws {
        let bytes = encodeThrift { w in
            w.i8(1, -3)
            w.i16(2, 300)
            w.fieldHeader(3, .double); w.bytes_append([0, 0, 0, 0, 0, 0, 0xF0, 0x3F])
            w.binary(4, [1, 2, 3])
            w.list(5, 2, .binary) { $0.rawBinary([9]); $0.rawBinary([]) }
            w.structure(6) { $0.structure(1) { $0.bool(2, false) } }
            w.i32(9, 42)
        }
        var r = CompactReader(bytes, context: "test")
        var answer: Int32?
        try r.readStruct { r, id, t in
            if id == 9 { answer = try r.readI32() } else { try r.skip(t) }
        }
        #expect(answer == 42)
    }

    @Test func malformedInputThrows() {
        for bad: [UInt8] in [[0x15], [0x19, 0xF5], [0x18, 0x05, 0x41], [0x1D], [0x16, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]] {
            var r = CompactReader(bad, context: "test")
            #expect(throws: ParquetError.self) { try r.readStruct { r, _, t in try r.skip(t) } }
        }
        let deep = [UInt8](repeating: 0x1C, count: 500)
        var r = CompactReader(deep, context: "test")
        #expect(throws: ParquetError.self) { try r.readStruct { r, _, t in try r.skip(t) } }
    }
}

extension CompactWriter {
    mutating func bytes_append(_ b: [UInt8]) { for x in b { rawByte(x) } }
}

@Suite struct RleHybridTests {
    @Test func knownEncodings() {
        var out: [UInt8] = []
        RleHybrid.encode([1, 0, 1] as [UInt8], bitWidth: 1, to: &out)
        #expect(out == [0x03, 0x05])           // one bit-packed group, as in the golden file
        out = []
        RleHybrid.encode([UInt32](repeating: 5, count: 100), bitWidth: 3, to: &out)
        #expect(out == [0xC8, 0x01, 0x05])     // RLE run: (100 << 1) as ULEB128, value in 1 byte
        out = []
        RleHybrid.encode([UInt32](repeating: 300, count: 9), bitWidth: 9, to: &out)
        #expect(out == [0x12, 0x2C, 0x01])     // value in 2 bytes
    }

    @Test func roundTripsRandomRuns() async {
        await propertyCheck(input: Gen.int(in: 0...2000), Gen.int(in: 0...32)) { seed, width in
            var rng = SplitMix64(seed: UInt64(seed))
            let maxValue: UInt64 = width == 0 ? 0 : (UInt64(1) << UInt64(width)) - 1
            var values: [UInt32] = []
            while values.count < seed {
                let v = UInt32(UInt64.random(in: 0...maxValue, using: &rng))
                values += repeatElement(v, count: [1, 1, 2, 8, 20].randomElement(using: &rng)!)
            }
            var bytes: [UInt8] = []
            RleHybrid.encode(values, bitWidth: width, to: &bytes)
            var c = ByteCursor(bytes, context: "test")
            var decoded: [UInt32] = []
            try RleHybrid.decode(&c, count: values.count, bitWidth: width, into: &decoded)
            #expect(decoded == values)
        }
    }

    @Test func truncatedRunsThrow() {
        var c = ByteCursor([0x03], context: "test")
        var out: [UInt32] = []
        #expect(throws: ParquetError.self) { try RleHybrid.decode(&c, count: 3, bitWidth: 1, into: &out) }
        var c2 = ByteCursor([0x06, 0x02], context: "test")   // RLE value 2 does not fit 1 bit
        #expect(throws: ParquetError.self) { try RleHybrid.decode(&c2, count: 3, bitWidth: 1, into: &out) }
    }
}

@Suite struct PlainEncodingTests {
    @Test func plainLayouts() throws {
        var out: [UInt8] = []
        Bool.appendPlain([true, false, true, true, false, false, false, false, true], to: &out)
        #expect(out == [0x0D, 0x01])
        out = []
        [UInt8].appendPlain([[0x61], []], to: &out)
        #expect(out == [1, 0, 0, 0, 0x61, 0, 0, 0, 0])
        out = []
        Int32.appendPlain([1, -2], to: &out)
        #expect(out == [1, 0, 0, 0, 0xFE, 0xFF, 0xFF, 0xFF])
        var c = ByteCursor(out, context: "test")
        var back: [Int32] = []
        try Int32.decodePlain(&c, count: 2, into: &back)
        #expect(back == [1, -2])
        var short = ByteCursor(Array(out[0..<7]), context: "test")
        #expect(throws: ParquetError.self) { try Int32.decodePlain(&short, count: 2, into: &back) }
    }

    @Test func zstdRoundTripAndCorruption() throws {
        let z = try ZstdCompressor(level: 3)
        let input = [UInt8]((0..<10_000).map { UInt8($0 % 7) })
        var compressed: [UInt8] = []
        try z.compress(input, into: &compressed)
        #expect(compressed.count < input.count / 10)
        #expect(try zstdDecompress(compressed, range: 0..<compressed.count, expectedSize: input.count) == input)
        #expect(throws: ParquetError.self) {
            try zstdDecompress(compressed, range: 0..<compressed.count, expectedSize: input.count - 1)
        }
        #expect(throws: ParquetError.self) {
            try zstdDecompress(compressed, range: 0..<compressed.count / 2, expectedSize: input.count)
        }
    }

    /// A frame compressed from parts is the frame of their concatenation:
    /// parts empty, tiny and larger than libzstd's stream buffers (128 KiB),
    /// random (incompressible) and repetitive; no parts at all is an empty frame.
    @Test func zstdOfPartsIsTheFrameOfTheirConcatenation() throws {
        var rng = SplitMix64(seed: 11)
        let random = (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let parts: [[UInt8]] = [[], [1, 2, 3], random, [], Array(repeating: 7, count: 500_000), [9]]
        let whole = parts.flatMap { $0 }
        let frame = try zstdCompress(parts: parts, level: 1)
        #expect(frame.count < whole.count - 400_000)
        #expect(try zstdDecompress(frame, range: 0..<frame.count, expectedSize: whole.count, limit: 1 << 30) == whole)
        // The frame says its size: a wrong expected size is caught before decoding.
        #expect(throws: ParquetError.self) {
            try zstdDecompress(frame, range: 0..<frame.count, expectedSize: whole.count + 1, limit: 1 << 30)
        }
        let empty = try zstdCompress(parts: [], level: 1)
        #expect(try zstdDecompress(empty, range: 0..<empty.count, expectedSize: 0) == [])
    }
}

@Suite struct SnappyTests {
    // "abcde" literal, then a 1-byte-offset copy of 6 bytes from offset 5 (overlapping).
    static let block: [UInt8] = [11, 0x10] + Array("abcde".utf8) + [0x09, 0x05]

    @Test func decodesLiteralAndOverlappingCopy() throws {
        #expect(try snappyDecompress(Self.block, range: 0..<Self.block.count, expectedSize: 11)
            == Array("abcdeabcdea".utf8))
        #expect(throws: ParquetError.self) { try snappyDecompress(Self.block, range: 0..<Self.block.count, expectedSize: 12) }
    }

    @Test func corruptBlocksThrowOrDecode() {
        var rng = SplitMix64(seed: 3)
        for _ in 0..<2000 {
            var b = Self.block
            b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            let n = Int.random(in: 0...b.count, using: &rng)
            _ = try? snappyDecompress(b, range: 0..<n, expectedSize: 11)
        }
    }
}

/// A BYTE_ARRAY's statistics order and dictionary key (bench/results/speed.md §16).
@Suite struct ByteArrayValueTests {
    @Test func statisticsOrderIsUnsignedByteOrderThenLength() {
        var rng = SplitMix64(seed: 7)
        func bytes() -> [UInt8] {
            // Past 8 bytes too: the compare goes a word at a time, then byte by byte.
            let n = Int(rng.next() % 21)
            // Few distinct bytes, both sides of 0x80: equal prefixes are common.
            return (0..<n).map { _ in [0x00, 0x41, 0x7F, 0x80, 0xFF][Int(rng.next() % 5)] }
        }
        for _ in 0..<5_000 {
            let a = bytes(), b = bytes()
            #expect([UInt8].statisticsLess(a, b) == a.lexicographicallyPrecedes(b), "\(a) vs \(b)")
        }
        #expect([UInt8].statisticsLess([0x7F], [0x80]))
        #expect([UInt8].statisticsLess([0x41], [0x41, 0x00]))
        #expect(![UInt8].statisticsLess([0x41, 0x00], [0x41]))
        #expect(![UInt8].statisticsLess([], []))
    }

    /// A dictionary page's entries are told apart by their bytes
    /// (`withDictionaryBytes`): lengths count, so no two of these share an
    /// entry, and every repeat finds its first entry.
    @Test func dictionaryEntriesAreOnePerDistinctBytes() throws {
        let values: [[UInt8]] = [[], [0], [0, 0], [1], [0, 1], [1, 0], Array("ab".utf8), Array("a".utf8),
                                 Array("0123456789abcdef".utf8), Array("0123456789abcdeF".utf8)]
        var column: [[UInt8]?] = []
        for k in 0..<200 { column.append(values[(k * 7) % values.count]) }
        let bytes = try writeParquet(schema: [.string("s")], columns: [.byteArray(column)])
        let r = try ParquetFileReader(bytes: bytes)
        #expect(try r.column(0) == .byteArray(column))
        let chunk = r.rowGroups[0].columns[0]
        #expect(chunk.hasDictionaryPage && chunk.encodings.contains(.rleDictionary))
        // Ten entries (≈ 100 bytes) and 200 four-bit indices: an entry per
        // row instead would take over 1 800 bytes.
        #expect(chunk.uncompressedSize < 400, "\(chunk.uncompressedSize) bytes")
        #expect(Int64(3).withDictionaryBytes { Array($0) } == [3, 0, 0, 0, 0, 0, 0, 0])
        #expect((-0.0).withDictionaryBytes { Array($0) } != (0.0).withDictionaryBytes { Array($0) })
    }
}
