/// Reads the known keys of one beacon object into a `Beacon`. Semantic
/// problems (wrong type, too long, bad value) are recorded, not thrown: the
/// object is still lexed to its end so the next one can be decoded.
struct FieldReader {
    enum Field: Int, CaseIterable {
        case event, ts, sessionId, seq, viewerId, videoId, videoDurationMs, live, ip, country, region
        case userAgent, deviceType, os, browser, playerName, playerVersion, cdn, pop, bitrateKbps
        case playedMs, playheadMs, durationMs, errorCode, fatal, reason, httpStatus, downloadMs
        case ttfbMs, bytes, cache

        var name: String { FieldReader.names[rawValue].description }
    }

    /// Wire names, indexed by `Field.rawValue`.
    static let names: [StaticString] = [
        "event", "ts", "session_id", "seq", "viewer_id", "video_id", "video_duration_ms", "live", "ip",
        "country", "region", "user_agent", "device_type", "os", "browser", "player_name", "player_version",
        "cdn", "pop", "bitrate_kbps", "played_ms", "playhead_ms", "duration_ms", "error_code", "fatal",
        "reason", "http_status", "download_ms", "ttfb_ms", "bytes", "cache",
    ]

    var beacon = Beacon(event: .heartbeat, ts: 0, sessionId: "")
    var hasEvent = false
    var hasTs = false
    var hasSessionId = false
    /// First semantic error in the object, if any.
    var error: RejectReason?

    /// Reads the value for `key`. Returns false only on a JSON syntax error.
    mutating func read(key: JSONCursor.RawString, from p: inout JSONCursor) -> Bool {
        guard let field = FieldReader.field(key, p) else { return p.skipValue(depth: 1) }
        if p.peek() == UInt8(ascii: "n") {
            // null: treated as absent.
            return p.readLiteral("null")
        }
        switch field {
        case .event: return readEvent(&p)
        case .ts: return readInt(&p, field, min: 0) { b, v in b.ts = v } && mark(&hasTs)
        case .sessionId: return readString(&p, field, BeaconLimits.sessionIdBytesMax) { b, v in b.sessionId = v } && mark(&hasSessionId)
        case .seq: return readInt(&p, field, min: 0, max: Int64(UInt32.max)) { b, v in b.seq = UInt32(v) }
        case .viewerId: return readString(&p, field, BeaconLimits.viewerIdBytesMax) { b, v in b.viewerId = v }
        case .videoId: return readString(&p, field, BeaconLimits.videoIdBytesMax) { b, v in b.videoId = v }
        case .videoDurationMs: return readInt(&p, field, min: 0) { b, v in b.videoDurationMs = v }
        case .live: return readBool(&p, field) { b, v in b.live = v }
        case .fatal: return readBool(&p, field) { b, v in b.fatal = v }
        case .userAgent: return readString(&p, field, BeaconLimits.userAgentBytesMax) { b, v in b.userAgent = v }
        case .reason: return readReason(&p)
        case .bitrateKbps: return readInt(&p, field, min: 0) { b, v in b.bitrateKbps = v }
        case .playedMs: return readInt(&p, field, min: 0) { b, v in b.playedMs = v }
        case .playheadMs: return readInt(&p, field, min: 0) { b, v in b.playheadMs = v }
        case .durationMs: return readInt(&p, field, min: 0) { b, v in b.durationMs = v }
        case .httpStatus: return readInt(&p, field, min: 0, max: 999) { b, v in b.httpStatus = v }
        case .downloadMs: return readInt(&p, field, min: 0) { b, v in b.downloadMs = v }
        case .ttfbMs: return readInt(&p, field, min: 0) { b, v in b.ttfbMs = v }
        case .bytes: return readInt(&p, field, min: 0) { b, v in b.bytes = v }
        default: return readDimension(&p, field)
        }
    }

    private mutating func readDimension(_ p: inout JSONCursor, _ field: Field) -> Bool {
        let set: (inout Beacon, String) -> Void
        switch field {
        case .ip: set = { $0.ip = $1 }
        case .country: set = { $0.country = $1 }
        case .region: set = { $0.region = $1 }
        case .deviceType: set = { $0.deviceType = $1 }
        case .os: set = { $0.os = $1 }
        case .browser: set = { $0.browser = $1 }
        case .playerName: set = { $0.playerName = $1 }
        case .playerVersion: set = { $0.playerVersion = $1 }
        case .cdn: set = { $0.cdn = $1 }
        case .pop: set = { $0.pop = $1 }
        case .errorCode: set = { $0.errorCode = $1 }
        default: set = { $0.cache = $1 }
        }
        return readString(&p, field, BeaconLimits.otherStringBytesMax, set)
    }

    private func mark(_ flag: inout Bool) -> Bool { flag = true; return true }

    private mutating func fail(_ r: RejectReason) { if error == nil { error = r } }

    private mutating func readString(_ p: inout JSONCursor, _ field: Field, _ limit: Int,
                                     _ set: (inout Beacon, String) -> Void) -> Bool {
        guard p.peek() == UInt8(ascii: "\"") else {
            fail(.wrongType(field.name)); return p.skipValue(depth: 1)
        }
        guard let raw = p.readRawString() else { return false }
        guard raw.length <= limit * 6 else { fail(.fieldTooLong(field.name)); return true }
        guard let s = p.string(raw) else { fail(.invalidUTF8); return true }
        guard s.utf8.count <= limit else { fail(.fieldTooLong(field.name)); return true }
        set(&beacon, s)
        return true
    }

    private mutating func readInt(_ p: inout JSONCursor, _ field: Field, min lo: Int64 = .min, max hi: Int64 = .max,
                                  _ set: (inout Beacon, Int64) -> Void) -> Bool {
        guard let c = p.peek(), c == UInt8(ascii: "-") || (c &- 0x30) < 10 else {
            fail(.wrongType(field.name)); return p.skipValue(depth: 1)
        }
        guard let tok = p.readNumber() else { return false }
        guard tok.isInteger, let v = p.int64(tok) else { fail(.wrongType(field.name)); return true }
        guard v >= lo && v <= hi else { fail(.invalidValue(field.name)); return true }
        set(&beacon, v)
        return true
    }

    private mutating func readBool(_ p: inout JSONCursor, _ field: Field, _ set: (inout Beacon, Bool) -> Void) -> Bool {
        if p.peek() == UInt8(ascii: "t"), p.readLiteral("true") { set(&beacon, true); return true }
        if p.peek() == UInt8(ascii: "f"), p.readLiteral("false") { set(&beacon, false); return true }
        fail(.wrongType(field.name))
        return p.skipValue(depth: 1)
    }

    private mutating func readEvent(_ p: inout JSONCursor) -> Bool {
        guard p.peek() == UInt8(ascii: "\"") else { fail(.wrongType("event")); return p.skipValue(depth: 1) }
        guard let raw = p.readRawString() else { return false }
        for e in EventType.allCases where FieldReader.matches(raw, p, FieldReader.eventNames[Int(e.rawValue)]) {
            beacon.event = e
            hasEvent = true
            return true
        }
        fail(.unknownEvent)
        return true
    }

    private mutating func readReason(_ p: inout JSONCursor) -> Bool {
        guard p.peek() == UInt8(ascii: "\"") else { fail(.wrongType("reason")); return p.skipValue(depth: 1) }
        guard let raw = p.readRawString() else { return false }
        if FieldReader.matches(raw, p, "ended") { beacon.reason = .ended }
        else if FieldReader.matches(raw, p, "exit") { beacon.reason = .exit }
        else if FieldReader.matches(raw, p, "error") { beacon.reason = .error }
        else { fail(.invalidValue("reason")) }
        return true
    }

    static let eventNames: [StaticString] = [
        "view_start", "play_start", "heartbeat", "rebuffer_start", "rebuffer_end", "pause", "resume",
        "seek_start", "seek_end", "bitrate_change", "error", "view_end", "segment",
    ]

    /// Token equals literal; escaped tokens are compared after unescaping.
    static func matches(_ raw: JSONCursor.RawString, _ p: JSONCursor, _ lit: StaticString) -> Bool {
        if !raw.hasEscapes { return p.keyEquals(raw, lit) }
        guard let bytes = p.unescaped(raw) else { return false }
        return bytes.elementsEqual(UnsafeBufferPointer(start: lit.utf8Start, count: lit.utf8CodeUnitCount))
    }

    /// Known keys bucketed by byte length, so a key is compared with at
    /// most four candidates instead of all 31.
    static let byLength: [[Field]] = {
        var buckets = [[Field]](repeating: [], count: 20)
        for f in Field.allCases { buckets[names[f.rawValue].utf8CodeUnitCount].append(f) }
        return buckets
    }()

    static func field(_ raw: JSONCursor.RawString, _ p: JSONCursor) -> Field? {
        if raw.hasEscapes {
            for f in Field.allCases where matches(raw, p, names[f.rawValue]) { return f }
            return nil
        }
        guard raw.length < byLength.count else { return nil }
        for f in byLength[raw.length] where p.keyEquals(raw, names[f.rawValue]) { return f }
        return nil
    }

    /// Final checks: required fields present.
    func build() -> Result<Beacon, RejectError> {
        if !hasEvent { return .failure(RejectError(reason: .missingField("event"))) }
        if !hasTs { return .failure(RejectError(reason: .missingField("ts"))) }
        if !hasSessionId { return .failure(RejectError(reason: .missingField("session_id"))) }
        if beacon.sessionId.isEmpty { return .failure(RejectError(reason: .invalidValue("session_id"))) }
        return .success(beacon)
    }
}
