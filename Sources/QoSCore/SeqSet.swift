/// The `seq` numbers a session has seen, as sorted disjoint ranges. Players
/// send in order, so this is one range almost always; late or reordered
/// beacons add a few. Bounded: past `rangesMax` ranges the two closest are
/// joined (the numbers between them then count as seen — README).
public struct SeqSet: Sendable, Equatable {
    public static let rangesMax = 32
    /// Inclusive ranges, sorted, disjoint and non-adjacent.
    public private(set) var ranges: [ClosedRange<UInt32>] = []

    public init() {}

    /// Inserts `seq`; returns false when it was already present (a duplicate).
    public mutating func insert(_ seq: UInt32) -> Bool {
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
            if ranges.count > SeqSet.rangesMax { joinClosest() }
        }
        return true
    }

    /// Appends a range read from a checkpoint (ranges come sorted).
    public mutating func restore(_ r: ClosedRange<UInt32>) { ranges.append(r) }

    private mutating func joinClosest() {
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
