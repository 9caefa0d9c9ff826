// The engine-facing user-agent classifier: uap-core parse + device type,
// behind a bounded LRU cache.

import Foundation
import SecretHash

/// Classifies user agents into ``UserAgentInfo``.
///
/// The engine calls it once per session (not per beacon). Real traffic repeats
/// a few thousand distinct user agents, so a bounded LRU cache (default 10 000
/// entries, `cacheSize: 0` disables it) sits in front of the regex parse.
///
/// Thread-safety: `classify` may be called from any number of threads. The
/// compiled regexes are immutable (`NSRegularExpression` is thread-safe); the
/// cache is guarded by a lock that is not held while regexes run.
public final class UserAgentClassifier: @unchecked Sendable {
    public static let defaultRegexesPath = "/usr/share/uap-core/regexes.yaml"

    /// The compiled uap-core rules.
    public let regexes: UAPRegexes
    /// Maximum number of cached user agents (0 = no cache).
    public let cacheSize: Int

    private let lock = NSLock()
    private var cache: LRUCache

    /// Loads and compiles `regexesPath`. Throws ``UserAgentRegexesError`` (one
    /// line naming the file and the fix) when it is missing or invalid.
    public init(regexesPath: String = UserAgentClassifier.defaultRegexesPath, cacheSize: Int = 10_000) throws {
        regexes = try UAPRegexes(path: regexesPath)
        self.cacheSize = max(0, cacheSize)
        cache = LRUCache(capacity: self.cacheSize)
    }

    /// Shares already compiled rules (e.g. several classifiers with different caches).
    public init(regexes: UAPRegexes, cacheSize: Int = 10_000) {
        self.regexes = regexes
        self.cacheSize = max(0, cacheSize)
        cache = LRUCache(capacity: self.cacheSize)
    }

    /// Classifies one user agent (cached).
    public func classify(_ userAgent: String) -> UserAgentInfo {
        if cacheSize == 0 { return Self.info(regexes.parse(userAgent), userAgent: userAgent) }
        let key = LRUKey(userAgent)
        lock.lock()
        if let hit = cache.get(key) {
            lock.unlock()
            return hit
        }
        lock.unlock()
        let info = Self.info(regexes.parse(userAgent), userAgent: userAgent)
        lock.lock()
        cache.put(key, info)
        lock.unlock()
        return info
    }

    /// The full uap-core parse (uncached).
    public func parse(_ userAgent: String) -> UserAgentParse { regexes.parse(userAgent) }

    /// Cache hit/miss counts and current size.
    public var cacheStats: (hits: Int, misses: Int, count: Int) {
        lock.lock(); defer { lock.unlock() }
        return (cache.hits, cache.misses, cache.count)
    }

    static func info(_ p: UserAgentParse, userAgent: String) -> UserAgentInfo {
        UserAgentInfo(browser: p.userAgent.family, browserMajor: p.userAgent.major,
                      os: p.os.family, osMajor: p.os.major,
                      deviceFamily: p.device.family, deviceBrand: p.device.brand, deviceModel: p.device.model,
                      deviceType: DeviceTypeRule.classify(p, userAgent: userAgent))
    }
}

// MARK: - LRU cache

/// A cache key with its hash computed once (`SecretHash`: user agents come
/// from anyone, and under a hash anyone can compute they could be chosen
/// to share one probe run of the cache's table; docs/architecture.md
/// "Keys from anyone").
struct LRUKey: Hashable {
    let string: String
    let hash: UInt64

    init(_ s: String) {
        var s = s
        string = s
        hash = s.withUTF8 { SecretHash.process.hash(UnsafeRawBufferPointer($0)) }
    }

    func hash(into hasher: inout Hasher) { hasher.combine(hash) }
    static func == (a: LRUKey, b: LRUKey) -> Bool { a.hash == b.hash && a.string == b.string }
}

/// Least-recently-used map of fixed capacity: an open-addressing hash index
/// (linear probing on the key's precomputed hash, backward-shift deletion)
/// over array slots linked into a recency list, so a hit costs one probe
/// sequence and a few index writes. Not thread-safe by itself.
struct LRUCache {
    let capacity: Int
    private var table: [Int32]          // slot index or -1; size is a power of two ≥ 2 × capacity
    private let tableMask: Int
    private var keys: [LRUKey] = []
    private var values: [UserAgentInfo] = []
    private var prev: [Int32] = []
    private var next: [Int32] = []
    private var head: Int32 = -1   // most recent
    private var tail: Int32 = -1   // least recent
    private(set) var hits = 0
    private(set) var misses = 0

    init(capacity: Int) {
        self.capacity = max(0, capacity)
        var size = 1
        while size < 2 * self.capacity { size <<= 1 }
        table = [Int32](repeating: -1, count: size)
        tableMask = size - 1
        keys.reserveCapacity(self.capacity)
        values.reserveCapacity(self.capacity)
    }

    var count: Int { keys.count }

    /// Position in `table` holding `key`'s slot, or the empty position where it would go.
    private func probe(_ key: LRUKey) -> (pos: Int, slot: Int32) {
        var pos = Int(truncatingIfNeeded: key.hash) & tableMask
        while true {
            let slot = table[pos]
            if slot < 0 { return (pos, -1) }
            if keys[Int(slot)] == key { return (pos, slot) }
            pos = (pos + 1) & tableMask
        }
    }

    mutating func get(_ key: LRUKey) -> UserAgentInfo? {
        guard capacity > 0 else { misses += 1; return nil }
        let (_, slot) = probe(key)
        guard slot >= 0 else { misses += 1; return nil }
        hits += 1
        moveToFront(slot)
        return values[Int(slot)]
    }

    mutating func put(_ key: LRUKey, _ value: UserAgentInfo) {
        guard capacity > 0 else { return }
        let (pos, found) = probe(key)
        if found >= 0 {
            values[Int(found)] = value
            moveToFront(found)
            return
        }
        let slot: Int32
        if keys.count < capacity {
            slot = Int32(keys.count)
            keys.append(key); values.append(value); prev.append(-1); next.append(-1)
            table[pos] = slot
        } else {
            slot = tail
            unlink(slot)
            removeFromTable(keys[Int(slot)])
            keys[Int(slot)] = key
            values[Int(slot)] = value
            table[probe(key).pos] = slot   // re-probe: the removal may have moved entries
        }
        pushFront(slot)
    }

    /// The longest run of occupied positions in the table: what a probe may walk (tests).
    func longestRun() -> Int {
        var longest = 0, run = 0
        for k in 0..<(2 * table.count) {  // twice round: a run across the end counts whole
            run = table[k & tableMask] < 0 ? 0 : run + 1
            longest = max(longest, min(run, keys.count))
        }
        return longest
    }

    /// Backward-shift deletion keeps every probe chain unbroken.
    private mutating func removeFromTable(_ key: LRUKey) {
        var (pos, slot) = probe(key)
        guard slot >= 0 else { return }
        table[pos] = -1
        var j = pos
        while true {
            j = (j + 1) & tableMask
            let s = table[j]
            if s < 0 { return }
            let home = Int(truncatingIfNeeded: keys[Int(s)].hash) & tableMask
            // Move s back to the hole if its home is not in (pos, j] (cyclically).
            let inRange = pos <= j ? (home > pos && home <= j) : (home > pos || home <= j)
            if !inRange {
                table[pos] = s
                table[j] = -1
                pos = j
            }
        }
        _ = slot
    }

    private mutating func unlink(_ s: Int32) {
        let p = prev[Int(s)], n = next[Int(s)]
        if p >= 0 { next[Int(p)] = n } else { head = n }
        if n >= 0 { prev[Int(n)] = p } else { tail = p }
        prev[Int(s)] = -1; next[Int(s)] = -1
    }

    private mutating func pushFront(_ s: Int32) {
        prev[Int(s)] = -1
        next[Int(s)] = head
        if head >= 0 { prev[Int(head)] = s }
        head = s
        if tail < 0 { tail = s }
    }

    private mutating func moveToFront(_ s: Int32) {
        if head == s { return }
        unlink(s)
        pushFront(s)
    }
}
