// GeoIP enrichment: MaxMind DB (.mmdb) lookups through libmaxminddb.
//
// The engine resolves a session's IP once (at the session's first beacon that
// carries one), never per beacon. Explicit `country`/`region` in a beacon win;
// that precedence is the engine's job, not this module's.

import CMaxMindDB
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Geographic and network attributes of one IP address. Every field is
/// optional: a database may lack a field (GeoLite2-Country has no city, a City
/// record may have no subdivision) and an ASN database only fills `asn`/`asOrg`.
public struct GeoInfo: Sendable, Equatable, Hashable {
    /// ISO 3166-1 alpha-2 (`country.iso_code`, falling back to
    /// `registered_country.iso_code` when the record has no `country`).
    public var country: String?
    /// Full ISO 3166-2 code of the first (largest) subdivision, e.g. `GB-ENG`,
    /// `US-CA`: the record's country code + "-" + `subdivisions[0].iso_code`.
    /// `nil` when either part is missing.
    public var region: String?
    /// `city.names.en`.
    public var city: String?
    /// `autonomous_system_number` (GeoLite2-ASN / GeoIP2-ISP).
    public var asn: UInt32?
    /// `autonomous_system_organization`.
    public var asOrg: String?

    public init(country: String? = nil, region: String? = nil, city: String? = nil,
                asn: UInt32? = nil, asOrg: String? = nil) {
        self.country = country
        self.region = region
        self.city = city
        self.asn = asn
        self.asOrg = asOrg
    }
}

/// Result of one lookup. Only `.found` carries data; the other three are all
/// "geo unknown" for the engine, kept apart for the counters.
public enum GeoLookupOutcome: Sendable, Equatable {
    case found(GeoInfo)
    /// A public address that no configured database has a record for.
    case notFound
    /// RFC 1918, loopback, link-local, CGNAT, ULA, multicast, documentation,
    /// benchmarking, unspecified, broadcast, reserved … (see ``IPAddress/isPrivateOrReserved``).
    case privateOrReserved
    /// Not an IPv4/IPv6 literal (host names are not resolved).
    case unparsable

    /// The info when found, else `nil`.
    public var info: GeoInfo? {
        if case .found(let g) = self { return g }
        return nil
    }
}

/// Counters of lookup outcomes since the resolver was created.
public struct GeoLookupCounters: Sendable, Equatable {
    public var found: Int = 0
    public var notFound: Int = 0
    public var privateOrReserved: Int = 0
    public var unparsable: Int = 0
    public var total: Int { found + notFound + privateOrReserved + unparsable }
    public init() {}
}

/// Opening a database failed. `description` is one line naming the file and
/// the fix.
public struct GeoIPError: Error, CustomStringConvertible, Sendable, Equatable {
    public let path: String
    public let reason: String
    public var description: String {
        "cannot open GeoIP database '\(path)': \(reason) — fix: pass --geoip-db with a readable MaxMind DB file (GeoIP2/GeoLite2 City, Country or ASN .mmdb), or leave --geoip-db out to run without geo"
    }
}

/// A parsed IP address: IPv4 as 4 bytes, IPv6 as 16. IPv4-mapped IPv6
/// (`::ffff:a.b.c.d`) is normalised to IPv4.
public enum IPAddress: Sendable, Equatable, Hashable {
    case v4(UInt32)                    // host byte order, a.b.c.d = a<<24 | …
    case v6(UInt64, UInt64)            // host byte order, high and low 64 bits

    /// Parses an IPv4 dotted quad or an IPv6 literal with `inet_pton`. No
    /// host-name resolution, no zone ids, no surrounding whitespace.
    public init?(_ string: String) {
        // Longest textual IPv6 is 45 bytes; an embedded NUL would truncate the C string.
        guard string.utf8.count <= 64, !string.utf8.contains(0) else { return nil }
        var result: IPAddress?
        string.withCString { cs in
            if string.utf8.contains(UInt8(ascii: ":")) {
                var a6 = in6_addr()
                if inet_pton(AF_INET6, cs, &a6) == 1 {
                    var hi: UInt64 = 0, lo: UInt64 = 0
                    withUnsafeBytes(of: &a6) { b in
                        for i in 0..<8 { hi = hi << 8 | UInt64(b[i]) }
                        for i in 8..<16 { lo = lo << 8 | UInt64(b[i]) }
                    }
                    if hi == 0 && lo >> 32 == 0xFFFF {
                        result = .v4(UInt32(truncatingIfNeeded: lo))
                    } else {
                        result = .v6(hi, lo)
                    }
                }
            } else {
                var a4 = in_addr()
                if inet_pton(AF_INET, cs, &a4) == 1 {
                    result = .v4(UInt32(bigEndian: a4.s_addr))
                }
            }
        }
        guard let result else { return nil }
        self = result
    }

    /// True for addresses that are not globally routable unicast, so a GeoIP
    /// answer would be meaningless:
    /// - IPv4: 0/8 (this network), 10/8, 172.16/12, 192.168/16 (RFC 1918),
    ///   100.64/10 (CGNAT), 127/8 (loopback), 169.254/16 (link-local),
    ///   192.0.0/24 (IETF protocol assignments), 192.0.2/24, 198.51.100/24,
    ///   203.0.113/24 (documentation), 192.88.99/24 (6to4 relay anycast),
    ///   198.18/15 (benchmarking), 224/4 (multicast), 240/4 (reserved, incl.
    ///   255.255.255.255 broadcast).
    /// - IPv6: :: and ::1, 100::/64 (discard), 2001::/23 (IETF protocol
    ///   assignments), 2001:db8::/32 and 3fff::/20 (documentation), fc00::/7
    ///   (ULA), fe80::/10 (link-local), fec0::/10 (site-local), ff00::/8
    ///   (multicast), and anything else outside 2000::/3 (not allocated for
    ///   global unicast) — except ::/96 (IPv4-compatible) and 64:ff9b::/96
    ///   (NAT64), which are looked up as they are.
    public var isPrivateOrReserved: Bool {
        switch self {
        case .v4(let a):
            func inNet(_ net: UInt32, _ bits: UInt32) -> Bool {
                (a ^ net) >> (32 - bits) == 0
            }
            return inNet(0x0000_0000, 8) || inNet(0x0A00_0000, 8) || inNet(0xAC10_0000, 12)
                || inNet(0xC0A8_0000, 16) || inNet(0x6440_0000, 10) || inNet(0x7F00_0000, 8)
                || inNet(0xA9FE_0000, 16) || inNet(0xC000_0000, 24) || inNet(0xC000_0200, 24)
                || inNet(0xC633_6400, 24) || inNet(0xCB00_7100, 24) || inNet(0xC058_6300, 24)
                || inNet(0xC612_0000, 15) || inNet(0xE000_0000, 4) || inNet(0xF000_0000, 4)
        case .v6(let hi, let lo):
            if hi == 0 && lo <= 1 { return true }                       // :: and ::1
            if hi == 0 && lo >> 32 == 0 { return false }                // ::/96 IPv4-compatible
            if hi == 0x0064_FF9B_0000_0000 && lo >> 32 == 0 { return false } // NAT64
            if hi == 0x0100_0000_0000_0000 { return true }              // 100::/64 discard
            if hi >> 61 != 0b001 { return true }                        // outside 2000::/3
            if hi >> 41 == 0x2001_00 >> 1 { return true }               // 2001::/23
            if hi >> 32 == 0x2001_0DB8 { return true }                  // 2001:db8::/32
            if hi >> 44 == 0x3FFF0 { return true }                      // 3fff::/20
            return false
        }
    }
}

/// Resolves IP addresses against one or more MaxMind DB files.
///
/// Give it a City or Country database and optionally an ASN database (any
/// order; each field is taken from the first database, in `paths` order, whose
/// record has it).
///
/// Caches (both bounded): decoded records by their data offsets (≤ 100 000,
/// cleared when full), and a direct-mapped outcome cache per IPv4 /24 / IPv6
/// /48 that is only filled when every database's matched network covers the
/// whole block, so it never changes an answer.
///
/// Thread-safety: `lookup` may be called from any number of threads at once.
/// libmaxminddb lookups on an opened, memory-mapped `MMDB_s` are read-only and
/// thread-safe; the caches and the counters are guarded by a lock that is not
/// held during tree walks or record decoding. The databases are closed when
/// the resolver is deallocated.
public final class GeoIPResolver: @unchecked Sendable {
    /// The database files, in lookup order.
    public let paths: [String]
    /// `database_type` from each file's metadata, e.g. `GeoIP2-City`, `GeoLite2-ASN`.
    public let databaseTypes: [String]

    private let dbs: [UnsafeMutablePointer<MMDB_s>]
    private let ipv4Offset: [Int]          // 96 for IPv6 trees (IPv4 at ::/96), 0 for IPv4-only DBs
    private let lock = NSLock()
    /// Decoded, merged records keyed by the data offsets of the matched records.
    private var recordCache: [RecordKey: GeoInfo] = [:]
    /// Direct-mapped cache of outcomes per IPv4 /24 and IPv6 /48, filled only
    /// when every database's matched network covers the whole block (so every
    /// address in it has the same answer).
    private var blockCache: [BlockSlot]
    private let blockCacheMask: Int
    private var _counters = GeoLookupCounters()
    private static let recordCacheLimit = 100_000
    /// At most this many databases (City/Country + ASN + spares).
    public static let maxDatabases = 4

    /// Opens every file (memory-mapped). Throws ``GeoIPError`` naming the first
    /// file that is missing, unreadable or not a valid MaxMind DB.
    ///
    /// - Parameter blockCacheSize: slots of the per-/24 (IPv4) and per-/48
    ///   (IPv6) outcome cache, rounded up to a power of two; 0 disables it.
    public init(paths: [String], blockCacheSize: Int = 1 << 14) throws {
        var opened: [UnsafeMutablePointer<MMDB_s>] = []
        var types: [String] = []
        func closeAll() { for db in opened { MMDB_close(db); db.deallocate() } }
        if paths.count > Self.maxDatabases {
            throw GeoIPError(path: paths[Self.maxDatabases],
                             reason: "too many databases (at most \(Self.maxDatabases): a City or Country DB and an ASN DB)")
        }
        for path in paths {
            var isDir: ObjCBool = false
            if !FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
                closeAll()
                throw GeoIPError(path: path, reason: "no such file")
            }
            if isDir.boolValue {
                closeAll()
                throw GeoIPError(path: path, reason: "is a directory, not a .mmdb file")
            }
            let db = UnsafeMutablePointer<MMDB_s>.allocate(capacity: 1)
            db.initialize(to: MMDB_s())
            errno = 0
            let status = MMDB_open(path, UInt32(MMDB_MODE_MMAP), db)
            if status != MMDB_SUCCESS {
                var reason = String(cString: MMDB_strerror(status))
                if (status == MMDB_IO_ERROR || status == MMDB_FILE_OPEN_ERROR), errno != 0 {
                    reason += " (\(String(cString: strerror(errno))))"
                }
                if status == MMDB_INVALID_METADATA_ERROR || status == MMDB_UNKNOWN_DATABASE_FORMAT_ERROR
                    || status == MMDB_CORRUPT_SEARCH_TREE_ERROR || status == MMDB_INVALID_DATA_ERROR {
                    reason = "corrupt or not a MaxMind DB file (\(reason))"
                }
                db.deallocate()
                closeAll()
                throw GeoIPError(path: path, reason: reason.replacingOccurrences(of: "\n", with: " "))
            }
            opened.append(db)
            types.append(db.pointee.metadata.database_type.map { String(cString: $0) } ?? "unknown")
        }
        self.paths = paths
        self.dbs = opened
        self.databaseTypes = types
        self.ipv4Offset = opened.map { $0.pointee.metadata.ip_version == 6 ? 96 : 0 }
        var slots = 0
        if blockCacheSize > 0 {
            slots = 1
            while slots < blockCacheSize { slots <<= 1 }
        }
        blockCache = [BlockSlot](repeating: BlockSlot(), count: slots)
        blockCacheMask = slots - 1
    }

    deinit {
        for db in dbs {
            MMDB_close(db)
            db.deallocate()
        }
    }

    /// True when at least one database is open.
    public var isEnabled: Bool { !dbs.isEmpty }

    /// The line the engine logs once at start when no database is configured.
    public static let disabledNotice =
        "geo: no --geoip-db configured; country, region, city and ASN are 'unknown' unless beacons carry country/region"

    /// Each open database's mapping of its file (libmaxminddb maps the file
    /// whole): what a truncation of the file under the process would take away.
    public var mappedFiles: [(path: String, bytes: UnsafeRawBufferPointer)] {
        zip(paths, dbs).map { path, db in
            (path, UnsafeRawBufferPointer(start: db.pointee.file_content, count: Int(db.pointee.file_size)))
        }
    }

    /// One line for the start-up log, e.g.
    /// `geo: GeoIP2-City (/data/city.mmdb), GeoLite2-ASN (/data/asn.mmdb)`.
    public var summary: String {
        isEnabled ? "geo: " + zip(databaseTypes, paths).map { "\($0) (\($1))" }.joined(separator: ", ")
                  : Self.disabledNotice
    }

    /// Outcome counts so far (a consistent snapshot).
    public var counters: GeoLookupCounters {
        lock.lock(); defer { lock.unlock() }
        return _counters
    }

    /// Looks an address up. Never throws: garbage is `.unparsable`,
    /// non-public addresses are `.privateOrReserved`, both counted.
    public func lookup(_ ip: String) -> GeoLookupOutcome {
        guard let addr = IPAddress(ip) else {
            count(\.unparsable)
            return .unparsable
        }
        return lookup(addr)
    }

    /// Looks up an already parsed address.
    public func lookup(_ addr: IPAddress) -> GeoLookupOutcome {
        if addr.isPrivateOrReserved {
            count(\.privateOrReserved)
            return .privateOrReserved
        }
        let block: UInt64
        switch addr {
        case .v4(let a): block = 1 << 63 | UInt64(a >> 8)
        case .v6(let hi, _): block = 1 << 62 | hi >> 16
        }
        let slot = blockCacheMask >= 0 ? Int(truncatingIfNeeded: (block &* 0x9E37_79B9_7F4A_7C15) >> 40) & blockCacheMask : -1
        if slot >= 0 {
            lock.lock()
            let s = blockCache[slot]
            if s.key == block, let outcome = s.outcome {
                if case .found = outcome { _counters.found += 1 } else { _counters.notFound += 1 }
                lock.unlock()
                return outcome
            }
            lock.unlock()
        }
        let n = dbs.count
        var key = RecordKey()
        var coversBlock = true
        let outcome: GeoLookupOutcome = withUnsafeTemporaryAllocation(of: MMDB_entry_s.self, capacity: max(n, 1)) { entries in
            withSockaddr(addr) { sa in
                for i in 0..<n {
                    var err: Int32 = 0
                    let r = MMDB_lookup_sockaddr(dbs[i], sa, &err)
                    entries[i] = r.entry
                    if err == MMDB_SUCCESS && r.found_entry {
                        key[i] = r.entry.offset
                    }
                    if err == MMDB_SUCCESS {
                        switch addr {
                        case .v4: if Int(r.netmask) - ipv4Offset[i] > 24 { coversBlock = false }
                        case .v6: if r.netmask > 48 { coversBlock = false }
                        }
                    }
                }
            }
            if key.isEmpty { return .notFound }
            lock.lock()
            let cached = recordCache[key]
            lock.unlock()
            if let cached { return .found(cached) }
            var info = GeoInfo()
            for i in 0..<n where key[i] != RecordKey.none {
                let rec = DBRecord(entry: entries[i])
                if info.country == nil, let c = rec.country {
                    info.country = c
                    if info.region == nil, let s = rec.subdivision { info.region = c + "-" + s }
                }
                if info.city == nil { info.city = rec.city }
                if info.asn == nil { info.asn = rec.asn }
                if info.asOrg == nil { info.asOrg = rec.asOrg }
            }
            lock.lock()
            if recordCache.count >= Self.recordCacheLimit { recordCache.removeAll(keepingCapacity: true) }
            recordCache[key] = info
            lock.unlock()
            return .found(info)
        }
        lock.lock()
        if case .found = outcome { _counters.found += 1 } else { _counters.notFound += 1 }
        if slot >= 0 && coversBlock { blockCache[slot] = BlockSlot(key: block, outcome: outcome) }
        lock.unlock()
        return outcome
    }

    private func count(_ field: WritableKeyPath<GeoLookupCounters, Int>) {
        lock.lock()
        _counters[keyPath: field] += 1
        lock.unlock()
    }

    private func withSockaddr(_ addr: IPAddress, _ body: (UnsafePointer<sockaddr>) -> Void) {
        switch addr {
        case .v4(let a):
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_addr.s_addr = a.bigEndian
            withUnsafePointer(to: &sin) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0) }
            }
        case .v6(let hi, let lo):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { b in
                for i in 0..<8 { b[i] = UInt8(truncatingIfNeeded: hi >> (56 - 8 * UInt64(i))) }
                for i in 0..<8 { b[8 + i] = UInt8(truncatingIfNeeded: lo >> (56 - 8 * UInt64(i))) }
            }
            withUnsafePointer(to: &sin6) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0) }
            }
        }
    }
}

/// Data offsets of the records matched in each database (`none` = no record).
struct RecordKey: Hashable {
    static let none: UInt32 = .max
    var a: UInt32 = none, b: UInt32 = none, c: UInt32 = none, d: UInt32 = none
    subscript(i: Int) -> UInt32 {
        get { i == 0 ? a : i == 1 ? b : i == 2 ? c : d }
        set { if i == 0 { a = newValue } else if i == 1 { b = newValue } else if i == 2 { c = newValue } else { d = newValue } }
    }
    var isEmpty: Bool { a == Self.none && b == Self.none && c == Self.none && d == Self.none }
}

struct BlockSlot {
    var key: UInt64 = 0
    var outcome: GeoLookupOutcome?
}

/// The fields this module reads from one database record.
private struct DBRecord: Sendable {
    var country: String?
    var subdivision: String?
    var city: String?
    var asn: UInt32?
    var asOrg: String?

    init(entry: MMDB_entry_s) {
        var e = entry
        country = MMDBPaths.string(&e, MMDBPaths.country) ?? MMDBPaths.string(&e, MMDBPaths.registeredCountry)
        subdivision = MMDBPaths.string(&e, MMDBPaths.subdivision0)
        city = MMDBPaths.string(&e, MMDBPaths.cityEN)
        asn = MMDBPaths.uint(&e, MMDBPaths.asNumber)
        asOrg = MMDBPaths.string(&e, MMDBPaths.asOrg)
    }
}

/// NULL-terminated C path arrays for `MMDB_aget_value`, allocated once for the
/// life of the process.
private enum MMDBPaths {
    typealias Path = UnsafeMutablePointer<UnsafePointer<CChar>?>

    nonisolated(unsafe) static let country = make(["country", "iso_code"])
    nonisolated(unsafe) static let registeredCountry = make(["registered_country", "iso_code"])
    nonisolated(unsafe) static let subdivision0 = make(["subdivisions", "0", "iso_code"])
    nonisolated(unsafe) static let cityEN = make(["city", "names", "en"])
    nonisolated(unsafe) static let asNumber = make(["autonomous_system_number"])
    nonisolated(unsafe) static let asOrg = make(["autonomous_system_organization"])

    static func make(_ parts: [String]) -> Path {
        let p = Path.allocate(capacity: parts.count + 1)
        for (i, s) in parts.enumerated() { p[i] = UnsafePointer(strdup(s)) }
        p[parts.count] = nil
        return p
    }

    static func string(_ entry: inout MMDB_entry_s, _ path: Path) -> String? {
        var data = MMDB_entry_data_s()
        guard MMDB_aget_value(&entry, &data, path) == MMDB_SUCCESS, data.has_data,
              data.type == UInt32(MMDB_DATA_TYPE_UTF8_STRING), let p = data.utf8_string else { return nil }
        let s = p.withMemoryRebound(to: UInt8.self, capacity: Int(data.data_size)) {
            String(decoding: UnsafeBufferPointer(start: $0, count: Int(data.data_size)), as: UTF8.self)
        }
        return s.isEmpty ? nil : s
    }

    static func uint(_ entry: inout MMDB_entry_s, _ path: Path) -> UInt32? {
        var data = MMDB_entry_data_s()
        guard MMDB_aget_value(&entry, &data, path) == MMDB_SUCCESS, data.has_data else { return nil }
        switch Int32(data.type) {
        case MMDB_DATA_TYPE_UINT16: return UInt32(data.uint16)
        case MMDB_DATA_TYPE_UINT32: return data.uint32
        case MMDB_DATA_TYPE_INT32: return data.int32 >= 0 ? UInt32(data.int32) : nil
        case MMDB_DATA_TYPE_UINT64: return UInt32(exactly: data.uint64)
        default: return nil
        }
    }
}
