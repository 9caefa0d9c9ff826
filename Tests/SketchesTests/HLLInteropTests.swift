import Foundation
import Testing
@testable import Sketches

/// Interop with Apache DataSketches (Python `datasketches`) through tests/oracles/sketches_hll.py.
@Suite(.serialized) struct HLLInteropTests {
    static let ns = [0, 1, 7, 100, 1000, 10000, 1_000_000]
    static let prefix = "viewer-"

    static func ours(_ n: Int, lgK: Int = 12, prefix: String = prefix) -> HLLSketch {
        var s = HLLSketch(lgK: lgK)
        for i in 0 ..< n { s.update(prefix + String(i)) }
        return s
    }

    static func json(_ obj: Any) throws -> Data { try JSONSerialization.data(withJSONObject: obj) }

    /// Our compact bytes equal hll_sketch(12, HLL_8).serialize_compact() for the same items;
    /// the reference reads ours back and reports the same estimate.
    @Test func compactBytesMatchReference() throws {
        let ref = try Oracle.runJSON("sketches_hll.py", args: ["build"],
                                     input: try Self.json(["lgK": 12, "prefix": Self.prefix, "ns": Self.ns]))
        var mine: [HLLSketch] = []
        for n in Self.ns {
            let s = Self.ours(n)
            mine.append(s)
            let r = try #require(ref[String(n)] as? [String: Any])
            let refHex = try #require(r["hex"] as? String)
            #expect(Hex.encode(s.compactBytes()) == refHex, "compact bytes differ for n=\(n)")
            #expect(s.estimate == r.double("estimate"), "estimate differs for n=\(n)")
            // We read the reference's compact and updatable images to the same state.
            let fromRef = try HLLSketch(bytes: Hex.decode(refHex))
            #expect(fromRef.registerValues == s.registerValues && fromRef.estimate == s.estimate)
            let fromUpd = try HLLSketch(bytes: Hex.decode(try #require(r["updatable"] as? String)))
            #expect(fromUpd == s, "updatable image read differently for n=\(n)")
        }
        let back = try Oracle.runJSON("sketches_hll.py", args: ["read"],
                                      input: try Self.json(["sketches": mine.map { Hex.encode($0.compactBytes()) }]))
        let results = try #require(back["results"] as? [[String: Any]])
        #expect(results.count == mine.count)
        for (s, r) in zip(mine, results) {
            #expect(r.double("estimate") == s.estimate)
            // Re-serialized by the reference after reading ours == ours after the same round trip.
            let again = try HLLSketch(bytes: s.compactBytes())
            #expect(r["compact"] as? String == Hex.encode(again.compactBytes()))
        }
    }

    /// A union computed by the reference over our sketches has the same registers and
    /// estimate as ours (and, with get_result(HLL_8) taken first, the same bytes).
    @Test func unionMatchesReference() throws {
        // (nA, nB, lgK A, lgK B, overlap?) covering LIST/SET/HLL combinations and downsampling.
        let cases: [(Int, Int, Int, Int)] = [
            (0, 5, 12, 12), (5, 0, 12, 12), (3, 5, 12, 12), (5, 300, 12, 12), (300, 5, 12, 12),
            (300, 2000, 12, 12), (2000, 300, 12, 12), (5000, 7000, 12, 12), (50_000, 20_000, 12, 12),
            (5000, 7000, 12, 10), (5000, 7000, 10, 12), (3, 7000, 12, 14), (100, 100, 4, 4),
            (7000, 300, 14, 12),
        ]
        var pairs: [[String]] = []
        var unions: [HLLSketch] = []
        for (i, c) in cases.enumerated() {
            let a = Self.ours(c.0, lgK: c.2, prefix: "a\(i)-")
            // b overlaps a by half of its items
            var b = HLLSketch(lgK: c.3)
            for j in 0 ..< c.1 { b.update(j % 2 == 0 ? "a\(i)-\(j)" : "b\(i)-\(j)") }
            pairs.append([Hex.encode(a.compactBytes()), Hex.encode(b.compactBytes())])
            // The reference unions what it deserializes; a compact SET is re-inserted on read,
            // which changes coupon order (and so LIST/SET layouts and HIP), so do the same.
            var u = try HLLSketch(bytes: a.compactBytes())
            u.merge(try HLLSketch(bytes: b.compactBytes()))
            unions.append(u)
        }
        // The reference union's lg_max_k is a's lgK, as in our merge (self = gadget).
        for (i, c) in cases.enumerated() {
            let out = try Oracle.runJSON("sketches_hll.py", args: ["union"],
                                         input: try Self.json(["lgK": c.2, "pairs": [pairs[i]]]))
            let r = try #require((out["results"] as? [[String: Any]])?.first)
            let refBytes = Hex.decode(try #require(r["compact"] as? String))
            let refSketch = try HLLSketch(bytes: refBytes)
            let u = unions[i]
            #expect(refSketch.lgK == u.lgK, "case \(i)")
            #expect(refSketch.registerValues == u.registerValues, "registers differ, case \(i)")
            #expect(r.double("estimate") == u.estimate, "estimate differs, case \(i)")
            #expect(Hex.encode(u.compactBytes()) == Hex.encode(refBytes), "bytes differ, case \(i)")
            let ue = try #require(r.double("unionEstimate"))
            #expect(abs(ue - u.estimate) <= 1e-9 * max(1, ue), "union.get_estimate differs, case \(i)")
        }
    }

    /// Other lgK values across the LIST/SET/HLL transitions (lgK < 8 goes LIST -> HLL).
    @Test(arguments: [4, 5, 7, 8, 11, 16, 21])
    func compactBytesMatchReferenceAcrossLgK(lgK: Int) throws {
        let ns = [7, 8, 100, 5000, lgK <= 16 ? 300_000 : 20_000]
        let ref = try Oracle.runJSON("sketches_hll.py", args: ["build"],
                                     input: try Self.json(["lgK": lgK, "prefix": "k-", "ns": ns]))
        for n in ns {
            let s = Self.ours(n, lgK: lgK, prefix: "k-")
            let r = try #require(ref[String(n)] as? [String: Any])
            #expect(Hex.encode(s.compactBytes()) == r["hex"] as? String, "lgK \(lgK) n \(n)")
            #expect(s.estimate == r.double("estimate"), "lgK \(lgK) n \(n)")
        }
    }

    /// update(double:) canonicalizes -0.0 and NaN like the reference.
    @Test func doublesMatchReference() throws {
        let values: [Double] = [0, -0.0, .nan, -.nan, 1.5, -2.25, .infinity, 1e-300, .pi]
        var s = HLLSketch()
        for v in values { s.update(double: v) }
        #expect(s.couponCount == 7)  // -0.0 == 0.0 and the NaNs coincide
        let bits = values.map { String($0.bitPattern, radix: 16).leftPad(16) }
        let out = try Oracle.runJSON("sketches_hll.py", args: ["doubles"], input: try Self.json(["lgK": 12, "bits": bits]))
        #expect(out["hex"] as? String == Hex.encode(s.compactBytes()))
    }

    /// We read HLL_4 / HLL_6 / HLL_8 images (compact and updatable, in-order and unioned).
    @Test func readsAllTargetTypes() throws {
        for n in [5, 200, 3000, 40000] {
            let out = try Oracle.runJSON("sketches_hll.py", args: ["formats"],
                                         input: try Self.json(["lgK": 11, "prefix": "f-", "n": n]))
            let expected = Self.ours(n, lgK: 11, prefix: "f-")
            var unionRegs: [UInt8]? = nil
            for name in ["HLL_4", "HLL_6", "HLL_8", "HLL_4_union", "HLL_6_union", "HLL_8_union"] {
                let r = try #require(out[name] as? [String: Any])
                let est = try #require(r.double("estimate"))
                for form in ["compact", "updatable"] {
                    let s = try HLLSketch(bytes: Hex.decode(try #require(r[form] as? String)))
                    #expect(abs(s.estimate - est) <= 1e-9 * max(1, est), "\(name) \(form) n=\(n)")
                    if name.hasSuffix("union") {
                        if unionRegs == nil { unionRegs = s.registerValues }
                        #expect(s.registerValues == unionRegs, "\(name) \(form) n=\(n)")
                    } else {
                        #expect(s.registerValues == expected.registerValues, "\(name) \(form) n=\(n)")
                        #expect(s.estimate == expected.estimate, "\(name) \(form) n=\(n)")
                    }
                }
            }
        }
    }
}

extension String {
    func leftPad(_ n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}
