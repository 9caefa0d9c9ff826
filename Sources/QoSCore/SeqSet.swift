/// The `seq` numbers a session has seen, as sorted disjoint ranges. Players
/// send in order, so this is one range almost always; late or reordered
/// beacons add a few. Bounded: past `rangesMax` ranges the two closest are
/// joined (the numbers between them then count as seen — README).
///
/// Layout: the first range is stored inline (no heap allocation for the
/// usual single range); a second range moves every range into `spilled`.
public struct SeqSet: Sendable, Equatable {
    public static let rangesMax = 32
    /// The only range while `spilled` is empty; `lo > hi` means no range.
    private var lo: UInt32 = 1, hi: UInt32 = 0
    /// All ranges once there are two or more (then `lo`/`hi` are unused).
    private var spilled: [ClosedRange<UInt32>] = []

    public init() {}

    /// The stored form (`SessionState` keeps `lo`/`hi` inline and the rest aside).
    init(lo: UInt32, hi: UInt32, spilled: [ClosedRange<UInt32>]) {
        (self.lo, self.hi, self.spilled) = (lo, hi, spilled)
    }

    var parts: (lo: UInt32, hi: UInt32, spilled: [ClosedRange<UInt32>]) { (lo, hi, spilled) }

    /// Inclusive ranges, sorted, disjoint and non-adjacent.
    public var ranges: [ClosedRange<UInt32>] {
        if !spilled.isEmpty { return spilled }
        return lo <= hi ? [lo...hi] : []
    }

    public static func == (a: SeqSet, b: SeqSet) -> Bool { a.ranges == b.ranges }

    /// No number seen.
    public var isEmpty: Bool { spilled.isEmpty && lo > hi }

    /// Whether `seq` is in the set.
    public func contains(_ seq: UInt32) -> Bool {
        if spilled.isEmpty { return lo <= seq && seq <= hi }
        return spilled.contains { $0.contains(seq) }
    }

    /// Inserts `seq`; returns false when it was already present (a duplicate).
    public mutating func insert(_ seq: UInt32) -> Bool {
        if spilled.isEmpty {
            if lo > hi { lo = seq; hi = seq; return true }
            // Fast path: the next number after the only range.
            if seq == hi &+ 1 && seq != 0 { hi = seq; return true }
            if seq >= lo && seq <= hi { return false }
            if seq &+ 1 == lo && seq != UInt32.max { lo = seq; return true }
            spilled = [lo...hi]
            lo = 1; hi = 0
        }
        return insertSpilled(seq)
    }

    private mutating func insertSpilled(_ seq: UInt32) -> Bool {
        var ranges = spilled
        spilled = []
        defer { spilled = ranges; normalize() }
        // Fast path: the next number after the last range.
        if let last = ranges.last {
            if seq == last.upperBound &+ 1 && seq != 0 {
                ranges[ranges.count - 1] = last.lowerBound...seq
                return true
            }
            if last.contains(seq) { return false }
        }
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound < seq { lo = mid + 1 } else { hi = mid }
        }
        if lo < ranges.count && ranges[lo].contains(seq) { return false }
        let joinsLeft = lo > 0 && ranges[lo - 1].upperBound &+ 1 == seq
        let joinsRight = lo < ranges.count && seq &+ 1 == ranges[lo].lowerBound
        switch (joinsLeft, joinsRight) {
        case (true, true):
            ranges[lo - 1] = ranges[lo - 1].lowerBound...ranges[lo].upperBound
            ranges.remove(at: lo)
        case (true, false): ranges[lo - 1] = ranges[lo - 1].lowerBound...seq
        case (false, true): ranges[lo] = seq...ranges[lo].upperBound
        case (false, false):
            ranges.insert(seq...seq, at: lo)
            if ranges.count > SeqSet.rangesMax { SeqSet.joinClosest(&ranges) }
        }
        return true
    }

    /// Back to the inline form when one range is left.
    private mutating func normalize() {
        if spilled.count == 1 {
            lo = spilled[0].lowerBound; hi = spilled[0].upperBound
            spilled = []
        }
    }

    /// Appends a range read from a checkpoint (ranges come sorted).
    public mutating func restore(_ r: ClosedRange<UInt32>) {
        if spilled.isEmpty && lo > hi { lo = r.lowerBound; hi = r.upperBound; return }
        if spilled.isEmpty { spilled = [lo...hi]; lo = 1; hi = 0 }
        spilled.append(r)
    }

    private static func joinClosest(_ ranges: inout [ClosedRange<UInt32>]) {
        var best = 0
        var bestGap = UInt32.max
        for i in 0..<(ranges.count - 1) {
            let gap = ranges[i + 1].lowerBound - ranges[i].upperBound
            if gap < bestGap { bestGap = gap; best = i }
        }
        ranges[best] = ranges[best].lowerBound...ranges[best + 1].upperBound
        ranges.remove(at: best + 1)
    }
}
