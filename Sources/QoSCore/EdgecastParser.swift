/// The `edgecast` CDN log format: Edgio/EdgeCast "Real-Time Log Delivery"
/// (RTLD CDN) JSON records (README "Input: CDN access logs",
/// docs/semantics.md "CDN access logs"). A message is one record (a JSON
/// object), a JSON array of records, or the RTLD batch form: a JSON array of
/// JSON-encoded strings, each holding one record.
///
/// Fields read (the vendor's units): `timestamp` (Unix seconds with a
/// fraction; truncated to whole seconds), `status_code`, `pop`,
/// `write_time` (seconds → `serveMs`), `bytes_out`, `cache_status`,
/// `rewritten_path` (→ `account`, `owner`), `client_ip`,
/// `last_byte_served` (0 → an incomplete response). EdgeCast logs no
/// first-byte time for the client, so `ttfbMs` is nil. Every other key is
/// validated and skipped.
///
/// Rejects: `invalid_json` (the message, or one batch string, is not JSON),
/// `not_an_object`, `empty_batch`, `missing_field:status_code`,
/// `missing_field:timestamp` (absent or null), `wrong_type:<field>`,
/// `invalid_value:<field>`, `field_too_long:<field>`, `invalid_utf8`.
public final class EdgecastParser: CdnLogParser {
    public static let formatName = "edgecast"

    public init() {}

    public func parse(_ message: UnsafeRawBufferPointer, _ emit: (CdnLogItem) -> Void) {
        var c = JSONCursor(message)
        c.skipByteOrderMark()
        let bodyStart = c.index
        // Validate the whole message first: nothing is emitted from a message
        // that is not JSON (its records' boundaries are unknown).
        var check = c
        guard check.skipValue(depth: 0) else { return emit(.reject(.invalidJSON, payload: 0..<message.count)) }
        check.skipWhitespace()
        guard check.atEnd else { return emit(.reject(.invalidJSON, payload: 0..<message.count)) }
        c.skipWhitespace()
        switch c.peek() {
        case UInt8(ascii: "{"):
            emit(Self.record(message, from: c.index))
        case UInt8(ascii: "["):
            c.advance()
            c.skipWhitespace()
            if c.peek() == UInt8(ascii: "]") { return emit(.reject(.emptyBatch, payload: bodyStart..<message.count)) }
            while true {
                c.skipWhitespace()
                let start = c.index
                switch c.peek() {
                case UInt8(ascii: "{"):
                    emit(Self.record(message, from: start))
                    _ = c.skipValue(depth: 1)
                case UInt8(ascii: "\""):
                    guard let raw = c.readRawString() else { return }  // validated above
                    emit(Self.batchString(c, raw, range: start..<c.index))
                default:
                    _ = c.skipValue(depth: 1)
                    emit(.reject(.notAnObject, payload: start..<c.index))
                }
                c.skipWhitespace()
                guard c.next() == UInt8(ascii: ",") else { return }
            }
        default:
            emit(.reject(.notAnObject, payload: bodyStart..<message.count))
        }
    }

    /// One record of the batch form: a JSON string holding a JSON object.
    /// Rejects carry the string token's range in the message.
    static func batchString(_ c: JSONCursor, _ raw: JSONCursor.RawString, range: Range<Int>) -> CdnLogItem {
        let bytes: [UInt8]
        if raw.hasEscapes {
            guard let b = c.unescaped(raw) else { return .reject(.invalidJSON, payload: range) }
            bytes = b
        } else {
            bytes = Array(c.slice(raw.start..<raw.end))
        }
        return bytes.withUnsafeBytes { inner in
            var ic = JSONCursor(inner)
            var check = ic
            guard check.skipValue(depth: 1) else { return .reject(.invalidJSON, payload: range) }
            check.skipWhitespace()
            guard check.atEnd else { return .reject(.invalidJSON, payload: range) }
            ic.skipWhitespace()
            guard ic.peek() == UInt8(ascii: "{") else { return .reject(.notAnObject, payload: range) }
            switch record(inner, from: ic.index) {
            case .record(let r): return .record(r.spanning(range))   // the string, in the message
            case .reject(let reason, _): return .reject(reason, payload: range)
            }
        }
    }

    /// Reads the (already validated) object starting at `start`.
    static func record(_ bytes: UnsafeRawBufferPointer, from start: Int) -> CdnLogItem {
        var c = JSONCursor(bytes)
        c.index = start
        var f = Fields()
        c.advance()  // {
        c.skipWhitespace()
        if c.peek() == UInt8(ascii: "}") { c.advance() } else {
            while true {
                c.skipWhitespace()
                guard let key = c.readRawString() else { break }
                c.skipWhitespace()
                c.advance()  // :
                c.skipWhitespace()
                if let reason = f.read(key, &c) {
                    _ = c.skipValue(depth: 1)
                    return .reject(reason, payload: start..<end(bytes, start))
                }
                c.skipWhitespace()
                guard c.next() == UInt8(ascii: ",") else { break }
            }
        }
        let range = start..<c.index
        guard let status = f.status else { return .reject(.missingField("status_code"), payload: range) }
        guard let seconds = f.seconds else { return .reject(.missingField("timestamp"), payload: range) }
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return .reject(.invalidValue("timestamp"), payload: range) }
        let (account, owner) = f.pathRaw.map {
            pathParts(bytes: UnsafeRawBufferPointer(rebasing: c.base[$0.start..<$0.end]).assumingMemoryBound(to: UInt8.self))
        } ?? pathParts(f.path)
        return .record(CdnLogRecord(timeMs: ms, cdn: formatName, account: account, owner: owner, pop: f.pop,
                                    status: status, serveMs: f.serveMs, ttfbMs: nil, bytesOut: f.bytesOut,
                                    cache: f.cache, clientIP: f.clientIP, incomplete: f.incomplete).spanning(range))
    }

    /// End of the (validated) value starting at `start`.
    static func end(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> Int {
        var c = JSONCursor(bytes)
        c.index = start
        _ = c.skipValue(depth: 1)
        return c.index
    }

    /// The fields of one record, as read so far.
    struct Fields {
        var seconds: Int64?
        var status: Int32?
        var pop = ""
        var serveMs: Double?
        var bytesOut: Int64 = 0
        var cache = CdnLogRecord.CacheOutcome.other
        var path = ""
        /// `rewritten_path` as the record's own bytes (plain ASCII, the common
        /// case): account and owner are read from them without a copy.
        var pathRaw: JSONCursor.RawString?
        var clientIP = ""
        var incomplete: Bool?

        /// Reads the value of `key` if it is a field of ours (else skips
        /// it); returns a reject reason for a value of the wrong shape.
        mutating func read(_ key: JSONCursor.RawString, _ c: inout JSONCursor) -> RejectReason? {
            if c.keyEquals(key, "timestamp") {
                guard !c.readLiteral("null") else { seconds = nil; return nil }
                guard let t = c.readNumber() else { return .wrongType("timestamp") }
                guard let s = EdgecastParser.wholeSeconds(c, t) else { return .invalidValue("timestamp") }
                seconds = s
            } else if c.keyEquals(key, "status_code") {
                guard !c.readLiteral("null") else { status = nil; return nil }
                guard let t = c.readNumber(), t.isInteger else { return .wrongType("status_code") }
                guard let v = c.int64(t), v >= 0, v <= 999 else { return .invalidValue("status_code") }
                status = Int32(v)
            } else if c.keyEquals(key, "write_time") {
                guard !c.readLiteral("null") else { serveMs = nil; return nil }
                guard let t = c.readNumber() else { return .wrongType("write_time") }
                guard let s = EdgecastParser.double(c, t), s >= 0, s <= 86_400 else { return .invalidValue("write_time") }
                serveMs = s * 1000
            } else if c.keyEquals(key, "bytes_out") {
                guard !c.readLiteral("null") else { bytesOut = 0; return nil }
                guard let t = c.readNumber(), t.isInteger else { return .wrongType("bytes_out") }
                guard let v = c.int64(t), v >= 0, v <= BeaconLimits.segmentBytesMax else { return .invalidValue("bytes_out") }
                bytesOut = v
            } else if c.keyEquals(key, "last_byte_served") {
                guard !c.readLiteral("null") else { incomplete = nil; return nil }
                guard let t = c.readNumber(), t.isInteger, let v = c.int64(t) else { return .wrongType("last_byte_served") }
                incomplete = v == 0
            } else if c.keyEquals(key, "pop") {
                return string(&c, "pop", BeaconLimits.otherStringBytesMax) { pop = $0 }
            } else if c.keyEquals(key, "cache_status") {
                return string(&c, "cache_status", BeaconLimits.otherStringBytesMax) { cache = EdgecastParser.cacheOutcome($0) }
            } else if c.keyEquals(key, "rewritten_path") {
                let max = BeaconLimits.userAgentBytesMax * 8
                pathRaw = nil
                if c.peek() == UInt8(ascii: "\""), let raw = c.readRawString() {
                    guard raw.hasEscapes || !c.isASCII(raw) else {
                        guard raw.length <= max else { return .fieldTooLong("rewritten_path") }
                        pathRaw = raw
                        return nil
                    }
                    guard let s = c.string(raw) else { return .invalidUTF8 }
                    guard s.utf8.count <= max else { return .fieldTooLong("rewritten_path") }
                    path = s
                    return nil
                }
                return string(&c, "rewritten_path", max) { path = $0 }
            } else if c.keyEquals(key, "client_ip") {
                return string(&c, "client_ip", BeaconLimits.otherStringBytesMax) { clientIP = $0 }
            } else {
                _ = c.skipValue(depth: 1)
            }
            return nil
        }

        /// A string field (null = absent, `""`).
        func string(_ c: inout JSONCursor, _ name: String, _ max: Int, _ set: (String) -> Void) -> RejectReason? {
            if c.readLiteral("null") { set(""); return nil }
            guard c.peek() == UInt8(ascii: "\"") else { return .wrongType(name) }
            guard let raw = c.readRawString() else { return .wrongType(name) }
            guard let s = c.string(raw) else { return .invalidUTF8 }
            guard s.utf8.count <= max else { return .fieldTooLong(name) }
            set(s)
            return nil
        }
    }

    /// The integer part of a number of seconds (truncation toward zero),
    /// read from its digits so no precision is lost; nil when out of range.
    static func wholeSeconds(_ c: JSONCursor, _ t: JSONCursor.NumberToken) -> Int64? {
        DecimalText.wholePart(c.slice(t.start..<t.end))  // at most 15 digits: < 31 million years
    }

    /// A number token's value.
    static func double(_ c: JSONCursor, _ t: JSONCursor.NumberToken) -> Double? {
        guard t.end - t.start <= 64 else { return nil }
        return Double(String(decoding: c.slice(t.start..<t.end), as: UTF8.self))
    }

    /// EdgeCast `cache_status` values: hits and misses per docs/semantics.md
    /// "CDN access logs"; anything else (CONFIG_NOCACHE, UNCACHEABLE, NONE) is other.
    public static func cacheOutcome(_ s: String) -> CdnLogRecord.CacheOutcome {
        switch s {
        case "TCP_HIT", "TCP_EXPIRED_HIT", "TCP_PARTIAL_HIT": return .hit
        case "TCP_MISS", "TCP_EXPIRED_MISS", "TCP_CLIENT_REFRESH_MISS": return .miss
        default: return .other
        }
    }

    /// `account` and `owner` of a `rewritten_path`: the account is its first
    /// segment (`/80C078/…` → `80C078`); the owner is the first 32-hex
    /// segment of the first `/<32 hex>/<32 hex>/` in the text between the
    /// first and the second `/slices` (to the end when there is no second),
    /// else `""`.
    public static func pathParts(_ path: String) -> (account: String, owner: String) {
        var path = path
        return path.withUTF8 { pathParts(bytes: $0) }
    }

    static func pathParts(bytes b: UnsafeBufferPointer<UInt8>) -> (account: String, owner: String) {
        var i = 0
        if i < b.count, b[i] == UInt8(ascii: "/") { i += 1 }
        var j = i
        while j < b.count, b[j] != UInt8(ascii: "/") { j += 1 }
        let account = String(decoding: UnsafeBufferPointer(rebasing: b[i..<j]), as: UTF8.self)
        return (account, owner(b))
    }

    static func owner(_ b: UnsafeBufferPointer<UInt8>) -> String {
        do {
            let n = b.count
            // `/slices` from `from` on: the first byte before the other six.
            func find(_ from: Int) -> Int? {
                var k = from
                while k + 7 <= n {
                    if b[k] == UInt8(ascii: "/"), b[k + 1] == UInt8(ascii: "s"), b[k + 2] == UInt8(ascii: "l"),
                       b[k + 3] == UInt8(ascii: "i"), b[k + 4] == UInt8(ascii: "c"), b[k + 5] == UInt8(ascii: "e"),
                       b[k + 6] == UInt8(ascii: "s") { return k }
                    k += 1
                }
                return nil
            }
            guard let first = find(0) else { return "" }
            let from = first + 7
            let to = find(from) ?? n
            func isHex(_ x: UInt8) -> Bool {
                (x >= 0x30 && x <= 0x39) || (x >= 0x61 && x <= 0x66) || (x >= 0x41 && x <= 0x46)
            }
            func hex32(_ at: Int) -> Bool {
                guard at + 32 <= to else { return false }
                for k in at..<(at + 32) where !isHex(b[k]) { return false }
                return true
            }
            // `/<32 hex>/<32 hex>/`, 67 bytes, wholly inside [from, to).
            var k = from
            while k + 67 <= to {
                if b[k] == UInt8(ascii: "/"), b[k + 33] == UInt8(ascii: "/"), b[k + 66] == UInt8(ascii: "/"),
                   hex32(k + 1), hex32(k + 34) {
                    return String(decoding: UnsafeBufferPointer(rebasing: b[(k + 1)..<(k + 33)]), as: UTF8.self)
                }
                k += 1
            }
            return ""
        }
    }
}
