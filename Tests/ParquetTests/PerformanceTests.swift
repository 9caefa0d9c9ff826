import Testing
@testable import Parquet
import SplitMix

/// A flush-sized table (10^5 rows, engine-like columns) must write and read in
/// reasonable time even in a debug build, and compress well.
@Suite struct PerformanceTests {
    @Test func flushSizedTable() throws {
        let n = 100_000
        var rng = SplitMix64(seed: 99)
        let countries = ["NL", "DE", "FR", "US", "BR", "JP", "IN", "GB"]
        let cdns = (0..<40).map { "cdn-\($0).example.net" }
        let schema: [ParquetField] = [
            .timestamp("window_start", optional: false), .string("country"), .string("cdn"),
            .string("session_id", optional: false), .int64("plays"), .double("rebuffer_ratio"),
            .int32("bitrate_kbps"), .boolean("is_live"), .blob("sketch"),
        ]
        let columns: [ParquetColumnData] = [
            .int64((0..<n).map { Int64(1_764_064_800_000_000 + ($0 / 1000) * 60_000_000) }),
            .strings((0..<n).map { $0 % 17 == 0 ? nil : countries[$0 % countries.count] }),
            .strings((0..<n).map { _ in cdns.randomElement(using: &rng) }),
            .strings((0..<n).map { "session-\($0 * 7919 % 1_000_003)" }),
            .int64((0..<n).map { _ in Int64.random(in: 0...500, using: &rng) }),
            .double((0..<n).map { i in i % 9 == 0 ? nil : Double(i % 1000) / 1000 }),
            .int32((0..<n).map { _ in Int32.random(in: 300...8000, using: &rng) }),
            .boolean((0..<n).map { $0 % 3 == 0 }),
            .byteArray((0..<n).map { i in i % 50 == 0 ? [UInt8](repeating: UInt8(i % 256), count: 64) : nil }),
        ]
        let clock = ContinuousClock()
        var bytes: [UInt8] = []
        let writeTime = try clock.measure {
            bytes = try writeParquet(schema: schema, columns: columns)
        }
        var reader: ParquetFileReader?
        var back: [ParquetColumnData] = []
        let readTime = try clock.measure {
            let r = try ParquetFileReader(bytes: bytes)
            back = try (0..<schema.count).map { try r.column($0) }
            reader = r
        }
        print("perf: \(n) rows -> \(bytes.count) bytes; write \(writeTime), read \(readTime)")
        #expect(back == columns)
        #expect(reader?.rowGroups.first?.columns[1].encodings.contains(.rleDictionary) == true)
        #expect(bytes.count < 2_000_000)
        #expect(writeTime < .seconds(30) && readTime < .seconds(30))
    }
}
