import Foundation
import QoSCore

/// CMCD's JSON form (CTA-5004 §3.4 "json" transmission; docs/cmcd.md
/// "Transport"): one object, or an array of objects, whose members are CMCD
/// keys; numbers, strings, booleans and arrays map to the CMCD types (tokens
/// for `ot`, `sf`, `st`, `sta`, `e`). Keys, tokens, strings and numbers are
/// held to the rules of the text form (`CMCDParser`) before they are written
/// as CMCD text, with the same reject reasons: a value can never add keys of
/// its own to the record. `qos collect` converts what players post with it,
/// and `CMCDFormat` reads a record in this form the same way, so a report the
/// collector refused is refused by the daemon with the same reason.
enum CMCDJSON {
    static let tokenKeys: Set<String> = ["ot", "sf", "st", "sta", "e"]

    /// A report of a JSON body that cannot be used: why, and its JSON as a
    /// one-element array (what the collector produces for the `rejects` table:
    /// read again, it gives the same reason, an element that is not an object
    /// too). The element's bytes are the player's own, as they came.
    struct Refused: Error {
        let reason: CMCDReject
        let json: [UInt8]
    }

    /// One report of a JSON body: where its element lies in the body (nil
    /// when it could not be located, e.g. behind a byte-order mark) and its
    /// CMCD text, or why it cannot be one.
    struct Report {
        let span: Range<Int>?
        let result: Result<[UInt8], Refused>
    }

    /// Each report of `body`, in order. The whole body fails when it is not
    /// JSON (or nested too deep) or is an empty array.
    static func reports(_ body: [UInt8]) -> Result<[Report], CMCDReject> {
        let (depth, spans) = body.withUnsafeBytes { scan($0) }
        // Foundation's parser recurses per nesting level: refuse deep input first.
        guard depth <= BeaconLimits.nestingDepthMax else { return .failure(CMCDReject(.invalidJSON)) }
        guard let any = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) else {
            return .failure(CMCDReject(.invalidJSON))
        }
        let elements: [Any] = (any as? [Any]) ?? [any]
        if elements.isEmpty { return .failure(CMCDReject(.emptyBatch)) }
        let located = spans.count == elements.count
        return .success(elements.enumerated().map { i, e in
            let span = located ? spans[i] : nil
            return Report(span: span, result: report(e).mapError { reason in
                let json = span.map { oneElementArray(body, $0) }
                    ?? (try? JSONSerialization.data(withJSONObject: [e], options: [.sortedKeys])).map { Array($0) } ?? []
                return Refused(reason: reason, json: json)
            })
        })
    }

    /// The element at `span` of `body`, in its own bytes, as a one-element
    /// array: how the collector produces a refused report of the JSON form.
    static func oneElementArray(_ body: [UInt8], _ span: Range<Int>) -> [UInt8] {
        [UInt8(ascii: "[")] + body[span] + [UInt8(ascii: "]")]
    }

    /// One element as CMCD text.
    static func report(_ element: Any) -> Result<[UInt8], CMCDReject> {
        guard let dict = element as? [String: Any] else { return .failure(CMCDReject(.notAnObject)) }
        var parts: [String] = []
        for (k, v) in dict.sorted(by: { $0.key < $1.key }) {
            guard isKey(k) else { return .failure(CMCDReject(RejectReason("invalid_cmcd:key"))) }
            guard let value = cmcdValue(k, v) else { return .failure(CMCDReject(CMCDParser.badValue(k).reason)) }
            if case .boolean(true) = value { parts.append(k) } else { parts.append("\(k)=\(CMCDParser.serialize(value))") }
        }
        if parts.isEmpty { return .failure(CMCDReject(RejectReason("invalid_cmcd:empty"))) }
        return .success(Array(parts.joined(separator: ",").utf8))
    }

    /// One walk over `body`, outside its strings: the deepest `[`/`{`
    /// nesting, and the byte range of each element of a top-level array
    /// (whitespace around it left out), in order; for a body that is not an
    /// array, the body without its surrounding whitespace. The ranges are
    /// meaningful only for a body that parses as JSON.
    static func scan(_ body: UnsafeRawBufferPointer) -> (depth: Int, elements: [Range<Int>]) {
        func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d }
        var lo = 0, hi = body.count
        while lo < hi, isSpace(body[lo]) { lo += 1 }
        while hi > lo, isSpace(body[hi - 1]) { hi -= 1 }
        let isArray = lo < hi && body[lo] == UInt8(ascii: "[") && body[hi - 1] == UInt8(ascii: "]")
        var spans: [Range<Int>] = []
        var depth = 0, deepest = 0, inString = false, escaped = false, start = lo + 1
        func close(_ end: Int) {
            var a = start, b = end
            while a < b, isSpace(body[a]) { a += 1 }
            while b > a, isSpace(body[b - 1]) { b -= 1 }
            if a < b { spans.append(a..<b) }
        }
        for i in lo..<hi {
            let c = body[i]
            if inString {
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch c {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"): depth += 1; deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            case UInt8(ascii: ",") where isArray && depth == 1: close(i); start = i + 1
            default: break
            }
        }
        if isArray { close(hi - 1) } else if lo < hi { spans = [lo..<hi] }
        return (deepest, spans)
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
    static func cmcdValue(_ key: String, _ v: Any) -> CMCDValue? {
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
