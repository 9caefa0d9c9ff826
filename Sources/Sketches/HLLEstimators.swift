// Estimators of the DataSketches HLL sketch. The operation order follows
// apache/datasketches-cpp so that results agree to the last bit:
//   CubicInterpolation-internal.hpp   (4-point Lagrange interpolation)
//   HarmonicNumbers-internal.hpp      (bitmap / linear-counting estimate)
//   HllArray-internal.hpp             (getCompositeEstimate, getHllRawEstimate)
//   CouponList-internal.hpp           (coupon-mode estimate)
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

enum HLLEstimators {
    /// Lagrange interpolation through four points (cubicInterpolate).
    static func cubic(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double,
                      _ x2: Double, _ y2: Double, _ x3: Double, _ y3: Double,
                      _ x: Double) -> Double {
        let l0Numer = (x - x1) * (x - x2) * (x - x3)
        let l1Numer = (x - x0) * (x - x2) * (x - x3)
        let l2Numer = (x - x0) * (x - x1) * (x - x3)
        let l3Numer = (x - x0) * (x - x1) * (x - x2)
        let l0Denom = (x0 - x1) * (x0 - x2) * (x0 - x3)
        let l1Denom = (x1 - x0) * (x1 - x2) * (x1 - x3)
        let l2Denom = (x2 - x0) * (x2 - x1) * (x2 - x3)
        let l3Denom = (x3 - x0) * (x3 - x1) * (x3 - x2)
        let term0 = y0 * l0Numer / l0Denom
        let term1 = y1 * l1Numer / l1Denom
        let term2 = y2 * l2Numer / l2Denom
        let term3 = y3 * l3Numer / l3Denom
        return term0 + term1 + term2 + term3
    }

    /// Index `l` with `x[l] <= v < x[l+1]` (recursiveFindStraddle; requires x[0] <= v < x[last]).
    static func findStraddle(_ xs: UnsafeBufferPointer<Double>, _ v: Double) -> Int {
        var l = 0, r = xs.count - 1
        while l + 1 < r {
            let m = l + (r - l) / 2
            if xs[m] <= v { l = m } else { r = m }
        }
        return l
    }

    /// Chooses the 4-point window: offset-0 at the left edge, offset-2 at the right edge,
    /// else offset-1 (usingXAndYTables / usingXArrAndYStride).
    static func window(_ straddle: Int, count: Int) -> Int {
        if straddle == 0 { return 0 }
        if straddle == count - 2 { return straddle - 2 }
        return straddle - 1
    }

    /// CubicInterpolation::usingXAndYTables with the coupon tables.
    static func couponCubic(_ x: Double) -> Double {
        let xs = HLLTables.couponX, ys = HLLTables.couponY
        precondition(x >= xs[0] && x <= xs[xs.count - 1], "coupon count out of interpolation range")
        if x == xs[xs.count - 1] { return ys[ys.count - 1] }
        let s = xs.withUnsafeBufferPointer { findStraddle($0, x) }
        let o = window(s, count: xs.count)
        return cubic(xs[o], ys[o], xs[o + 1], ys[o + 1], xs[o + 2], ys[o + 2], xs[o + 3], ys[o + 3], x)
    }

    /// LIST / SET estimate: max(cubic(count), count). Also the HIP value set at promotion.
    static func couponEstimate(_ count: Int) -> Double {
        let c = Double(count)
        return Swift.max(couponCubic(c), c)
    }

    /// H(n): exact table below 25, else the asymptotic series (harmonicNumber).
    static func harmonic(_ n: Int) -> Double {
        if n < HLLTables.exactHarmonic.count { return HLLTables.exactHarmonic[n] }
        let x = Double(n)
        let invSq = 1.0 / (x * x)
        var sum = log(x) + 0.577215664901532860606512090082 + (1.0 / (2.0 * x))
        var pow = invSq
        sum -= pow * (1.0 / 12.0)
        pow *= invSq
        sum += pow * (1.0 / 120.0)
        pow *= invSq
        sum -= pow * (1.0 / 252.0)
        pow *= invSq
        sum += pow * (1.0 / 240.0)
        return sum
    }

    /// getHllBitMapEstimate: linear counting over the unhit buckets.
    static func bitMapEstimate(lgK: Int, curMin: UInt8, numAtCurMin: UInt32) -> Double {
        let k = 1 << lgK
        let unhit = curMin == 0 ? Int(numAtCurMin) : 0
        if unhit == 0 { return Double(k) * log(Double(k) / 0.5) }
        let hit = k - unhit
        return Double(k) * (harmonic(k) - harmonic(k - hit))
    }

    /// getHllRawEstimate: the classic HLL estimate from kxq0 + kxq1.
    static func rawEstimate(lgK: Int, kxq0: Double, kxq1: Double) -> Double {
        let k = Double(1 << lgK)
        let cf: Double
        switch lgK {
        case 4: cf = 0.673
        case 5: cf = 0.697
        case 6: cf = 0.709
        default: cf = 0.7213 / (1.0 + (1.079 / k))
        }
        return (cf * k * k) / (kxq0 + kxq1)
    }

    /// getCompositeEstimate: raw estimate corrected through the x table, blended with
    /// linear counting for small cardinalities.
    static func compositeEstimate(lgK: Int, kxq0: Double, kxq1: Double,
                                  curMin: UInt8, numAtCurMin: UInt32) -> Double {
        let raw = rawEstimate(lgK: lgK, kxq0: kxq0, kxq1: kxq1)
        let n = HLLTables.compositeXLength
        let base = (lgK - 4) * n
        let yStride = HLLTables.yStrides[lgK - 4]
        let adj: Double = HLLTables.compositeX.withUnsafeBufferPointer { all in
            let xs = UnsafeBufferPointer(rebasing: all[base ..< base + n])
            if raw < xs[0] { return 0 }
            if raw > xs[n - 1] {
                let finalY = yStride * Double(n - 1)
                let factor = finalY / xs[n - 1]
                return raw * factor
            }
            if raw == xs[n - 1] { return yStride * Double(n - 1) }
            let o = window(findStraddle(xs, raw), count: n)
            return cubic(xs[o], yStride * Double(o), xs[o + 1], yStride * Double(o + 1),
                         xs[o + 2], yStride * Double(o + 2), xs[o + 3], yStride * Double(o + 3), raw)
        }
        // Early returns of the reference (raw < x[0] -> 0, raw > x[last] -> scaled) skip the blend.
        if raw < HLLTables.compositeX[base] || raw > HLLTables.compositeX[base + n - 1] { return adj }
        if adj > Double(3 << lgK) { return adj }
        let lin = bitMapEstimate(lgK: lgK, curMin: curMin, numAtCurMin: numAtCurMin)
        let avg = (adj + lin) / 2.0
        var crossOver = 0.64
        if lgK == 4 { crossOver = 0.718 } else if lgK == 5 { crossOver = 0.672 }
        return avg > crossOver * Double(1 << lgK) ? adj : lin
    }
}
