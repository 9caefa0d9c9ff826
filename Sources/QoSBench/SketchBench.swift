// Update-rate microbenchmark, for a harness to call (no executable here, no I/O).
// Uses the monotonic clock; inputs are generated before timing starts.
import Sketches
import SplitMix
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public enum SketchBench {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Runs each case once over `n` inputs and reports updates per second (single core).
    public static func run(n: Int = 10_000_000) -> [(name: String, opsPerSec: Double)] {
        var rng = SplitMix64(seed: 42)
        let hashes = (0 ..< n).map { _ in rng.next() }
        let values = hashes.map { Double($0 >> 11) * 0x1p-53 * 10_000 + 1 }  // [1, 10001)
        let strings = (0 ..< Swift.min(n, 1_000_000)).map { "viewer-\($0)" }
        var results: [(name: String, opsPerSec: Double)] = []

        var t = now()
        var hll = HLLSketch(lgK: 12)
        for h in hashes { hll.update(hash: h) }
        results.append(("hll.update(hash:) lgK12", Double(n) / (now() - t)))
        precondition(hll.estimate > 0)

        t = now()
        var hll2 = HLLSketch(lgK: 12)
        for h in hashes { hll2.update(int64: Int64(bitPattern: h)) }
        results.append(("hll.update(int64:) lgK12 (murmur)", Double(n) / (now() - t)))
        precondition(hll2.estimate > 0)

        t = now()
        var hll3 = HLLSketch(lgK: 12)
        for s in strings { hll3.update(s) }
        results.append(("hll.update(String) lgK12 (murmur)", Double(strings.count) / (now() - t)))
        precondition(hll3.estimate > 0)

        t = now()
        var dd = DDSketch(relativeAccuracy: 0.01)
        for v in values { dd.add(v) }
        results.append(("ddsketch.add a=0.01", Double(n) / (now() - t)))
        precondition(dd.count == Double(n))

        // Merges of sketches of 1 000 values each into one (as a flush merges
        // every partition's share of a window): merges per second.
        let parts = (0 ..< Swift.max(1, Swift.min(n, 1_000_000) / 1000)).map { p -> DDSketch in
            var s = DDSketch(relativeAccuracy: 0.01)
            for v in values[(p * 1000) ..< Swift.min(values.count, (p + 1) * 1000)] { s.add(v) }
            return s
        }
        t = now()
        var merged = DDSketch(relativeAccuracy: 0.01)
        for _ in 0 ..< 10 { for s in parts { merged.merge(s) } }
        results.append(("ddsketch.merge a=0.01 (1 000 values each)", Double(10 * parts.count) / (now() - t)))
        precondition(merged.count == 10 * parts.reduce(0) { $0 + $1.count })
        return results
    }
}
