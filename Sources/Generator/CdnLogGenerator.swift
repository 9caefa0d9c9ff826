import QoSCore
import SplitMix

/// The CDN's side of the generated traffic: one access-log record per
/// segment request of the sessions `TrafficGenerator` plays with the same
/// options (README, `qos generate --cdn-logs`). Same PoPs, statuses, download
/// times, bytes and cache results as the `segment` beacons, so the
/// `cdn_edge` table and the beacon tables show the same incidents.
///
/// A duplicate delivery of a beacon is not a second request, so it is not
/// logged; a late one is (the request happened at its own time); malformed
/// and future messages are not requests.
public struct CdnLogGenerator: Sequence, IteratorProtocol {
    public enum Format: String, CaseIterable, Sendable {
        case edgecast, cloudfront, fastly, akamai
    }

    var traffic: TrafficGenerator
    let format: Format

    public init(_ options: GeneratorOptions, format: Format) {
        var o = options
        o.stampSegments = true
        traffic = TrafficGenerator(o)
        self.format = format
    }

    public mutating func next() -> GeneratedMessage? {
        while let m = traffic.next() {
            guard let b = m.beacon, b.event == .segment, !m.isDuplicate else { continue }
            let line: [UInt8]
            switch format {
            case .edgecast: line = CdnLogGenerator.edgecast(b)
            case .cloudfront: line = CdnLogGenerator.cloudfront(b)
            case .fastly: line = CdnLogGenerator.fastly(b)
            case .akamai: line = CdnLogGenerator.akamai(b)
            }
            return GeneratedMessage(key: b.sessionId, payload: line, ts: b.ts, expectedReject: nil)
        }
        return nil
    }

    /// The customer account of the generated platform (EdgeCast's first path segment).
    public static let account = "80C0DE"

    /// Content owners: a video's owner is one of these, by a hash of its id.
    public static let owners = ["3f2a9c1e7b4d4e0f9a6b2c8d1e5f7a90", "a7c14e2b9d3f4a6e8b0c5d7f1e2a3b4c",
                                "5d8e0f1a2b3c4d5e6f708192a3b4c5d6"]

    static func owner(ofVideo id: String) -> String { owners[Int(fnv1a(id) % UInt64(owners.count))] }

    /// One EdgeCast RTLD CDN record (the fields the `edgecast` format reads, README "Input: CDN access logs").
    static func edgecast(_ b: Beacon) -> [UInt8] {
        let status = b.httpStatus ?? 200
        // A request the player saw fail with no status (0) was cut off: the
        // edge answered 200 but did not serve the last byte.
        let code = status == 0 ? 200 : status
        let video = b.videoId ?? "unknown"
        let owner = owner(ofVideo: video)
        let asset = World.hex(fnv1a(video), width: 16) + World.hex(fnv1a(video + "/asset"), width: 16)
        let path = "/slices/\(owner.prefix(3))/\(owner)/\(asset)/seg\(b.seq ?? 0).ts"
        let ip = b.ip ?? ""
        var j = JSONLine()
        j.number("timestamp", seconds(b.ts, micros: Int64(b.seq ?? 0) % 1000))
        j.string("pop", b.pop ?? "")
        j.int("status_code", code)
        j.string("status", statusText(code))
        j.string("cache_status", b.cache == "HIT" ? "TCP_HIT" : "TCP_MISS")
        j.number("write_time", seconds(b.downloadMs ?? 0))
        j.number("read_time", b.cache == "HIT" ? "0.000000" : seconds((b.ttfbMs ?? 0) / 2))
        j.int("bytes_out", status == 0 ? (b.bytes ?? 0) / 2 : b.bytes ?? 0)
        j.int("file_size", b.bytes ?? 0)
        j.string("rewritten_path", "/\(account)/origin-qos\(path)")
        j.string("path", "/qos\(path)")
        j.string("host", "video.qos.example")
        j.string("method", "GET")
        j.string("scheme", "https")
        j.string("client_ip", ip)
        j.string("client_ip_version", ip.contains(":") ? "INET6" : "INET")
        j.string("user_agent", b.userAgent ?? "")
        j.int("first_byte_served", 1)
        j.int("last_byte_served", status == 0 ? 0 : 1)
        j.string("platform", "wpc")
        return j.finish()
    }

    /// The CloudFront distribution of the generated platform (its log files'
    /// names and its `dXXXX.cloudfront.net` domain carry it).
    public static let distribution = "d1qosexample8"
    /// The Fastly service and the Akamai CP code of the generated platform.
    public static let fastlyService = "SU1Z0isxPaozGVKXdv0eY"
    public static let akamaiCP = "123456"

    /// The facts every format shares: status as the CDN logged it (a
    /// request the player saw fail with status 0 was cut off: 200 without
    /// its last byte), bytes sent, and whether the last byte went out.
    static func served(_ b: Beacon) -> (status: Int64, bytes: Int64, complete: Bool) {
        let status = b.httpStatus ?? 200
        return status == 0 ? (200, (b.bytes ?? 0) / 2, false) : (status, b.bytes ?? 0, true)
    }

    /// One CloudFront standard-log line, in the documented 33-field order
    /// (no `#Fields:` header needed), tab-separated.
    static func cloudfront(_ b: Beacon) -> [UInt8] {
        let (status, bytes, complete) = served(b)
        let (date, time) = utc(b.ts)
        let path = "/qos/\(b.videoId ?? "unknown")/seg\(b.seq ?? 0).ts"
        let ua = (b.userAgent ?? "-").replacingOccurrences(of: " ", with: "%20")
        let hit = b.cache == "HIT"
        let result = status >= 500 ? "Error" : hit ? "Hit" : "Miss"
        let fields: [String] = [
            date, time, (b.pop ?? "xxx").uppercased() + "50-C1", String(bytes + 420), b.ip ?? "-", "GET",
            "\(distribution).cloudfront.net", path, String(status), "-", ua, "-", "-", result,
            World.hex(fnv1a("\(b.sessionId)/\(b.seq ?? 0)"), width: 16), "video.qos.example", "https", "180",
            decimal(b.downloadMs ?? 0, places: 3), "-", "TLSv1.3", "TLS_AES_128_GCM_SHA256",
            complete ? result : "ClientCommError", "HTTP/2.0", "-", "-", "443",
            decimal(b.ttfbMs ?? 0, places: 3), result, "video/MP2T", String(bytes), "-", "-",
        ]
        return Array(fields.joined(separator: "\t").utf8)
    }

    /// One Fastly JSON log line with the documented default field set
    /// (README "Input: CDN access logs", Fastly).
    static func fastly(_ b: Beacon) -> [UInt8] {
        let (status, bytes, _) = served(b)
        let (date, time) = utc(b.ts)
        var j = JSONLine()
        j.string("timestamp", "\(date)T\(time)+0000")
        j.string("client_ip", b.ip ?? "")
        j.string("service_id", fastlyService)
        j.string("pop", (b.pop ?? "").uppercased())
        j.int("status", status)
        j.int("time_elapsed", (b.downloadMs ?? 0) * 1000)
        j.number("time_to_first_byte", decimal(b.ttfbMs ?? 0, places: 3))
        j.int("resp_body_size", bytes)
        j.string("cache_status", b.cache == "HIT" ? "HIT" : "MISS")
        j.string("url", "/qos/\(b.videoId ?? "unknown")/seg\(b.seq ?? 0).ts")
        return j.finish()
    }

    /// One Akamai DataStream 2 JSON record (numbers as strings, as DataStream writes them).
    static func akamai(_ b: Beacon) -> [UInt8] {
        let (status, bytes, complete) = served(b)
        let download = b.downloadMs ?? 0, ttfb = Swift.min(b.ttfbMs ?? 0, download)
        var j = JSONLine()
        j.string("version", "1")
        j.string("cp", akamaiCP)
        j.string("reqId", World.hex(fnv1a("\(b.sessionId)/\(b.seq ?? 0)"), width: 16))
        j.string("reqTimeSec", decimal(b.ts, places: 3))
        j.string("bytes", String(bytes))
        j.string("cliIP", b.ip ?? "")
        j.string("statusCode", String(status))
        j.string("proto", "HTTPS")
        j.string("reqHost", "video.qos.example")
        j.string("reqMethod", "GET")
        j.string("reqPath", "/qos/\(b.videoId ?? "unknown")/seg\(b.seq ?? 0).ts")
        j.string("cacheStatus", b.cache == "HIT" ? "1" : "0")
        j.string("turnAroundTimeMSec", String(ttfb))
        j.string("transferTimeMSec", String(download - ttfb))
        j.string("edgeIP", edgeIP(b.pop ?? ""))
        j.string("lastByte", complete ? "1" : "0")
        return j.finish()
    }

    /// `ms` since the epoch as UTC `YYYY-MM-DD` and `HH:MM:SS` (the civil
    /// calendar from days since 1970, Howard Hinnant's algorithm).
    static func utc(_ ms: Int64) -> (date: String, time: String) {
        let secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
        let days = secs >= 0 ? secs / 86_400 : (secs - 86_399) / 86_400
        let tod = secs - days * 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return ("\(y)-\(two(m))-\(two(d))", "\(two(tod / 3600)):\(two(tod / 60 % 60)):\(two(tod % 60))")
    }

    /// A fixed edge server address per PoP (Akamai logs the edge IP, not a PoP name).
    static func edgeIP(_ pop: String) -> String {
        let h = fnv1a(pop)
        return "23.\(h % 200 + 1).\((h >> 8) % 250).\((h >> 16) % 250 + 1)"
    }

    /// `v` thousandths as a decimal with `places` = 3 (`1.234`).
    static func decimal(_ v: Int64, places: Int) -> String {
        precondition(places == 3 && v >= 0, "milliseconds as seconds")
        let frac = String(v % 1000)
        return "\(v / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
    }

    static func statusText(_ code: Int64) -> String {
        switch code {
        case 200: return "OK"
        case 206: return "Partial Content"
        case 304: return "Not Modified"
        case 404: return "Not Found"
        case 503: return "Service Unavailable"
        default: return "Status \(code)"
        }
    }

    /// `ms` as decimal seconds with six digits (`0.090000`), plus `micros`.
    static func seconds(_ ms: Int64, micros: Int64 = 0) -> String {
        let us = ms * 1000 + micros
        let frac = String(us % 1_000_000)
        return "\(us / 1_000_000)." + String(repeating: "0", count: 6 - frac.count) + frac
    }

    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for c in s.utf8 { h = (h ^ UInt64(c)) &* 0x100_0000_01b3 }
        return h
    }
}

/// Builds one flat JSON object, keys in the order written.
struct JSONLine {
    private var out: [UInt8] = [UInt8(ascii: "{")]

    private mutating func key(_ k: String) {
        if out.count > 1 { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\""))
        out += k.utf8
        out += "\":".utf8
    }

    mutating func string(_ k: String, _ v: String) {
        key(k)
        out.append(UInt8(ascii: "\""))
        for c in v.utf8 {
            switch c {
            case UInt8(ascii: "\""): out += "\\\"".utf8
            case UInt8(ascii: "\\"): out += "\\\\".utf8
            case 0..<0x20: out += "\\u00".utf8; out += (c < 0x10 ? "0" : "1").utf8; out.append(Array("0123456789abcdef".utf8)[Int(c & 0xF)])
            default: out.append(c)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    mutating func int(_ k: String, _ v: Int64) { key(k); out += String(v).utf8 }

    /// A number already formatted as JSON.
    mutating func number(_ k: String, _ text: String) { key(k); out += text.utf8 }

    mutating func finish() -> [UInt8] { out + [UInt8(ascii: "}")] }
}
