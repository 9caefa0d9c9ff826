import Foundation
import Testing
@testable import Sketches
import SplitMix
import QoSBench

/// Statistical accuracy over many random seeds. Inputs are pre-hashed 64-bit values from
/// SplitMix64 through `update(hash:)` (Murmur hashing itself is covered by the interop tests),
/// which keeps 100 x 1M updates affordable in a debug build.
@Suite struct AccuracyTests {
    /// HIP estimator, lgK 12, 1M distinct items, 100 seeds: |err| <= 3 RSE in >= 99% of seeds.
    /// RSE = 0.8325546 / sqrt(k) (HLL_HIP_RSE_FACTOR, HllUtil.hpp) = 1.30%.
    @Test func hllHipErrorWithinThreeRSE() {
        let n = 1_000_000, seeds = 100
        let rse = 0.8325546 / (4096.0).squareRoot()
        var within = 0
        var worst = 0.0
        for seed in 0 ..< seeds {
            var rng = SplitMix64(seed: UInt64(seed) &* 0x1000_0001 &+ 17)
            var s = HLLSketch(lgK: 12)
            for _ in 0 ..< n { s.update(hash: rng.next()) }
            let err = abs(s.estimate / Double(n) - 1)
            worst = max(worst, err)
            if err <= 3 * rse { within += 1 }
        }
        #expect(within >= 99, "only \(within)/\(seeds) seeds within 3 RSE (worst \(worst))")
    }

    /// Composite estimator after a union (two overlapping 600k streams, 1M distinct), 20 seeds:
    /// within 3 x 1.03896 / sqrt(k) (HLL_NON_HIP_RSE_FACTOR) in >= 19 of 20 seeds.
    @Test func hllCompositeErrorAfterUnion() {
        let rse = 1.03896 / (4096.0).squareRoot()
        var within = 0
        for seed in 0 ..< 20 {
            var rng = SplitMix64(seed: UInt64(seed) + 1000)
            let hashes = (0 ..< 1_000_000).map { _ in rng.next() }
            var a = HLLSketch(lgK: 12), b = HLLSketch(lgK: 12)
            for h in hashes[0 ..< 600_000] { a.update(hash: h) }
            for h in hashes[400_000...] { b.update(hash: h) }
            a.merge(b)
            #expect(a.isOutOfOrder)
            if abs(a.estimate / 1e6 - 1) <= 3 * rse { within += 1 }
        }
        #expect(within >= 19)
    }

    /// Small cardinalities through the composite estimator (linear-counting branch).
    @Test func hllCompositeSmallCardinalities() {
        for n in [500, 2000, 5000, 20000] {
            var rng = SplitMix64(seed: UInt64(n))
            var a = HLLSketch(lgK: 12), b = HLLSketch(lgK: 12)
            for i in 0 ..< n {
                let h = rng.next()
                if i % 2 == 0 { a.update(hash: h) } else { b.update(hash: h) }
                if i % 5 == 0 { a.update(hash: h); b.update(hash: h) }
            }
            a.merge(b)
            #expect(abs(a.estimate / Double(n) - 1) < 0.06, "n=\(n): \(a.estimate)")
        }
    }

    /// DDSketch quantiles are within 1% of the exact quantile (same rank convention) for
    /// every seed: 100 seeds x 100k values over four distributions, and one seed at 1M.
    @Test func ddsketchQuantilesWithinRelativeAccuracy() {
        let qs = [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]
        var violations: [String] = []
        for seed in 0 ... 100 {
            let n = seed == 100 ? 1_000_000 : 100_000
            var rng = SplitMix64(seed: UInt64(seed) &+ 99)
            var s = DDSketch()
            var values = [Double]()
            values.reserveCapacity(n)
            for _ in 0 ..< n {
                let u = (Double(rng.next() >> 11) + 0.5) * 0x1p-53
                let v: Double
                switch seed % 4 {
                case 0: v = -log(u) * 800  // exponential
                case 1: v = exp(6 + 1.5 * (u - 0.5) * 6)  // log-uniform over e^6 range
                case 2: v = 1 / pow(u, 0.7)  // Pareto tail
                default: v = (u * 300_000).rounded()  // uniform integers incl. 0
                }
                s.add(v)
                values.append(v)
            }
            values.sort()
            for q in qs {
                let exact = values[Int((q * Double(n - 1)).rounded(.down))]
                let got = s.quantile(q)!
                if abs(got - exact) > 0.01 * exact {
                    violations.append("seed \(seed) q \(q): \(got) vs \(exact)")
                }
            }
        }
        #expect(violations.isEmpty, "\(violations.prefix(5))")
    }

    @Test func benchRunsAndReportsRates() {
        let r = SketchBench.run(n: 20_000)
        #expect(r.count == 5 && r.allSatisfy { $0.opsPerSec > 0 })
    }
}
