#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
/// Per-session state (SPEC §3).

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
/// Memory layout (one instance per open session, so it is kept compact):
/// optional integers are stored as `Int64.min` sentinels and the flags are
/// bits of one word, behind properties with the usual optional / Bool types.
/// The sentinel is safe because every such value comes from a beacon field
/// the decoder bounds to ≥ 0 (`ts`, `bitrate_kbps`, `video_duration_ms`), a
/// difference checked to be ≥ 0 (startup), or an ASN, which is 32-bit.
public final class SessionState {
    public var earliestTs: Int64
    public var latestTs: Int64
    /// The partition watermark when the latest beacon was applied (SPEC §3).
    public var arrivalMark: Int64 = .min
    public var maxPlayheadMs: Int64 = 0

    // Optional integers, `Int64.min` = nil (see the type's comment).
    private var _viewStartTs: Int64 = .min
    private var _firstPlayTs: Int64 = .min
    private var _stallOpenTs: Int64 = .min
    private var _seekOpenTs: Int64 = .min
    private var _currentBitrate: Int64 = .min
    private var _asn: Int64 = .min
    private var _videoDurationMs: Int64 = .min
    private var _startupMs: Int64 = .min

    // Contribution cache: the window state and the group slots of the five
    // tables that the session's last contribution went to. Valid while the
    // window start, the aggregator's generation and the dimensions are unchanged.
    var cacheStart: Int64 = .min
    /// The aggregator generation of the cache; `UInt32.max` = none (a
    /// generation that does not fit is never cached: always a miss).
    var cacheGeneration: Int {
        get { _cacheGeneration == .max ? -1 : Int(_cacheGeneration) }
        set { _cacheGeneration = newValue >= 0 && newValue < Int(UInt32.max) ? UInt32(newValue) : .max }
    }
    var cacheWindow: AnyObject?

    // Facts for the `sessions` row.
    public var playingMs: Int64 = 0
    public var rebufferMs: Int64 = 0
    public var seekMs: Int64 = 0
    public var bitrateMsSum: Int64 = 0, bitratePlayedMs: Int64 = 0
    /// Duplicate detection: every `seq` seen.
    public var seqs = SeqSet()
    /// Session id and viewer id bytes (see `id`, `viewerId`).
    private var idBytes: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
    private var idSpill: IdSpill?

    // Per-session event counts, 32-bit and saturating at UInt32.max (about
    // 4.3 billion; README). The window metrics count in 64 bits regardless.
    private var _beacons: UInt32 = 0, _errors: UInt32 = 0
    private var _rebufferCount: UInt32 = 0, _seekCount: UInt32 = 0
    private var _upshifts: UInt32 = 0, _downshifts: UInt32 = 0
    public var beacons: Int64 { get { Int64(_beacons) } set { _beacons = UInt32(clamping: newValue) } }
    public var errors: Int64 { get { Int64(_errors) } set { _errors = UInt32(clamping: newValue) } }
    public var rebufferCount: Int64 {
        get { Int64(_rebufferCount) } set { _rebufferCount = UInt32(clamping: newValue) }
    }
    public var seekCount: Int64 { get { Int64(_seekCount) } set { _seekCount = UInt32(clamping: newValue) } }
    public var upshifts: Int64 { get { Int64(_upshifts) } set { _upshifts = UInt32(clamping: newValue) } }
    public var downshifts: Int64 { get { Int64(_downshifts) } set { _downshifts = UInt32(clamping: newValue) } }

    // Attributes (fixed once known; 0 / nil = not yet known).
    /// Ids in the engine's `ValueInterner` (0 = nil).
    public var fatalErrorCode: UInt32 = 0
    public var playerVersion: UInt32 = 0
    public var city: UInt32 = 0, asOrg: UInt32 = 0

    public var dims = SessionDims()
    var cacheSlots: (Int32, Int32, Int32, Int32, Int32) = (0, 0, 0, 0, 0)
    private var _cacheGeneration: UInt32 = .max
    private var flags: UInt16 = 0

    // The session id and viewer id: their UTF-8 bytes back to back in
    // `idBytes` when they fit (48 bytes: two UUIDs do not, a UUID and a
    // short viewer id do), else in `idSpill`. Exact bytes are kept.
    private static let idBytesMax = 48
    /// Bytes of the id in `idBytes`; `spilled` = in `idSpill`.
    private var idLen: UInt8 = 0
    /// Bytes of the viewer id in `idBytes` after the id; `none` = nil, `spilled` = in `idSpill`.
    private var viewerLen: UInt8 = SessionState.none
    private static let none: UInt8 = 0xFF, spilled: UInt8 = 0xFE

    private final class IdSpill {
        var id: String?, viewerId: String?
    }

    @inline(__always) private func withIdBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeBytes(of: idBytes, body)
    }

    private func storeInline(_ s: String, at offset: Int) -> Bool {
        let n = s.utf8.count
        guard offset + n <= SessionState.idBytesMax else { return false }
        withUnsafeMutableBytes(of: &idBytes) { buf in
            _ = UnsafeMutableRawBufferPointer(rebasing: buf[offset..<(offset + n)]).copyBytes(from: s.utf8)
        }
        return true
    }

    public var id: String {
        if idLen == SessionState.spilled { return idSpill!.id! }
        return withIdBytes { String(decoding: $0.prefix(Int(idLen)), as: UTF8.self) }
    }

    var hasViewerId: Bool { viewerLen != SessionState.none }

    public var viewerId: String? {
        get {
            switch viewerLen {
            case SessionState.none: return nil
            case SessionState.spilled: return idSpill!.viewerId
            default:
                let start = idLen == SessionState.spilled ? 0 : Int(idLen)
                return withIdBytes { String(decoding: $0[start..<(start + Int(viewerLen))], as: UTF8.self) }
            }
        }
        set {
            if viewerLen == SessionState.spilled { idSpill!.viewerId = nil }
            guard let v = newValue else { viewerLen = SessionState.none; return }
            let start = idLen == SessionState.spilled ? 0 : Int(idLen)
            if v.utf8.count < Int(SessionState.spilled) && storeInline(v, at: start) {
                viewerLen = UInt8(v.utf8.count)
            } else {
                if idSpill == nil { idSpill = IdSpill() }
                idSpill!.viewerId = v
                viewerLen = SessionState.spilled
            }
        }
    }

    private static let fMissingStart: UInt16 = 1 << 0, fFatalSeen: UInt16 = 1 << 1
    private static let fVsf: UInt16 = 1 << 2, fVpf: UInt16 = 1 << 3, fClosed: UInt16 = 1 << 4
    private static let fQueued: UInt16 = 1 << 5, fIpLooked: UInt16 = 1 << 6, fUaLooked: UInt16 = 1 << 7
    private static let fLiveKnown: UInt16 = 1 << 8, fLive: UInt16 = 1 << 9

    @inline(__always) private func flag(_ f: UInt16) -> Bool { flags & f != 0 }
    @inline(__always) private func setFlag(_ f: UInt16, _ v: Bool) { if v { flags |= f } else { flags &= ~f } }
    @inline(__always) private static func opt(_ v: Int64) -> Int64? { v == .min ? nil : v }

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

    public var viewStartTs: Int64? {
        get { Self.opt(_viewStartTs) } set { _viewStartTs = Self.stored(newValue) }
    }
    public var firstPlayTs: Int64? {
        get { Self.opt(_firstPlayTs) } set { _firstPlayTs = Self.stored(newValue) }
    }
    /// Start of the counted stall / seek that is open, if any.
    public var stallOpenTs: Int64? {
        get { Self.opt(_stallOpenTs) } set { _stallOpenTs = Self.stored(newValue) }
    }
    public var seekOpenTs: Int64? {
        get { Self.opt(_seekOpenTs) } set { _seekOpenTs = Self.stored(newValue) }
    }
    public var currentBitrate: Int64? {
        get { Self.opt(_currentBitrate) } set { _currentBitrate = Self.stored(newValue) }
    }
    public var asn: Int64? {
        get { Self.opt(_asn) } set { _asn = Self.stored(newValue) }
    }
    public var videoDurationMs: Int64? {
        get { Self.opt(_videoDurationMs) } set { _videoDurationMs = Self.stored(newValue) }
    }
    public var startupMs: Int64? {
        get { Self.opt(_startupMs) } set { _startupMs = Self.stored(newValue) }
    }

    /// The stored form of an optional: `Int64.min` is reserved for nil.
    @inline(__always) private static func stored(_ v: Int64?) -> Int64 {
        guard let v else { return .min }
        precondition(v != .min, "Int64.min is reserved as the nil sentinel")
        return v
    }

    /// `SessionTable.hash` of the id's UTF-8 bytes (computed, not stored:
    /// the table needs it only to grow and on deletion).
    var idHash: UInt32 {
        if idLen == SessionState.spilled { return SessionTable.withBytes(idSpill!.id!) { SessionTable.hash($0) } }
        return withIdBytes { SessionTable.hash(UnsafeRawBufferPointer(rebasing: $0.prefix(Int(idLen)))) }
    }

    public init(id: String, ts: Int64) {
        self.earliestTs = ts
        self.latestTs = ts
        if id.utf8.count < Int(SessionState.spilled) && storeInline(id, at: 0) {
            idLen = UInt8(id.utf8.count)
        } else {
            let spill = IdSpill()
            spill.id = id
            idSpill = spill
            idLen = SessionState.spilled
        }
    }

    /// Whether the id's UTF-8 bytes are `bytes`.
    @inline(__always) func idEquals(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if idLen == SessionState.spilled {
            return SessionTable.withBytes(idSpill!.id!) {
                $0.count == bytes.count && (bytes.count == 0 || memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0)
            }
        }
        guard Int(idLen) == bytes.count else { return false }
        guard let b = bytes.baseAddress else { return true }
        return withIdBytes { memcmp($0.baseAddress!, b, bytes.count) == 0 }
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

    /// Records `seq`; returns false when it was seen before (a duplicate).
    public func acceptSeq(_ seq: UInt32) -> Bool { seqs.insert(seq) }
}
