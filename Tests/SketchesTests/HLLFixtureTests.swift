import Foundation
import Testing
@testable import Sketches

/// Fixtures produced by Python datasketches 5.2.0, hll_sketch(lgK, HLL_8).
@Suite struct HLLFixtureTests {
    func sketch(_ items: [String], lgK: Int = 12) -> HLLSketch {
        var s = HLLSketch(lgK: lgK)
        for i in items { s.update(i) }
        return s
    }

    @Test func emptyCompact() {
        let s = HLLSketch()
        #expect(Hex.encode(s.compactBytes()) == "0201070c030c0008")
        #expect(s.isEmpty && s.estimate == 0)
    }

    @Test func listOfThreeStrings() {
        let s = sketch(["apple", "banana", "cherry"])
        #expect(Hex.encode(s.compactBytes()) == "0201070c030803088414b608be4fd70aa63d4704")
        #expect(s.estimate == 3.000000014901161)
    }

    @Test func listOfInts() {
        var s = HLLSketch()
        for v: Int64 in [1, 2, 3] { s.update(int64: v) }
        #expect(Hex.encode(s.compactBytes()) == "0201070c030803082bf2fb06862ff90d75816607")
    }

    @Test func setOfTen() {
        let s = sketch((0 ..< 10).map(String.init))
        #expect(s.mode == .set)
        #expect(Hex.encode(s.compactBytes()) ==
            "0301070c050800090a000000c07f5506c7849e14c949740caaa60f06b2f7bc17aed62a0f8f2cd90e5249f507d3f19105d80bfd09")
    }

    @Test func lgK4Hundred() {
        let s = sketch((0 ..< 100).map(String.init), lgK: 4)
        #expect(Hex.encode(s.compactBytes()) ==
            "0a0107040008000ad9655b8c5bd76040000000000084f83f00000000000000000000000000000000020706040a0703050204030602020604")
        #expect(s.estimate == 134.7299253258814)
    }

    @Test func lgK12Thousand() {
        let s = sketch((0 ..< 1000).map(String.init))
        let bytes = s.compactBytes()
        #expect(Hex.encode(Array(bytes[0 ..< 40])) ==
            "0a01070c0008000a599b3948574d8f40000000000340ab400000000000000000800c000000000000")
        #expect(s.estimate == 1001.6676182270559)
        #expect(bytes.count == 4136)
    }

    @Test func modeProgressionLgK12() {
        var s = HLLSketch()
        var modes: [HLLSketch.Mode] = []
        for i in 0 ..< 400 {
            s.update(String(i))
            modes.append(s.mode)
        }
        #expect(modes[6] == .list && modes[7] == .set)
        #expect(modes[383] == .set && modes[384] == .hll)
    }

    @Test func roundTripAllModes() throws {
        for n in [0, 3, 10, 100, 1000, 5000] {
            let s = sketch((0 ..< n).map { "item\($0)" })
            let back = try HLLSketch(bytes: s.compactBytes())
            // A compact SET is re-inserted into a fresh table on read (CouponHashSet::newSet),
            // so its slot order, and thus its bytes, may change; LIST and HLL round-trip exactly.
            if s.mode != .set { #expect(back.compactBytes() == s.compactBytes(), "n=\(n)") }
            #expect(back.registerValues == s.registerValues)
            #expect(back.estimate == s.estimate)
            let upd = try HLLSketch(bytes: s.updatableBytes())
            #expect(upd.estimate == s.estimate)
            #expect(upd.registerValues == s.registerValues)
        }
    }

    @Test func rejectsGarbage() {
        #expect(throws: SketchError.self) { try HLLSketch(bytes: [1, 2, 3]) }
        #expect(throws: SketchError.self) { try HLLSketch(bytes: [10, 1, 7, 12, 0, 8, 0, 10]) }
        #expect(throws: SketchError.self) { try HLLSketch(bytes: [2, 1, 8, 12, 3, 8, 0, 8]) }
    }
}
