import Foundation
import Testing
import TestSupport
@testable import Engine
import Parquet
import QoSCore
import Sketches
import Synchronization
import Dispatch

/// `qos inspect` and the file checks it shares with `qos reaggregate`:
/// hostile or unusual files in a table directory are one-line errors naming
/// them — never a trap, a hang, or a silently wrong sum.
@Suite(.serialized) struct InspectTests {
    /// A copy of the 2-minute replay of `ReaggregateTests`' fixture.
    static func sinkCopy(_ name: String, tables: [String] = ["overall"]) throws -> String {
        let f = try ReaggregateTests.fixture.get()
        let sink = makeTemporaryDirectory("qos-inspect") + "/" + name
        try FileManager.default.createDirectory(atPath: sink, withIntermediateDirectories: true)
        for t in tables { try FileManager.default.copyItem(atPath: f.dir + "/w2m/" + t, toPath: sink + "/" + t) }
        return sink
    }

    /// Rewrites `path` with some columns (or metadata) changed.
    static func rewrite(_ path: String, metadata: [String: String] = [:],
                        _ change: (String, ParquetColumnData) -> ParquetColumnData = { $1 }) throws {
        let r = try ParquetFileReader(bytes: Inspector.readFile(path))
        var opts = ParquetWriterOptions()
        opts.keyValueMetadata = r.keyValueMetadata.map { kv in (kv.key, metadata[kv.key] ?? kv.value) }
        let cols = try r.schema.indices.map { change(r.schema[$0].name, try r.column($0)) }
        try Data(try writeParquet(schema: r.schema, columns: cols, options: opts)).write(to: URL(fileURLWithPath: path))
    }

    static func setAll(_ c: ParquetColumnData, _ v: Int64) -> ParquetColumnData {
        guard case .int64(let xs) = c else { return c }
        return .int64(xs.map { _ in v })
    }

    static func setBlobs(_ c: ParquetColumnData, _ b: [UInt8]) -> ParquetColumnData {
        guard case .byteArray(let xs) = c else { return c }
        return .byteArray(xs.map { _ in b })
    }

    static func reaggregate(_ sink: String, compact: Bool = false, tables: [String] = ["overall"],
                            skipMissing: Bool = false) throws -> ReaggregateSummary {
        var o = ReaggregateOptions()
        o.sink = sink
        o.tables = tables
        o.compact = compact
        o.graceSeconds = 0
        o.skipMissingTables = skipMissing
        return try ReaggregateJob(o).run()
    }

    /// The error `body` throws: it must be a `UserError` naming `needle`.
    static func expectError(_ needle: String, _ what: String, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("\(what): no error")
        } catch let e as UserError {
            #expect(e.message.contains(needle), "\(what): \(e.message)")
            #expect(!e.message.contains("\n"), "\(what): one line")
        } catch {
            Issue.record("\(what): \(type(of: error)) \(error), not a UserError naming '\(needle)'")
        }
    }

    // MARK: - Sums and sketches

    /// Sums near Int64.max (bitrate_ms_sum 4e18 in three windows of one
    /// hour) — values qos accepts from beacons — must saturate and say so.
    @Test func sumsPastInt64MaxSaturateAndAreReported() throws {
        let sink = try Self.sinkCopy("saturated")
        let files = Inspector.parquetFiles(under: sink + "/overall").filter { $0.contains("_base_") }.prefix(3)
        for p in files { try Self.rewrite(p) { $0 == "bitrate_ms_sum" ? Self.setAll($1, 4_000_000_000_000_000_000) : $1 } }
        let text = try Inspector.summarizeDirectory(sink + "/overall")
        #expect(text.contains("saturated") && text.contains("bitrate_ms_sum"), "\(text)")
        var o = ReaggregateOptions()
        o.sink = sink
        o.tables = ["overall"]
        let s = try ReaggregateJob(o).run()
        #expect(s.text.contains("saturated at Int64.max"), "\(s.text)")
    }

    /// A DDSketch of another relative accuracy cannot be merged: inspect
    /// refuses it naming the file (it trapped in DDSketch.merge).
    @Test func aSketchOfAnotherAccuracyIsRefusedNamingTheFile() throws {
        let sink = try Self.sinkCopy("gamma")
        let victim = Inspector.parquetFiles(under: sink + "/overall")[2]
        var other = DDSketch(relativeAccuracy: 0.02)
        other.add(120)
        try Self.rewrite(victim) { $0 == "startup_ms_sketch" ? Self.setBlobs($1, other.protobufBytes()) : $1 }
        Self.expectError(victim, "inspect") { _ = try Inspector.summarizeDirectory(sink + "/overall") }
    }

    /// A percentile of a huge but finite value (1e300 ms) trapped `Int(x)`.
    @Test func aPercentileBeyondInt64IsPrintedNotTrapped() throws {
        let sink = try Self.sinkCopy("hugekey")
        var big = DDSketch()
        big.add(1e300)
        for p in Inspector.parquetFiles(under: sink + "/overall") {
            try Self.rewrite(p) { $0 == "startup_ms_sketch" ? Self.setBlobs($1, big.protobufBytes()) : $1 }
        }
        let text = try Inspector.summarizeDirectory(sink + "/overall")
        #expect(text.contains("e+299 ms") || text.contains("e+300 ms"), "\(text)")
    }

    /// ddsketch.proto bytes with one positive bin (map form).
    static func ddsketchBytes(gamma: Double, key: Int32, count: Double) -> [UInt8] {
        func varint(_ v: UInt64) -> [UInt8] {
            var v = v, out: [UInt8] = []
            while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
            return out + [UInt8(v)]
        }
        func fixed64(_ d: Double) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: d.bitPattern >> (8 * UInt64($0))) } }
        let zz = UInt64(UInt32(bitPattern: (key << 1) ^ (key >> 31)))
        let entry = [0x08] + varint(zz) + [0x11] + fixed64(count)
        let store = [0x0A] + varint(UInt64(entry.count)) + entry
        let mapping = [0x09] + fixed64(gamma)
        return [0x0A] + varint(UInt64(mapping.count)) + mapping + [0x12] + varint(UInt64(store.count)) + store
    }

    /// A bin whose value is not a finite double (key 2^30 at 1 %): no value
    /// qos sketches maps there. It trapped inspect (`Int(inf)`) and gave
    /// reaggregate p50 = inf.
    @Test func aSketchBinBeyondEveryDoubleIsRefused() throws {
        let sink = try Self.sinkCopy("infkey")
        let victim = Inspector.parquetFiles(under: sink + "/overall")[1]
        let bytes = Self.ddsketchBytes(gamma: DDSketch().gamma, key: 1 << 30, count: 1)
        #expect(throws: (any Error).self) { try DDSketch(protobuf: bytes) }
        try Self.rewrite(victim) { $0 == "startup_ms_sketch" ? Self.setBlobs($1, bytes) : $1 }
        Self.expectError(victim, "inspect") { _ = try Inspector.summarizeDirectory(sink + "/overall") }
        Self.expectError(victim, "reaggregate") { _ = try Self.reaggregate(sink) }
        // A bin just inside the range still reads.
        #expect(throws: Never.self) {
            try DDSketch(protobuf: Self.ddsketchBytes(gamma: DDSketch().gamma, key: Int32(DDSketch().key(1e300)), count: 1))
        }
    }

    /// An HLL sketch of another lg_k would lower the union's precision while
    /// the metadata still says lg_k=12: refused like a DDSketch of another accuracy.
    @Test func anHLLSketchOfAnotherLgKIsRefused() throws {
        let sink = try Self.sinkCopy("lgk")
        let victim = Inspector.parquetFiles(under: sink + "/overall")[3]
        var h = HLLSketch(lgK: 10)
        for i in 0..<5000 { h.update("viewer-\(i)") }
        try Self.rewrite(victim) { $0 == "viewers_hll" ? Self.setBlobs($1, h.compactBytes()) : $1 }
        Self.expectError(victim, "reaggregate") { _ = try Self.reaggregate(sink) }
        Self.expectError(victim, "inspect") { _ = try Inspector.summarizeDirectory(sink + "/overall") }
    }

    // MARK: - What a table directory may hold

    /// Runs `body` on a thread; false when it has not returned within `seconds`.
    static func finishes(within seconds: Double, unblock: () -> Void, _ body: @escaping @Sendable () -> Void) -> Bool {
        let done = DispatchSemaphore(value: 0)
        Thread { body(); done.signal() }.start()
        if done.wait(timeout: .now() + seconds) == .success { return true }
        unblock()
        _ = done.wait(timeout: .now() + 30)
        return false
    }

    /// A FIFO named like a table file blocked every reader forever; a link to
    /// a device (`/dev/zero`) filled memory. Only regular files are read.
    @Test func aTableFileMustBeARegularFile() throws {
        let sink = try Self.sinkCopy("fifo")
        let hourDir = Inspector.parquetFiles(under: sink + "/overall")[0].split(separator: "/").dropLast().joined(separator: "/")
        let fifo = "/" + hourDir + "/overall_fifo.parquet"
        #expect(mkfifo(fifo, 0o644) == 0)
        let unblock = {
            let fd = open(fifo, O_WRONLY | O_NONBLOCK)
            if fd >= 0 { close(fd) }
        }
        for (what, body) in [("inspect", { _ = try Inspector.summarizeDirectory(sink + "/overall") }),
                             ("roll-up", { _ = try Self.reaggregate(sink) }),
                             ("compact", { _ = try Self.reaggregate(sink, compact: true) })] as [(String, () throws -> Void)] {
            let result = Mutex<(any Error)?>(nil)
            let body = UncheckedBox(body)
            let ok = Self.finishes(within: 10, unblock: unblock) {
                do { try body.value() } catch { result.withLock { $0 = error } }
            }
            #expect(ok, "\(what) blocked on a FIFO")
            let e = result.withLock { $0 }
            #expect((e as? UserError)?.message.contains(fifo) == true && (e as? UserError)?.message.contains("FIFO") == true,
                    "\(what): \(String(describing: e))")
        }
        unlink(fifo)
        let device = "/" + hourDir + "/overall_dev.parquet"
        #expect(symlink("/dev/null", device) == 0)
        Self.expectError("character device", "inspect") { _ = try Inspector.summarizeDirectory(sink + "/overall") }
        Self.expectError(device, "reaggregate") { _ = try Self.reaggregate(sink) }
    }

    /// A sink root summed every table together (views 5× the truth).
    @Test func inspectRefusesASinkRoot() throws {
        let sink = try Self.sinkCopy("root", tables: ["overall", "video"])
        Self.expectError("overall, video", "sink root") { _ = try Inspector.summarizeDirectory(sink) }
        // One table's directory, and an hour directory in it, are summarized.
        #expect(try Inspector.summarizeDirectory(sink + "/overall").contains("views "))
        let hourDir = Inspector.parquetFiles(under: sink + "/video")[0].split(separator: "/").dropLast().joined(separator: "/")
        #expect(try Inspector.summarizeDirectory("/" + hourDir).contains("views "))
    }

    /// Inspect applies reaggregate's checks instead of quietly summing a
    /// file that does not belong: another table's file, a newer
    /// spec_version, no videoqos metadata, a missing column, negative counters.
    @Test func inspectChecksEveryFileAsReaggregateDoes() throws {
        let sink = try Self.sinkCopy("checks", tables: ["overall", "video"])
        let files = Inspector.parquetFiles(under: sink + "/overall")
        let victim = files[4]
        let original = try Inspector.readFile(victim)
        func restore() throws { try Data(original).write(to: URL(fileURLWithPath: victim)) }
        // Another table's file.
        try FileManager.default.removeItem(atPath: victim)
        try FileManager.default.copyItem(atPath: Inspector.parquetFiles(under: sink + "/video")[0], toPath: victim)
        Self.expectError("belongs to table 'video'", "other table") { _ = try Inspector.summarizeDirectory(sink + "/overall") }
        try restore()
        try Self.rewrite(victim, metadata: ["videoqos.spec_version": "2"])
        Self.expectError("spec_version=2", "newer") { _ = try Inspector.summarizeDirectory(sink + "/overall") }
        try restore()
        try Self.rewrite(victim, metadata: ["videoqos.spec_version": "x", "videoqos.table": "overall"])
        Self.expectError(victim, "bad metadata") { _ = try Inspector.summarizeDirectory(sink + "/overall") }
        try restore()
        try Self.rewrite(victim) { $0 == "views" ? Self.setAll($1, -5) : $1 }
        Self.expectError(victim, "negative views (inspect)") { _ = try Inspector.summarizeDirectory(sink + "/overall") }
        Self.expectError("negative", "negative views (reaggregate)") { _ = try Self.reaggregate(sink) }
        try restore()
        #expect(try Inspector.summarizeDirectory(sink + "/overall").contains("views "))
    }

    /// A page that does not decode: the error names the file (reaggregate's did).
    @Test func aCorruptPageIsAnErrorNamingTheFile() throws {
        let sink = try Self.sinkCopy("corrupt")
        let victim = Inspector.parquetFiles(under: sink + "/overall")[5]
        var bytes = try Inspector.readFile(victim)
        for i in 4..<min(400, bytes.count - 100) { bytes[i] = 0xFF }
        try Data(bytes).write(to: URL(fileURLWithPath: victim))
        Self.expectError(victim, "inspect") { _ = try Inspector.summarizeDirectory(sink + "/overall") }
        Self.expectError(victim, "inspect file") { _ = try Inspector.describeFile(victim, rows: 3) }
    }

    /// The footer, its length field and the two magics must fit in the file:
    /// "footer length 20 exceeds file size 28" read as false.
    @Test func footerLengthMessageCountsTheTrailer() throws {
        let n: UInt32 = 20
        let bytes = Array("PAR1".utf8) + [UInt8](repeating: 0, count: 16) + (0..<4).map { UInt8(truncatingIfNeeded: n >> (8 * $0)) } + Array("PAR1".utf8)
        do {
            _ = try ParquetFileReader(bytes: bytes)
            Issue.record("no error")
        } catch let e as ParquetError {
            #expect(e.description.contains("footer length 20 + 12 > file size 28"), "\(e.description)")
        }
    }

    // MARK: - reaggregate's sink and arguments

    /// A missing sink, a sink that is a file, a table entry that is a file:
    /// "read 0 files … from 0 tables" and exit 0 before.
    @Test func aSinkThatIsNotADirectoryIsAnError() throws {
        let dir = makeTemporaryDirectory("qos-inspect-sink")
        for compact in [false, true] {
            Self.expectError(dir + "/typo", "missing sink") {
                _ = try Self.reaggregate(dir + "/typo", compact: compact, tables: TableSchemas.tableNames, skipMissing: true)
            }
        }
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/file"))
        Self.expectError(dir + "/file", "sink is a file") {
            _ = try Self.reaggregate(dir + "/file", tables: TableSchemas.tableNames, skipMissing: true)
        }
        try FileManager.default.createDirectory(atPath: dir + "/s", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/s/overall"))
        Self.expectError(dir + "/s/overall", "table is a file") {
            _ = try Self.reaggregate(dir + "/s", tables: TableSchemas.tableNames, skipMissing: true)
        }
        Self.expectError(dir + "/s/overall", "table is a file, compact") {
            _ = try Self.reaggregate(dir + "/s", compact: true, tables: TableSchemas.tableNames, skipMissing: true)
        }
    }

    /// A second compaction is held off by the first: the message says so
    /// (it said "qos run is running").
    @Test func aCompactionBlockedByAnotherSaysWhatHoldsTheLock() throws {
        let sink = try Self.sinkCopy("locked")
        let held = try SinkLock(sinkRoot: sink, for: .compaction)
        defer { withExtendedLifetime(held) {} }
        do {
            _ = try Self.reaggregate(sink, compact: true)
            Issue.record("no error")
        } catch let e as UserError {
            #expect(e.message.contains("another qos reaggregate --compact") && !e.message.contains("qos run is running"), "\(e.message)")
        }
    }

    /// Times that cannot be meant: an impossible date, epoch seconds read as
    /// milliseconds (January 1970); a grain past a year.
    @Test func impossibleTimesAndGrainsAreRefused() throws {
        #expect(UTCTime.parse("2026-02-30") == nil && UTCTime.parse("2025-02-29") == nil && UTCTime.parse("2026-04-31") == nil)
        #expect(UTCTime.parse("2024-02-29") == 1_709_164_800_000 && UTCTime.parse("2026-12-31") != nil)
        let sink = try Self.sinkCopy("times")
        var o = ReaggregateOptions()
        o.sink = sink
        o.tables = ["overall"]
        o.fromMs = 1_767_272_400
        Self.expectError("before 2000", "--from in seconds") { _ = try ReaggregateJob(o) }
        o.fromMs = .min
        o.toMs = 1_767_272_400
        Self.expectError("before 2000", "--to in seconds") { _ = try ReaggregateJob(o) }
        o.toMs = .max
        o.grainMs = 200_000_000 * 86_400_000
        Self.expectError("--grain", "huge grain") { _ = try ReaggregateJob(o) }
        o.grainMs = 366 * 86_400_000
        #expect(throws: Never.self) { _ = try ReaggregateJob(o) }
    }

    /// A killed --compact leaves staging under `<sink>/.qos-compact/`: the
    /// next run removes what was never swapped in, and finishes what was.
    @Test func theNextCompactionCleansWhatAKilledOneLeft() throws {
        let sink = try Self.sinkCopy("leftovers")
        let staging = sink + "/.qos-compact/overall-999999-0"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        let someFile = Inspector.parquetFiles(under: sink + "/overall")[0]
        #expect(link(someFile, staging + "/" + (someFile.split(separator: "/").last.map(String.init) ?? "")) == 0)
        try Data("x".utf8).write(to: URL(fileURLWithPath: staging + "/overall_compacted_but_not_swapped.parquet"))
        // Killed after the swap: the staging directory is the old hour
        // directory, and an entry published into it meanwhile is adopted.
        let live = "/" + someFile.split(separator: "/").dropLast().joined(separator: "/")
        let swapped = sink + "/.qos-compact/overall-999998-1"
        try FileManager.default.createDirectory(atPath: swapped, withIntermediateDirectories: true)
        try Data("late".utf8).write(to: URL(fileURLWithPath: swapped + "/newcomer.txt"))
        try Data("\(live)\nC \(someFile.split(separator: "/").last!)".utf8).write(to: URL(fileURLWithPath: swapped + ".swap"))
        _ = try Self.reaggregate(sink, compact: true)
        #expect(!FileManager.default.fileExists(atPath: sink + "/.qos-compact"), "leftovers removed")
        #expect(FileManager.default.fileExists(atPath: live + "/newcomer.txt"), "the newcomer was adopted")
        #expect(FileManager.default.fileExists(atPath: someFile) || Inspector.parquetFiles(under: sink + "/overall").count > 0)
    }
}

/// Moves a non-Sendable closure to the watchdog thread (it runs there alone).
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
