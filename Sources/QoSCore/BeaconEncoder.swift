/// Writes a beacon as one compact JSON object (the inverse of
/// `BeaconDecoder` for every field it knows). Used by the generator.
public enum BeaconEncoder {
    public static func encode(_ b: Beacon, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        str("event", b.event.name, &out, first: true)
        int("ts", b.ts, &out)
        str("session_id", b.sessionId, &out)
        if let v = b.seq { int("seq", Int64(v), &out) }
        opt("viewer_id", b.viewerId, &out); opt("video_id", b.videoId, &out)
        if let v = b.videoDurationMs { int("video_duration_ms", v, &out) }
        if let v = b.live { bool("live", v, &out) }
        opt("ip", b.ip, &out); opt("country", b.country, &out); opt("region", b.region, &out)
        opt("user_agent", b.userAgent, &out); opt("device_type", b.deviceType, &out)
        opt("os", b.os, &out); opt("browser", b.browser, &out)
        opt("player_name", b.playerName, &out); opt("player_version", b.playerVersion, &out)
        opt("cdn", b.cdn, &out); opt("pop", b.pop, &out)
        if let v = b.bitrateKbps { int("bitrate_kbps", v, &out) }
        if let v = b.playedMs { int("played_ms", v, &out) }
        if let v = b.playheadMs { int("playhead_ms", v, &out) }
        if let v = b.durationMs { int("duration_ms", v, &out) }
        opt("error_code", b.errorCode, &out)
        if let v = b.fatal { bool("fatal", v, &out) }
        if let v = b.reason { str("reason", v.name, &out) }
        if let v = b.httpStatus { int("http_status", v, &out) }
        if let v = b.downloadMs { int("download_ms", v, &out) }
        if let v = b.ttfbMs { int("ttfb_ms", v, &out) }
        if let v = b.bytes { int("bytes", v, &out) }
        opt("cache", b.cache, &out)
        out.append(UInt8(ascii: "}"))
    }

    public static func encode(_ b: Beacon) -> [UInt8] {
        var out: [UInt8] = []
        encode(b, into: &out)
        return out
    }

    private static func key(_ k: StaticString, _ out: inout [UInt8], first: Bool) {
        if !first { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: UnsafeBufferPointer(start: k.utf8Start, count: k.utf8CodeUnitCount))
        out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    private static func opt(_ k: StaticString, _ v: String?, _ out: inout [UInt8]) {
        if let v { str(k, v, &out) }
    }

    private static func str(_ k: StaticString, _ v: String, _ out: inout [UInt8], first: Bool = false) {
        key(k, &out, first: first)
        quote(v, &out)
    }

    private static func int(_ k: StaticString, _ v: Int64, _ out: inout [UInt8]) {
        key(k, &out, first: false)
        out.append(contentsOf: String(v).utf8)
    }

    private static func bool(_ k: StaticString, _ v: Bool, _ out: inout [UInt8]) {
        key(k, &out, first: false)
        out.append(contentsOf: (v ? "true" : "false").utf8)
    }

    /// JSON string escaping: quotes, backslashes and control characters.
    public static func quote(_ s: String, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 15)]])
            default: out.append(c)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
