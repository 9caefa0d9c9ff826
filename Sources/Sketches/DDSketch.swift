// DDSketch (Masson, Rim, Lee; VLDB 2019) with the logarithmic index mapping of
// DataDog/sketches-py (`ddsketch/mapping.py` LogarithmicMapping, `ceil` key convention:
// bucket k covers (gamma^(k-1), gamma^k]) and a collapsing-lowest dense store
// (`ddsketch/store.py` CollapsingLowestDenseStore semantics, canonical form).
//
// Canonical store state: with M the multiset of keys and T = max(M) - binLimit + 1,
// key k is counted in bin max(k, T). This is a function of M only, so adding values
// in any order and merging sketches give identical contents (exact with integer counts).
// Negative values, NaN and values above DBL_MAX / gamma are rejected.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `key(v)` of the default (1 %) mapping for the integers 0..<count, computed
/// once with the same formula: most values sketched are whole milliseconds.
@usableFromInline enum SmallKeys {
    @usableFromInline static let count = 1 << 14
    /// (Computed without a `DDSketch`: its `init` reads these.)
    @usableFromInline static let multiplier = DDSketch.mapping(relativeAccuracy: 0.01).multiplier
    @usableFromInline nonisolated(unsafe) static let table: UnsafeMutablePointer<Int32> = {
        let t = UnsafeMutablePointer<Int32>.allocate(capacity: count)
        t[0] = 0  // never read: 0 is not above minPossible
        for i in 1..<count { t[i] = Int32(DDSketch.key(Double(i), multiplier: multiplier)) }
        return t
    }()
}

public struct DDSketch: Sendable, Equatable {
    /// The constants of one index mapping and bin limit. Every sketch of the
    /// same parameters shares one instance, so a sketch holds one reference
    /// instead of seven numbers: the engine keeps five sketches in every
    /// group of every window share (docs/architecture.md "Window shares in
    /// memory"), and their size is memory allocated, copied and paged in.
    @usableFromInline final class Mapping: Sendable {
        @usableFromInline let relativeAccuracy: Double
        @usableFromInline let binLimit: Int
        @usableFromInline let gamma: Double
        @usableFromInline let multiplier: Double
        @usableFromInline let minPossible: Double
        @usableFromInline let maxPossible: Double
        /// The address of `SmallKeys.table` when this is its mapping (the
        /// default accuracy), else 0: looked up once here, not per value.
        @usableFromInline let smallKeys: UInt

        init(relativeAccuracy: Double, binLimit: Int) {
            precondition(relativeAccuracy > 0 && relativeAccuracy < 1, "relative accuracy must be in (0, 1)")
            precondition(binLimit >= 1, "binLimit must be positive")
            self.relativeAccuracy = relativeAccuracy
            self.binLimit = binLimit
            (gamma, multiplier) = DDSketch.mapping(relativeAccuracy: relativeAccuracy)
            precondition(gamma > 1, "relative accuracy too small")
            minPossible = Double.leastNormalMagnitude * gamma
            maxPossible = Double.greatestFiniteMagnitude / gamma
            smallKeys = multiplier == SmallKeys.multiplier ? UInt(bitPattern: SmallKeys.table) : 0
        }

        /// The default parameters, as asked for (1 %, 2 048 bins).
        static let standard = Mapping(relativeAccuracy: 0.01, binLimit: DDSketch.defaultBinLimit)
        /// The default parameters as read back from bytes, which carry gamma:
        /// the accuracy (gamma - 1) / (gamma + 1) differs from 0.01 in its
        /// last bits, and a decoded sketch reports it.
        static let standardRead: Mapping = {
            let g = standard.gamma
            return Mapping(relativeAccuracy: (g - 1) / (g + 1), binLimit: DDSketch.defaultBinLimit)
        }()

        /// The shared instance for these parameters, or a new one.
        static func of(relativeAccuracy: Double, binLimit: Int) -> Mapping {
            if binLimit == DDSketch.defaultBinLimit {
                if relativeAccuracy == standard.relativeAccuracy { return standard }
                if relativeAccuracy == standardRead.relativeAccuracy { return standardRead }
            }
            return Mapping(relativeAccuracy: relativeAccuracy, binLimit: binLimit)
        }
    }

    /// The bin limit of `init` when none is given.
    public static let defaultBinLimit = 2048
    /// The most observations a sketch read from bytes may count (2^53: past
    /// it a Double no longer counts one by one). Sums of such counts, as
    /// merges make, stay finite: a sketch from a hostile file cannot make a
    /// merged count infinite and the merged sketch unreadable.
    public static let countMax: Double = 9_007_199_254_740_992

    @usableFromInline let mapping: Mapping
    /// The accuracy asked for (a decoded sketch reports (gamma - 1) / (gamma + 1)).
    /// Sketches compare and merge by `gamma`.
    public var relativeAccuracy: Double { mapping.relativeAccuracy }
    /// Maximum number of bins; lower keys are collapsed into the lowest kept bin.
    public var binLimit: Int { mapping.binLimit }
    /// gamma = 1 + 2a/(1-a) (KeyMapping.__init__).
    public var gamma: Double { mapping.gamma }
    /// (1 / log1p(2a/(1-a))) * log(2): the multiplier of log2(v) (LogarithmicMapping).
    @inlinable var multiplier: Double { mapping.multiplier }
    /// Values <= DBL_MIN * gamma count as zero (KeyMapping.min_possible).
    @inlinable var minPossible: Double { mapping.minPossible }
    /// Values > DBL_MAX / gamma are rejected (KeyMapping.max_possible).
    @inlinable var maxPossible: Double { mapping.maxPossible }

    /// bins[i] counts key `offset + i`; keys outside [minKey, maxKey] are 0.
    @usableFromInline var bins: ContiguousArray<Double>
    @usableFromInline var offset: Int
    @usableFromInline var minKey: Int
    @usableFromInline var maxKey: Int
    @usableFromInline var positiveCount: Double
    @usableFromInline var zeros: Double
    /// Count of values in [0, DBL_MIN * gamma].
    public var zeroCount: Double { zeros }

    /// log(2), as a literal: a computed `static let` is reached through a
    /// one-time initialization check on every read (bench/results/speed.md
    /// §11). `DDSketchTests` checks it equals `log(2.0)`.
    @usableFromInline static let ln2: Double = 0.693_147_180_559_945_3

    public init(relativeAccuracy: Double = 0.01, binLimit: Int = DDSketch.defaultBinLimit) {
        // Canonical accuracy: the one a reader recovers from gamma (KeyMapping.from_gamma_offset,
        // (gamma - 1) / (gamma + 1)), so a sketch maps and answers identically before and after
        // a protobuf round trip, in Swift and in sketches-py.
        mapping = Mapping.of(relativeAccuracy: relativeAccuracy, binLimit: binLimit)
        bins = []
        offset = 0
        minKey = 0
        maxKey = -1
        positiveCount = 0
        zeros = 0
    }

    // MARK: - Mapping

    /// gamma and the multiplier of log2(v) for an accuracy (see `init`).
    static func mapping(relativeAccuracy: Double) -> (gamma: Double, multiplier: Double) {
        let g0 = 1 + 2 * relativeAccuracy / (1 - relativeAccuracy)
        let alpha = (g0 - 1) / (g0 + 1)
        let mantissa = 2 * alpha / (1 - alpha)
        return (1 + mantissa, (1 / log1p(mantissa)) * ln2)
    }

    /// key(v) = ceil(log2(v) * multiplier), computed as Python does: log(v) / log(2).
    @inlinable @inline(__always)
    public func key(_ value: Double) -> Int {
        Self.key(value, multiplier: multiplier)
    }

    @inlinable @inline(__always)
    static func key(_ value: Double, multiplier: Double) -> Int {
        Int((log(value) / ln2 * multiplier).rounded(.up))
    }

    /// The representative value of a bucket: 2^(k / multiplier) * 2 / (1 + gamma).
    @inlinable
    public func value(ofKey k: Int) -> Double {
        pow(2.0, Double(k) / multiplier) * (2.0 / (1 + gamma))
    }

    // MARK: - Queries

    public var count: Double { positiveCount + zeroCount }
    public var isEmpty: Bool { count == 0 }

    /// Quantile with the sketches-py rank convention: rank = q * (count - 1), the first
    /// bucket whose cumulative count exceeds the rank. nil when empty or q outside [0, 1].
    public func quantile(_ q: Double) -> Double? {
        guard q >= 0, q <= 1, count > 0 else { return nil }
        let rank = q * (count - 1)
        if rank < zeroCount { return 0 }
        let r = rank - zeroCount
        var running = 0.0
        for k in minKey ... maxKey {
            running += bins[k - offset]
            if running > r { return value(ofKey: k) }
        }
        return value(ofKey: maxKey)
    }

    /// (key, count) of the non-empty positive bins, ascending.
    public var nonEmptyBins: [(key: Int, count: Double)] {
        guard positiveCount > 0 else { return [] }
        return (minKey ... maxKey).compactMap { k in bins[k - offset] > 0 ? (k, bins[k - offset]) : nil }
    }

    public static func == (a: DDSketch, b: DDSketch) -> Bool {
        a.gamma == b.gamma && a.zeroCount == b.zeroCount && a.positiveCount == b.positiveCount
            && a.nonEmptyBins.elementsEqual(b.nonEmptyBins) { $0.key == $1.key && $0.count == $1.count }
    }

    // MARK: - Updates

    /// Adds a value; returns false (and ignores it) for negative, NaN or huge values.
    @inlinable @discardableResult
    public mutating func add(_ value: Double) -> Bool {
        if value > minPossible {
            if !(value <= maxPossible) { return false }
            // Whole milliseconds below 2^14 under the default mapping: a table lookup, no log.
            if value < Double(SmallKeys.count), let table = UnsafePointer<Int32>(bitPattern: mapping.smallKeys),
               let i = Int(exactly: value) {
                addKey(Int(table[i]), weight: 1)
            } else {
                addKey(key(value), weight: 1)
            }
            return true
        }
        if value >= 0 {  // [0, minPossible]; NaN and negatives fail this test
            zeros += 1
            return true
        }
        return false
    }

    @inlinable @inline(__always)
    mutating func addKey(_ k: Int, weight: Double) {
        if k >= minKey && k <= maxKey {
            bins[k &- offset] += weight
            positiveCount += weight
        } else {
            addKeySlow(k, weight: weight)
        }
    }

    /// Adds `weight` to key `k` when k is outside [minKey, maxKey] (or the store is empty).
    @usableFromInline
    mutating func addKeySlow(_ k0: Int, weight: Double) {
        var k = k0
        if positiveCount == 0 {
            minKey = k
            maxKey = k
            ensureWindow(k, k)
        } else if k > maxKey {
            let lowest = k - binLimit + 1
            if lowest > minKey { collapse(below: lowest) }
            maxKey = k
            ensureWindow(minKey, maxKey)
        } else {
            k = Swift.max(k, maxKey - binLimit + 1)  // clamp into the lowest allowed bin
            if k < minKey {
                minKey = k
                ensureWindow(minKey, maxKey)
            }
        }
        bins[k - offset] += weight
        positiveCount += weight
    }

    /// Folds all counts of keys < `lowest` into bin `lowest` (which becomes minKey).
    mutating func collapse(below lowest: Int) {
        var folded = 0.0
        let top = Swift.min(lowest - 1, maxKey)
        if minKey <= top {
            for key in minKey ... top {
                folded += bins[key - offset]
                bins[key - offset] = 0
            }
        }
        minKey = lowest
        ensureWindow(lowest, Swift.max(lowest, maxKey))
        bins[lowest - offset] += folded
    }

    /// Makes the storage window cover [lo, hi], re-centering / growing with slack.
    mutating func ensureWindow(_ lo: Int, _ hi: Int) {
        if !bins.isEmpty && lo >= offset && hi < offset + bins.count { return }
        let needed = hi - lo + 1
        // Start small, 8 bins either side of the first key (most sketches
        // of a window group, and nearly all of a partition's share of one,
        // see few distinct keys: bench/results/speed.md section 65), then
        // at least double: amortized O(1) copying per key.
        let margin = 2 * Swift.min(8, binLimit)
        let size = bins.isEmpty ? needed + margin : Swift.max(needed + margin, 2 * needed)
        let newOffset = lo - (size - needed) / 2
        var fresh = ContiguousArray<Double>.zeros(size)
        // The live range that intersects the new window, copied as one block
        // (element by element it was most of this function's instructions:
        // bench/results/speed.md section 63).
        let from = Swift.max(offset, newOffset), to = Swift.min(offset + bins.count, newOffset + size)
        if from < to {
            fresh.withUnsafeMutableBufferPointer { dst in
                bins.withUnsafeBufferPointer { src in
                    (dst.baseAddress! + (from - newOffset)).update(from: src.baseAddress! + (from - offset), count: to - from)
                }
            }
        }
        bins = fresh
        offset = newOffset
    }

    /// Whether `merge(other)` is allowed (same gamma, i.e. same relative accuracy).
    public func canMerge(_ other: DDSketch) -> Bool { gamma == other.gamma }

    /// Exact merge (bins and zero count add up). Requires the same gamma (see `canMerge`).
    public mutating func merge(_ other: DDSketch) {
        precondition(gamma == other.gamma, "cannot merge DDSketches with different relative accuracy")
        zeros += other.zeros
        guard other.positiveCount > 0 else { return }
        // Extend to the larger max first so that collapsing happens once.
        addKeyRange(other)
    }

    /// Adds other's bins from its highest key down, so any collapsing happens up front.
    ///
    /// When the keys of both sketches fit in `binLimit` bins nothing collapses
    /// and every count lands in its own key's bin: the window is widened once
    /// and the bins are added in one pass, with the same additions in the same
    /// order as `addKeysOneByOne` (which the rest takes, and which tests
    /// compare this with). A flush merges every partition's share of a
    /// window this way (bench/results/speed.md section 21).
    mutating func addKeyRange(_ other: DDSketch) {
        // The lowest and highest keys of `other` that hold a count (its
        // minKey may name an emptied bin after a collapse).
        var lo = other.minKey, hi = other.maxKey
        while hi >= lo && other.bins[hi - other.offset] == 0 { hi -= 1 }
        while lo <= hi && other.bins[lo - other.offset] == 0 { lo += 1 }
        guard lo <= hi else { return }
        let newMin = positiveCount > 0 ? Swift.min(minKey, lo) : lo
        let newMax = positiveCount > 0 ? Swift.max(maxKey, hi) : hi
        guard newMax - newMin < binLimit else { return addKeysOneByOne(other) }
        ensureWindow(newMin, newMax)
        minKey = newMin
        maxKey = newMax
        // Every bin of other's [lo, hi] is added, empty ones too: adding
        // +0.0 leaves a count and the total bit for bit as they were, so
        // the result is the one of skipping them, without a branch per bin
        // (bench/results/speed.md section 65). The total is summed in a
        // local, in the same order.
        let shift = other.offset - offset
        let first = lo - other.offset, last = hi - other.offset
        let before = positiveCount
        let added = bins.withUnsafeMutableBufferPointer { into in
            other.bins.withUnsafeBufferPointer { from in
                precondition(first >= 0 && last < from.count && first + shift >= 0 && last + shift < into.count)
                let src = from.baseAddress!, dst = into.baseAddress! + shift
                var sum = before
                var i = last
                while i >= first {
                    let c = src[i]
                    dst[i] += c
                    sum += c
                    i &-= 1
                }
                return sum
            }
        }
        positiveCount = added
    }

    /// `addKeyRange` one key at a time through `addKey` (collapsing as needed).
    mutating func addKeysOneByOne(_ other: DDSketch) {
        for k in stride(from: other.maxKey, through: other.minKey, by: -1) {
            let c = other.bins[k - other.offset]
            if c != 0 { addKey(k, weight: c) }
        }
    }
}
