import QoSCore

/// One value of a CMCD key (CTA-5004 / CTA-5004-B; the syntax is an RFC 8941
/// structured-field dictionary). docs/cmcd.md lists the keys we read.
public enum CMCDValue: Sendable, Equatable {
    case integer(Int64)
    case decimal(Double)
    case string(String)
    case token(String)
    case boolean(Bool)
    /// An inner list (v2: `br=(3000 128;a)`): items with their parameters.
    case list([CMCDItem])
}

/// A bare value with its parameters (`;v`, `;r="0-99"`).
public struct CMCDItem: Sendable, Equatable {
    public var value: CMCDValue
    public var params: [String: CMCDValue]
    public init(_ value: CMCDValue, params: [String: CMCDValue] = [:]) { self.value = value; self.params = params }
}

/// A parsed CMCD record: its keys in order; a repeated key keeps its last value.
public struct CMCDRecord: Sendable, Equatable {
    public var keys: [String] = []
    public var values: [String: CMCDItem] = [:]
    public init() {}
    public subscript(_ key: String) -> CMCDValue? { values[key]?.value }

    mutating func set(_ key: String, _ item: CMCDItem) {
        if values.updateValue(item, forKey: key) == nil { keys.append(key) }
    }

    public func integer(_ key: String) -> Int64? { if case .integer(let v)? = self[key] { return v }; return nil }
    public func string(_ key: String) -> String? {
        switch self[key] {
        case .string(let s)?, .token(let s)?: return s
        default: return nil
        }
    }
    /// An integer, or the first integer of an inner list (v2 object-type lists
    /// such as `br=(3000;v 128;a)`): the video one (`;v` or `;av`) if tagged.
    public func firstInteger(_ key: String) -> Int64? {
        switch self[key] {
        case .integer(let v)?: return v
        case .list(let items)?:
            let ints = items.compactMap { item -> (Int64, Bool)? in
                guard case .integer(let v) = item.value else { return nil }
                return (v, item.params["v"] != nil || item.params["av"] != nil)
            }
            return (ints.first(where: { $0.1 }) ?? ints.first)?.0
        default: return nil
        }
    }
    /// A string, or the first string of an inner list (`ec=("E1" "E2")`).
    public func firstString(_ key: String) -> String? {
        switch self[key] {
        case .string(let s)?, .token(let s)?: return s
        case .list(let items)?:
            for i in items { if case .string(let s) = i.value { return s }; if case .token(let s) = i.value { return s } }
            return nil
        default: return nil
        }
    }
}

/// Why a CMCD string is not one (the reject reason is `invalid_cmcd:<what>`).
public struct CMCDSyntaxError: Error, Equatable, Sendable {
    public let what: String
    public var reason: RejectReason { RejectReason("invalid_cmcd:\(what)") }
}

/// A CMCD record the format refuses, with the reason of its `rejects` row.
public struct CMCDReject: Error, Sendable {
    public let reason: RejectReason
    public init(_ reason: RejectReason) { self.reason = reason }
}

/// The CMCD string syntax: `key[=value]` separated by commas; a key alone is
/// boolean true; values are integers, decimals, "strings", tokens, `?0`/`?1`
/// and inner lists `( … )` whose items may carry `;parameters`.
public enum CMCDParser {
    /// The longest report a player may send (docs/cmcd.md).
    public static let recordBytesMax = 64 * 1024
    /// The longest record the daemon reads: a report plus what `qos collect`
    /// appends (`ts`, the client address, its User-Agent clipped to
    /// `BeaconLimits.userAgentBytesMax`, quoted: each byte at most escaped).
    public static let annotatedRecordBytesMax = recordBytesMax + 2 * BeaconLimits.userAgentBytesMax + 1024

    /// The keys CMCD defines (versions 1 and 2) and the two `qos collect`
    /// adds (docs/cmcd.md, "Keys we read" and "Read but not mapped").
    static let definedKeys: Set<String> = [
        "sid", "ts", "cid", "st", "cdn", "br", "pt", "msd", "sta", "e", "ec", "rc", "ttfb", "ttlb", "ot",
        "v", "sf", "sn", "d", "url", "h", "bl", "tbl", "mtp", "dl", "nor", "nrr", "su", "bs", "bsa", "bsd",
        "bsda", "bg", "pr", "rtp", "tb", "lb", "tab", "lab", "tpb", "pb", "ab", "ltc", "dfa", "cs", "nr",
        "ttfbb", "cmsdd", "cmsds", "smrt", "cen", "org.videoqos-ip", "org.videoqos-ua",
    ]

    /// A bad value's reason names its key only when CMCD defines the key:
    /// any other name is the sender's choice, and a reason per name would
    /// grow the reject counters (and `/metrics` series) without bound.
    static func badValue(_ key: String) -> CMCDSyntaxError {
        CMCDSyntaxError(what: definedKeys.contains(key) ? "value:\(key)" : "value:other")
    }

    public static func parse(_ text: String, limit: Int = recordBytesMax) -> Result<CMCDRecord, CMCDSyntaxError> {
        var s = text
        return s.withUTF8 { parse(UnsafeRawBufferPointer($0), limit: limit) }
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer,
                             limit: Int = recordBytesMax) -> Result<CMCDRecord, CMCDSyntaxError> {
        guard bytes.count <= limit else { return .failure(.init(what: "too_large")) }
        var p = Cursor(bytes: bytes)
        var rec = CMCDRecord()
        p.skipSpaces()
        if p.atEnd { return .failure(.init(what: "empty")) }
        while true {
            p.skipSpaces()
            guard let key = p.key() else { return .failure(.init(what: "key")) }
            var item = CMCDItem(.boolean(true))
            if p.peek == UInt8(ascii: "=") {
                p.i += 1
                if p.peek == UInt8(ascii: "(") {
                    guard let list = p.innerList() else { return .failure(badValue(key)) }
                    item = CMCDItem(.list(list))
                } else {
                    guard let v = p.bare() else { return .failure(badValue(key)) }
                    item = CMCDItem(v)
                }
            }
            guard let params = p.params() else { return .failure(badValue(key)) }
            item.params = params
            rec.set(key, item)
            p.skipSpaces()
            if p.atEnd { return .success(rec) }
            guard p.peek == UInt8(ascii: ",") else { return .failure(.init(what: "separator")) }
            p.i += 1
            p.skipSpaces()
            if p.atEnd { return .failure(.init(what: "trailing_comma")) }
        }
    }

    struct Cursor {
        let bytes: UnsafeRawBufferPointer
        var i = 0
        var atEnd: Bool { i >= bytes.count }
        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func skipSpaces() { while let c = peek, c == 0x20 || c == 0x09 { i += 1 } }

        static func isLCAlpha(_ c: UInt8) -> Bool { c >= 0x61 && c <= 0x7a }
        static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        static func isAlpha(_ c: UInt8) -> Bool { isLCAlpha(c) || (c >= 0x41 && c <= 0x5a) }

        /// key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )
        mutating func key() -> String? {
            guard let c = peek, Cursor.isLCAlpha(c) || c == UInt8(ascii: "*") else { return nil }
            let start = i
            while let c = peek, Cursor.isLCAlpha(c) || Cursor.isDigit(c) || c == 0x5f || c == 0x2d || c == 0x2e || c == 0x2a { i += 1 }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        }

        mutating func bare() -> CMCDValue? {
            guard let c = peek else { return nil }
            if c == UInt8(ascii: "\"") { return string() }
            if c == UInt8(ascii: "?") {
                i += 1
                guard let b = peek, b == 0x30 || b == 0x31 else { return nil }
                i += 1
                return .boolean(b == 0x31)
            }
            if c == UInt8(ascii: "-") || Cursor.isDigit(c) { return number() }
            if Cursor.isAlpha(c) || c == UInt8(ascii: "*") { return token() }
            return nil
        }

        mutating func string() -> CMCDValue? {
            i += 1
            var out: [UInt8] = []
            while let c = peek {
                i += 1
                if c == UInt8(ascii: "\\") {
                    guard let e = peek, e == UInt8(ascii: "\"") || e == UInt8(ascii: "\\") else { return nil }
                    out.append(e); i += 1
                } else if c == UInt8(ascii: "\"") {
                    return .string(String(decoding: out, as: UTF8.self))
                } else if c < 0x20 || c > 0x7e {
                    return nil   // sf-string: printable ASCII only
                } else {
                    out.append(c)
                }
            }
            return nil
        }

        /// Tokens: ( ALPHA / "*" ) *( tchar / ":" / "/" ).
        mutating func token() -> CMCDValue? {
            let start = i
            i += 1
            while let c = peek, Cursor.isTchar(c) || c == UInt8(ascii: ":") || c == UInt8(ascii: "/") { i += 1 }
            return .token(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
        }

        static func isTchar(_ c: UInt8) -> Bool {
            if isAlpha(c) || isDigit(c) { return true }
            return "!#$%&'*+-.^_`|~".utf8.contains(c)
        }

        /// Integer: at most 15 digits; decimal: at most 12 integer and 3 fraction digits.
        mutating func number() -> CMCDValue? {
            var negative = false
            if peek == UInt8(ascii: "-") { negative = true; i += 1 }
            var intPart: Int64 = 0, intDigits = 0
            while let c = peek, Cursor.isDigit(c) {
                intDigits += 1
                guard intDigits <= 15 else { return nil }
                intPart = intPart * 10 + Int64(c - 0x30); i += 1
            }
            guard intDigits > 0 else { return nil }
            guard peek == UInt8(ascii: ".") else { return .integer(negative ? -intPart : intPart) }
            guard intDigits <= 12 else { return nil }
            i += 1
            var frac = 0.0, scale = 1.0, fracDigits = 0
            while let c = peek, Cursor.isDigit(c) {
                fracDigits += 1
                guard fracDigits <= 3 else { return nil }
                scale /= 10; frac += Double(c - 0x30) * scale; i += 1
            }
            guard fracDigits > 0 else { return nil }
            let v = Double(intPart) + frac
            return .decimal(negative ? -v : v)
        }

        mutating func params() -> [String: CMCDValue]? {
            var out: [String: CMCDValue] = [:]
            while peek == UInt8(ascii: ";") {
                i += 1
                skipSpaces()
                guard let k = key() else { return nil }
                if peek == UInt8(ascii: "=") {
                    i += 1
                    guard let v = bare() else { return nil }
                    out[k] = v
                } else {
                    out[k] = .boolean(true)
                }
            }
            return out
        }

        mutating func innerList() -> [CMCDItem]? {
            i += 1   // (
            var items: [CMCDItem] = []
            while true {
                while peek == 0x20 { i += 1 }
                guard let c = peek else { return nil }
                if c == UInt8(ascii: ")") { i += 1; return items }
                guard let v = bare(), let p = params() else { return nil }
                items.append(CMCDItem(v, params: p))
                guard let n = peek, n == 0x20 || n == UInt8(ascii: ")") else { return nil }
                guard items.count <= 256 else { return nil }
            }
        }
    }

    /// Writes a value in CMCD syntax (for records the collector builds).
    public static func serialize(_ v: CMCDValue) -> String {
        switch v {
        case .integer(let i): return String(i)
        case .decimal(let d):
            var s = String((d * 1000).rounded() / 1000)
            if s.hasSuffix(".0") { s.removeLast(2); s += ".0" }
            return s
        case .string(let s): return quote(s)
        case .token(let t): return t
        case .boolean(let b): return b ? "?1" : "?0"
        case .list(let items):
            return "(" + items.map { item in
                serialize(item.value) + item.params.sorted { $0.key < $1.key }.map { k, v in
                    if case .boolean(true) = v { return ";\(k)" }
                    return ";\(k)=\(serialize(v))"
                }.joined()
            }.joined(separator: " ") + ")"
        }
    }

    /// An sf-string: printable ASCII, `"` and `\` escaped; other bytes become `?`.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            if u == "\"" || u == "\\" { out += "\\"; out.unicodeScalars.append(u) }
            else if u.value >= 0x20 && u.value <= 0x7e { out.unicodeScalars.append(u) }
            else { out += "?" }
        }
        return out + "\""
    }
}
