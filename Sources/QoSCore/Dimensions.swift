import SecretHash
/// Output tables and their dimensions (docs/semantics.md §4), and the interning of
/// dimension values into small integers.

/// The grouped metric tables. `sessions` and `rejects` are row tables and
/// are not listed here.
public enum MetricTable: Int, Sendable, CaseIterable {
    case overall, video, geo, device, cdn

    public var name: String {
        switch self {
        case .overall: return "overall"
        case .video: return "video"
        case .geo: return "geo"
        case .device: return "device"
        case .cdn: return "cdn"
        }
    }

    /// Dimension column names, in order.
    public var dimensions: [String] {
        switch self {
        case .overall: return []
        case .video: return ["video_id"]
        case .geo: return ["country", "region"]
        case .device: return ["device_type", "os", "browser", "player_name"]
        case .cdn: return ["cdn", "pop"]
        }
    }

    /// Whether the table carries the segment (CDN) metrics.
    public var hasSegmentMetrics: Bool { self == .overall || self == .cdn }
}

/// A group's dimension values as interned ids (unused slots are 0).
public struct GroupKey: Hashable, Sendable {
    public var a: UInt32 = 0, b: UInt32 = 0, c: UInt32 = 0, d: UInt32 = 0
    public init(_ a: UInt32 = 0, _ b: UInt32 = 0, _ c: UInt32 = 0, _ d: UInt32 = 0) {
        self.a = a; self.b = b; self.c = c; self.d = d
    }
    public var ids: [UInt32] { [a, b, c, d] }
    /// Two words instead of four: group lookups happen whenever a session
    /// enters a new window.
    @inline(__always) public func hash(into h: inout Hasher) {
        h.combine(UInt64(a) | UInt64(b) << 32)
        h.combine(UInt64(c) | UInt64(d) << 32)
    }
    /// What `Dictionary` and `Set` call: the two words through a 64-bit
    /// finalizer (MurmurHash3's) with the table's seed, not SipHash: a
    /// group lookup at every window a session enters and at every flush
    /// spent more in the hasher's setup and finalization than in the table
    /// (bench/results/speed.md §16). The ids are interner serials, not
    /// strings a sender picks, and the seed is the table's own.
    @inline(__always) public func _rawHashValue(seed: Int) -> Int {
        @inline(__always) func mix(_ v: UInt64) -> UInt64 {
            var x = v
            x ^= x >> 33; x &*= 0xff51_afd7_ed55_8ccd
            x ^= x >> 33; x &*= 0xc4ce_b9fe_1a85_ec53
            return x ^ (x >> 33)
        }
        let first = mix((UInt64(a) | UInt64(b) << 32) ^ UInt64(UInt(bitPattern: seed)))
        return Int(truncatingIfNeeded: mix(first ^ (UInt64(c) | UInt64(d) << 32)))
    }
    /// The overflow group: every dimension is `__other__`.
    public static let other = GroupKey(StringInterner.otherID, StringInterner.otherID,
                                       StringInterner.otherID, StringInterner.otherID)
}

/// Interns dimension strings. Id 0 is `unknown`, id 1 is `__other__`.
/// The engine replaces its interner by a smaller one when most strings are
/// no longer referenced (`QoSEngine.rebuildInternersIfDue`): ids are
/// valid with the interner they came from.
public final class StringInterner: @unchecked Sendable {
    public static let unknownID: UInt32 = 0
    public static let otherID: UInt32 = 1
    public static let unknown = "unknown"
    public static let other = "__other__"

    private var ids = StringIds([StringInterner.unknown, StringInterner.other])
    public var strings: [String] { ids.strings }

    public init() {}

    /// The id of `s`; nil and empty strings are `unknown`.
    public func intern(_ s: String?) -> UInt32 {
        guard let s, !s.isEmpty else { return StringInterner.unknownID }
        return ids.id(s)
    }

    @inline(__always) public func string(_ id: UInt32) -> String { ids.strings[Int(id)] }

    public var count: Int { ids.strings.count }

    /// A new interner with the strings whose id is marked in `live` (ids 0
    /// and 1 always), in id order, and the map old id → new id (`UInt32.max`
    /// for a dropped id). See `QoSEngine.rebuildInternersIfDue`.
    public func keeping(_ live: [Bool]) -> (StringInterner, [UInt32]) {
        let out = StringInterner()
        var map = [UInt32](repeating: .max, count: strings.count)
        map[0] = StringInterner.unknownID
        map[1] = StringInterner.otherID
        for (id, s) in strings.enumerated().dropFirst(2) where live[id] { map[id] = out.intern(s) }
        return (out, map)
    }
}

/// Interns per-session attribute values that are not dimensions (player
/// version, city, AS organization, fatal error code) so a session stores a
/// 4-byte id instead of a 16-byte optional string. Id 0 is nil; every other
/// value, the empty string included, keeps its exact text. Like the
/// dimension interner, it keeps every distinct value it has seen until the
/// engine rebuilds it from the values still referenced.
public final class ValueInterner: @unchecked Sendable {
    /// Id 0 stands for nil; its entry is never found (no lookup is made for nil).
    private var ids = StringIds([])
    private var strings: [String] { ids.strings }

    public init() {}

    public func intern(_ s: String?) -> UInt32 {
        guard let s else { return 0 }
        return ids.id(s) + 1
    }

    @inline(__always) public func string(_ id: UInt32) -> String? { id == 0 ? nil : ids.strings[Int(id) - 1] }

    public var count: Int { ids.strings.count + 1 }

    /// As `StringInterner.keeping`: the marked values (id 0 always) and the id map.
    public func keeping(_ live: [Bool]) -> (ValueInterner, [UInt32]) {
        let out = ValueInterner()
        var map = [UInt32](repeating: .max, count: count)
        map[0] = 0
        for (i, s) in strings.enumerated() where live[i + 1] { map[i + 1] = out.intern(s) }
        return (out, map)
    }
}

/// Ids of distinct strings, numbered in the order first seen, found by
/// their UTF-8 bytes in a `ByteStringIndex` (the process's secret hash: the
/// strings come from beacons, docs/architecture.md "Keys from anyone")
/// rather than through a `[String: UInt32]`, whose SipHash of every string
/// and Unicode-aware comparison cost ≈ 420 instructions a lookup, 2.6 % of
/// a replay (bench/results/speed.md section 56); the `sessions` rows'
/// strings are numbered the same way (`SessionRows`). Strings are equal when
/// their bytes are: two spellings of one accented letter (composed or not)
/// are two values, as they are to DuckDB's or Spark's GROUP BY over the
/// files.
struct StringIds {
    private var index = ByteStringIndex()
    private(set) var strings: [String] = []

    init(_ first: [String]) {
        for s in first { _ = id(s) }
    }

    /// The id of `s`, added as the next one if it is new.
    mutating func id(_ s: String) -> UInt32 {
        var s = s
        let (h, found) = s.withUTF8 { u in
            let bytes = UnsafeRawBufferPointer(u)
            let h = ByteStringIndex.hash(bytes)
            return (h, index.find(hash: h) { k in Self.equal(strings[k], bytes) })
        }
        if let found { return UInt32(found) }
        let i = index.insert(hash: h)
        assert(i == strings.count, "the index numbers strings in order")
        strings.append(s)
        return UInt32(i)
    }

    @inline(__always) private static func equal(_ a: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        a.utf8.withContiguousStorageIfAvailable { ByteStringIndex.equal(UnsafeRawBufferPointer($0), bytes) }
            ?? a.utf8.elementsEqual(bytes)
    }
}

/// The dimension attributes of a session, interned; 0 = unknown.
public struct SessionDims: Sendable, Equatable {
    public var video: UInt32 = 0
    public var country: UInt32 = 0, region: UInt32 = 0
    public var deviceType: UInt32 = 0, os: UInt32 = 0, browser: UInt32 = 0, playerName: UInt32 = 0
    public var cdn: UInt32 = 0, pop: UInt32 = 0

    public init() {}

    /// The session's group in `table`.
    @inline(__always) public func key(_ table: MetricTable) -> GroupKey {
        switch table {
        case .overall: return GroupKey()
        case .video: return GroupKey(video)
        case .geo: return GroupKey(country, region)
        case .device: return GroupKey(deviceType, os, browser, playerName)
        case .cdn: return GroupKey(cdn, pop)
        }
    }
}
