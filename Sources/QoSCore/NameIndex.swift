import SecretHash

/// The ids of the distinct strings of the `sessions` rows' string fields
/// (`SessionRows.names`, by their UTF-8 bytes `SessionRows.nameBytes`): an
/// open-addressing table with linear probing on a keyed hash of a string's
/// bytes (`SecretHash`: the strings come from beacons, docs/architecture.md
/// "Keys from anyone"); a slot's string is compared by its stored hash,
/// then its bytes. It replaced a `[String: UInt32]` whose hashing of every
/// string (twelve per closed session) cost ≈ 1 % of a replay
/// (bench/results/speed.md section 37).
struct NameIndex: Sendable {
    /// By bucket: an id + 1, 0 for an empty bucket. A power of two, at
    /// least twice the number of ids (so a probe run ends).
    private var buckets: [UInt32] = []
    /// Each id's hash.
    private var hashes: [UInt64] = []

    var count: Int { hashes.count }

    /// The hash `find` and `insert` take.
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 { SecretHash.process.hash(bytes) }

    /// The id whose bytes (`names[id]`) are `bytes`, if any.
    func find(_ bytes: UnsafeRawBufferPointer, hash h: UInt64, names: [[UInt8]]) -> UInt32? {
        assert(names.count == hashes.count, "an index of other names")
        guard !buckets.isEmpty else { return nil }
        let mask = buckets.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        while buckets[i] != 0 {
            let id = Int(buckets[i] - 1)
            if hashes[id] == h && names[id].withUnsafeBytes({ NameIndex.equal($0, bytes) }) {
                return UInt32(id)
            }
            i = (i + 1) & mask
        }
        return nil
    }

    /// Whether `a` and `b` hold the same bytes (a word at a time).
    @inline(__always)
    static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
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

    /// Adds the next id (`count`), whose bytes hash to `h` (not found before).
    mutating func insert(hash h: UInt64) -> UInt32 {
        let id = UInt32(hashes.count)
        hashes.append(h)
        if hashes.count * 2 > buckets.count {
            buckets = [UInt32](repeating: 0, count: max(16, buckets.count * 2))
            for (k, hk) in hashes.enumerated() { place(UInt32(k), hk) }
        } else {
            place(id, h)
        }
        return id
    }

    private mutating func place(_ id: UInt32, _ h: UInt64) {
        let mask = buckets.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        while buckets[i] != 0 { i = (i + 1) & mask }
        buckets[i] = id + 1
    }
}
