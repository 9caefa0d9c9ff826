// A minimal MaxMind DB writer, used by EnrichmentBench to build a synthetic
// City/ASN database without external tools. (Tests build their databases with
// Python's mmdb-writer; tools/build_mmdb.py is the user-facing builder.)
//
// Format: https://maxmind.github.io/MaxMind-DB/ — IPv6 search tree with
// 32-bit records, IPv4 networks at ::/96, data section of maps/strings/uints,
// metadata after "\xAB\xCD\xEFMaxMind.com".

import Enrichment
import Foundation
import SplitMix

public struct SyntheticMMDB {
    indirect enum Value {
        case string(String)
        case uint16(UInt16)
        case uint32(UInt32)
        case uint64(UInt64)
        case map([(String, Value)])
        case array([Value])
    }

    private var nodes: [(UInt64, UInt64)] = [(Self.empty, Self.empty)]
    private var data: [UInt8] = []
    private static let empty: UInt64 = 1 << 63
    private static let dataFlag: UInt64 = 1 << 62

    let databaseType: String

    init(databaseType: String) { self.databaseType = databaseType }

    /// Appends a record to the data section; returns its offset (reusable for many networks).
    mutating func addRecord(_ v: Value) -> UInt32 {
        let off = UInt32(data.count)
        Self.encode(v, into: &data)
        return off
    }

    /// Inserts `address/prefixLength` (IPv4 networks go to ::/96).
    mutating func insert(_ address: IPAddress, prefixLength: Int, record: UInt32) {
        var hi: UInt64 = 0, lo: UInt64 = 0, bits = prefixLength
        switch address {
        case .v4(let a): lo = UInt64(a); bits += 96
        case .v6(let h, let l): hi = h; lo = l
        }
        func bit(_ i: Int) -> Int { Int(i < 64 ? (hi >> (63 - UInt64(i))) & 1 : (lo >> (127 - UInt64(i))) & 1) }
        var node = 0
        for depth in 0..<bits {
            let b = bit(depth)
            let rec = b == 0 ? nodes[node].0 : nodes[node].1
            if depth == bits - 1 {
                if b == 0 { nodes[node].0 = Self.dataFlag | UInt64(record) } else { nodes[node].1 = Self.dataFlag | UInt64(record) }
                return
            }
            if rec & (Self.empty | Self.dataFlag) != 0 {
                // Empty or a supernet's data: split into a new node inheriting it.
                let child = nodes.count
                nodes.append((rec, rec))
                if b == 0 { nodes[node].0 = UInt64(child) } else { nodes[node].1 = UInt64(child) }
                node = child
            } else {
                node = Int(rec)
            }
        }
    }

    func bytes() -> [UInt8] {
        let nodeCount = UInt64(nodes.count)
        var out: [UInt8] = []
        out.reserveCapacity(nodes.count * 8 + 16 + data.count + 512)
        func resolve(_ r: UInt64) -> UInt32 {
            if r & Self.empty != 0 { return UInt32(nodeCount) }
            if r & Self.dataFlag != 0 { return UInt32(nodeCount + 16 + (r & ~Self.dataFlag)) }
            return UInt32(r)
        }
        for (l, r) in nodes {
            for v in [resolve(l), resolve(r)] {
                out += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
            }
        }
        out += [UInt8](repeating: 0, count: 16)
        out += data
        out += [0xAB, 0xCD, 0xEF] + Array("MaxMind.com".utf8)
        let meta: Value = .map([
            ("binary_format_major_version", .uint16(2)),
            ("binary_format_minor_version", .uint16(0)),
            ("build_epoch", .uint64(1_700_000_000)),
            ("database_type", .string(databaseType)),
            ("description", .map([("en", .string("VideoQoS synthetic benchmark database"))])),
            ("ip_version", .uint16(6)),
            ("languages", .array([.string("en")])),
            ("node_count", .uint32(UInt32(nodeCount))),
            ("record_size", .uint16(32)),
        ])
        Self.encode(meta, into: &out)
        return out
    }

    private static func header(_ type: Int, _ size: Int, into out: inout [UInt8]) {
        var first: UInt8
        var ext: [UInt8] = []
        var sizeBytes: [UInt8] = []
        let s: Int
        if size < 29 { s = size } else if size < 285 {
            s = 29; sizeBytes = [UInt8(size - 29)]
        } else if size < 65821 {
            s = 30; let v = size - 285; sizeBytes = [UInt8(v >> 8), UInt8(v & 0xFF)]
        } else {
            s = 31; let v = size - 65821; sizeBytes = [UInt8(v >> 16), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
        }
        if type <= 7 {
            first = UInt8(type << 5) | UInt8(s)
        } else {
            first = UInt8(s)
            ext = [UInt8(type - 7)]
        }
        out.append(first)
        out += ext
        out += sizeBytes
    }

    private static func uintBytes(_ v: UInt64) -> [UInt8] {
        var b: [UInt8] = []
        var x = v
        while x > 0 { b.insert(UInt8(x & 0xFF), at: 0); x >>= 8 }
        return b
    }

    static func encode(_ v: Value, into out: inout [UInt8]) {
        switch v {
        case .string(let s):
            let u = Array(s.utf8)
            header(2, u.count, into: &out); out += u
        case .uint16(let x):
            let b = uintBytes(UInt64(x)); header(5, b.count, into: &out); out += b
        case .uint32(let x):
            let b = uintBytes(UInt64(x)); header(6, b.count, into: &out); out += b
        case .uint64(let x):
            let b = uintBytes(x); header(9, b.count, into: &out); out += b
        case .map(let kv):
            header(7, kv.count, into: &out)
            for (k, val) in kv { encode(.string(k), into: &out); encode(val, into: &out) }
        case .array(let xs):
            header(11, xs.count, into: &out)
            for x in xs { encode(x, into: &out) }
        }
    }

    /// Builds a City and an ASN database over `networks` random networks,
    /// writes them into `directory`, and returns (city path, asn path,
    /// `samples` addresses inside the networks, Zipf-distributed over networks).
    public static func makeBenchmarkDatabases(in directory: URL, networks: Int = 20_000, samples: Int = 200_000, seed: UInt64 = 7)
        throws -> (city: String, asn: String, addresses: [String]) {
        var rng = SplitMix64(seed: seed)
        var city = SyntheticMMDB(databaseType: "GeoIP2-City")
        var asn = SyntheticMMDB(databaseType: "GeoLite2-ASN")
        let countries = ["US", "GB", "DE", "FR", "BR", "IN", "JP", "SE", "CA", "AU", "NG", "ZA", "MX", "ES", "IT"]
        let subs = ["CA", "TX", "NY", "ENG", "SCT", "BY", "BE", "IDF", "SP", "RJ", "MH", "KA", "13", "ON", "NSW"]
        var cityRecs: [UInt32] = []
        for i in 0..<800 {
            let c = countries[i % countries.count]
            cityRecs.append(city.addRecord(.map([
                ("city", .map([("geoname_id", .uint32(UInt32(1000 + i))), ("names", .map([("en", .string("City \(i)")), ("de", .string("Stadt \(i)"))]))])),
                ("continent", .map([("code", .string("EU")), ("names", .map([("en", .string("Europe"))]))])),
                ("country", .map([("geoname_id", .uint32(UInt32(i % 15))), ("iso_code", .string(c)), ("names", .map([("en", .string("Country \(c)"))]))])),
                ("location", .map([("accuracy_radius", .uint16(20)), ("time_zone", .string("Europe/London"))])),
                ("subdivisions", .array([.map([("iso_code", .string(subs[(i / 15) % subs.count])), ("names", .map([("en", .string("Sub \(i)"))]))])])),
            ])))
        }
        var asnRecs: [UInt32] = []
        for i in 0..<400 {
            asnRecs.append(asn.addRecord(.map([
                ("autonomous_system_number", .uint32(UInt32(1000 + i * 37))),
                ("autonomous_system_organization", .string("Example Networks \(i) Ltd")),
            ])))
        }
        var addresses: [String] = []
        var bases: [IPAddress] = []
        for n in 0..<networks {
            let addr: IPAddress
            let plen: Int
            if n % 3 == 2 {
                let hi = (0x2 << 60) | (rng.next() >> 4 & 0x0FFF_FFFF_FFFF_0000)
                addr = .v6(hi, 0); plen = 48
            } else {
                var a: UInt32
                repeat { a = UInt32(truncatingIfNeeded: rng.next()) & 0xFFFF_FF00 } while IPAddress.v4(a).isPrivateOrReserved
                addr = .v4(a); plen = 24
            }
            city.insert(addr, prefixLength: plen, record: cityRecs[Int(rng.next() % UInt64(cityRecs.count))])
            asn.insert(addr, prefixLength: plen, record: asnRecs[Int(rng.next() % UInt64(asnRecs.count))])
            bases.append(addr)
        }
        // Viewers concentrate on big networks: pick networks Zipf-like (s = 1),
        // then a random host inside.
        var cumulative: [Double] = []
        var acc = 0.0
        for r in 1...networks { acc += 1 / Double(r); cumulative.append(acc) }
        for _ in 0..<samples {
            let u = Double(rng.next() >> 11) / Double(1 << 53) * acc
            var lo = 0, hi = networks - 1
            while lo < hi { let mid = (lo + hi) / 2; if cumulative[mid] > u { hi = mid } else { lo = mid + 1 } }
            switch bases[lo] {
            case .v4(let a):
                let x = a | UInt32(rng.next() & 0xFF)
                addresses.append("\(x >> 24).\((x >> 16) & 0xFF).\((x >> 8) & 0xFF).\(x & 0xFF)")
            case .v6(let h, _):
                addresses.append([h >> 48, (h >> 32) & 0xFFFF, (h >> 16) & 0xFFFF, rng.next() & 0xFFFF]
                    .map { String($0, radix: 16) }.joined(separator: ":") + "::" + String(rng.next() & 0xFFFF, radix: 16))
            }
        }
        let cityPath = directory.appendingPathComponent("bench-city.mmdb").path
        let asnPath = directory.appendingPathComponent("bench-asn.mmdb").path
        try Data(city.bytes()).write(to: URL(fileURLWithPath: cityPath))
        try Data(asn.bytes()).write(to: URL(fileURLWithPath: asnPath))
        return (cityPath, asnPath, addresses)
    }
}
