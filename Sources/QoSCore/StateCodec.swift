/// Binary encoding of a partition's state for checkpoints: its watermark,
/// open sessions and unwritten window shares (with sketches). Everything a
/// restarted or reassigned instance needs to continue exactly where the
/// checkpoint was cut. Dimension ids are written as strings, so a state can
/// be loaded into an engine with a different interner.

public struct StateError: Error, CustomStringConvertible, Equatable {
    public let message: String
    /// The bytes are of a later version of their format than this build
    /// reads: written by a newer qos, not damaged (`newerFormat`).
    public let isNewerFormat: Bool
    public init(message: String) { self.init(message: message, isNewerFormat: false) }
    private init(message: String, isNewerFormat: Bool) {
        self.message = message
        self.isNewerFormat = isNewerFormat
    }
    /// The bytes are not the ones written (the CRC32C trailer does not match).
    public static let checksumMismatch = StateError(message: "CRC32C mismatch")
    public var description: String { "checkpoint state: \(message)" }

    /// The error for `bytes` that begin with the magic of `family` (eight
    /// bytes: a seven-letter name and a version digit) of a version above
    /// `known` and end with the CRC32C of the rest, as every sealed version
    /// does; nil for anything else. A release that changes a format bumps
    /// its digit, so the release before it says this instead of calling
    /// the state damaged — and a damaged version digit, which breaks the
    /// checksum, is still called damaged.
    public static func newerFormat(_ bytes: [UInt8], family: String, known: Int, what: String) -> StateError? {
        let name = Array(family.utf8)
        guard name.count == 7, bytes.count > 7, bytes.starts(with: name) else { return nil }
        let version = Int(bytes[7]) - Int(UInt8(ascii: "0"))
        guard version > known && version <= 9 && CRC32C.verifySealed(bytes) else { return nil }
        return StateError(message: "\(what) of format version \(version), newer than this build reads (up to \(known))",
                          isNewerFormat: true)
    }
}

/// Appends LEB128 varints, zigzag integers, length-prefixed bytes.
public struct StateWriter {
    private static let zeroPage = [UInt8](repeating: 0, count: 4096)
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
    /// A sketch's checkpoint bytes as `blob` writes them (length first),
    /// written by the sketch in place.
    public mutating func sketch<S: CheckpointableSketch>(_ s: S) {
        let n = s.checkpointByteCount
        uint(UInt64(n))
        let start = bytes.count
        // Room for them, copied from a page of zeros (appending `n` zeros
        // one by one cost an instruction a byte).
        var left = n
        while left > 0 {
            let k = Swift.min(left, Self.zeroPage.count)
            bytes.append(contentsOf: Self.zeroPage[..<k])
            left -= k
        }
        bytes.withUnsafeMutableBufferPointer { all in
            s.writeCheckpoint(into: UnsafeMutableBufferPointer(rebasing: all[start ..< start + n]))
        }
    }
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
    /// `checkpointBytes().count`.
    var checkpointByteCount: Int { get }
    /// Writes `checkpointBytes()` into `buffer` of exactly
    /// `checkpointByteCount` bytes. A checkpoint writes every sketch of
    /// every open window group this way (`StateWriter.sketch`): an array
    /// per sketch cost its allocation and, from generic code, a runtime
    /// type lookup each (bench/results/speed.md section 58).
    func writeCheckpoint(into buffer: UnsafeMutableBufferPointer<UInt8>)
    init(checkpoint: [UInt8]) throws
}

extension CheckpointableSketch {
    /// Through `checkpointBytes()`, for sketches that cannot write in place.
    public var checkpointByteCount: Int { checkpointBytes().count }
    public func writeCheckpoint(into buffer: UnsafeMutableBufferPointer<UInt8>) {
        let b = checkpointBytes()
        precondition(b.count == buffer.count, "writeCheckpoint needs exactly checkpointByteCount bytes")
        _ = buffer.initialize(from: b)
    }
}

extension GroupMetrics {
    /// The counters in checkpoint order, one call each (explicit, not key
    /// paths or an array: this runs for every group of every open window at
    /// every checkpoint). `decode` assigns each through it and
    /// `counterCount` counts them; `encode` reads them through
    /// `forEachCounter`, which a test holds to this list, so the number of
    /// counters and their order cannot differ between writer and reader.
    @inline(__always) mutating func visitCounters(_ f: (inout Int64) throws -> Void) rethrows {
        try f(&views); try f(&plays); try f(&startupMsSum); try f(&startupMsCount); try f(&vsf); try f(&ebvs)
        try f(&vpf); try f(&playingMs); try f(&rebufferCount); try f(&rebufferMs); try f(&seekCount); try f(&seekMs)
        try f(&bitrateMsSum); try f(&bitratePlayedMs); try f(&upshifts); try f(&downshifts); try f(&sessionsEnded)
        try f(&sessionMsSum); try f(&completed); try f(&concurrentPlays); try f(&missingStart); try f(&lateEvents)
        try f(&duplicates)
    }

    /// The counters in `visitCounters`' order, read only: `encode` visits
    /// them without copying the group (a copy retains and releases each of
    /// its sketches). `StateCodecCounterTests.everyCounterSurvivesEncodeDecodeInPlace`
    /// holds this list to `visitCounters`', which `decode` walks.
    @inline(__always) func forEachCounter(_ f: (Int64) -> Void) {
        f(views); f(plays); f(startupMsSum); f(startupMsCount); f(vsf); f(ebvs)
        f(vpf); f(playingMs); f(rebufferCount); f(rebufferMs); f(seekCount); f(seekMs)
        f(bitrateMsSum); f(bitratePlayedMs); f(upshifts); f(downshifts); f(sessionsEnded)
        f(sessionMsSum); f(completed); f(concurrentPlays); f(missingStart); f(lateEvents)
        f(duplicates)
    }

    /// How many counters a checkpoint holds per group, the segment's
    /// included: counted from the visits, not written by hand.
    static var counterCount: Int {
        var m = GroupMetrics<K>(), n = 0
        m.visitCounters { _ in n += 1 }
        return n + SegmentMetrics<K>.counterCount
    }
}

extension SegmentMetrics {
    /// The segment counters in checkpoint order; they follow the group's
    /// own (`GroupMetrics.visitCounters`) in a checkpoint.
    @inline(__always) mutating func visitCounters(_ f: (inout Int64) throws -> Void) rethrows {
        try f(&requests); try f(&failedRequests); try f(&http4xx); try f(&http5xx); try f(&slowRequests)
        try f(&cacheHits); try f(&bytes); try f(&downloadMsSum)
    }

    /// `visitCounters`' list, read only (see `GroupMetrics.forEachCounter`).
    @inline(__always) func forEachCounter(_ f: (Int64) -> Void) {
        f(requests); f(failedRequests); f(http4xx); f(http5xx); f(slowRequests)
        f(cacheHits); f(bytes); f(downloadMsSum)
    }

    static var counterCount: Int {
        var m = SegmentMetrics<K>(), n = 0
        m.visitCounters { _ in n += 1 }
        return n
    }

    /// No request counted and every sketch empty: what a group without segment metrics reads as.
    var isEmpty: Bool {
        requests == 0 && failedRequests == 0 && http4xx == 0 && http5xx == 0 && slowRequests == 0
            && cacheHits == 0 && bytes == 0 && downloadMsSum == 0
            && downloadSketch.isEmpty && ttfbSketch.isEmpty && throughputSketch.isEmpty
    }
}

extension GroupMetrics where K: CheckpointableSketchKit {
    /// `noSegment`: what a group without segment metrics writes as its
    /// own (zeros, empty sketches), so it needs no box for them; a caller
    /// encoding many groups makes it once for all.
    func encode(_ w: inout StateWriter, noSegment: SegmentMetrics<K> = SegmentMetrics<K>()) {
        forEachCounter { w.int($0) }
        if let box = segmentSlot.box { box.value.forEachCounter { w.int($0) } } else { noSegment.forEachCounter { w.int($0) } }
        w.sketch(viewers)
        w.sketch(startupSketch)
        w.sketch(sessionSketch)
        if let box = segmentSlot.box { box.value.encodeSketches(&w) } else { noSegment.encodeSketches(&w) }
    }

    static func decode(_ r: inout StateReader) throws -> GroupMetrics<K> {
        var m = GroupMetrics<K>()
        try m.visitCounters { $0 = try r.int() }
        var segment = SegmentMetrics<K>()
        try segment.visitCounters { $0 = try r.int() }
        m.viewers = try K.Distinct(checkpoint: r.blob())
        m.startupSketch = try K.Quantiles(checkpoint: r.blob())
        m.sessionSketch = try K.Quantiles(checkpoint: r.blob())
        segment.downloadSketch = try K.Quantiles(checkpoint: r.blob())
        segment.ttfbSketch = try K.Quantiles(checkpoint: r.blob())
        segment.throughputSketch = try K.Quantiles(checkpoint: r.blob())
        if !segment.isEmpty { m.segment = segment }
        return m
    }
}

extension SegmentMetrics where K: CheckpointableSketchKit {
    /// Its sketches, after the group's own in a checkpoint.
    func encodeSketches(_ w: inout StateWriter) {
        w.sketch(downloadSketch)
        w.sketch(ttfbSketch)
        w.sketch(throughputSketch)
    }
}

extension CdnEdgeMetrics where K: CheckpointableSketchKit {
    func encode(_ w: inout StateWriter) {
        var counters = self  // copies the counters; the sketches are shared, not copied
        counters.visitCounters { w.int($0) }
        w.sketch(serveSketch)
        w.sketch(ttfbSketch)
        w.sketch(clients)
    }

    static func decode(_ r: inout StateReader) throws -> CdnEdgeMetrics<K> {
        var m = CdnEdgeMetrics<K>()
        try m.visitCounters { $0 = try r.int() }
        m.serveSketch = try K.Quantiles(checkpoint: r.blob())
        m.ttfbSketch = try K.Quantiles(checkpoint: r.blob())
        m.clients = try K.Distinct(checkpoint: r.blob())
        return m
    }
}
