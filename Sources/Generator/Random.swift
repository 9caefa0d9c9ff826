import Foundation

import SplitMix

/// The generator's draws on SplitMix64 (Sources/SplitMix: one home for the
/// stream `qos generate`, the benchmarks and the tests use).
extension SplitMix64 {
    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    public mutating func chance(_ p: Double) -> Bool { unit() < p }

    public mutating func int(_ range: ClosedRange<Int64>) -> Int64 {
        range.lowerBound + Int64(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    public mutating func index(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// Log-normal with the given median and shape.
    public mutating func logNormal(median: Double, sigma: Double) -> Double {
        let u1 = max(unit(), 1e-12), u2 = unit()
        let z = (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
        return median * Foundation.exp(sigma * z)
    }

    public mutating func exponential(mean: Double) -> Double { -mean * Foundation.log(max(1 - unit(), 1e-12)) }

    /// An index drawn by relative weights.
    public mutating func weighted(_ weights: [Double]) -> Int {
        let total = weights.reduce(0, +)
        var x = unit() * total
        for (i, w) in weights.enumerated() {
            if x < w { return i }
            x -= w
        }
        return weights.count - 1
    }
}

/// Zipf(s) over 1…n via a precomputed CDF.
public struct Zipf: Sendable {
    private let cdf: [Double]

    public init(n: Int, s: Double = 1.0) {
        var acc = 0.0
        var c: [Double] = []
        c.reserveCapacity(n)
        for k in 1...max(1, n) {
            acc += 1 / Foundation.pow(Double(k), s)
            c.append(acc)
        }
        cdf = c.map { $0 / acc }
    }

    /// A 0-based rank.
    public func sample(_ rng: inout SplitMix64) -> Int {
        let x = rng.unit()
        var lo = 0, hi = cdf.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cdf[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
