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
        case edgecast
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
