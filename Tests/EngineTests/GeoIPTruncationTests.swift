import Foundation
import QoSBench
import QoSCore
import Testing
import TestSupport
@testable import Engine

/// A GeoIP file truncated in place while the process has it open (copied
/// over instead of renamed into place) must not end the process: its
/// missing pages read as zeros (`MappedInputGuard`), geo lookups find
/// nothing from then on, and the operator is told once (`EngineEnricher`).
@Suite struct GeoIPTruncationTests {
    @Test func aGeoIPFileTruncatedWhileOpenEndsLookupsNotTheProcess() throws {
        let dir = URL(fileURLWithPath: makeTemporaryDirectory("qos-mmdb-truncated"))
        let made = try SyntheticMMDB.makeBenchmarkDatabases(in: dir, networks: 300, samples: 400)
        let warnings = DriverTests.LogBox()  // the warning comes on this thread (the lookup's)
        let enricher = try makeEnricher(geoip: [made.city, made.asn], uaRegexes: nil, log: { _ in },
                                        warn: { warnings.lines.append($0) })
        let before = made.addresses.prefix(100).compactMap { enricher.geo(ip: $0)?.country }
        #expect(before.count == 100, "the addresses are in the database")
        #expect(truncate(made.city, 0) == 0)
        // A public address in a block not looked up yet (the resolver caches
        // outcomes per block, and answers private ranges without the file)
        // reads the file's first pages, which are gone.
        #expect(enricher.geo(ip: "8.8.8.8") == nil)
        let after = made.addresses.map { enricher.geo(ip: $0) } + (0..<64).map { enricher.geo(ip: "9.\($0).1.1") }
        #expect(after.allSatisfy { $0 == nil }, "nothing is found once the file shrank, cached or not")
        #expect(warnings.lines.count == 1, "\(warnings.lines)")
        #expect(warnings.lines.first?.contains(made.city) == true && warnings.lines.first?.contains("restart") == true)
        // A file that is not truncated keeps working in another enricher.
        let other = try SyntheticMMDB.makeBenchmarkDatabases(in: URL(fileURLWithPath: makeTemporaryDirectory("qos-mmdb-ok")),
                                                             networks: 300, samples: 50)
        let fine = try makeEnricher(geoip: [other.city], uaRegexes: nil, log: { _ in })
        #expect(other.addresses.allSatisfy { fine.geo(ip: $0)?.country != nil })
    }
}
