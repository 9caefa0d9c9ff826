import CPrefetch
import SecretHash

/// The CPU's prefetch hint for code outside QoSCore (a hint: it reads and
/// changes nothing).
public enum CacheHint {
    @inlinable @inline(__always) public static func prefetch(_ address: UnsafeRawPointer) { qos_prefetch(address) }

    /// Every cache line of the `bytes` bytes at `address`.
    @inlinable @inline(__always) public static func prefetch(_ address: UnsafeRawPointer, bytes: Int) {
        var offset = 0
        while offset < bytes {
            qos_prefetch(address + offset)
            offset += 64
        }
        if bytes > 1 { qos_prefetch(address + (bytes - 1)) }
    }
}

/// The open sessions of one partition, keyed by the session id's UTF-8
/// bytes: open addressing with linear probing over a power-of-two array of
/// session references (8 bytes a bucket, at most 3/4 full), and
/// backward-shift deletion, so no tombstones build up. Probing compares a
/// 16-bit tag of the id's hash, kept in the bucket (`Bucket`), then the
/// id's length, then its bytes; sessions do not store their hash (growing
/// and deleting hash the ids again; ids are short).
///
/// Lookups take the id as raw bytes (a `String` overload is a convenience),
/// so a caller can find a session straight from the beacon's bytes.
///
/// The buckets are memory the table allocates and frees itself, each an
/// unretained pointer to a session the table holds one reference to (taken
/// at `insert`, given back at `remove` and when the table goes). So a
/// lookup reads buckets and compares ids without a single reference-count
/// update (an array of references cost a retain and release of the array
/// and of every session probed, per beacon: bench/results/speed.md §11);
/// `lookup` retains only the session it returns, and `find` not even that
/// (the engine's per-beacon path, section 38). The table cannot be copied
/// (`~Copyable`): two copies would share, and free, one allocation.
public struct SessionTable: ~Copyable {
    /// A bucket: 0 when empty, else the session's address with the tag of
    /// its id's hash in the top 16 bits (`Bucket`).
    private var buckets: UnsafeMutablePointer<UInt>
    /// Buckets allocated: a power of two.
    private var bucketCount: Int
    public private(set) var count = 0
    /// Buckets allocated (tests).
    var capacity: Int { bucketCount }

    public init() {
        bucketCount = 8
        buckets = Self.allocate(8)
    }

    deinit {
        for i in 0..<bucketCount {
            if buckets[i] != 0 { Self.entry(buckets[i]).release() }
        }
        buckets.deallocate()
    }

    private static func allocate(_ n: Int) -> UnsafeMutablePointer<UInt> {
        precondition(n > 0 && n & (n - 1) == 0, "bucket count not a power of two")
        let b = UnsafeMutablePointer<UInt>.allocate(capacity: n)
        b.initialize(repeating: 0, count: n)
        return b
    }

    /// A bucket's parts. A session's address needs 48 bits (x86-64 and
    /// arm64 user space; `insert` checks it); the 16 above hold a tag of its
    /// id's hash, so probing skips a bucket whose tag differs without
    /// reading its session — each such read was a cache miss on a session
    /// no prefetch had asked for — and the prefetch hint picks the session
    /// whose tag matches, not whichever the home bucket holds
    /// (bench/results/speed.md section 41).
    enum Bucket {
        static let addressBits: UInt = (1 << 48) - 1

        /// 16 bits of `h` mixed, so that ids sharing a home bucket (equal
        /// low bits) still differ in their tags.
        @inline(__always) static func tag(_ h: UInt32) -> UInt {
            UInt(truncatingIfNeeded: (h &* 0x9E37_79B1) >> 16) << 48
        }

        @inline(__always) static func address(_ e: UInt) -> UnsafeRawPointer {
            UnsafeRawPointer(bitPattern: e & addressBits).unsafelyUnwrapped
        }
    }

    /// The session a bucket points to, read without a reference count
    /// (the table holds one for as long as the bucket does).
    @inline(__always) private static func entry(_ e: UInt) -> Unmanaged<SessionState> {
        Unmanaged<SessionState>.fromOpaque(Bucket.address(e))
    }

    /// The table's hash of an id's bytes: `SecretHash` with this process's
    /// secrets. Session ids come from the players, that is from anyone:
    /// under the fixed-seed hash used before, ids could be chosen offline to
    /// share one bucket, and linear probing made every lookup walk all of
    /// them (20 000 such ids took a replay from 0.46 s to 5.2 s, growing
    /// with the square of their number: docs/architecture.md "Keys from
    /// anyone"). The bucket order now differs from process to process, and
    /// nothing written may follow it (`QoSEngine.addConcurrentPlays` creates
    /// groups for concurrent plays in session id order; snapshots sort the
    /// sessions).
    @inline(__always)
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        UInt32(truncatingIfNeeded: SecretHash.process.hash(bytes))
    }

    @inline(__always) static func withBytes<R>(_ s: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let r = s.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return r }
        return Array(s.utf8).withUnsafeBytes(body)
    }

    /// The open session with this id, if any.
    @inline(__always)
    public func lookup(_ id: UnsafeRawBufferPointer) -> SessionState? {
        lookup(id, hash: SessionTable.hash(id))
    }

    /// The same with the id's `hash` computed by the caller (the decode
    /// thread computes it for the engine's thread).
    @inline(__always)
    public func lookup(_ id: UnsafeRawBufferPointer, hash h: UInt32) -> SessionState? {
        find(id, hash: h)?.takeUnretainedValue()
    }

    /// The open session with this id, unretained: the table's reference is
    /// the only one taken for it. Valid while the session stays in the
    /// table, or past its `remove` while the caller keeps the reference
    /// `remove` hands back (the engine's per-beacon path: `QoSEngine.apply`).
    @inline(__always)
    func find(_ id: UnsafeRawBufferPointer, hash h: UInt32) -> Unmanaged<SessionState>? {
        assert(h == SessionTable.hash(id), "hash of another id")
        let mask = bucketCount - 1
        let tag = Bucket.tag(h)
        var i = Int(h) & mask
        while case let e = buckets[i], e != 0 {
            if e & ~Bucket.addressBits == tag {
                let s = Self.entry(e)
                if s._withUnsafeGuaranteedRef({ $0.idEquals(id) }) { return s }
            }
            i = (i + 1) & mask
        }
        return nil
    }

    /// Asks the CPU to fetch what a lookup of an id with hash `h` will read
    /// first: its home bucket, or (`session`) the session that bucket holds,
    /// once the bucket itself has been fetched. A hint only: nothing is
    /// changed, and no reference is held while the hints are given (a call
    /// into C, which the hint is, would make the compiler retain and release
    /// every reference live across it, once per beacon).
    @inline(__always)
    public func prefetch(hash h: UInt32, session: Bool) {
        guard let a = prefetchAddress(hash: h, session: session) else { return }
        SessionTable.hint(a, session: session)
    }

    /// The hint itself, for an address from `prefetchAddress` (a caller
    /// that reaches the table through a reference gets the address first,
    /// lets the reference go, then hints: `QoSEngine.prefetchSession`).
    @inline(__always)
    static func hint(_ address: UnsafeRawPointer, session: Bool) {
        CacheHint.prefetch(address, bytes: session ? SessionState.instanceBytesMax : 1)
    }

    /// The address `prefetch` hints: the bucket of `h`, or the first
    /// session of its probe run with `h`'s tag (nil when there is none: a
    /// new id). The run is walked as a lookup walks it, reading buckets
    /// only (runs are short: the hash is keyed, the table at most 3/4
    /// full). Pure Swift, so it can be read at +0.
    @inline(__always)
    func prefetchAddress(hash h: UInt32, session: Bool) -> UnsafeRawPointer? {
        let mask = bucketCount - 1
        var i = Int(h) & mask
        guard session else { return UnsafeRawPointer(buckets + i) }
        // Every cache line of the session: the lookup compares its id
        // (near the start) and length (near the end), and the beacon's
        // event then reads and writes fields all over it.
        let tag = Bucket.tag(h)
        while case let e = buckets[i], e != 0 {
            if e & ~Bucket.addressBits == tag { return Bucket.address(e) }
            i = (i + 1) & mask
        }
        return nil
    }

    public func lookup(_ id: String) -> SessionState? { SessionTable.withBytes(id) { lookup($0) } }

    /// Adds `s`, whose id must not be in the table; the table holds a reference to it.
    mutating func insert(_ s: SessionState) {
        if (count + 1) * 4 > bucketCount * 3 { grow() }
        let address = UInt(bitPattern: Unmanaged.passRetained(s).toOpaque())
        precondition(address & ~Bucket.addressBits == 0, "a session's address needs more than 48 bits")
        let h = s.idHash
        place(address | Bucket.tag(h), hash: h)
        count += 1
    }

    private mutating func place(_ e: UInt, hash h: UInt32) {
        let mask = bucketCount - 1
        var i = Int(h) & mask
        while buckets[i] != 0 { i = (i + 1) & mask }
        buckets[i] = e
    }

    private mutating func grow() {
        let old = buckets, oldCount = bucketCount
        bucketCount = oldCount * 2
        buckets = Self.allocate(bucketCount)
        for i in 0..<oldCount {
            if old[i] != 0 { place(old[i], hash: Self.entry(old[i])._withUnsafeGuaranteedRef { $0.idHash }) }
        }
        old.deallocate()
    }

    /// Removes `s` (by identity) if it is in the table and hands the
    /// table's reference to it to the caller (nil when it was not there):
    /// a caller that holds `s` unretained (`find`) keeps it alive with that
    /// reference for as long as it uses `s`.
    @discardableResult
    mutating func remove(_ s: SessionState) -> SessionState? {
        let mask = bucketCount - 1
        let target = UInt(bitPattern: Unmanaged.passUnretained(s).toOpaque()) | Bucket.tag(s.idHash)
        var i = Int(s.idHash) & mask
        while true {
            let e = buckets[i]
            if e == 0 { return nil }
            if e == target { break }
            i = (i + 1) & mask
        }
        // Backward shift: move later entries of the probe run into the hole
        // unless their home bucket lies cyclically in (hole, entry].
        var j = i
        while true {
            j = (j + 1) & mask
            let e = buckets[j]
            if e == 0 { break }
            let home = Int(Self.entry(e)._withUnsafeGuaranteedRef { $0.idHash }) & mask
            let stays = i <= j ? (i < home && home <= j) : (i < home || home <= j)
            if stays { continue }
            buckets[i] = e
            i = j
        }
        buckets[i] = 0
        count -= 1
        let reference = Self.entry(target).takeRetainedValue()
        // Empty (the end of a replay closes every session): give the buckets
        // back rather than keep them at their peak size while files are written.
        if count == 0 && bucketCount > 8 {
            buckets.deallocate()
            bucketCount = 8
            buckets = Self.allocate(8)
        }
        return reference
    }

    /// Every open session, in bucket order: it differs from process to
    /// process (`hash`), so nothing written may depend on it.
    public func forEach(_ body: (SessionState) -> Void) {
        for i in 0..<bucketCount {
            if buckets[i] != 0 { body(Self.entry(buckets[i]).takeUnretainedValue()) }
        }
    }

    /// The longest run of occupied buckets: what a lookup may walk (tests).
    func longestRun() -> Int {
        var longest = 0, run = 0
        // Twice round, so a run that wraps past the last bucket counts whole.
        for k in 0..<(2 * bucketCount) {
            run = buckets[k & (bucketCount - 1)] == 0 ? 0 : run + 1
            longest = Swift.max(longest, Swift.min(run, count))
        }
        return longest
    }

    public var values: [SessionState] {
        var out: [SessionState] = []
        out.reserveCapacity(count)
        forEach { out.append($0) }
        return out
    }
}
