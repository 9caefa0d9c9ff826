#if canImport(Glibc)
import Glibc
#endif
import CMalloc
import Engine
import Enrichment
import Generator
import SplitMix
import QoSCore
import Sketches

/// Micro-benchmarks printed by `qos bench` (driven by `make bench`).
/// Timings only; nothing here is asserted in tests.
public enum MicroBench {
    public struct Result { public var name: String; public var opsPerSec: Double; public var note: String }

    /// Beacon decoding from raw bytes, on the generator's traffic, as the
    /// decode stage of `qos replay` and `qos run` does it: one reader kept
    /// across messages (its key predictor learned), session ids lent as
    /// byte ranges; and, for comparison, through the convenience API that
    /// starts a fresh reader per message and builds every id's String.
    public static func decoders(messages: Int = 300_000) -> [Result] {
        var o = GeneratorOptions()
        o.sessions = messages / 70 + 1
        let payloads = TrafficGenerator(o).prefix(messages).map(\.payload)
        let bytes = payloads.reduce(0) { $0 + $1.count }
        func timed(_ name: String, _ decodeAll: () -> Int) -> Result {
            let t0 = monotonicSeconds()
            var beacons = 0
            for _ in 0..<3 { beacons += decodeAll() }
            let dt = monotonicSeconds() - t0
            precondition(beacons > 0, "the generator's traffic decodes to beacons")
            return Result(name: name, opsPerSec: Double(beacons) / dt, note: "\(Int(Double(bytes * 3) / dt / 1_048_576)) MB/s")
        }
        var scratch = DecodeScratch()
        let kept = timed("decode beacons (reader kept, ids lent)") {
            var n = 0
            for p in payloads {
                p.withUnsafeBytes { raw in
                    BeaconDecoder.decodeLending(raw, scratch: &scratch, onBeacon: { _ in n += 1 }, onReject: { _, _ in })
                }
            }
            return n
        }
        let fresh = timed("decode beacons (fresh reader, ids as Strings)") {
            var n = 0
            for p in payloads {
                p.withUnsafeBytes { raw in BeaconDecoder.decode(raw) { if case .beacon = $0 { n += 1 } } }
            }
            return n
        }
        return [kept, fresh]
    }

    /// The whole core engine (decode, sessionize, aggregate; no I/O).
    public static func core(messages: Int = 500_000) -> Result {
        var o = GeneratorOptions()
        o.sessions = messages / 70 + 1
        let payloads = TrafficGenerator(o).prefix(messages).map(\.payload)
        let engine = QoSEngine<DataSketchesKit>()
        let name = SourceName("b")  // interned once, as a source does (SourcePosition.swift)
        let t0 = monotonicSeconds()
        for (i, p) in payloads.enumerated() {
            p.withUnsafeBytes { engine.ingest(message: $0, partition: 0, source: .file(name: name, line: Int64(i)), nowMs: .max / 2) }
            if engine.replayWatermark >= engine.nextDueEnd { _ = engine.flush(watermark: engine.replayWatermark) }
        }
        _ = engine.finish()
        let dt = monotonicSeconds() - t0
        return Result(name: "core engine (no I/O)", opsPerSec: Double(payloads.count) / dt, note: "1 thread")
    }

    /// A checkpoint's partition snapshots (`QoSEngine.snapshot(partition:)`,
    /// run by every epoch of `qos run` for every partition): the open
    /// sessions and window shares that `messages` beacons of the
    /// generator's traffic leave in `partitions` partitions (sessions spread
    /// by their id, as Kafka keys spread them), nothing flushed, as in a
    /// catch-up whose windows wait for the slowest partition.
    public static func snapshots(messages: Int = 300_000, partitions: Int32 = 64, rounds: Int = 5) -> Result {
        var o = GeneratorOptions()
        o.sessions = messages / 70 + 1
        let engine = QoSEngine<DataSketchesKit>()
        let name = SourceName("b")
        for (i, m) in TrafficGenerator(o).prefix(messages).enumerated() {
            var h: UInt32 = 2_166_136_261  // FNV-1a of the key: stable across runs
            for b in m.key.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
            let p = Int32(h % UInt32(partitions))
            m.payload.withUnsafeBytes {
                engine.ingest(message: $0, partition: p, source: .file(name: name, line: Int64(i)), nowMs: .max / 2)
            }
        }
        var bytes = 0
        let t0 = monotonicSeconds()
        for _ in 0..<rounds {
            for p in 0..<partitions { bytes += engine.snapshot(partition: p).count }
        }
        let dt = monotonicSeconds() - t0
        let n = Double(rounds) * Double(partitions)
        return Result(name: "partition snapshot (\(partitions) partitions, \(messages / 1000) k beacons, none flushed)",
                      opsPerSec: n / dt,
                      note: "\(Int(Double(bytes) / dt / 1_048_576)) MB/s, \(bytes / Int(n) / 1024) KiB each, 1 thread")
    }

    /// User-agent classification (warm LRU cache and cold) and GeoIP lookups
    /// on a synthetic City + ASN database.
    public static func enrichment() -> [Result] {
        EnrichmentBench.run().map { Result(name: $0.name, opsPerSec: $0.opsPerSec, note: "1 thread") }
    }

    /// Memory per open session. Marginal: 200 000 sessions are opened by
    /// realistic view_starts (all in one window), then 200 000 more by the
    /// same payloads with another session id of the same length. The second
    /// batch hits the window groups the first one created, so its resident
    /// growth is the sessions' own memory. The first batch's growth (which
    /// includes the new window groups) is reported too, and the memory of
    /// the `sessions` rows once every session is closed (`finish`, the
    /// windows held unwritten): between its close and its window's write a
    /// session costs its row instead (README *Performance*; `make bench`'s
    /// bench/memory_bench.py measures a whole `qos replay`, encoding included).
    public static func bytesPerSession(sessions: Int = 200_000) -> [Result] {
        var o = GeneratorOptions()
        o.sessions = sessions
        o.rate = 1e8  // every session starts within a few seconds of event time
        var starts: [[UInt8]] = []
        starts.reserveCapacity(sessions)
        for m in TrafficGenerator(o) where starts.count < sessions {
            if m.payload.starts(with: Array(#"{"event":"view_start""#.utf8)) { starts.append(m.payload) }
        }
        // The same beacons for other sessions: the id's first character becomes
        // `z` (generator ids are hex), so the length stays the same.
        let key = Array(#""session_id":""#.utf8)
        let again: [[UInt8]] = starts.map { p in
            var q = p
            if let i = firstIndex(of: key, in: q), i + key.count < q.count { q[i + key.count] = UInt8(ascii: "z") }
            return q
        }
        let engine = QoSEngine<DataSketchesKit>()
        func open() -> Int { engine.partitions.values.reduce(0) { $0 + $1.sessions.count } }
        let name = SourceName("m")
        func ingest(_ batch: [[UInt8]], from line: Int) {
            for (i, p) in batch.enumerated() {
                p.withUnsafeBytes { engine.ingest(message: $0, partition: 0, source: .file(name: name, line: Int64(line + i)), nowMs: .max / 2) }
            }
        }
        let before = residentBytes()
        ingest(starts, from: 0)
        let first = residentBytes()
        let open1 = open()
        ingest(again, from: starts.count)
        let second = residentBytes()
        let open2 = open() - open1
        let closed = open1 + open2
        let held = engine.finish()
        let rowsHeld = residentBytes()
        withExtendedLifetime(held) {}
        // The payloads must outlive the measurements: freed early (their last
        // use is above), they would hide ~600 bytes per session of growth.
        withExtendedLifetime((starts, again)) {}
        return [
            Result(name: "bytes per open session", opsPerSec: Double(second - first) / Double(max(open2, 1)),
                   note: "marginal: \(open2) more open sessions, window groups warm (value is bytes, not ops/s)"),
            Result(name: "bytes per open session incl. new window groups",
                   opsPerSec: Double(first - before) / Double(max(open1, 1)),
                   note: "\(open1) sessions, RSS growth incl. their window groups (value is bytes, not ops/s)"),
            Result(name: "bytes per closed session, row held until written",
                   opsPerSec: Double(rowsHeld - before) / Double(max(closed, 1)),
                   note: "\(closed) sessions closed, their windows unwritten: RSS over the start (value is bytes, not ops/s)"),
        ]
    }

    private static func firstIndex(of needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] {
            if hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
        }
        return nil
    }

    /// Resident bytes after returning free heap pages to the system, so that
    /// memory freed earlier (and reused by malloc) does not hide growth.
    static func residentBytes() -> Int {
        _ = qos_heap_trim()
        guard let text = try? Inspector.readFile("/proc/self/statm") else { return 0 }
        let fields = String(decoding: text, as: UTF8.self).split(separator: " ")
        return (fields.count > 1 ? Int(fields[1]) ?? 0 : 0) * 4096
    }

    public static func sketches() -> [Result] {
        SketchBench.run().map { Result(name: $0.name, opsPerSec: $0.opsPerSec, note: "1 thread") }
    }

    /// CRC-32C of a 4 MiB partition snapshot, as each checkpoint seals and
    /// each restore verifies it: the CPU's instruction and the tables.
    public static func checksums() -> [Result] {
        var rng = SplitMix64(seed: 3)
        let snapshot = (0..<(4 << 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        func timed(_ name: String, _ crc: (UnsafeRawBufferPointer) -> UInt32) -> Result {
            var sink: UInt32 = 0
            let rounds = 40
            let t0 = monotonicSeconds()
            snapshot.withUnsafeBytes { for _ in 0..<rounds { sink ^= crc($0) } }
            let dt = monotonicSeconds() - t0
            precondition(sink != 1, "keeps the checksums")  // read, so they are computed
            return Result(name: name, opsPerSec: Double(rounds) / dt,
                          note: "\(Int(Double(rounds * snapshot.count) / dt / 1_048_576)) MB/s, 4 MiB each")
        }
        var out = [timed("CRC-32C of a snapshot, tables", { CRC32C.checksumByTables($0) })]
        if CRC32C.hardware { out.append(timed("CRC-32C of a snapshot, CPU instruction", { CRC32C.checksum($0) })) }
        return out
    }
}

/// The monotonic clock the benchmarks time with (one reading function for QoSBench).
private func monotonicSeconds() -> Double { SketchBench.now() }
