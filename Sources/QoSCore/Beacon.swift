/// The beacon model (docs/semantics.md §1). `schemas/beacon.schema.json` is normative;
/// this type mirrors it field for field.

/// A player event type. Raw values are stable (used in checkpoints).
public enum EventType: UInt8, Sendable, CaseIterable {
    case viewStart, playStart, heartbeat, rebufferStart, rebufferEnd, pause, resume
    case seekStart, seekEnd, bitrateChange, error, viewEnd, segment

    /// The wire name, as in the JSON `event` field.
    public var name: String {
        switch self {
        case .viewStart: return "view_start"
        case .playStart: return "play_start"
        case .heartbeat: return "heartbeat"
        case .rebufferStart: return "rebuffer_start"
        case .rebufferEnd: return "rebuffer_end"
        case .pause: return "pause"
        case .resume: return "resume"
        case .seekStart: return "seek_start"
        case .seekEnd: return "seek_end"
        case .bitrateChange: return "bitrate_change"
        case .error: return "error"
        case .viewEnd: return "view_end"
        case .segment: return "segment"
        }
    }

    public init?(name: String) {
        guard let e = EventType.allCases.first(where: { $0.name == name }) else { return nil }
        self = e
    }
}

/// Why a session closed (docs/semantics.md §2).
public enum CloseReason: UInt8, Sendable, CaseIterable {
    case ended, exit, error, timeout, maxLength

    public var name: String {
        switch self {
        case .ended: return "ended"
        case .exit: return "exit"
        case .error: return "error"
        case .timeout: return "timeout"
        case .maxLength: return "max_length"
        }
    }
}

/// One decoded beacon. Optional fields are `nil` when absent (or JSON `null`).
///
/// Laid out for the decode → engine hand-over, which copies and destroys a
/// beacon per line (docs/architecture.md "Threads"): the numbers are plain
/// words with a presence mask instead of 16-byte optionals, and the strings
/// that only a session's first beacons carry (ids, geo, device, player, CDN)
/// live in one copy-on-write box, nil on the common beacons — a heartbeat or
/// segment copies 128 bytes and one null reference, not ~450 bytes and
/// fifteen string references. The API is that of plain optional fields.
public struct Beacon: Sendable, Equatable {
    // Stored in this order so the one-byte fields share a word: 128 bytes,
    // which the compiler copies inline; at 136 (`event` first, padded to 8)
    // every copy and swap was a call to `memcpy` — three per beacon as the
    // decode stage files it (bench/results/speed.md section 48).
    public var ts: Int64
    public var sessionId: String
    public var seq: UInt32?
    public var live: Bool?
    public var fatal: Bool?
    /// Only on `view_end`: `ended`, `exit` or `error`.
    public var reason: CloseReason?
    public var event: EventType
    /// Every segment beacon carries it: its usual values are a code
    /// (`CacheCode`), any other lives in the box, so a beacon holds no
    /// string of its own but `sessionId` (its copy and destroy stay cheap).
    public var cache: String? {
        get {
            switch cacheCode {
            case .none: return nil
            case .hit: return "HIT"
            case .miss: return "MISS"
            case .other: return text?.v.cache
            }
        }
        set {
            if text?.v.cache != nil { writableText().v.cache = nil }
            switch newValue {
            case nil: cacheCode = .none
            case "HIT": cacheCode = .hit
            case "MISS": cacheCode = .miss
            case let v?: cacheCode = .other; writableText().v.cache = v
            }
        }
    }
    /// Whether `cache` is `HIT` (read per segment beacon: no String built).
    @inline(__always) public var cacheHit: Bool { cacheCode == .hit }
    /// `cache` as stored: nil, one of the two usual values, or another in the box.
    enum CacheCode: UInt8 { case none, hit, miss, other }
    private(set) var cacheCode = CacheCode.none
    /// Sets `cache` to `HIT` or `MISS` (the decoder's fast path).
    @inline(__always) mutating func setUsualCache(hit: Bool) {
        if cacheCode == .other { cache = nil }
        cacheCode = hit ? .hit : .miss
    }
    /// Set only by `BeaconDecoder.decodeLending`: the session id is this byte
    /// range of the message the beacon was decoded from, and `sessionId` is
    /// empty (no String built per beacon; the engine looks sessions up by
    /// bytes). Read the id with `sessionIdBytes(in:)`.
    public internal(set) var sessionIdSpan: Range<Int32>?
    /// Bit i set: number field i (the order of `NumberField`) is present.
    private var present: UInt16 = 0
    private var _videoDurationMs: Int64 = 0
    private var _bitrateKbps: Int64 = 0
    private var _playedMs: Int64 = 0
    private var _playheadMs: Int64 = 0
    private var _durationMs: Int64 = 0
    private var _httpStatus: Int64 = 0
    private var _downloadMs: Int64 = 0
    private var _ttfbMs: Int64 = 0
    private var _bytes: Int64 = 0
    /// The rarely set strings; nil when none is set.
    private var text: BeaconText?

    /// The number fields, in the order of their presence bits.
    enum NumberField: UInt16 { case videoDurationMs, bitrateKbps, playedMs, playheadMs, durationMs, httpStatus, downloadMs, ttfbMs, bytes }

    @inline(__always) private func number(_ f: NumberField, _ v: Int64) -> Int64? {
        present & (1 << f.rawValue) != 0 ? v : nil
    }

    @inline(__always) private mutating func setPresent(_ f: NumberField, _ on: Bool) {
        if on { present |= 1 << f.rawValue } else { present &= ~(1 << f.rawValue) }
    }

    public var videoDurationMs: Int64? {
        get { number(.videoDurationMs, _videoDurationMs) }
        set { _videoDurationMs = newValue ?? 0; setPresent(.videoDurationMs, newValue != nil) }
    }
    public var bitrateKbps: Int64? {
        get { number(.bitrateKbps, _bitrateKbps) }
        set { _bitrateKbps = newValue ?? 0; setPresent(.bitrateKbps, newValue != nil) }
    }
    public var playedMs: Int64? {
        get { number(.playedMs, _playedMs) }
        set { _playedMs = newValue ?? 0; setPresent(.playedMs, newValue != nil) }
    }
    public var playheadMs: Int64? {
        get { number(.playheadMs, _playheadMs) }
        set { _playheadMs = newValue ?? 0; setPresent(.playheadMs, newValue != nil) }
    }
    public var durationMs: Int64? {
        get { number(.durationMs, _durationMs) }
        set { _durationMs = newValue ?? 0; setPresent(.durationMs, newValue != nil) }
    }
    public var httpStatus: Int64? {
        get { number(.httpStatus, _httpStatus) }
        set { _httpStatus = newValue ?? 0; setPresent(.httpStatus, newValue != nil) }
    }
    public var downloadMs: Int64? {
        get { number(.downloadMs, _downloadMs) }
        set { _downloadMs = newValue ?? 0; setPresent(.downloadMs, newValue != nil) }
    }
    public var ttfbMs: Int64? {
        get { number(.ttfbMs, _ttfbMs) }
        set { _ttfbMs = newValue ?? 0; setPresent(.ttfbMs, newValue != nil) }
    }
    public var bytes: Int64? {
        get { number(.bytes, _bytes) }
        set { _bytes = newValue ?? 0; setPresent(.bytes, newValue != nil) }
    }

    /// The box to write a string into: created on the first string, copied
    /// first when another beacon shares it (copy on write).
    @inline(__always) private mutating func writableText() -> BeaconText {
        if text == nil { text = BeaconText() } else if !isKnownUniquelyReferenced(&text) { text = BeaconText(text!.v) }
        return text!
    }

    public var viewerId: String? {
        get { text?.v.viewerId }
        set { if newValue != nil || text?.v.viewerId != nil { writableText().v.viewerId = newValue } }
    }
    public var videoId: String? {
        get { text?.v.videoId }
        set { if newValue != nil || text?.v.videoId != nil { writableText().v.videoId = newValue } }
    }
    public var ip: String? {
        get { text?.v.ip }
        set { if newValue != nil || text?.v.ip != nil { writableText().v.ip = newValue } }
    }
    public var country: String? {
        get { text?.v.country }
        set { if newValue != nil || text?.v.country != nil { writableText().v.country = newValue } }
    }
    public var region: String? {
        get { text?.v.region }
        set { if newValue != nil || text?.v.region != nil { writableText().v.region = newValue } }
    }
    public var userAgent: String? {
        get { text?.v.userAgent }
        set { if newValue != nil || text?.v.userAgent != nil { writableText().v.userAgent = newValue } }
    }
    public var deviceType: String? {
        get { text?.v.deviceType }
        set { if newValue != nil || text?.v.deviceType != nil { writableText().v.deviceType = newValue } }
    }
    public var os: String? {
        get { text?.v.os }
        set { if newValue != nil || text?.v.os != nil { writableText().v.os = newValue } }
    }
    public var browser: String? {
        get { text?.v.browser }
        set { if newValue != nil || text?.v.browser != nil { writableText().v.browser = newValue } }
    }
    public var playerName: String? {
        get { text?.v.playerName }
        set { if newValue != nil || text?.v.playerName != nil { writableText().v.playerName = newValue } }
    }
    public var playerVersion: String? {
        get { text?.v.playerVersion }
        set { if newValue != nil || text?.v.playerVersion != nil { writableText().v.playerVersion = newValue } }
    }
    public var cdn: String? {
        get { text?.v.cdn }
        set { if newValue != nil || text?.v.cdn != nil { writableText().v.cdn = newValue } }
    }
    public var pop: String? {
        get { text?.v.pop }
        set { if newValue != nil || text?.v.pop != nil { writableText().v.pop = newValue } }
    }
    public var errorCode: String? {
        get { text?.v.errorCode }
        set { if newValue != nil || text?.v.errorCode != nil { writableText().v.errorCode = newValue } }
    }

    /// Whether any of the strings that only a session's first beacons carry
    /// (ids, geo, device, player, CDN, error code) may be set: false means
    /// every one of them is nil (`QoSEngine.updateAttributes` stops there).
    @inline(__always) public var hasRareStrings: Bool { text != nil }

    /// Every optional field absent, the lent id span too (the decoder's
    /// reader clears its beacon with this before each object).
    mutating func clearOptionalFields() {
        seq = nil; live = nil; fatal = nil; reason = nil
        cacheCode = .none
        sessionIdSpan = nil
        present = 0
        if text != nil { text = nil }
    }

    public static func == (a: Beacon, b: Beacon) -> Bool {
        guard a.event == b.event, a.ts == b.ts, a.sessionId == b.sessionId, a.seq == b.seq, a.live == b.live,
              a.fatal == b.fatal, a.reason == b.reason, a.cache == b.cache, a.sessionIdSpan == b.sessionIdSpan,
              a.present == b.present else { return false }
        // Values of absent numbers are stale (`clearOptionalFields` resets the mask only).
        guard a.videoDurationMs == b.videoDurationMs, a.bitrateKbps == b.bitrateKbps, a.playedMs == b.playedMs, a.playheadMs == b.playheadMs, a.durationMs == b.durationMs, a.httpStatus == b.httpStatus, a.downloadMs == b.downloadMs, a.ttfbMs == b.ttfbMs, a.bytes == b.bytes else { return false }
        if a.text === b.text { return true }
        return (a.text?.v ?? BeaconText.Strings()) == (b.text?.v ?? BeaconText.Strings())
    }

    public init(event: EventType, ts: Int64, sessionId: String) {
        self.event = event
        self.ts = ts
        self.sessionId = sessionId
    }

    /// Builds `sessionId` from the bytes lent from `message` and drops the
    /// span, so the beacon no longer needs its message (a beacon handed to
    /// another thread without its record: `qos replay --workers`).
    public mutating func ownSessionId(from message: UnsafeRawBufferPointer) {
        guard let id = sessionIdBytes(in: message) else { return }
        sessionId = String(decoding: id, as: UTF8.self)
        sessionIdSpan = nil
    }

    /// The session id's bytes when it is lent from `message` (the message
    /// the beacon was decoded from), else nil: then read `sessionId`.
    @inline(__always)
    public func sessionIdBytes(in message: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard let span = sessionIdSpan else { return nil }
        precondition(Int(span.upperBound) <= message.count, "a lent session id outside its message")
        return UnsafeRawBufferPointer(rebasing: message[Int(span.lowerBound)..<Int(span.upperBound)])
    }
}

/// Every field that is set, by name (tests compare printed beacons; the
/// box would otherwise print as its class name).
extension Beacon: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        var parts = ["event: \(event)", "ts: \(ts)", "sessionId: \(String(reflecting: sessionId))"]
        func add<T>(_ name: String, _ v: T?) { if let v { parts.append("\(name): \(String(reflecting: v))") } }
        add("seq", seq)
        add("viewerId", viewerId)
        add("videoId", videoId)
        add("videoDurationMs", videoDurationMs)
        add("live", live)
        add("ip", ip)
        add("country", country)
        add("region", region)
        add("userAgent", userAgent)
        add("deviceType", deviceType)
        add("os", os)
        add("browser", browser)
        add("playerName", playerName)
        add("playerVersion", playerVersion)
        add("cdn", cdn)
        add("pop", pop)
        add("bitrateKbps", bitrateKbps)
        add("playedMs", playedMs)
        add("playheadMs", playheadMs)
        add("durationMs", durationMs)
        add("errorCode", errorCode)
        add("fatal", fatal)
        add("reason", reason)
        add("httpStatus", httpStatus)
        add("downloadMs", downloadMs)
        add("ttfbMs", ttfbMs)
        add("bytes", bytes)
        add("cache", cache)
        add("sessionIdSpan", sessionIdSpan)
        return "Beacon(" + parts.joined(separator: ", ") + ")"
    }

    public var debugDescription: String { description }
}

/// The strings of a `Beacon` that only a session's first beacons carry
/// (copy on write: `Beacon` copies the box before writing into a shared one).
final class BeaconText: @unchecked Sendable {
    /// The strings themselves: a value, so a copy and a comparison are the
    /// synthesized ones.
    struct Strings: Equatable {
        var viewerId: String?, videoId: String?, ip: String?, country: String?, region: String?
        var userAgent: String?, deviceType: String?, os: String?, browser: String?
        var playerName: String?, playerVersion: String?, cdn: String?, pop: String?, errorCode: String?
        /// `Beacon.cache` when it is neither `HIT` nor `MISS`.
        var cache: String?
    }
    var v: Strings

    init(_ v: Strings = Strings()) { self.v = v }
}

/// Hard limits on input (docs/semantics.md §1). Every string field has a byte limit so no
/// input can make memory grow without bound.
public enum BeaconLimits {
    public static let messageBytesMax = 1 << 20
    public static let sessionIdBytesMax = 128
    public static let viewerIdBytesMax = 128
    public static let videoIdBytesMax = 256
    public static let userAgentBytesMax = 1024
    /// Any other string field (dimensions, codes, ip).
    public static let otherStringBytesMax = 256
    /// Raw payload kept in a reject row.
    public static let rejectPayloadBytesMax = 4096
    /// Nesting depth accepted inside skipped (unknown) values.
    public static let nestingDepthMax = 64

    // Numeric bounds (README "Rejects"): larger values are no player's and
    // are rejected as `invalid_value:<field>`, which keeps every sum far
    // from Int64.max (the sums saturate anyway, see `SaturationCounter`).
    /// `played_ms`, `duration_ms`, `download_ms`, `ttfb_ms`: 24 h in one beacon.
    public static let durationMsMax: Int64 = 86_400_000
    /// `bitrate_kbps`: 10 Gbit/s.
    public static let bitrateKbpsMax: Int64 = 10_000_000
    /// `bytes` of one segment: 1 TiB.
    public static let segmentBytesMax: Int64 = 1 << 40
    /// `video_duration_ms`, `playhead_ms`: 2^40 ms (about 35 years).
    public static let positionMsMax: Int64 = 1 << 40
    /// `seq`: an unsigned 32-bit counter.
    public static let seqMax = Int64(UInt32.max)
    /// Default earliest `ts` the engine accepts (`EngineConfig.tsMinMs`):
    /// 2000-01-01T00:00:00Z. Earlier is a clock that was never set.
    public static let tsMinMs: Int64 = 946_684_800_000
}
