import Foundation
import QoSCore

/// A CMCD record as the collector takes it from one HTTP request, or why not.
enum CMCDIncoming {
    case record(String, sid: String?)
    case reject(RejectReason, [UInt8])
}

/// Where CMCD arrives over HTTP (docs/cmcd.md, "Transport"): the `CMCD`
/// query parameter and the `CMCD-Request` / `-Object` / `-Status` /
/// `-Session` headers (request mode: together one record), and the body of
/// a POST (event and response mode): one report per line, or JSON — an
/// object or an array of objects whose members are CMCD keys.
public enum CMCDHTTP {
    /// A report of one request before it is checked: CMCD text — with, for
    /// a report of the JSON form, where its element lies in the body: if the
    /// checks refuse it, the element is produced in its own bytes as a
    /// one-element array, which the daemon refuses with the same reason and
    /// keeps as the element, as it keeps a direct producer's
    /// (CMCDFormat.decode) — or a report already refused.
    enum Pending {
        case text([UInt8], element: Range<Int>?)
        case refused(RejectReason, [UInt8])
    }

    /// Keys the collector adds: the client address and its User-Agent
    /// (custom keys carry a hyphenated prefix, as CTA-5004 requires).
    public static let ipKey = "org.videoqos-ip"
    public static let userAgentKey = "org.videoqos-ua"
    static let headerNames = ["cmcd-request", "cmcd-object", "cmcd-status", "cmcd-session"]

    /// The records of one request, each checked and annotated with the
    /// client's address, its User-Agent and, when the player sent no `ts`
    /// (request mode), the time the collector received it.
    static func records(method: String, query: String, header: (String) -> String?, body: [UInt8],
                        ip: String, userAgent: String?, nowMs: Int64) -> [CMCDIncoming] {
        // The request's reports in order (the answer's `index` is a position in it).
        var raw: [Pending] = []
        var out: [CMCDIncoming] = []
        var requestMode: [String] = []
        for part in query.split(separator: "&") where part.hasPrefix("CMCD=") {
            let v = String(part.dropFirst(5)).replacingOccurrences(of: "+", with: " ")
            guard let decoded = v.removingPercentEncoding else {
                out.append(.reject(RejectReason("invalid_cmcd:query_encoding"), Array(part.utf8)))
                continue
            }
            if !decoded.isEmpty { requestMode.append(decoded) }
        }
        for name in headerNames { if let v = header(name), !v.isEmpty { requestMode.append(v) } }
        if !requestMode.isEmpty { raw.append(.text(Array(requestMode.joined(separator: ",").utf8), element: nil)) }

        if method == "POST", let first = body.first(where: { $0 != 0x20 && $0 != 0x0a && $0 != 0x0d && $0 != 0x09 }) {
            if first == UInt8(ascii: "{") || first == UInt8(ascii: "[") {
                // Each report of the JSON form on its own: the valid ones are
                // taken; a bad one is produced as a one-element array of its
                // own bytes (`Pending`).
                switch CMCDJSON.reports(body) {
                case .failure(let r): raw.append(.refused(r.reason, body))
                case .success(let reports):
                    for report in reports {
                        switch report.result {
                        case .success(let line):
                            raw.append(.text(line, element: report.span))
                        case .failure(let bad): raw.append(.refused(bad.reason.reason, bad.json))
                        }
                    }
                }
            } else {
                for line in body.split(separator: 0x0a) {
                    var l = Array(line)
                    while let c = l.last, c == 0x0d || c == 0x20 { l.removeLast() }
                    if !l.isEmpty { raw.append(.text(l, element: nil)) }
                }
            }
        }

        for pending in raw {
            guard case .text(let bytes, let element) = pending else {
                if case .refused(let reason, let payload) = pending { out.append(.reject(reason, payload)) }
                continue
            }
            // What a refusal below produces (built only then).
            var refusedAs: [UInt8] { element.map { CMCDJSON.oneElementArray(body, $0) } ?? bytes }
            let parsed = bytes.withUnsafeBytes { CMCDParser.parse($0) }
            guard case .success(let rec) = parsed else {
                if case .failure(let e) = parsed { out.append(.reject(e.reason, refusedAs)) }
                continue
            }
            var text = String(decoding: bytes, as: UTF8.self)
            if rec["ts"] == nil { text += ",ts=\(nowMs)" }
            text += ",\(ipKey)=\(CMCDParser.quote(ip))"
            if let ua = userAgent, !ua.isEmpty {
                text += ",\(userAgentKey)=\(CMCDParser.quote(CMCDFormat.clip(ua, BeaconLimits.userAgentBytesMax)))"
            }
            // The report passed the 64 KiB limit above; what was appended is bounded.
            guard case .success(let full) = CMCDParser.parse(text, limit: CMCDParser.annotatedRecordBytesMax) else {
                out.append(.reject(RejectReason("invalid_cmcd:syntax"), refusedAs))
                continue
            }
            if let r = CMCDFormat.validate(full) { out.append(.reject(r, refusedAs)); continue }
            out.append(.record(text, sid: full.string("sid")))
        }
        return out
    }
}
