import Foundation
import Testing
@testable import Enrichment
import SplitMix
import QoSBench

@Suite("GeoIP")
struct GeoIPTests {
    @Test func parsesAndNormalisesAddresses() {
        #expect(IPAddress("81.2.69.160") == .v4(0x5102_45A0))
        #expect(IPAddress("::ffff:81.2.69.160") == .v4(0x5102_45A0))
        #expect(IPAddress("::FFFF:5102:45a0") == .v4(0x5102_45A0))
        #expect(IPAddress("2a02:c7f::1") == .v6(0x2A02_0C7F_0000_0000, 1))
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "abc", "fe80::1%eth0", " 1.2.3.4", "1.2.3.4/24", ":::"] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func privateAndReservedRanges() {
        let reserved = ["10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "127.0.0.1", "169.254.1.1",
                        "100.64.0.1", "100.127.255.255", "0.1.2.3", "224.0.0.1", "239.255.255.255", "240.0.0.1",
                        "255.255.255.255", "192.0.2.5", "198.51.100.7", "203.0.113.9", "198.18.0.1", "198.19.255.1",
                        "192.0.0.8", "::", "::1", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
                        "::ffff:10.0.0.1", "::ffff:127.0.0.1", "100::1", "3fff::1", "fec0::1", "4000::1"]
        let global = ["8.8.8.8", "81.2.69.160", "172.32.0.1", "100.128.0.1", "1.1.1.1", "2a02:c7f::1",
                      "2606:4700::1111", "::ffff:8.8.8.8", "223.255.255.255", "11.0.0.1"]
        for s in reserved { #expect(IPAddress(s)!.isPrivateOrReserved, "\(s) should be reserved") }
        for s in global { #expect(!IPAddress(s)!.isPrivateOrReserved, "\(s) should be global") }
    }

    @Test func handMadeRecords() throws {
        let fx = try GeoFixtures.get()
        let r = try GeoIPResolver(paths: [fx.city, fx.asn])
        #expect(r.databaseTypes == ["GeoIP2-City", "GeoLite2-ASN"])
        // Two nested subdivisions: the first one is the region.
        #expect(r.lookup("81.2.69.10") == .found(GeoInfo(country: "GB", region: "GB-ENG", city: "London",
                                                           asn: 20712, asOrg: "Andrews & Arnold Ltd")))
        // Nested network without a city.
        #expect(r.lookup("81.2.69.170") == .found(GeoInfo(country: "GB", region: "GB-ENG", city: nil,
                                                            asn: 20712, asOrg: "Andrews & Arnold Ltd")))
        // IPv4-mapped IPv6 goes to the IPv4 record (the DB has no ::ffff:0:0/96 alias).
        #expect(r.lookup("::ffff:81.2.69.10") == r.lookup("81.2.69.10"))
        #expect(r.lookup("89.160.20.115") == .found(GeoInfo(country: "SE", region: "SE-E", city: "Linköping",
                                                              asn: 29518, asOrg: "Bredband2 AB")))
        #expect(r.lookup("67.43.156.1") == .found(GeoInfo(country: "BT")))
        #expect(r.lookup("1.0.0.1") == .found(GeoInfo(asn: 13335, asOrg: "Cloudflare, Inc.")))
        #expect(r.lookup("2a02:c7f:1234::5") == .found(GeoInfo(country: "GB", region: "GB-SCT", city: "Glasgow", asn: 5089)))
        #expect(r.lookup("2a02:c78::1") == .found(GeoInfo(asn: 5089)))
        #expect(r.lookup("2001:480:10::1") == .found(GeoInfo(country: "US")))
        #expect(r.lookup("2001:480:11::1") == .found(GeoInfo(country: "US", region: "US-CA", city: "San Diego")))
        #expect(r.lookup("10.0.0.1") == .privateOrReserved)
        #expect(r.lookup("not an ip") == .unparsable)
        #expect(r.lookup("") == .unparsable)
        let c = r.counters
        #expect(c.privateOrReserved == 1 && c.unparsable == 2 && c.found == 11 && c.notFound == 0)
    }

    @Test func countryOnlyDatabaseAndOrder() throws {
        let fx = try GeoFixtures.get()
        let r = try GeoIPResolver(paths: [fx.country, fx.asn])
        #expect(r.lookup("81.2.69.10") == .found(GeoInfo(country: "GB", asn: 20712, asOrg: "Andrews & Arnold Ltd")))
        // ASN first: the city DB still supplies the geo fields.
        let r2 = try GeoIPResolver(paths: [fx.asn, fx.city])
        #expect(r2.lookup("81.2.69.10") == .found(GeoInfo(country: "GB", region: "GB-ENG", city: "London",
                                                            asn: 20712, asOrg: "Andrews & Arnold Ltd")))
    }

    @Test func noDatabaseMeansDisabled() throws {
        let r = try GeoIPResolver(paths: [])
        #expect(!r.isEnabled)
        #expect(r.lookup("8.8.8.8") == .notFound)
        #expect(r.lookup("192.168.0.1") == .privateOrReserved)
    }

    @Test func missingOrCorruptDatabaseNamesTheFile() throws {
        let fx = try GeoFixtures.get()
        let missing = fx.dir.appendingPathComponent("nope.mmdb").path
        for path in [missing, fx.corrupt, fx.dir.path] {
            do {
                _ = try GeoIPResolver(paths: [fx.city, path])
                Issue.record("opening \(path) should throw")
            } catch {
                let line = "\(error)"
                #expect(line.contains(path), "\(line)")
                #expect(!line.contains("\n"), "\(line)")
                #expect(line.contains("fix:"), "\(line)")
            }
        }
    }

    /// 10 000 random IPv4/IPv6 (and IPv4-mapped) addresses against Python's
    /// `maxminddb` reader on the same files.
    @Test(arguments: [1 << 14, 0])
    func matchesPythonMaxminddbReader(blockCacheSize: Int) throws {
        let fx = try GeoFixtures.get()
        let r = try GeoIPResolver(paths: [fx.city, fx.asn], blockCacheSize: blockCacheSize)
        let text = try String(contentsOfFile: fx.cases, encoding: .utf8)
        var n = 0, compared = 0, found = 0, mismatches: [String] = []
        for line in text.split(separator: "\n") {
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let ip = obj["ip"] as! String
            let isGlobal = obj["global"] as! Bool
            n += 1
            let outcome = r.lookup(ip)
            if outcome == .privateOrReserved {
                if isGlobal { mismatches.append("\(ip): we say reserved, Python says global") }
                continue
            }
            if !isGlobal { mismatches.append("\(ip): Python says not global, we looked it up") }
            compared += 1
            let expected: GeoLookupOutcome
            if let e = obj["expected"] as? [String: Any] {
                expected = .found(GeoInfo(country: e["country"] as? String, region: e["region"] as? String,
                                          city: e["city"] as? String, asn: (e["asn"] as? Int).map { UInt32($0) },
                                          asOrg: e["as_org"] as? String))
                found += 1
            } else {
                expected = .notFound
            }
            if outcome != expected { mismatches.append("\(ip): got \(outcome), Python \(expected)") }
        }
        #expect(n == 10_000)
        #expect(compared > 9_000 && found > 4_000, "compared \(compared), found \(found)")
        let mismatchCount = mismatches.count
        let firstMismatches = mismatches.prefix(10).joined(separator: "; ")
        #expect(mismatchCount == 0, "\(mismatchCount) mismatches, first: \(firstMismatches)")
    }

    @Test func concurrentLookupsAreConsistent() async throws {
        let fx = try GeoFixtures.get()
        let r = try GeoIPResolver(paths: [fx.city, fx.asn])
        let expected = r.lookup("81.2.69.10")
        await withTaskGroup(of: Bool.self) { g in
            for _ in 0..<4 {
                g.addTask { (0..<2000).allSatisfy { _ in r.lookup("81.2.69.10") == expected } }
            }
            for await ok in g { #expect(ok) }
        }
        #expect(r.counters.found == 8001)
    }

    @Test func buildMmdbToolFromCSV() throws {
        let dir = try TestSupport.makeTempDir("tool")
        defer { try? FileManager.default.removeItem(at: dir) }
        let csv = dir.appendingPathComponent("nets.csv")
        try """
        network,country,region,city,asn,as_org
        81.2.69.0/24,GB,ENG,London,20712,Andrews & Arnold
        81.2.69.128/26,GB,ENG,,,
        2a02:c7f::/32,GB,SCT,Glasgow,5089,
        203.0.114.0/24,,,,64500,Example AS
        8.8.8.0/24,US,CA,"Mountain View, CA",15169,"Google, LLC"
        9.9.8.0/24,US,US-TX,Austin,,
        """.write(to: csv, atomically: true, encoding: .utf8)
        let city = dir.appendingPathComponent("c.mmdb").path, asn = dir.appendingPathComponent("a.mmdb").path
        try TestSupport.runPython([TestSupport.repoRoot.appendingPathComponent("tools/build_mmdb.py").path,
                                   csv.path, "--city", city, "--asn", asn])
        let r = try GeoIPResolver(paths: [city, asn])
        #expect(r.databaseTypes == ["GeoIP2-City", "GeoLite2-ASN"])
        #expect(r.lookup("81.2.69.1") == .found(GeoInfo(country: "GB", region: "GB-ENG", city: "London", asn: 20712, asOrg: "Andrews & Arnold")))
        #expect(r.lookup("81.2.69.130") == .found(GeoInfo(country: "GB", region: "GB-ENG", asn: 20712, asOrg: "Andrews & Arnold")))
        #expect(r.lookup("2a02:c7f::9") == .found(GeoInfo(country: "GB", region: "GB-SCT", city: "Glasgow", asn: 5089)))
        #expect(r.lookup("::ffff:8.8.8.8") == .found(GeoInfo(country: "US", region: "US-CA", city: "Mountain View, CA", asn: 15169, asOrg: "Google, LLC")))
        #expect(r.lookup("203.0.114.7") == .found(GeoInfo(asn: 64500, asOrg: "Example AS")))
        #expect(r.lookup("9.9.8.1") == .found(GeoInfo(country: "US", region: "US-TX", city: "Austin")))
        #expect(r.lookup("9.9.9.9") == .notFound)
    }

    /// The benchmark's own MaxMind DB writer produces files that Python's
    /// reader and our resolver read identically.
    @Test func syntheticBenchmarkDatabaseMatchesPythonReader() throws {
        let dir = try TestSupport.makeTempDir("synth")
        defer { try? FileManager.default.removeItem(at: dir) }
        let made = try SyntheticMMDB.makeBenchmarkDatabases(in: dir, networks: 600, samples: 2000)
        let r = try GeoIPResolver(paths: [made.city, made.asn])
        #expect(r.databaseTypes == ["GeoIP2-City", "GeoLite2-ASN"])
        let probes = made.addresses + ["8.8.8.8", "2001:4860::1", "1.2.3.4"]
        let out = try TestSupport.runPython([TestSupport.oracle("enrichment_geo_oracle.py"), "--lookup", made.city, made.asn],
                                            stdin: probes.joined(separator: "\n") + "\n")
        var n = 0, mismatches = 0, found = 0
        var first = ""
        for line in out.split(separator: "\n") {
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let ip = obj["ip"] as! String
            let expected: GeoLookupOutcome
            if let e = obj["expected"] as? [String: Any] {
                expected = .found(GeoInfo(country: e["country"] as? String, region: e["region"] as? String,
                                          city: e["city"] as? String, asn: (e["asn"] as? Int).map { UInt32($0) },
                                          asOrg: e["as_org"] as? String))
                found += 1
            } else {
                expected = .notFound
            }
            let got = r.lookup(ip)
            if got != expected { mismatches += 1; if first.isEmpty { first = "\(ip): \(got) vs \(expected)" } }
            n += 1
        }
        #expect(n == probes.count)
        #expect(found >= made.addresses.count)
        #expect(mismatches == 0, "\(first)")
    }

    @Test func rejectsEmbeddedNulAndOverlongInput() throws {
        #expect(IPAddress("1.2.3.4\u{0}junk") == nil)
        #expect(IPAddress(String(repeating: "1", count: 100)) == nil)
        let r = try GeoIPResolver(paths: [])
        #expect(r.summary == GeoIPResolver.disabledNotice)
    }

    /// A database damaged inside (metadata intact) either fails to open with
    /// the one-line error or answers lookups without crashing.
    @Test func damagedDatabaseNeverCrashes() throws {
        let fx = try GeoFixtures.get()
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fx.city)))
        var rng = SplitMix64(seed: 1)
        for _ in 0..<2000 { bytes[Int(rng.next() % UInt64(bytes.count - 600))] = UInt8(truncatingIfNeeded: rng.next()) }
        let dir = try TestSupport.makeTempDir("damaged")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("damaged.mmdb").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        do {
            let r = try GeoIPResolver(paths: [path])
            for i in 0..<2000 {
                let a = UInt32(truncatingIfNeeded: rng.next())
                _ = r.lookup(i % 2 == 0 ? "\(a >> 24).\((a >> 16) & 255).\((a >> 8) & 255).\(a & 255)" : "2a02:c7f::\(i)")
            }
            #expect(r.counters.total == 2000)
        } catch {
            #expect("\(error)".contains(path))
        }
    }
}
