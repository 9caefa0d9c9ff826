import Testing
@testable import QoSCore

/// `GroupKey`'s own table hash (`_rawHashValue(seed:)`, bench/results/speed.md §16).
@Suite struct GroupKeyTests {
    /// Every group of a window of many small interner serials, as a table
    /// holds them: each found again, none merged with another, and the
    /// buckets filled about evenly (a weak mix of small ids would pile up).
    @Test func smallSerialsSpreadAndStayDistinct() {
        var keys: [GroupKey] = []
        for a in 0..<40 as Range<UInt32> {
            for b in 0..<25 as Range<UInt32> { keys.append(GroupKey(a, b)); keys.append(GroupKey(b, a, 1, a)) }
        }
        var table: [GroupKey: Int] = [:]
        for (i, k) in keys.enumerated() where table[k] == nil { table[k] = i }
        #expect(table.count == Set(keys.map { [$0.a, $0.b, $0.c, $0.d] }).count)
        for k in keys { #expect(table[k] != nil) }
        // 1 024 buckets, ~1 900 keys: no bucket may hold more than a few dozen.
        var buckets = [Int](repeating: 0, count: 1024)
        for k in table.keys { buckets[k._rawHashValue(seed: 12345) & 1023] += 1 }
        #expect(buckets.max()! <= 12, "largest bucket \(buckets.max()!)")
        // The seed changes the hash (each table's own).
        let k = GroupKey(3, 4, 5, 6)
        #expect(k._rawHashValue(seed: 1) != k._rawHashValue(seed: 2))
        #expect(k._rawHashValue(seed: 1) == GroupKey(3, 4, 5, 6)._rawHashValue(seed: 1))
        // Word order matters: (a, b) and (b, a) are different groups.
        #expect(GroupKey(1, 2)._rawHashValue(seed: 0) != GroupKey(2, 1)._rawHashValue(seed: 0))
        #expect(GroupKey(0, 0, 1)._rawHashValue(seed: 0) != GroupKey(1)._rawHashValue(seed: 0))
    }
}
