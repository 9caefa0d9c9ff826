import Foundation
import Testing
@testable import Engine
import Generator
import QoSCore
import SplitMix

/// The deterministic short form of `make fuzz`: 100 000 mutations of the
/// generator's output and of the hostile cases (`tests/fuzz/hostile.ndjson`)
/// through decoder + engine + Parquet encoding, checked by
/// `EngineSelfCheck` (README "Numeric safety"). A trap fails it by killing
/// the test process.
@Suite struct FuzzPropertyTests {
    static let hostilePath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../tests/fuzz/hostile.ndjson").standardized.path

    static let keys = ["event", "ts", "session_id", "seq", "viewer_id", "video_id", "video_duration_ms", "live", "ip",
                       "country", "region", "user_agent", "device_type", "os", "browser", "player_name",
                       "player_version", "cdn", "pop", "bitrate_kbps", "played_ms", "playhead_ms", "duration_ms",
                       "error_code", "fatal", "reason", "http_status", "download_ms", "ttfb_ms", "bytes", "cache", "x"]
    static let numbers = ["9000000000000000000", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
                          "4000000000000000000", "5000000000000000000", "4e18", "1e400", "-1", "0", "0.5", "86400000",
                          "86400001", "10000000", "10000001", "1099511627776", "1099511627777", "4294967295",
                          "4294967296", "946684799999", "946684800000", "1767225600000", "null", "true", "\"\""]

    static func seeds() throws -> [[UInt8]] {
        var o = GeneratorOptions()
        o.seed = 13
        o.sessions = 200
        o.duplicateFraction = 0.02
        o.lateFraction = 0.02
        o.malformedFraction = 0.02
        var out = TrafficGenerator(o).map(\.payload)
        let hostile = try Data(contentsOf: URL(fileURLWithPath: hostilePath))
        let lines = hostile.split(separator: UInt8(ascii: "\n")).map { Array($0) }
        #expect(lines.count > 20)
        // The hostile cases weigh as much as a fifth of the generator's lines.
        for _ in 0..<max(1, out.count / (5 * lines.count)) { out += lines }
        return out
    }

    static func pick<T>(_ a: [T], _ rng: inout SplitMix64) -> T { a[Int(rng.next() % UInt64(a.count))] }

    /// One random mutation: bit flip, huge number, truncation, duplicated
    /// key, key swap, deep nesting, or a byte inserted / removed.
    static func mutate(_ m: inout [UInt8], _ rng: inout SplitMix64) {
        let n = m.count
        func at() -> Int { n == 0 ? 0 : Int(rng.next() % UInt64(n)) }
        switch rng.next() % 8 {
        case 0 where n > 0:
            m[at()] ^= 1 << UInt8(rng.next() % 8)
        case 1:
            // Replace a number (a digit run) with a hostile one.
            let digits = m.indices.filter { m[$0] >= 0x30 && m[$0] <= 0x39 && ($0 == 0 || !(m[$0 - 1] >= 0x30 && m[$0 - 1] <= 0x39)) }
            guard !digits.isEmpty else { return }
            let a = pick(digits, &rng)
            var b = a
            while b < n && m[b] >= 0x30 && m[b] <= 0x39 { b += 1 }
            m.replaceSubrange(a..<b, with: Array(pick(numbers, &rng).utf8))
        case 2 where n > 0:
            m.removeLast(1 + at() % n)
        case 3:
            // A known key again, right after the first `{`.
            guard let brace = m.firstIndex(of: UInt8(ascii: "{")) else { return }
            m.insert(contentsOf: Array("\"\(pick(keys, &rng))\":\(pick(numbers, &rng)),".utf8), at: brace + 1)
        case 4:
            // A key renamed to another known key (types and values no longer match).
            let quotes = m.indices.filter { m[$0] == UInt8(ascii: "\"") && $0 + 1 < n && m[$0 + 1] != UInt8(ascii: ":") }
            guard let q = quotes.isEmpty ? nil : pick(quotes, &rng),
                  let end = m[(q + 1)...].firstIndex(of: UInt8(ascii: "\"")) else { return }
            m.replaceSubrange((q + 1)..<end, with: Array(pick(keys, &rng).utf8))
        case 5:
            let depth = 1 + Int(rng.next() % 80)
            if rng.next() % 2 == 0 {
                m = Array(repeating: UInt8(ascii: "["), count: depth) + m + Array(repeating: UInt8(ascii: "]"), count: depth)
            } else if let brace = m.firstIndex(of: UInt8(ascii: "{")) {
                let v = String(repeating: "{\"a\":[", count: depth) + "1" + String(repeating: "]}", count: depth)
                m.insert(contentsOf: Array("\"nest\":\(v),".utf8), at: brace + 1)
            }
        case 6:
            m.insert(pick(Array("\"\\{}[],:0123456789-.eE \u{1}".utf8) + [0x80, 0xC3, 0xEF, 0xFF], &rng), at: at())
        default:
            if n > 0 { m.remove(at: at()) }
        }
    }

    @Test func hundredThousandMutatedBeaconsNeitherTrapNorWrap() throws {
        let seeds = try FuzzPropertyTests.seeds()
        var rng = SplitMix64(seed: 2026)
        let check = EngineSelfCheck(nowMs: GeneratorOptions().startMs + 86_400_000)
        for i in 0..<100_000 {
            var m = FuzzPropertyTests.pick(seeds, &rng)
            // A quarter of the lines unmutated, so sessions and windows fill up.
            for _ in 0..<(Int(rng.next() % 4)) { FuzzPropertyTests.mutate(&m, &rng) }
            m.withUnsafeBytes { check.ingest($0, line: Int64(i)) }
        }
        let problems = check.finish()
        #expect(problems.count == 0, "\(problems.prefix(10).joined(separator: "\n"))")
        let c = check.engine.counters
        #expect(c.accepted > 20_000 && c.rejectedTotal > 10_000 && check.filesPlanned > 0)
        #expect(c.rejected.keys.contains { $0.hasPrefix("invalid_value:") } && c.rejected["invalid_json", default: 0] > 0)
    }
}
