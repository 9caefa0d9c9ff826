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
public struct Beacon: Sendable, Equatable {
    public var event: EventType
    public var ts: Int64
    public var sessionId: String
    public var seq: UInt32?
    public var viewerId: String?
    public var videoId: String?
    public var videoDurationMs: Int64?
    public var live: Bool?
    public var ip: String?
    public var country: String?
    public var region: String?
    public var userAgent: String?
    public var deviceType: String?
    public var os: String?
    public var browser: String?
    public var playerName: String?
    public var playerVersion: String?
    public var cdn: String?
    public var pop: String?
    public var bitrateKbps: Int64?
    public var playedMs: Int64?
    public var playheadMs: Int64?
    public var durationMs: Int64?
    public var errorCode: String?
    public var fatal: Bool?
    /// Only on `view_end`: `ended`, `exit` or `error`.
    public var reason: CloseReason?
    public var httpStatus: Int64?
    public var downloadMs: Int64?
    public var ttfbMs: Int64?
    public var bytes: Int64?
    public var cache: String?
    /// Set only by `BeaconDecoder.decodeLending`: the session id is this byte
    /// range of the message the beacon was decoded from, and `sessionId` is
    /// empty (no String built per beacon; the engine looks sessions up by
    /// bytes). Read the id with `sessionIdBytes(in:)`.
    public internal(set) var sessionIdSpan: Range<Int32>?

    public init(event: EventType, ts: Int64, sessionId: String) {
        self.event = event
        self.ts = ts
        self.sessionId = sessionId
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
