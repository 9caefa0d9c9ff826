import Foundation
import PropertyBased
import Testing
@testable import Sketches

/// Merge laws, with x-sheep/swift-property-based.
@Suite struct PropertyTests {
    // MARK: DDSketch: contents are exact, so bytes must match.

    /// Values spread over ~300 buckets around 1 (plus zeros); binLimit 64 exercises collapsing.
    static func dd(_ xs: [Int], binLimit: Int) -> DDSketch {
        var s = DDSketch(relativeAccuracy: 0.01, binLimit: binLimit)
        for x in xs { s.add(x == 0 ? 0 : pow(1.03, Double(x))) }
        return s
    }

    static let ddValues = Gen.int(in: -150 ... 150).array(of: 0 ... 60)

    @Test func ddMergeEqualsSketchOfUnion() async {
        await propertyCheck(input: Self.ddValues, Self.ddValues, Gen.int(in: 0 ... 1)) { a, b, small in
            let limit = small == 1 ? 64 : 2048
            var m = Self.dd(a, binLimit: limit)
            m.merge(Self.dd(b, binLimit: limit))
            let whole = Self.dd(a + b, binLimit: limit)
            #expect(m.protobufBytes() == whole.protobufBytes())
            #expect(m == whole)
        }
    }

    @Test func ddMergeCommutativeAndAssociative() async {
        await propertyCheck(input: Self.ddValues, Self.ddValues, Self.ddValues) { a, b, c in
            let sa = Self.dd(a, binLimit: 64), sb = Self.dd(b, binLimit: 64), sc = Self.dd(c, binLimit: 64)
            var ab = sa; ab.merge(sb)
            var ba = sb; ba.merge(sa)
            #expect(ab.protobufBytes() == ba.protobufBytes())
            var abc1 = ab; abc1.merge(sc)
            var bc = sb; bc.merge(sc)
            var abc2 = sa; abc2.merge(bc)
            #expect(abc1.protobufBytes() == abc2.protobufBytes())
        }
    }

    @Test func ddProtobufRoundTrip() async {
        await propertyCheck(input: Self.ddValues) { a in
            let s = Self.dd(a, binLimit: 2048)
            let back = try DDSketch(protobuf: s.protobufBytes())
            #expect(back == s && back.protobufBytes() == s.protobufBytes())
            for q in [0.0, 0.5, 0.9, 0.99, 1.0] { #expect(back.quantile(q) == s.quantile(q)) }
        }
    }

    /// Row groups are sized by `protobufByteCount` before the bytes are built:
    /// it must be their exact count (empty, zeros only, keys either side of 0,
    /// collapsed stores, merged and decoded sketches).
    @Test func ddByteCountIsTheSerializedCount() async {
        await propertyCheck(input: Self.ddValues, Self.ddValues, Gen.int(in: 0 ... 1)) { a, b, small in
            let limit = small == 1 ? 64 : 2048
            var m = Self.dd(a, binLimit: limit)
            #expect(m.protobufByteCount == m.protobufBytes().count)
            m.merge(Self.dd(b, binLimit: limit))
            #expect(m.protobufByteCount == m.protobufBytes().count)
            let back = try DDSketch(protobuf: m.protobufBytes())
            #expect(back.protobufByteCount == back.protobufBytes().count)
        }
    }

    // MARK: HLL: registers are exact; HIP depends on order, so compare registers.

    /// Item sets: ids in a range so that sets overlap; sizes cross LIST/SET/HLL (lgK 8 promotes at 24).
    static let ids = Gen.int(in: 0 ... 5000).array(of: 0 ... 60)
    static let sizes = Gen.int(in: 0 ... 3)

    static func hll(_ xs: [Int], extra: Int, lgK: Int = 8) -> HLLSketch {
        var s = HLLSketch(lgK: lgK)
        for x in xs { s.update(int64: Int64(x)) }
        for x in 0 ..< [0, 10, 200, 3000][extra] { s.update("bulk-\(x)") }
        return s
    }

    /// As for DDSketch: `compactByteCount` is the compact image's exact
    /// count in LIST, SET and HLL mode, after merges and decoding.
    @Test func hllByteCountIsTheCompactCount() async {
        await propertyCheck(input: Self.ids, Self.ids, Self.sizes) { a, b, extra in
            for lgK in [8, 12] {
                var m = Self.hll(a, extra: extra, lgK: lgK)
                #expect(m.compactByteCount == m.compactBytes().count)
                m.merge(Self.hll(b, extra: 0, lgK: lgK))
                #expect(m.compactByteCount == m.compactBytes().count)
                let back = try HLLSketch(bytes: m.compactBytes())
                #expect(back.compactByteCount == back.compactBytes().count)
                let updatable = try HLLSketch(bytes: m.updatableBytes())
                #expect(updatable.compactByteCount == updatable.compactBytes().count)
            }
        }
    }

    @Test func hllMergeRegistersEqualSketchOfUnion() async {
        await propertyCheck(input: Self.ids, Self.ids, Self.sizes) { a, b, extra in
            var m = Self.hll(a, extra: extra)
            m.merge(Self.hll(b, extra: 0))
            var whole = HLLSketch(lgK: 8)
            for x in a + b { whole.update(int64: Int64(x)) }
            for x in 0 ..< [0, 10, 200, 3000][extra] { whole.update("bulk-\(x)") }
            #expect(m.registerValues == whole.registerValues)
            #expect(m.isEmpty == whole.isEmpty)
        }
    }

    @Test func hllMergeCommutativeAndAssociative() async {
        await propertyCheck(input: Self.ids, Self.ids, Self.sizes) { a, b, extra in
            let sa = Self.hll(a, extra: extra), sb = Self.hll(b, extra: 3 - extra)
            let sc = Self.hll(b.map { $0 + 7 }, extra: 0)
            let ab = HLLSketch.union(sa, sb), ba = HLLSketch.union(sb, sa)
            #expect(ab.registerValues == ba.registerValues)
            if sa.mode == .hll && sb.mode == .hll {
                // both out-of-order: state is a function of the registers, so bytes and estimate agree
                #expect(ab.compactBytes() == ba.compactBytes() && ab.estimate == ba.estimate)
            }
            let left = HLLSketch.union(ab, sc), right = HLLSketch.union(sa, HLLSketch.union(sb, sc))
            #expect(left.registerValues == right.registerValues)
        }
    }

    @Test func hllMergeAcrossLgK() async {
        await propertyCheck(input: Self.ids, Gen.int(in: 4 ... 14), Gen.int(in: 4 ... 14)) { a, k1, k2 in
            var x = HLLSketch(lgK: k1), y = HLLSketch(lgK: k2)
            for (i, v) in a.enumerated() {
                x.update(int64: Int64(v))
                y.update(int64: Int64(v * 3 + i))
            }
            // Enough distinct items that y is in HLL mode even at lgK 14 (promotion
            // happens past 3/4 of 2^(lgK-3) coupons = 1536): a LIST/SET y keeps x's lgK.
            for i in 0 ..< 3000 { y.update("y\(i)") }
            #expect(y.mode == .hll)
            var m = x
            m.merge(y)
            let k = min(k1, k2)
            #expect(m.lgK == k)
            // registers = fold of both inputs' registers at the smaller lgK
            var expect = [UInt8](repeating: 0, count: 1 << k)
            for r in [x.registerValues, y.registerValues] {
                for (i, v) in r.enumerated() { expect[i & ((1 << k) - 1)] = max(expect[i & ((1 << k) - 1)], v) }
            }
            #expect(m.registerValues == expect)
        }
    }
}

/// Corrupted inputs must throw or decode, never crash.
@Suite struct DecoderRobustnessTests {
    static let hllImages: [[UInt8]] = [0, 3, 30, 1000].map { n in
        var s = HLLSketch(lgK: 10)
        for i in 0 ..< n { s.update("r\(i)") }
        return s.compactBytes()
    } + [{
        var s = HLLSketch(lgK: 10)
        for i in 0 ..< 30 { s.update("r\(i)") }
        return s.updatableBytes()
    }()]

    @Test func corruptedHLLImages() async {
        await propertyCheck(input: Gen.int(in: 0 ... 4), Gen.int(in: 0 ... 5000), Gen.int(in: 0 ... 255), Gen.int(in: 0 ... 40)) { which, pos, byte, cut in
            var img = Self.hllImages[which]
            img[pos % img.count] = UInt8(byte)
            if cut == 0 { img.removeLast(min(img.count, 1 + pos % 16)) }
            if var s = try? HLLSketch(bytes: img) {
                _ = s.estimate
                for i in 0 ..< 50 { s.update("more\(i)") }
                _ = s.compactBytes()
            }
        }
    }

    /// A gamma so large that the relative accuracy it implies rounds to 1
    /// (or to 0 once gamma + 1 overflows) is refused as a format error: a
    /// random corruption once hit the initializer's precondition instead.
    @Test func hugeGammaIsRefusedNotTrapped() {
        for gamma in [1e300, Double.greatestFiniteMagnitude, 1e17] {
            var msg: [UInt8] = [0x0A, 9, 0x09]  // mapping { gamma: fixed64 }
            withUnsafeBytes(of: gamma.bitPattern.littleEndian) { msg += $0 }
            #expect(throws: SketchError.self, "gamma \(gamma)") { try DDSketch(protobuf: msg) }
        }
        var ok: [UInt8] = [0x0A, 9, 0x09]
        withUnsafeBytes(of: (1.02).bitPattern.littleEndian) { ok += $0 }
        #expect((try? DDSketch(protobuf: ok)) != nil)
    }

    @Test func corruptedDDSketchMessages() async {
        var base = DDSketch()
        for v in [0.0, 1, 2, 3, 50, 1000, 1e6] { base.add(v) }
        let msg = base.protobufBytes()
        await propertyCheck(input: Gen.int(in: 0 ... 500), Gen.int(in: 0 ... 255), Gen.int(in: 0 ... 3)) { pos, byte, cut in
            var img = msg
            img[pos % img.count] = UInt8(byte)
            if cut == 0 { img.removeLast(1 + pos % img.count) }
            if var s = try? DDSketch(protobuf: img) {
                _ = s.quantile(0.5)
                s.add(3)
                _ = s.protobufBytes()
            }
        }
    }
}
