import QoSCore

/// Writes beacons as the CMCD v2 reports a player would have sent for them
/// (`qos generate --format cmcd`): the inverse of `CMCDFormat`'s mapping
/// (docs/cmcd.md). State changes become `e=ps` with the new `sta`, heartbeats
/// `e=t`, bitrate changes `e=bc`, errors `e=e` (fatal: the state `f`),
/// segments `e=rr` response reports. A stall during startup or a seek is not
/// reported (CTA-5004-B: `rebuffering` is not reported then; the engine does
/// not count those either). CMCD has no `played_ms`, pop, bytes, cache
/// status, content duration, viewer id or device fields: those are left out (the format
/// derives played time from the states); `ip` and `user_agent` go into the
/// keys `qos collect` would add. One instance per stream, in stream order.
public final class CMCDEncoder {
    /// Per session, what a conformant player would know: CTA-5004-B does not
    /// report `rebuffering` during startup or seeking, and a fatal error
    /// (state `f`) already ends the session.
    struct State { var playing = false; var seeking = false; var stalled = false; var fatal = false }
    private var sessions: [String: State] = [:]

    public init() {}

    /// The record for `b`, or nil when CMCD has nothing to say (the
    /// `view_end` after a fatal error).
    public func encode(_ b: Beacon) -> [UInt8]? {
        var parts = ["sid=" + CMCDParser.quote(b.sessionId), "ts=\(b.ts)"]
        var s = sessions[b.sessionId] ?? State()
        defer { if b.event == .viewEnd { sessions[b.sessionId] = nil } else { sessions[b.sessionId] = s } }
        switch b.event {
        case .viewStart: parts.append("e=ps,sta=s")
        case .playStart:
            s.playing = true
            parts.append("e=ps,sta=p")
        case .resume: parts.append("e=ps,sta=p")
        case .seekEnd:
            s.seeking = false
            parts.append("e=ps,sta=p")
        case .rebufferStart:
            guard s.playing, !s.seeking, !s.stalled else { return nil }
            s.stalled = true
            parts.append("e=ps,sta=r")
        case .rebufferEnd:
            guard s.stalled else { return nil }
            s.stalled = false
            parts.append("e=ps,sta=p")
        case .pause: parts.append("e=ps,sta=a")
        case .seekStart:
            s.seeking = true
            s.stalled = false
            parts.append("e=ps,sta=k")
        case .heartbeat: parts.append("e=t")
        case .bitrateChange: parts.append("e=bc")
        case .error:
            if b.fatal == true {
                parts.append("e=ps,sta=f")
                s.fatal = true
            } else {
                parts.append("e=e")
            }
            if let code = b.errorCode { parts.append("ec=(\(CMCDParser.quote(code)))") }
        case .viewEnd:
            if s.fatal { return nil }
            parts.append(b.reason == .ended ? "e=ps,sta=e" : "e=ps,sta=q")
        case .segment:
            parts.append("e=rr,ot=v")
            if let v = b.httpStatus { parts.append("rc=\(v)") }
            if let v = b.ttfbMs { parts.append("ttfb=\(v)") }
            if let v = b.downloadMs { parts.append("ttlb=\(v)") }
        }
        if let v = b.videoId { parts.append("cid=" + CMCDParser.quote(v)) }
        if let v = b.live { parts.append(v ? "st=l" : "st=v") }
        if let v = b.cdn { parts.append("cdn=" + CMCDParser.quote(v)) }
        if let v = b.bitrateKbps { parts.append("br=(\(v);v)") }
        if let v = b.playheadMs { parts.append("pt=\(v)") }
        if let v = b.ip { parts.append(CMCDHTTP.ipKey + "=" + CMCDParser.quote(v)) }
        if let v = b.userAgent { parts.append(CMCDHTTP.userAgentKey + "=" + CMCDParser.quote(v)) }
        return Array(parts.joined(separator: ",").utf8)
    }
}
