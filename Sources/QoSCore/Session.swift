#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
/// Per-session state (docs/semantics.md §2).

/// Attributes derived from an IP address or a user agent. The engine's
/// enrichment layer implements `Enricher`; QoSCore stays free of I/O.
public struct GeoAttributes: Sendable, Equatable {
    public var country: String?, region: String?, city: String?
    public var asn: Int64?, asOrg: String?
    public init(country: String? = nil, region: String? = nil, city: String? = nil,
                asn: Int64? = nil, asOrg: String? = nil) {
        self.country = country; self.region = region; self.city = city; self.asn = asn; self.asOrg = asOrg
    }
}

public struct DeviceAttributes: Sendable, Equatable {
    public var deviceType: String?, os: String?, browser: String?
    public init(deviceType: String? = nil, os: String? = nil, browser: String? = nil) {
        self.deviceType = deviceType; self.os = os; self.browser = browser
    }
}

/// Looks up geo and device attributes. Called at most once per session for
/// each of `ip` and `user_agent` (the first beacon that carries it).
public protocol Enricher: AnyObject {
    func geo(ip: String) -> GeoAttributes?
    func device(userAgent: String) -> DeviceAttributes?
}

/// No enrichment: geo and device stay `unknown` unless beacons say them.
public final class NoEnricher: Enricher {
    public init() {}
    public func geo(ip: String) -> GeoAttributes? { nil }
    public func device(userAgent: String) -> DeviceAttributes? { nil }
}

/// One open session. A class: the session table, the close queue and the
/// point-sample scan all refer to the same state.
///
/// Memory layout (one instance per open session, so it is kept compact: the
/// fields take 248 bytes, a 256-byte malloc chunk; `SessionLayoutTests`):
/// - Event times are `Int32` offsets from `base`, the earliest `ts`
///   (`Int32.min` = nil). Every time a session stores lies within
///   `EngineConfig.sessionTimeSpanMs` of its earliest `ts` (README), which
///   the config keeps below 2^31 ms; a store outside that range is a bug
///   and stops the process (precondition).
/// - Other integers are 32 or 16 bits when they fit; a value that does not
///   fit (a session over 49 days of `played_ms`, more than 65 534 beacons…)
///   moves to the rare side object `Extra`, so every value stays exact.
/// - Flags are bits of one word, behind properties with the usual optional /
///   Bool types.
/// - The side object also holds ids too long for the inline bytes, `seq`
///   ranges past the first and the fatal error code; most sessions have none.
public final class SessionState {
    // 8-byte fields.
    /// Event time the time fields are offsets from: the earliest `ts`.
    private var base: Int64
    public var bitrateMsSum: Int64 = 0
    private var extra: Extra?
    /// Session id and viewer id bytes (see `id`, `viewerId`).
    private var idBytes: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
    /// Time-weighted bitrate of the played time not yet added to the window
    /// groups of the contribution cache (see `pendingPlayingMs`).
    var pendingBitrateMsSum: Int64 = 0

    // Event times: offsets from `base` (`Int32.min` = nil).
    private var _latest: Int32 = 0
    private var _arrival: Int32 = .min
    /// The due watermark of the session's close-queue entry, while `queued`.
    private var _due: Int32 = 0
    private var _viewStart: Int32 = .min, _firstPlay: Int32 = .min
    private var _stallOpen: Int32 = .min, _seekOpen: Int32 = .min

    // 32-bit values (`wide32` = the value is in `extra`; `none32` = nil).
    private var _maxPlayhead: UInt32 = 0
    private var _videoDuration: UInt32 = SessionState.none32
    private var _bitrate: UInt32 = SessionState.none32
    private var _asn: UInt32 = SessionState.none32
    private var _playing: UInt32 = 0, _rebuffer: UInt32 = 0, _seek: UInt32 = 0, _bitratePlayed: UInt32 = 0

    /// Contribution cache: the serial of the window state (`WindowState.serial`,
    /// 0 = none) the session's last contribution went to, and its group slots
    /// in the `video`, `geo`, `device` and `cdn` tables (`overall` is slot 0).
    /// Valid while that state is the one for the contribution's window and
    /// the dimensions are unchanged.
    var cacheSerial: UInt32 = 0
    /// Played time (`played_ms`) and its part with a known bitrate, applied
    /// to the session but not yet to the groups of the window state
    /// `cacheSerial` names, at `cacheSlots`: heartbeats add here and
    /// `QoSEngine.drainPendingPlay` adds the sums to the five groups when
    /// the cache changes, the session closes, or a flush or snapshot reads
    /// the windows (docs/architecture.md "Played time held in the session").
    /// Nonzero only while `cacheSerial` is.
    var pendingPlayingMs: UInt32 = 0, pendingBitratePlayedMs: UInt32 = 0
    /// The only `seq` range while `extra` holds none (`lo > hi`: no range; see `SeqSet`).
    private var seqLo: UInt32 = 1, seqHi: UInt32 = 0

    // Attributes (fixed once known; 0 / nil = not yet known).
    /// Ids in the engine's `ValueInterner` (0 = nil).
    public var playerVersion: UInt32 = 0
    public var city: UInt32 = 0, asOrg: UInt32 = 0
    public var dims = SessionDims()

    // 16-bit fields.
    var cacheSlots: (UInt16, UInt16, UInt16, UInt16) = (0, 0, 0, 0)
    // Per-session event counts (`wide16` = the count is in `extra`). The
    // window metrics count in 64 bits regardless.
    private var _beacons: UInt16 = 0, _errors: UInt16 = 0
    private var _rebufferCount: UInt16 = 0, _seekCount: UInt16 = 0
    private var _upshifts: UInt16 = 0, _downshifts: UInt16 = 0
    private var flags: UInt16 = 0

    // 8-bit fields.
    /// Bytes of the id in `idBytes`; `spilled` = in `extra`.
    private var idLen: UInt8 = 0
    /// Bytes of the viewer id in `idBytes` after the id; `none` = nil, `spilled` = in `extra`.
    private var viewerLen: UInt8 = SessionState.none

    private static let none32 = UInt32.max, wide32 = UInt32.max - 1, wide16 = UInt16.max

    /// An upper bound of an instance's size in bytes (header and stored
    /// properties, as laid out above): what `SessionTable.prefetch` fetches.
    /// `SessionTests` checks it against the allocator's block size.
    static let instanceBytesMax = 256

    /// What does not fit the compact fields (rare: most sessions have none).
    private final class Extra {
        var id: String?, viewerId: String?
        /// Every `seq` range once there are two or more (see `SeqSet`).
        var seqSpill: [ClosedRange<UInt32>] = []
        var fatalErrorCode: UInt32 = 0
        /// Values too large for their compact field, by `Wide` (empty, no
        /// allocation, until the first).
        var wide: [Int64] = []

        func setWide(_ w: Wide, _ v: Int64) {
            if wide.isEmpty { wide = [Int64](repeating: 0, count: Wide.allCases.count) }
            wide[w.rawValue] = v
        }
    }

    fileprivate enum Wide: Int, CaseIterable {
        case beacons, errors, rebufferCount, seekCount, upshifts, downshifts
        case maxPlayhead, videoDuration, bitrate, asn, playing, rebuffer, seek, bitratePlayed, startup
    }

    @inline(__always) private func ensureExtra() -> Extra {
        if let e = extra { return e }
        let e = Extra()
        extra = e
        return e
    }

    @inline(__always) private func get16(_ v: UInt16, _ w: Wide) -> Int64 {
        v != SessionState.wide16 ? Int64(v) : extra!.wide[w.rawValue]
    }
    @inline(__always) private func put16(_ v: Int64, _ w: Wide) -> UInt16 {
        if v >= 0 && v < Int64(SessionState.wide16) { return UInt16(truncatingIfNeeded: v) }
        ensureExtra().setWide(w, v)
        return SessionState.wide16
    }
    @inline(__always) private func get32(_ v: UInt32, _ w: Wide) -> Int64 {
        v != SessionState.wide32 ? Int64(v) : extra!.wide[w.rawValue]
    }
    @inline(__always) private func put32(_ v: Int64, _ w: Wide) -> UInt32 {
        if v >= 0 && v < Int64(SessionState.wide32) { return UInt32(truncatingIfNeeded: v) }
        ensureExtra().setWide(w, v)
        return SessionState.wide32
    }
    @inline(__always) private func getOpt32(_ v: UInt32, _ w: Wide) -> Int64? {
        v == SessionState.none32 ? nil : get32(v, w)
    }
    @inline(__always) private func putOpt32(_ v: Int64?, _ w: Wide) -> UInt32 {
        guard let v else { return SessionState.none32 }
        return put32(v, w)
    }

    // MARK: Event times

    /// The offset of `t` from `base`. All of a session's times lie within
    /// `EngineConfig.sessionTimeSpanMs` of its earliest `ts`, which the
    /// config keeps below 2^31 ms.
    @inline(__always) private func offset(_ t: Int64) -> Int32 {
        let (d, o) = t.subtractingReportingOverflow(base)
        precondition(!o && d > Int64(Int32.min) && d <= Int64(Int32.max),
                     "event time \(t) lies 2^31 ms or more from the session's earliest ts \(base)")
        setFlag(Self.fFresh, false)
        return Int32(truncatingIfNeeded: d)
    }
    @inline(__always) private func time(_ o: Int32) -> Int64? { o == .min ? nil : base &+ Int64(o) }
    @inline(__always) private func storedTime(_ t: Int64?) -> Int32 { t.map(offset) ?? .min }

    public var earliestTs: Int64 {
        get { base }
        set { rebase(newValue) }
    }
    public var latestTs: Int64 {
        get { base &+ Int64(_latest) }
        set { _latest = offset(newValue) }
    }
    /// The partition watermark when the latest beacon was applied (docs/semantics.md §2;
    /// `.min` before the first).
    public var arrivalMark: Int64 {
        get { time(_arrival) ?? .min }
        set { _arrival = newValue == .min ? .min : offset(newValue) }
    }
    /// The due watermark of the close-queue entry (set by `CloseQueue.push`).
    var queuedDue: Int64 {
        get { base &+ Int64(_due) }
        set { _due = offset(newValue) }
    }

    /// Makes `t` the earliest `ts`: the other times keep their values.
    /// A session fresh from `init` (no other time stored yet, as when a
    /// checkpoint is read) takes `t` as its latest `ts` too if the old one
    /// is out of range; the reader sets the latest `ts` next.
    private func rebase(_ t: Int64) {
        let (delta, o) = base.subtractingReportingOverflow(t)
        func shifted(_ x: Int32) -> Int32? {
            if x == .min { return .min }
            let v = Int64(x) + delta
            return v > Int64(Int32.min) && v <= Int64(Int32.max) ? Int32(truncatingIfNeeded: v) : nil
        }
        if flag(Self.fFresh) && (o || shifted(_latest) == nil) {
            base = t
            _latest = 0
            return
        }
        guard !o, let latest = shifted(_latest), let arrival = shifted(_arrival),
              let view = shifted(_viewStart), let play = shifted(_firstPlay),
              let stall = shifted(_stallOpen), let seek = shifted(_seekOpen),
              let due = queued ? shifted(_due) : _due else {
            preconditionFailure("earliest ts \(t) lies 2^31 ms or more from the session's other times")
        }
        (_latest, _arrival, _viewStart, _firstPlay, _stallOpen, _seekOpen, _due) =
            (latest, arrival, view, play, stall, seek, due)
        base = t
    }

    public var viewStartTs: Int64? {
        get { time(_viewStart) } set { _viewStart = storedTime(newValue) }
    }
    public var firstPlayTs: Int64? {
        get { time(_firstPlay) } set { _firstPlay = storedTime(newValue) }
    }
    /// Start of the counted stall / seek that is open, if any.
    public var stallOpenTs: Int64? {
        get { time(_stallOpen) } set { _stallOpen = storedTime(newValue) }
    }
    public var seekOpenTs: Int64? {
        get { time(_seekOpen) } set { _seekOpen = storedTime(newValue) }
    }

    // MARK: Other values

    public var maxPlayheadMs: Int64 {
        get { get32(_maxPlayhead, .maxPlayhead) } set { _maxPlayhead = put32(newValue, .maxPlayhead) }
    }
    public var currentBitrate: Int64? {
        get { getOpt32(_bitrate, .bitrate) } set { _bitrate = putOpt32(newValue, .bitrate) }
    }
    public var asn: Int64? {
        get { getOpt32(_asn, .asn) } set { _asn = putOpt32(newValue, .asn) }
    }
    public var videoDurationMs: Int64? {
        get { getOpt32(_videoDuration, .videoDuration) } set { _videoDuration = putOpt32(newValue, .videoDuration) }
    }
    /// Startup time: `firstPlayTs − viewStartTs` when it was counted (a
    /// flag; any other value, as a checkpoint could hold, is kept in `extra`).
    public var startupMs: Int64? {
        get {
            if flag(Self.fStartupWide) { return extra!.wide[Wide.startup.rawValue] }
            guard flag(Self.fStartup), let play = firstPlayTs, let view = viewStartTs else { return nil }
            return play - view
        }
        set {
            setFlag(Self.fStartupWide, false)
            setFlag(Self.fStartup, newValue != nil)
            guard let v = newValue else { return }
            if let play = firstPlayTs, let view = viewStartTs, play &- view == v { return }
            ensureExtra().setWide(.startup, v)
            setFlag(Self.fStartupWide, true)
        }
    }

    // Facts for the `sessions` row.
    public var playingMs: Int64 {
        get { get32(_playing, .playing) } set { _playing = put32(newValue, .playing) }
    }
    public var rebufferMs: Int64 {
        get { get32(_rebuffer, .rebuffer) } set { _rebuffer = put32(newValue, .rebuffer) }
    }
    public var seekMs: Int64 {
        get { get32(_seek, .seek) } set { _seek = put32(newValue, .seek) }
    }
    public var bitratePlayedMs: Int64 {
        get { get32(_bitratePlayed, .bitratePlayed) } set { _bitratePlayed = put32(newValue, .bitratePlayed) }
    }

    /// Whether played time waits to be added to the window groups (`pendingPlayingMs`).
    @inline(__always) var hasPendingPlay: Bool {
        pendingPlayingMs | pendingBitratePlayedMs != 0 || pendingBitrateMsSum != 0
    }

    /// Whether `played` more milliseconds (0 ... 2^32 - 1) fit the pending sums without a drain first.
    @inline(__always) func pendingPlayFits(_ played: Int64) -> Bool {
        played <= Int64(UInt32.max) - Int64(max(pendingPlayingMs, pendingBitratePlayedMs))
    }

    public var beacons: Int64 { get { get16(_beacons, .beacons) } set { _beacons = put16(newValue, .beacons) } }
    public var errors: Int64 { get { get16(_errors, .errors) } set { _errors = put16(newValue, .errors) } }
    public var rebufferCount: Int64 {
        get { get16(_rebufferCount, .rebufferCount) } set { _rebufferCount = put16(newValue, .rebufferCount) }
    }
    public var seekCount: Int64 {
        get { get16(_seekCount, .seekCount) } set { _seekCount = put16(newValue, .seekCount) }
    }
    public var upshifts: Int64 {
        get { get16(_upshifts, .upshifts) } set { _upshifts = put16(newValue, .upshifts) }
    }
    public var downshifts: Int64 {
        get { get16(_downshifts, .downshifts) } set { _downshifts = put16(newValue, .downshifts) }
    }

    /// Id in the engine's `ValueInterner` (0 = nil); kept in `extra` (rare).
    public var fatalErrorCode: UInt32 {
        get { extra?.fatalErrorCode ?? 0 }
        set { if newValue != 0 || extra != nil { ensureExtra().fatalErrorCode = newValue } }
    }

    /// Duplicate detection: every `seq` seen.
    public var seqs: SeqSet {
        get { SeqSet(lo: seqLo, hi: seqHi, spilled: extra?.seqSpill ?? []) }
        set {
            let (lo, hi, spilled) = newValue.parts
            (seqLo, seqHi) = (lo, hi)
            if !spilled.isEmpty { ensureExtra().seqSpill = spilled } else { extra?.seqSpill = [] }
        }
    }

    /// Records `seq`; returns false when it was seen before (a duplicate).
    public func acceptSeq(_ seq: UInt32) -> Bool {
        // Fast path: the next number after the only range (`lo > hi` while
        // the ranges are in `extra`).
        if seqLo <= seqHi && seq == seqHi &+ 1 && seq != 0 { seqHi = seq; return true }
        var set = SeqSet(lo: seqLo, hi: seqHi, spilled: extra?.seqSpill ?? [])
        extra?.seqSpill = []
        let fresh = set.insert(seq)
        seqs = set
        return fresh
    }

    // MARK: Ids

    // The session id and viewer id: their UTF-8 bytes back to back in
    // `idBytes` when they fit (48 bytes: two UUIDs do not, a UUID and a
    // short viewer id do), else in `extra`. Exact bytes are kept.
    private static let idBytesMax = 48
    private static let none: UInt8 = 0xFF, spilled: UInt8 = 0xFE

    @inline(__always) private func withIdBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeBytes(of: idBytes, body)
    }

    private func storeInline(_ s: String, at offset: Int) -> Bool {
        let n = s.utf8.count
        guard offset + n <= SessionState.idBytesMax else { return false }
        withUnsafeMutableBytes(of: &idBytes) { buf in
            UnsafeMutableRawBufferPointer(rebasing: buf[offset..<(offset + n)]).copyBytes(from: s.utf8)
        }
        return true
    }

    public var id: String {
        if idLen == SessionState.spilled { return extra!.id! }
        return withIdBytes { String(decoding: $0.prefix(Int(idLen)), as: UTF8.self) }
    }

    var hasViewerId: Bool { viewerLen != SessionState.none }

    public var viewerId: String? {
        get {
            switch viewerLen {
            case SessionState.none: return nil
            case SessionState.spilled: return extra!.viewerId
            default:
                let start = idLen == SessionState.spilled ? 0 : Int(idLen)
                return withIdBytes { String(decoding: $0[start..<(start + Int(viewerLen))], as: UTF8.self) }
            }
        }
        set {
            if viewerLen == SessionState.spilled { extra!.viewerId = nil }
            guard let v = newValue else { viewerLen = SessionState.none; return }
            let start = idLen == SessionState.spilled ? 0 : Int(idLen)
            if v.utf8.count < Int(SessionState.spilled) && storeInline(v, at: start) {
                viewerLen = UInt8(v.utf8.count)
            } else {
                ensureExtra().viewerId = v
                viewerLen = SessionState.spilled
            }
        }
    }

    private static let fMissingStart: UInt16 = 1 << 0, fFatalSeen: UInt16 = 1 << 1
    private static let fVsf: UInt16 = 1 << 2, fVpf: UInt16 = 1 << 3, fClosed: UInt16 = 1 << 4
    private static let fQueued: UInt16 = 1 << 5, fIpLooked: UInt16 = 1 << 6, fUaLooked: UInt16 = 1 << 7
    private static let fLiveKnown: UInt16 = 1 << 8, fLive: UInt16 = 1 << 9
    /// No time stored since `init` (see `rebase`).
    private static let fFresh: UInt16 = 1 << 10
    /// `startupMs` is `firstPlayTs − viewStartTs` / is in `extra`.
    private static let fStartup: UInt16 = 1 << 11, fStartupWide: UInt16 = 1 << 12

    @inline(__always) private func flag(_ f: UInt16) -> Bool { flags & f != 0 }
    @inline(__always) private func setFlag(_ f: UInt16, _ v: Bool) { if v { flags |= f } else { flags &= ~f } }

    public var missingStart: Bool { get { flag(Self.fMissingStart) } set { setFlag(Self.fMissingStart, newValue) } }
    public var fatalSeen: Bool { get { flag(Self.fFatalSeen) } set { setFlag(Self.fFatalSeen, newValue) } }
    public var vsf: Bool { get { flag(Self.fVsf) } set { setFlag(Self.fVsf, newValue) } }
    public var vpf: Bool { get { flag(Self.fVpf) } set { setFlag(Self.fVpf, newValue) } }
    public var closed: Bool { get { flag(Self.fClosed) } set { setFlag(Self.fClosed, newValue) } }
    /// Whether the session has an entry in the close queue.
    var queued: Bool { get { flag(Self.fQueued) } set { setFlag(Self.fQueued, newValue) } }
    var ipLooked: Bool { get { flag(Self.fIpLooked) } set { setFlag(Self.fIpLooked, newValue) } }
    var uaLooked: Bool { get { flag(Self.fUaLooked) } set { setFlag(Self.fUaLooked, newValue) } }
    public var live: Bool? {
        get { flag(Self.fLiveKnown) ? flag(Self.fLive) : nil }
        set { setFlag(Self.fLiveKnown, newValue != nil); setFlag(Self.fLive, newValue == true) }
    }

    /// `SessionTable.hash` of the id's UTF-8 bytes (computed, not stored:
    /// the table needs it only to grow and on deletion).
    var idHash: UInt32 {
        if idLen == SessionState.spilled { return SessionTable.withBytes(extra!.id!) { SessionTable.hash($0) } }
        return withIdBytes { SessionTable.hash(UnsafeRawBufferPointer(rebasing: $0.prefix(Int(idLen)))) }
    }

    /// A session whose earliest and latest `ts` are `ts`.
    public init(id: String, ts: Int64) {
        base = ts
        flags = SessionState.fFresh
        if id.utf8.count < Int(SessionState.spilled) && storeInline(id, at: 0) {
            idLen = UInt8(id.utf8.count)
        } else {
            ensureExtra().id = id
            idLen = SessionState.spilled
        }
    }

    /// Whether the id's UTF-8 bytes are `bytes`.
    @inline(__always) func idEquals(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if idLen == SessionState.spilled {
            return SessionTable.withBytes(extra!.id!) {
                $0.count == bytes.count && (bytes.count == 0 || memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0)
            }
        }
        let n = bytes.count
        guard Int(idLen) == n else { return false }
        guard let b = bytes.baseAddress else { return true }
        // Eight bytes at a time, then the tail byte by byte: inline, not a
        // call to memcmp per lookup (bench/results/speed.md §14).
        return withIdBytes { mine in
            var i = 0
            while i + 8 <= n {
                guard mine.load(fromByteOffset: i, as: UInt64.self) == b.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                else { return false }
                i += 8
            }
            while i < n {
                guard mine[i] == b.load(fromByteOffset: i, as: UInt8.self) else { return false }
                i += 1
            }
            return true
        }
    }

    /// When and why the session closes if nothing more arrives.
    public func pendingClose(_ c: EngineConfig) -> (instant: Int64, reason: CloseReason) {
        let idle = latestTs + c.sessionTimeoutMs
        let cap = earliestTs + c.sessionMaxMs
        return idle <= cap ? (idle, .timeout) : (cap, .maxLength)
    }

    /// The earliest watermark at which the session is closed by the watermark rule.
    public func closeDue(_ c: EngineConfig) -> Int64 {
        max(pendingClose(c).instant, arrivalMark &+ c.sessionTimeoutMs)
    }

    /// Whether a beacon at `ts` lies past the gap (it closes this session first).
    public func isGap(_ ts: Int64, _ c: EngineConfig) -> Bool {
        ts > latestTs + c.sessionTimeoutMs || ts > earliestTs + c.sessionMaxMs
    }
}
