// Throughput benchmarks for the Enrichment module (called by the bench harness).

import Enrichment
import Foundation
import SplitMix

public enum EnrichmentBench {
    /// Runs every benchmark with defaults: uap-core regexes from
    /// /usr/share/uap-core/regexes.yaml and a synthetic City + ASN database
    /// (20 000 networks, built in a temporary directory). Single thread; each
    /// result is operations per second on one core.
    ///
    /// - `ua.classify.warm`: ``UserAgentClassifier/classify(_:)`` over a
    ///   realistic user-agent mix (``SampleUserAgents``) with a warm LRU cache.
    /// - `ua.classify.cold`: the same mix with the cache disabled (every call
    ///   runs the regexes, with the literal prefilter).
    /// - `ua.load`: loading regexes.yaml (parse, literal prefilter, regex
    ///   compilation): every `qos` command that enriches pays it once at start.
    /// - `geo.lookup`: ``GeoIPResolver/lookup(_:)`` of IP strings (2/3 IPv4,
    ///   1/3 IPv6; networks picked Zipf-like, as viewers cluster on big ISPs)
    ///   against City + ASN databases, default /24–/48 block cache.
    /// - `geo.lookup.cold`: the same without the block cache: two tree walks
    ///   per lookup (decoded records are still cached by data offset).
    /// - `geo.lookup.private`: private addresses (parse + range check only).
    public static func run() -> [(name: String, opsPerSec: Double)] {
        run(regexesPath: UserAgentClassifier.defaultRegexesPath, geoDatabases: nil)
    }

    /// `geoDatabases`: real .mmdb files to benchmark instead of the synthetic
    /// ones (addresses are then random public IPv4/IPv6).
    public static func run(regexesPath: String, geoDatabases: [String]?,
                           minSeconds: Double = 0.5) -> [(name: String, opsPerSec: Double)] {
        var results: [(name: String, opsPerSec: Double)] = []
        if let regexes = try? UAPRegexes(path: regexesPath) {
            let mix = SampleUserAgents.mix(count: 100_000)
            let warm = UserAgentClassifier(regexes: regexes, cacheSize: 10_000)
            for ua in mix { _ = warm.classify(ua) }
            results.append(("ua.classify.warm", measure(minSeconds) { i in
                blackHole(warm.classify(mix[i % mix.count]).deviceType)
            }))
            let cold = UserAgentClassifier(regexes: regexes, cacheSize: 0)
            results.append(("ua.classify.cold", measure(minSeconds) { i in
                blackHole(cold.classify(mix[(i &* 7919) % mix.count]).deviceType)
            }))
            // Loads take tens of milliseconds: a few, timed whole.
            let loads = 5, start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<loads { blackHole((try? UAPRegexes(path: regexesPath))?.ruleCount ?? 0) }
            results.append(("ua.load", Double(loads) * 1e9 / Double(DispatchTime.now().uptimeNanoseconds - start)))
        }
        let tmp = FileManager.default.temporaryDirectory
            .appendingPathComponent("enrichment-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? FileManager.default.removeItem(at: tmp) }
        var paths: [String]
        var addresses: [String]
        if let dbs = geoDatabases {
            paths = dbs
            var rng = SplitMix64(seed: 11)
            addresses = (0..<100_000).map { i in
                if i % 3 == 2 {
                    let h = rng.next()
                    return "2\(String(h & 0xFFF, radix: 16)):\(String((h >> 12) & 0xFFFF, radix: 16))::\(String((h >> 28) & 0xFFFF, radix: 16))"
                }
                var a: UInt32
                repeat { a = UInt32(truncatingIfNeeded: rng.next()) } while IPAddress.v4(a).isPrivateOrReserved
                return "\(a >> 24).\((a >> 16) & 0xFF).\((a >> 8) & 0xFF).\(a & 0xFF)"
            }
        } else {
            do {
                try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
                let made = try SyntheticMMDB.makeBenchmarkDatabases(in: tmp)
                paths = [made.city, made.asn]
                addresses = made.addresses
            } catch {
                return results
            }
        }
        if let geo = try? GeoIPResolver(paths: paths), let cold = try? GeoIPResolver(paths: paths, blockCacheSize: 0) {
            results.append(("geo.lookup", measure(minSeconds) { i in
                blackHole(geo.lookup(addresses[i % addresses.count]).info?.asn)
            }))
            results.append(("geo.lookup.cold", measure(minSeconds) { i in
                blackHole(cold.lookup(addresses[(i &* 7919) % addresses.count]).info?.asn)
            }))
            let privates = ["10.1.2.3", "192.168.0.10", "172.20.3.4", "fd00::1", "100.64.1.1", "127.0.0.1"]
            results.append(("geo.lookup.private", measure(minSeconds) { i in
                blackHole(geo.lookup(privates[i % privates.count]).info?.asn)
            }))
        }
        return results
    }

    /// Calls `body(i)` for i = 0, 1, 2, … in batches until `minSeconds` passed.
    static func measure(_ minSeconds: Double, _ body: (Int) -> Void) -> Double {
        var i = 0
        var batch = 64
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed: Double = 0
        while true {
            for _ in 0..<batch { body(i); i += 1 }
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if elapsed >= minSeconds { break }
            if batch < 1 << 20 { batch *= 2 }
        }
        return Double(i) / elapsed
    }

    @inline(never) static func blackHole<T>(_ x: T) { _ = x }
}

extension EnrichmentBench {
    /// Builds the synthetic benchmark City + ASN databases in `directory`.
    public static func makeDBs(_ directory: URL) throws -> (city: String, asn: String, addresses: [String]) {
        try SyntheticMMDB.makeBenchmarkDatabases(in: directory)
    }
}
