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
public final class SessionState {
    public let id: String
    public var earliestTs: Int64
    public var latestTs: Int64
    /// The partition watermark when the latest beacon was applied (SPEC §3).
    public var arrivalMark: Int64 = .min
    public var beacons: Int64 = 0
    public var missingStart = false
    public var viewStartTs: Int64?
    public var firstPlayTs: Int64?
    public var fatalSeen = false
    public var fatalErrorCode: String?
    public var vsf = false, vpf = false
    public var errors: Int64 = 0
    /// Start of the counted stall / seek that is open, if any.
    public var stallOpenTs: Int64?
    public var seekOpenTs: Int64?
    public var currentBitrate: Int64?
    public var maxPlayheadMs: Int64 = 0
    /// Duplicate detection: every `seq` seen.
    public var seqs = SeqSet()
    public var closed = false
    /// Whether the session has an entry in the close queue.
    var queued = false

    // Attributes (fixed once known; 0 / nil = not yet known).
    public var dims = SessionDims()
    public var viewerId: String?
    public var playerVersion: String?
    public var city: String?, asn: Int64?, asOrg: String?
    public var live: Bool?
    public var videoDurationMs: Int64?
    var ipLooked = false
    var uaLooked = false

    // Contribution cache: the window state and the group slots of the five
    // tables that the session's last contribution went to. Valid while the
    // window start, the aggregator's generation and the dimensions are unchanged.
    var cacheStart: Int64 = .min
    var cacheGeneration: Int = -1
    var cacheWindow: AnyObject?
    var cacheSlots: (Int32, Int32, Int32, Int32, Int32) = (0, 0, 0, 0, 0)

    // Facts for the `sessions` row.
    public var startupMs: Int64?
    public var playingMs: Int64 = 0
    public var rebufferCount: Int64 = 0, rebufferMs: Int64 = 0
    public var seekCount: Int64 = 0, seekMs: Int64 = 0
    public var bitrateMsSum: Int64 = 0, bitratePlayedMs: Int64 = 0
    public var upshifts: Int64 = 0, downshifts: Int64 = 0

    public init(id: String, ts: Int64) {
        self.id = id
        self.earliestTs = ts
        self.latestTs = ts
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
