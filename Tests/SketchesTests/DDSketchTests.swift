import Foundation
import Testing
@testable import Sketches
import SplitMix

@Suite struct DDSketchTests {
    static let mappingHex = "0a0909fd4a815abf52f03f"  // mapping { gamma = 1.0202020202020203 }

    /// Whole-millisecond values take a precomputed key table; it must give
    /// the key the formula gives, for every entry and at the edges.
    @Test func smallIntegerKeysEqualTheFormula() {
        let s = DDSketch(relativeAccuracy: 0.01)
        for v in 1..<SmallKeys.count {
            var one = DDSketch(relativeAccuracy: 0.01)
            one.add(Double(v))
            #expect(one.nonEmptyBins.first?.key == s.key(Double(v)), "value \(v)")
            if one.nonEmptyBins.first?.key != s.key(Double(v)) { break }
        }
        var other = DDSketch(relativeAccuracy: 0.02)  // another mapping never uses the table
        other.add(100)
        #expect(other.nonEmptyBins.first?.key == other.key(100))
        var edge = DDSketch(relativeAccuracy: 0.01)
        for v in [Double(SmallKeys.count), Double(SmallKeys.count) - 0.5, 0.5] { edge.add(v) }
        let want = Set([0.5, Double(SmallKeys.count) - 0.5, Double(SmallKeys.count)].map { s.key($0) }).sorted()
        #expect(edge.nonEmptyBins.map(\.key) == want)
    }

    @Test func mappingMatchesPythonConstants() {
        #expect(DDSketch.ln2 == log(2.0))  // a literal, so reading it needs no one-time initialization
        #expect(DDSketch(relativeAccuracy: 0.01).mapping.smallKeys != 0 && DDSketch(relativeAccuracy: 0.02).mapping.smallKeys == 0)
        let s = DDSketch()
        #expect(s.gamma.bitPattern == 0x3ff0_52bf_5a81_4afd)  // 1.0202020202020203, as Python
        #expect(s.key(1.0) == 0 && s.key(1.01) == 1 && s.key(1.03) == 2 && s.key(2.5) == 46)
        // bucket k covers (gamma^(k-1), gamma^k]
        #expect(s.key(s.gamma) == 1)
    }

    /// Sketches of the same parameters share one `Mapping` (a window group
    /// holds five sketches: docs/architecture.md "Window shares in memory"),
    /// and a decoded sketch keeps reporting the accuracy its gamma gives.
    @Test func sketchesOfTheSameParametersShareTheirConstants() throws {
        #expect(MemoryLayout<DDSketch>.size <= 56)
        let a = DDSketch(), b = DDSketch(relativeAccuracy: 0.01)
        #expect(a.mapping === b.mapping)
        var filled = DDSketch()
        filled.add(12.5)
        let read = try DDSketch(protobuf: filled.protobufBytes())
        #expect(read.mapping === (try DDSketch(protobuf: a.protobufBytes())).mapping)
        #expect(read.relativeAccuracy == (a.gamma - 1) / (a.gamma + 1) && read.gamma == a.gamma)
        #expect(read.relativeAccuracy != a.relativeAccuracy && a.relativeAccuracy == 0.01)
        var other = DDSketch(relativeAccuracy: 0.02)
        #expect(other.mapping !== a.mapping && other.binLimit == DDSketch.defaultBinLimit)
        #expect(DDSketch(relativeAccuracy: 0.01, binLimit: 64).binLimit == 64)
        other.add(3)
        #expect(other.quantile(0.5).map { abs($0 - 3) <= 3 * 0.02 } == true && !a.canMerge(other))
    }

    /// Fixture from Python ddsketch 3.0.1, without its negative value.
    @Test func canonicalEncodingFixture() throws {
        var s = DDSketch()
        let added = [1.0, 1.01, 1.03, 0.0].map { s.add($0) }
        #expect(added == [true, true, true, true])
        let hex = Hex.encode(s.protobufBytes())
        #expect(hex == Self.mappingHex + "121a1218000000000000f03f000000000000f03f000000000000f03f21000000000000f03f")
        let back = try DDSketch(protobuf: s.protobufBytes())
        #expect(back == s)
        #expect(back.protobufBytes() == s.protobufBytes())
    }

    @Test func fixtureWithNegativeStoreIsRejected() {
        let fixture = Hex.decode("0a0909fd4a815abf52f03f121a1218000000000000f03f000000000000f03f000000000000f03f1a0c1208000000000000f03f185c21000000000000f03f")
        #expect(throws: SketchError.unsupported("DDSketch with negative values")) { try DDSketch(protobuf: fixture) }
    }

    /// Counts no stream reaches (over 2^53 in one sketch, in a bin or the
    /// zero count) are refused when read: summed by merges they would
    /// reach infinity, and an infinite count does not read back.
    @Test func countsPastTwoToThe53AreRefusedWhenRead() throws {
        func bytes(bin: Double, zero: Double) -> [UInt8] {
            var s = DDSketch()
            s.addKey(s.key(1000), weight: bin)
            s.zeros = zero
            return s.protobufBytes()
        }
        #expect(try DDSketch(protobuf: bytes(bin: DDSketch.countMax - 1, zero: 1)).count == DDSketch.countMax)
        for (bin, zero) in [(1e300, 0.0), (DDSketch.countMax, 2.0), (1.0, 1e300)] {
            #expect(throws: SketchError.self) { try DDSketch(protobuf: bytes(bin: bin, zero: zero)) }
        }
    }

    @Test func emptyAndRejectedValues() throws {
        var s = DDSketch()
        #expect(s.isEmpty && s.quantile(0.5) == nil)
        let rejected = [-1, .nan, -.infinity, .infinity, -1e-300].map { s.add($0) }
        #expect(rejected == [false, false, false, false, false])
        #expect(s.isEmpty)
        #expect(Hex.encode(s.protobufBytes()) == Self.mappingHex)
        #expect(try DDSketch(protobuf: s.protobufBytes()) == s)
        let accepted = [0, -0.0, Double.leastNormalMagnitude / 4].map { s.add($0) }
        #expect(accepted == [true, true, true])
        #expect(s.zeroCount == 3 && s.quantile(0.5) == 0)
        #expect(s.quantile(-0.1) == nil && s.quantile(1.1) == nil)
    }

    @Test func negativeOffsetsAndSmallValues() throws {
        var s = DDSketch()
        for v in [1e-6, 0.001, 0.5, 3.0, 1e10] { s.add(v) }  // 1823 buckets apart: no collapsing
        let back = try DDSketch(protobuf: s.protobufBytes())
        #expect(back == s)
        for q in [0.0, 0.25, 0.5, 0.75, 1.0] { #expect(back.quantile(q) == s.quantile(q)) }
        let p0 = try #require(s.quantile(0)), p1 = try #require(s.quantile(1))
        #expect(abs(p0 - 1e-6) <= 0.01 * 1e-6, "p0 = \(p0)")
        #expect(abs(p1 - 1e10) <= 0.01 * 1e10, "p1 = \(p1)")
        // 1e-9 is more than 2048 buckets below 1e10: it is collapsed into the lowest kept bin.
        s.add(1e-9)
        let lowest = try #require(s.nonEmptyBins.first)
        #expect(lowest.key == s.key(1e10) - 2047 && lowest.count == 1)
        #expect(s.count == 6)
    }

    @Test func boundedStoreCollapsesLowestBins() {
        var s = DDSketch(relativeAccuracy: 0.01, binLimit: 100)
        for i in 0 ..< 1000 { s.add(pow(1.02, Double(i))) }  // ~1000 distinct buckets
        let bins = s.nonEmptyBins
        #expect(bins.count <= 100)
        #expect(bins.last!.key - bins.first!.key + 1 <= 100)
        #expect(s.count == 1000)
        #expect(bins.first!.count > 1)  // collapsed mass
        // the top quantiles are unaffected
        let p99 = s.quantile(0.99)!, exact = pow(1.02, 989.0)
        #expect(abs(p99 - exact) <= 0.01 * exact)
        // collapsing is order independent
        var r = DDSketch(relativeAccuracy: 0.01, binLimit: 100)
        for i in (0 ..< 1000).reversed() { r.add(pow(1.02, Double(i))) }
        #expect(r.protobufBytes() == s.protobufBytes())
    }

    @Test func decoderAcceptsMapAndUnpackedForms() throws {
        // Store with binCounts map entries {5: 2.0, -3: 1.0} and an unpacked contiguous count.
        var store = ProtoWriter()
        for (k, c) in [(5, 2.0), (-3, 1.0)] {
            var e = ProtoWriter()
            e.varint(field: 1, zigzag(Int32(k)))
            e.fixed64(field: 2, c.bitPattern)
            store.bytes(field: 1, e.buffer)
        }
        store.fixed64(field: 2, 4.0.bitPattern)  // unpacked contiguous count at offset 7
        store.varint(field: 3, zigzag(7))
        var msg = ProtoWriter()
        msg.bytes(field: 1, Hex.decode("09fd4a815abf52f03f"))
        msg.bytes(field: 2, store.buffer)
        msg.varint(field: 9, 1)  // unknown field is skipped
        let s = try DDSketch(protobuf: msg.buffer)
        #expect(s.nonEmptyBins.map(\.key) == [-3, 5, 7])
        #expect(s.nonEmptyBins.map(\.count) == [1, 2, 4])
    }

    @Test func decoderRejectsGarbage() {
        #expect(throws: SketchError.self) { try DDSketch(protobuf: [0x0a, 0x05, 0x09]) }
        #expect(throws: SketchError.self) { try DDSketch(protobuf: [0xff]) }
        #expect(throws: SketchError.self) { try DDSketch(protobuf: []) }  // no gamma
        #expect(throws: SketchError.self) { try DDSketch(protobuf: Hex.decode("0a0b09fd4a815abf52f03f1801")) }  // LINEAR
    }

    @Test func mergeIsExact() {
        var a = DDSketch(), b = DDSketch(), all = DDSketch()
        for i in 1 ... 500 {
            let v = Double(i) * 0.37
            if i % 3 == 0 { a.add(v) } else { b.add(v) }
            all.add(v)
        }
        a.add(0)
        all.add(0)
        a.merge(b)
        #expect(a == all && a.protobufBytes() == all.protobufBytes())
    }

    /// The one-pass merge (both sketches' keys within the bin limit) leaves
    /// exactly the state the key-by-key merge leaves: the same key range
    /// (also when a collapse left the lowest bin empty), bins, total and
    /// bytes, with fractional counts (summed in the same order) and into
    /// empty, zeros-only and collapsed sketches.
    @Test(arguments: [2048, 64]) func onePassMergeEqualsKeyByKeyMerge(binLimit: Int) throws {
        var rng = SplitMix64(seed: 7 &+ UInt64(binLimit))
        func unit() -> Double { Double(rng.next() >> 11) * 0x1p-53 }
        func sketch(_ n: Int, around center: Double, spread: Double) -> DDSketch {
            var s = DDSketch(binLimit: binLimit)
            for _ in 0 ..< n { s.add(center * pow(1.02, (unit() - 0.5) * spread)) }
            return s
        }
        // A sketch whose lowest key names an empty bin: key 5, then one more
        // than the bin limit above it (key 5 collapses into the lowest kept
        // key), then that bin emptied by hand.
        var emptyLowest = DDSketch(binLimit: binLimit)
        emptyLowest.addKey(5, weight: 1)
        emptyLowest.addKey(5 + binLimit + 3, weight: 1)
        emptyLowest.bins[emptyLowest.minKey - emptyLowest.offset] = 0  // as if its mass had been merged away
        emptyLowest.positiveCount = 1
        // Fractional counts, as a decoded sketch from another writer may carry.
        var fractional = sketch(40, around: 300, spread: 60)
        for k in fractional.minKey ... fractional.maxKey where fractional.bins[k - fractional.offset] != 0 {
            fractional.bins[k - fractional.offset] += 0.1
            fractional.positiveCount += 0.1
        }
        var zerosOnly = DDSketch(binLimit: binLimit)
        zerosOnly.add(0)
        var cases: [DDSketch] = [DDSketch(binLimit: binLimit), zerosOnly, emptyLowest, fractional,
                                 try DDSketch(protobuf: fractional.protobufBytes())]
        for _ in 0 ..< 30 {
            cases.append(sketch(Int(unit() * 200), around: 10 * pow(10, unit() * 4), spread: unit() * 150))
        }
        for a in cases {
            for b in cases where b.positiveCount > 0 {
                var fast = a, slow = a
                fast.addKeyRange(b)
                slow.addKeysOneByOne(b)
                #expect(fast.minKey == slow.minKey && fast.maxKey == slow.maxKey)
                #expect(fast.positiveCount == slow.positiveCount)
                #expect(fast.nonEmptyBins.elementsEqual(slow.nonEmptyBins) { $0.key == $1.key && $0.count == $1.count })
                #expect(fast.protobufBytes() == slow.protobufBytes())
            }
        }
    }

    /// Merging is exact whether the ranges overlap, sit apart within the bin
    /// limit (one widening, no collapse) or force a collapse either way, and
    /// into an empty sketch: the result equals one sketch that saw every value.
    @Test(arguments: [2048, 40]) func mergeIsExactForEveryRangeLayout(binLimit: Int) {
        var rng = SplitMix64(seed: UInt64(binLimit))
        let ranges: [(ClosedRange<Double>, ClosedRange<Double>)] = [
            (1 ... 500, 200 ... 900),        // overlapping
            (1 ... 3, 2_000 ... 3_000),      // apart, widened once
            (2_000 ... 3_000, 1 ... 3),      // apart, the other way
            (0.001 ... 0.002, 1e6 ... 1e7),  // wider than 40 bins: collapses
            (1e6 ... 1e7, 0.001 ... 0.002),
        ]
        for (ra, rb) in ranges {
            for emptyFirst in [false, true] {
                var a = DDSketch(binLimit: binLimit), b = DDSketch(binLimit: binLimit)
                var all = DDSketch(binLimit: binLimit)
                for i in 0 ..< 300 {
                    let u = Double(rng.next() >> 11) * 0x1p-53
                    let into = i % 2 == 0
                    let r = into ? ra : rb
                    let v = (r.lowerBound + u * (r.upperBound - r.lowerBound)).rounded(.up)
                    if into && !emptyFirst { a.add(v) } else { b.add(v) }
                    all.add(v)
                }
                a.merge(b)
                #expect(a == all, "\(ra) + \(rb), binLimit \(binLimit), empty first: \(emptyFirst)")
                #expect(a.protobufBytes() == all.protobufBytes())
                #expect(a.quantile(0.5) == all.quantile(0.5) && a.count == all.count)
            }
        }
    }
}

/// Interop with DataDog sketches-py through tests/oracles/sketches_ddsketch.py.
@Suite(.serialized) struct DDSketchInteropTests {
    static let qs = [0.5, 0.9, 0.99]

    static func exactQuantile(_ sorted: [Double], _ q: Double) -> Double {
        sorted[Int((q * Double(sorted.count - 1)).rounded(.down))]
    }

    @Test func pythonDecodesOurSketches() throws {
        var rng = SplitMix64(seed: 7)
        var sketches: [[String: Any]] = []
        var ours: [(DDSketch, [Double])] = []
        for n in [1, 10, 1000, 100_000] {
            var s = DDSketch()
            var values: [Double] = []
            for _ in 0 ..< n {
                let u = Double(rng.next() >> 11) * 0x1p-53
                let v = (-log(1 - u) * 250).rounded()  // exponential-ish startup times in ms, with zeros
                s.add(v)
                values.append(v)
            }
            sketches.append(["hex": Hex.encode(s.protobufBytes()), "qs": Self.qs])
            ours.append((s, values.sorted()))
        }
        let out = try Oracle.runJSON("sketches_ddsketch.py", args: ["decode"],
                                     input: try JSONSerialization.data(withJSONObject: ["sketches": sketches]))
        let results = try #require(out["results"] as? [[String: Any]])
        #expect(results.count == ours.count)
        for ((s, sorted), r) in zip(ours, results) {
            #expect(r.double("count") == s.count)
            #expect(r.double("zeroCount") == s.zeroCount)
            let qv = try #require(r["quantiles"] as? [String])
            for (q, hex) in zip(Self.qs, qv) {
                let py = Double(bitPattern: try #require(UInt64(hex, radix: 16)))
                #expect(py == s.quantile(q), "python and Swift disagree at q=\(q)")
                let exact = Self.exactQuantile(sorted, q)
                #expect(abs(py - exact) <= 0.01 * exact + 1e-12, "q=\(q): \(py) vs exact \(exact)")
            }
        }
    }

    @Test func weReadPythonsPaddedEncoding() throws {
        let values = (1 ... 2000).map { Double($0 * $0 % 9973) }
        let out = try Oracle.runJSON("sketches_ddsketch.py", args: ["encode"], input: try JSONSerialization.data(
            withJSONObject: ["relativeAccuracy": 0.01, "values": values, "qs": Self.qs]))
        let s = try DDSketch(protobuf: Hex.decode(try #require(out["hex"] as? String)))
        var mine = DDSketch()
        for v in values { mine.add(v) }
        #expect(s == mine)
        #expect(s.protobufBytes() == mine.protobufBytes())
        let qv = try #require(out["quantiles"] as? [String])
        // Python's in-memory sketch maps with a = 0.01 itself; a decoded one (ours or Python's)
        // with (gamma-1)/(gamma+1), which differs in the last bits: same keys, values within 1e-12.
        for (q, hex) in zip(Self.qs, qv) {
            let py = Double(bitPattern: try #require(UInt64(hex, radix: 16)))
            let v = try #require(s.quantile(q))
            #expect(abs(v - py) <= 1e-12 * py)
        }
    }
}

/// The zero-filled arrays sketches start and widen with (`ZeroedArray.swift`)
/// equal `Array(repeating: 0, count:)` at every size they are made at.
@Suite struct ZeroedArrayTests {
    @Test func zerosEqualRepeatingZero() {
        for n in [0, 1, 8, 32, 49, 4_096, 1 << 16] {
            #expect([UInt8].zeros(n) == [UInt8](repeating: 0, count: n))
            #expect([UInt32].zeros(n) == [UInt32](repeating: 0, count: n))
            let d = ContiguousArray<Double>.zeros(n)
            #expect(d.count == n && d.allSatisfy { $0 == 0 } && d.capacity >= n)
        }
    }
}
