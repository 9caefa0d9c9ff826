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
    /// Keys the collector adds: the client address and its User-Agent
    /// (custom keys carry a hyphenated prefix, as CTA-5004 requires).
    public static let ipKey = "org.videoqos-ip"
    public static let userAgentKey = "org.videoqos-ua"
    static let headerNames = ["cmcd-request", "cmcd-object", "cmcd-status", "cmcd-session"]
    static let tokenKeys: Set<String> = ["ot", "sf", "st", "sta", "e"]

    /// The records of one request, each checked and annotated with the
    /// client's address, its User-Agent and, when the player sent no `ts`
    /// (request mode), the time the collector received it.
    static func records(method: String, query: String, header: (String) -> String?, body: [UInt8],
                        ip: String, userAgent: String?, nowMs: Int64) -> [CMCDIncoming] {
        var raw: [[UInt8]] = []
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
        if !requestMode.isEmpty { raw.append(Array(requestMode.joined(separator: ",").utf8)) }

        if method == "POST", let first = body.first(where: { $0 != 0x20 && $0 != 0x0a && $0 != 0x0d && $0 != 0x09 }) {
            if first == UInt8(ascii: "{") || first == UInt8(ascii: "[") {
                switch fromJSON(body) {
                case .success(let lines): raw += lines
                case .failure(let r): out.append(.reject(r.reason, body))
                }
            } else {
                for line in body.split(separator: 0x0a) {
                    var l = Array(line)
                    while let c = l.last, c == 0x0d || c == 0x20 { l.removeLast() }
                    if !l.isEmpty { raw.append(l) }
                }
            }
        }

        for bytes in raw {
            let parsed = bytes.withUnsafeBytes { CMCDParser.parse($0) }
            guard case .success(let rec) = parsed else {
                if case .failure(let e) = parsed { out.append(.reject(e.reason, bytes)) }
                continue
            }
            var text = String(decoding: bytes, as: UTF8.self)
            if rec["ts"] == nil { text += ",ts=\(nowMs)" }
            text += ",\(ipKey)=\(CMCDParser.quote(ip))"
            if let ua = userAgent, !ua.isEmpty { text += ",\(userAgentKey)=\(CMCDParser.quote(ua))" }
            guard case .success(let full) = CMCDParser.parse(text) else {
                out.append(.reject(RejectReason("invalid_cmcd:syntax"), bytes))
                continue
            }
            if let r = CMCDFormat.validate(full) { out.append(.reject(r, bytes)); continue }
            out.append(.record(text, sid: full.string("sid")))
        }
        return out
    }

    /// CMCD's JSON form (CTA-5004 §3.4 "json" transmission): members are
    /// keys; numbers, strings, booleans and arrays map to the CMCD types
    /// (tokens for `ot`, `sf`, `st`, `sta`, `e`). Keys, tokens, strings and
    /// numbers are held to the rules of the text form (`CMCDParser`) before
    /// they are written as CMCD text, with the same reject reasons: a value
    /// can never add keys of its own to the record (docs/cmcd.md).
    static func fromJSON(_ body: [UInt8]) -> Result<[[UInt8]], CMCDReject> {
        // Foundation's parser recurses per nesting level: refuse deep input first.
        guard nestingDepth(body) <= BeaconLimits.nestingDepthMax else { return .failure(CMCDReject(.invalidJSON)) }
        guard let any = try? JSONSerialization.jsonObject(with: Data(body), options: []) else {
            return .failure(CMCDReject(.invalidJSON))
        }
        let objects: [Any] = (any as? [Any]) ?? [any]
        if objects.isEmpty { return .failure(CMCDReject(.emptyBatch)) }
        var out: [[UInt8]] = []
        for o in objects {
            guard let dict = o as? [String: Any] else { return .failure(CMCDReject(.notAnObject)) }
            var parts: [String] = []
            for (k, v) in dict.sorted(by: { $0.key < $1.key }) {
                guard isKey(k) else { return .failure(CMCDReject(RejectReason("invalid_cmcd:key"))) }
                guard let value = cmcdValue(k, v) else { return .failure(CMCDReject(CMCDParser.badValue(k).reason)) }
                if case .boolean(true) = value { parts.append(k) } else { parts.append("\(k)=\(CMCDParser.serialize(value))") }
            }
            if parts.isEmpty { return .failure(CMCDReject(RejectReason("invalid_cmcd:empty"))) }
            out.append(Array(parts.joined(separator: ",").utf8))
        }
        return .success(out)
    }

    /// The deepest `[`/`{` nesting of `body` outside strings.
    static func nestingDepth(_ body: [UInt8]) -> Int {
        var depth = 0, deepest = 0, inString = false, escaped = false
        for c in body {
            if inString {
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch c {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"): depth += 1; deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return deepest
    }

    /// key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ), as `CMCDParser` reads it.
    static func isKey(_ k: String) -> Bool {
        guard let first = k.utf8.first, CMCDParser.Cursor.isLCAlpha(first) || first == UInt8(ascii: "*") else { return false }
        return k.utf8.allSatisfy { CMCDParser.Cursor.isLCAlpha($0) || CMCDParser.Cursor.isDigit($0) || "_-.*".utf8.contains($0) }
    }

    /// token = ( ALPHA / "*" ) *( tchar / ":" / "/" ).
    static func isToken(_ t: String) -> Bool {
        guard let first = t.utf8.first, CMCDParser.Cursor.isAlpha(first) || first == UInt8(ascii: "*") else { return false }
        return t.utf8.allSatisfy { CMCDParser.Cursor.isTchar($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "/") }
    }

    /// A JSON value as a CMCD value, or nil when the text form could not
    /// carry it: a string with a byte outside printable ASCII, a token that
    /// is not one, a number with more digits than CMCD's integers (15) and
    /// decimals (12 before the point) have.
    private static func cmcdValue(_ key: String, _ v: Any) -> CMCDValue? {
        if let n = v as? NSNumber {
            if String(cString: n.objCType) == "c" { return .boolean(n.boolValue) }
            let d = n.doubleValue
            guard d.isFinite else { return nil }
            if d == d.rounded(), abs(d) < 1e15 { return .integer(Int64(d)) }
            guard abs(d) < 1e12 else { return nil }
            return .decimal(d)
        }
        if let s = v as? String {
            if tokenKeys.contains(key) { return isToken(s) ? .token(s) : nil }
            guard s.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value <= 0x7e }) else { return nil }
            return .string(s)
        }
        if let a = v as? [Any] {
            var items: [CMCDItem] = []
            for e in a {
                guard let x = cmcdValue(key, e) else { return nil }
                if case .list = x { return nil }
                items.append(CMCDItem(x))
            }
            return .list(items)
        }
        return nil
    }
}
