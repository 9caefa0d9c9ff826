/// Binary encoding of a partition's state for checkpoints: its watermark,
/// open sessions and unwritten window shares (with sketches). Everything a
/// restarted or reassigned instance needs to continue exactly where the
/// checkpoint was cut. Dimension ids are written as strings, so a state can
/// be loaded into an engine with a different interner.

public struct StateError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(message: String) { self.message = message }
    /// The bytes are not the ones written (the CRC32C trailer does not match).
    public static let checksumMismatch = StateError(message: "CRC32C mismatch")
    public var description: String { "checkpoint state: \(message)" }
}

/// Appends LEB128 varints, zigzag integers, length-prefixed bytes.
public struct StateWriter {
    public private(set) var bytes: [UInt8] = []
    /// `capacity`: expected size (a previous snapshot's), to grow the buffer once.
    public init(capacity: Int = 0) { if capacity > 0 { bytes.reserveCapacity(capacity) } }

    @inline(__always) public mutating func uint(_ v: UInt64) {
        if v < 0x80 { bytes.append(UInt8(v)); return }
        var v = v
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    @inline(__always) public mutating func int(_ v: Int64) { uint(UInt64(bitPattern: (v << 1) ^ (v >> 63))) }
    @inline(__always) public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    public mutating func blob(_ b: [UInt8]) { uint(UInt64(b.count)); bytes.append(contentsOf: b) }
    public mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { u in uint(UInt64(u.count)); bytes.append(contentsOf: u) }
    }
    public mutating func optInt(_ v: Int64?) { bool(v != nil); if let v { int(v) } }
    public mutating func optString(_ v: String?) { bool(v != nil); if let v { string(v) } }
    public mutating func optBool(_ v: Bool?) { uint(v == nil ? 2 : v! ? 1 : 0) }
    /// Appends the CRC32C of everything written so far (the last thing written).
    public mutating func seal() { CRC32C.seal(&bytes) }
}

/// Reads what `StateWriter` wrote; throws on truncated or malformed input.
public struct StateReader {
    let bytes: [UInt8]
    var at = 0
    /// Reads stop here (a sealed file's CRC trailer is not part of its content).
    let end: Int
    public init(_ bytes: [UInt8], end: Int? = nil) { self.bytes = bytes; self.end = min(end ?? bytes.count, bytes.count) }
    public var atEnd: Bool { at == end }

    public mutating func uint() throws -> UInt64 {
        var v: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard at < end, shift < 64 else { throw StateError(message: "truncated varint") }
            let b = bytes[at]; at += 1
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
    }
    public mutating func int() throws -> Int64 {
        let u = try uint()
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }
    public mutating func count(_ max: Int = 1 << 30) throws -> Int {
        let n = try uint()
        guard n <= UInt64(max) else { throw StateError(message: "implausible count \(n)") }
        return Int(n)
    }
    public mutating func bool() throws -> Bool {
        guard at < end else { throw StateError(message: "truncated") }
        defer { at += 1 }
        return bytes[at] != 0
    }
    public mutating func blob() throws -> [UInt8] {
        let n = try count()
        guard n <= end - at else { throw StateError(message: "truncated bytes") }
        defer { at += n }
        return Array(bytes[at..<(at + n)])
    }
    public mutating func string() throws -> String { String(decoding: try blob(), as: UTF8.self) }
    public mutating func optInt() throws -> Int64? { try bool() ? try int() : nil }
    public mutating func optString() throws -> String? { try bool() ? try string() : nil }
    public mutating func optBool() throws -> Bool? {
        switch try uint() { case 0: return false; case 1: return true; default: return nil }
    }
}

/// Sketches that can be restored from checkpoint bytes.
public protocol CheckpointableSketchKit: SketchKit
where Distinct: CheckpointableSketch, Quantiles: CheckpointableSketch {}

public protocol CheckpointableSketch {
    /// Exact state (for HLL: the updatable form, so later updates give the same bytes).
    func checkpointBytes() -> [UInt8]
    init(checkpoint: [UInt8]) throws
}

extension SessionMetrics {
    /// The counters in checkpoint order, one call each (explicit, not key
    /// paths or an array: this runs for every group of every open window at
    /// every checkpoint). `setCounters` reads them back in the same order.
    @inline(__always) func forEachCounter(_ f: (Int64) -> Void) {
        f(views); f(plays); f(startupMsSum); f(startupMsCount); f(vsf); f(ebvs); f(vpf); f(playingMs)
        f(rebufferCount); f(rebufferMs); f(seekCount); f(seekMs); f(bitrateMsSum); f(bitratePlayedMs)
        f(upshifts); f(downshifts); f(sessionsEnded); f(sessionMsSum); f(completed); f(concurrentPlays)
        f(missingStart); f(lateEvents); f(duplicates); f(segment.requests); f(segment.failedRequests)
        f(segment.http4xx); f(segment.http5xx); f(segment.slowRequests); f(segment.cacheHits)
        f(segment.bytes); f(segment.downloadMsSum)
    }

    mutating func setCounters(_ c: [Int64]) {
        (views, plays, startupMsSum, startupMsCount, vsf, ebvs, vpf, playingMs) = (c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7])
        (rebufferCount, rebufferMs, seekCount, seekMs, bitrateMsSum, bitratePlayedMs) = (c[8], c[9], c[10], c[11], c[12], c[13])
        (upshifts, downshifts, sessionsEnded, sessionMsSum, completed, concurrentPlays) = (c[14], c[15], c[16], c[17], c[18], c[19])
        (missingStart, lateEvents, duplicates) = (c[20], c[21], c[22])
        (segment.requests, segment.failedRequests, segment.http4xx, segment.http5xx) = (c[23], c[24], c[25], c[26])
        (segment.slowRequests, segment.cacheHits, segment.bytes, segment.downloadMsSum) = (c[27], c[28], c[29], c[30])
    }

    static var counterCount: Int { 31 }
}

extension SessionMetrics where K: CheckpointableSketchKit {
    func encode(_ w: inout StateWriter) {
        forEachCounter { w.int($0) }
        w.blob(viewers.checkpointBytes())
        w.blob(startupSketch.checkpointBytes())
        w.blob(sessionSketch.checkpointBytes())
        w.blob(segment.downloadSketch.checkpointBytes())
        w.blob(segment.ttfbSketch.checkpointBytes())
        w.blob(segment.throughputSketch.checkpointBytes())
    }

    static func decode(_ r: inout StateReader) throws -> SessionMetrics<K> {
        var m = SessionMetrics<K>()
        var c: [Int64] = []
        c.reserveCapacity(counterCount)
        for _ in 0..<counterCount { c.append(try r.int()) }
        m.setCounters(c)
        m.viewers = try K.Distinct(checkpoint: r.blob())
        m.startupSketch = try K.Quantiles(checkpoint: r.blob())
        m.sessionSketch = try K.Quantiles(checkpoint: r.blob())
        m.segment.downloadSketch = try K.Quantiles(checkpoint: r.blob())
        m.segment.ttfbSketch = try K.Quantiles(checkpoint: r.blob())
        m.segment.throughputSketch = try K.Quantiles(checkpoint: r.blob())
        return m
    }
}
