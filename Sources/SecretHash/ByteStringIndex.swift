/// Ids of distinct byte strings, numbered 0, 1, 2, … in the order they were
/// added: an open-addressing table with linear probing on `SecretHash` (the
/// strings come from beacons, docs/architecture.md "Keys from anyone"). The
/// index keeps only each id's hash; the caller keeps the strings, in id
/// order, and says whether id `k`'s string is the one looked for (`find`'s
/// `matches`, compared after the stored hash agrees).
///
/// Two users: `StringIds` (QoSCore: the `sessions` rows' string fields, where
/// it replaced a `[String: UInt32]` whose SipHash of every string cost ≈ 1 %
/// of a replay, bench/results/speed.md section 37, and the engine's
/// interners, section 56) and the Parquet writer's dictionary pages
/// (`ColumnChunkWriter`, section 40). Nothing written
/// depends on the bucket order, which differs from process to process:
/// ids follow insertion.
public struct ByteStringIndex: Sendable {
    /// By bucket: an id + 1, 0 for an empty bucket. A power of two, at
    /// least twice the number of ids (so a probe run ends).
    @usableFromInline var buckets: [UInt32] = []
    /// Each id's hash.
    @usableFromInline var hashes: [UInt64] = []

    public init() {}

    public var count: Int { hashes.count }

    /// The hash `find` and `insert` take.
    @inlinable @inline(__always)
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 { SecretHash.process.hash(bytes) }

    /// The id of the string hashing to `h` for which `matches(id)` holds, if any.
    @inlinable @inline(__always)
    public func find(hash h: UInt64, matches: (Int) -> Bool) -> Int? {
        guard !buckets.isEmpty else { return nil }
        let mask = buckets.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        while buckets[i] != 0 {
            let id = Int(buckets[i] &- 1)
            if hashes[id] == h && matches(id) { return id }
            i = (i &+ 1) & mask
        }
        return nil
    }

    /// Whether `a` and `b` hold the same bytes (a word at a time).
    @inlinable @inline(__always)
    public static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        let n = a.count
        var i = 0
        while i &+ 8 <= n {
            guard a.loadUnaligned(fromByteOffset: i, as: UInt64.self) == b.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            else { return false }
            i &+= 8
        }
        while i < n {
            guard a[i] == b[i] else { return false }
            i &+= 1
        }
        return true
    }

    /// Adds the next id (`count`), whose string hashes to `h` (not found before).
    @discardableResult
    public mutating func insert(hash h: UInt64) -> Int {
        let id = hashes.count
        precondition(id < Int(UInt32.max), "too many strings for one index")
        hashes.append(h)
        if hashes.count * 2 > buckets.count {
            buckets = [UInt32](repeating: 0, count: Swift.max(16, buckets.count * 2))
            for (k, hk) in hashes.enumerated() { place(k, hk) }
        } else {
            place(id, h)
        }
        return id
    }

    private mutating func place(_ id: Int, _ h: UInt64) {
        let mask = buckets.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        while buckets[i] != 0 { i = (i + 1) & mask }
        buckets[i] = UInt32(id + 1)
    }
}
