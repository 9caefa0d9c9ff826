import QoSCore

/// A scalar of a CDN log JSON object, as a byte range of the message (built
/// into a value only when a parser asks for that field).
enum FlatJSONValue {
    case string(Range<Int>, escaped: Bool)
    case number(Range<Int>)
    case bool(Bool)
    case null
    /// An array member: CDN log fields are scalars; arrays are skipped.
    case array
}

/// A bounds-checked JSON lexer for the JSON CDN log formats (Fastly, Akamai
/// DataStream 2). It reports an object's scalar members with their key path
/// (nested objects flattened as `outer.inner`), never traps on any input and
/// caps nesting at `maxDepth`.
struct FlatJSONReader {
    let base: UnsafeRawBufferPointer
    var index = 0
    static let maxDepth = 32
    /// The key path of the member being reported (reused across members).
    private(set) var path: [UInt8] = []

    init(_ base: UnsafeRawBufferPointer) { self.base = base }

    var atEnd: Bool { index >= base.count }
    func peek() -> UInt8? { index < base.count ? base[index] : nil }

    mutating func skipByteOrderMark() {
        if index == 0 && base.count >= 3 && base[0] == 0xEF && base[1] == 0xBB && base[2] == 0xBF { index = 3 }
    }

    mutating func skipWhitespace() {
        while index < base.count {
            let c = base[index]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            index += 1
        }
    }

    /// A string token: the range between the quotes, and whether it has
    /// escapes (scanned and validated by the beacon decoder's scanner).
    mutating func readString() -> (Range<Int>, Bool)? {
        guard peek() == UInt8(ascii: "\""), let s = JSONStringToken.scan(base, at: index) else { return nil }
        index = s.next
        return (s.range, s.escaped)
    }

    /// A number token per RFC 8259.
    mutating func readNumber() -> Range<Int>? {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let d = peek(), FlatJSONReader.isDigit(d) else { return nil }
        if d == UInt8(ascii: "0") { index += 1 } else { skipDigits() }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard let f = peek(), FlatJSONReader.isDigit(f) else { return nil }
            skipDigits()
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            index += 1
            if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { index += 1 }
            guard let f = peek(), FlatJSONReader.isDigit(f) else { return nil }
            skipDigits()
        }
        return start..<index
    }

    private mutating func skipDigits() {
        while index < base.count, FlatJSONReader.isDigit(base[index]) { index += 1 }
    }

    static func isDigit(_ c: UInt8) -> Bool { c &- 0x30 < 10 }

    mutating func readLiteral(_ lit: StaticString) -> Bool {
        let n = lit.utf8CodeUnitCount
        guard index + n <= base.count else { return false }
        let p = lit.utf8Start
        for k in 0..<n where base[index + k] != p[k] { return false }
        index += n
        return true
    }

    /// Skips (and validates) any JSON value.
    mutating func skipValue(depth: Int) -> Bool {
        guard depth <= FlatJSONReader.maxDepth else { return false }
        skipWhitespace()
        guard let c = peek() else { return false }
        switch c {
        case UInt8(ascii: "\""): return readString() != nil
        case UInt8(ascii: "t"): return readLiteral("true")
        case UInt8(ascii: "f"): return readLiteral("false")
        case UInt8(ascii: "n"): return readLiteral("null")
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let keyed = c == UInt8(ascii: "{")
            let close = keyed ? UInt8(ascii: "}") : UInt8(ascii: "]")
            index += 1
            skipWhitespace()
            if peek() == close { index += 1; return true }
            while true {
                skipWhitespace()
                if keyed {
                    guard readString() != nil else { return false }
                    skipWhitespace()
                    guard peek() == UInt8(ascii: ":") else { return false }
                    index += 1
                }
                guard skipValue(depth: depth + 1) else { return false }
                skipWhitespace()
                guard let e = peek() else { return false }
                index += 1
                if e == close { return true }
                guard e == UInt8(ascii: ",") else { return false }
            }
        default: return readNumber() != nil
        }
    }

    /// Reads the object at the cursor, calling `visit` with each scalar
    /// member's key path and value. False on a syntax error (the cursor is
    /// then somewhere inside the object).
    mutating func readObject(depth: Int = 0, _ visit: (_ key: [UInt8], _ value: FlatJSONValue) -> Void) -> Bool {
        guard depth <= FlatJSONReader.maxDepth, peek() == UInt8(ascii: "{") else { return false }
        if depth == 0 { path.removeAll(keepingCapacity: true) }
        index += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "}") { index += 1; return true }
        let prefixLength = path.count
        while true {
            skipWhitespace()
            guard let (keyRange, keyEscaped) = readString() else { return false }
            path.removeSubrange(prefixLength...)
            if keyEscaped {
                guard let bytes = unescaped(keyRange) else { return false }
                path.append(contentsOf: bytes)
            } else {
                path.append(contentsOf: UnsafeRawBufferPointer(rebasing: base[keyRange]))
            }
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { return false }
            index += 1
            skipWhitespace()
            guard let c = peek() else { return false }
            switch c {
            case UInt8(ascii: "{"):
                path.append(UInt8(ascii: "."))
                guard readObject(depth: depth + 1, visit) else { return false }
            case UInt8(ascii: "["):
                guard skipValue(depth: depth + 1) else { return false }
                visit(path, .array)
            case UInt8(ascii: "\""):
                guard let (r, e) = readString() else { return false }
                visit(path, .string(r, escaped: e))
            case UInt8(ascii: "t"):
                guard readLiteral("true") else { return false }
                visit(path, .bool(true))
            case UInt8(ascii: "f"):
                guard readLiteral("false") else { return false }
                visit(path, .bool(false))
            case UInt8(ascii: "n"):
                guard readLiteral("null") else { return false }
                visit(path, .null)
            default:
                guard let r = readNumber() else { return false }
                visit(path, .number(r))
            }
            skipWhitespace()
            guard let e = peek() else { return false }
            index += 1
            if e == UInt8(ascii: "}") { path.removeSubrange(prefixLength...); return true }
            guard e == UInt8(ascii: ",") else { return false }
        }
    }

    static func hex(_ c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(c - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(c - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// The unescaped bytes of a string token; nil for an unpaired surrogate.
    func unescaped(_ r: Range<Int>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(r.count)
        var i = r.lowerBound
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= r.upperBound else { return nil }
            var v: UInt32 = 0
            for k in 0..<4 {
                guard let h = FlatJSONReader.hex(base[at + k]) else { return nil }
                v = v << 4 | h
            }
            return v
        }
        while i < r.upperBound {
            let c = base[i]
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            guard i + 1 < r.upperBound else { return nil }
            let e = base[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard let hi = hex4(i) else { return nil }
                i += 4
                var scalar: UInt32 = hi
                if hi >= 0xD800 && hi < 0xDC00 {
                    guard i + 6 <= r.upperBound, base[i] == UInt8(ascii: "\\"), base[i + 1] == UInt8(ascii: "u"),
                          let lo = hex4(i + 2), lo >= 0xDC00 && lo < 0xE000 else { return nil }
                    i += 6
                    scalar = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                }
                guard let s = Unicode.Scalar(scalar) else { return nil }
                out.append(contentsOf: Array(String(Character(s)).utf8))
            default: out.append(e)
            }
        }
        return out
    }

    /// The bytes of a scalar as text (a string's unescaped content, a
    /// number's token, `true`/`false`); nil for null, arrays, `""` and `-`
    /// (the vendors' "no value" placeholder), or a bad escape.
    func text(_ v: FlatJSONValue) -> [UInt8]? {
        let bytes: [UInt8]
        switch v {
        case .string(let r, let escaped):
            if escaped {
                guard let u = unescaped(r) else { return nil }
                bytes = u
            } else {
                bytes = Array(UnsafeRawBufferPointer(rebasing: base[r]))
            }
        case .number(let r): bytes = Array(UnsafeRawBufferPointer(rebasing: base[r]))
        case .bool(let b): bytes = Array((b ? "true" : "false").utf8)
        case .null, .array: return nil
        }
        if bytes.isEmpty || bytes == [UInt8(ascii: "-")] { return nil }
        return bytes
    }
}

/// A parsed field of a CDN log record: absent (missing, null, `""` or `-`),
/// present but not a valid value, or a value.
enum CdnField<T> {
    case absent, invalid, value(T)
}

/// Number and time conversions shared by the CDN log formats. Every one
/// returns nil for text it cannot read; none traps.
enum CdnValues {
    /// A finite decimal number (`12`, `0.003`, `1.5e2`); numbers in strings too.
    static func double(_ b: [UInt8]) -> Double? {
        guard !b.isEmpty, b.count <= 64 else { return nil }
        for c in b where !(FlatJSONReader.isDigit(c) || c == UInt8(ascii: ".") || c == UInt8(ascii: "-")
                           || c == UInt8(ascii: "+") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")) {
            return nil
        }
        guard let d = Double(String(decoding: b, as: UTF8.self)), d.isFinite else { return nil }
        return d
    }

    /// A non-negative integer of at most 18 digits (so it cannot overflow).
    static func integer(_ b: [UInt8]) -> Int64? {
        guard !b.isEmpty, b.count <= 18 else { return nil }
        var v: Int64 = 0
        for c in b {
            guard FlatJSONReader.isDigit(c) else { return nil }
            v = v * 10 + Int64(c - 0x30)
        }
        return v
    }

    /// An HTTP status: 0...999 (`000` when the CDN sent none is 0).
    static func status(_ b: [UInt8]) -> Int32? {
        guard let v = integer(b), v <= 999 else { return nil }
        return Int32(v)
    }

    /// Latest time accepted: 9999-12-31T23:59:59Z.
    static let maxSeconds: Double = 253_402_300_799

    /// A Unix time written as a decimal number of seconds × 10^-`shift`
    /// (`shift` 3: milliseconds) to whole-second milliseconds, truncated from
    /// its digits (`DecimalText`): as a `Double`, `1767225659.99999999`
    /// rounded up into the next second.
    static func wholeSecondMs(_ text: [UInt8], shift: Int = 0) -> Int64? {
        guard let s = DecimalText.wholePart(text, shift: -shift), s <= Int64(maxSeconds) else { return nil }
        return s * 1000
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
    /// days_from_civil); nil for an impossible date.
    static func days(year: Int, month: Int, day: Int) -> Int? {
        guard (1970...9999).contains(year), (1...12).contains(month), day >= 1 else { return nil }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day <= lengths[month - 1] else { return nil }
        let y = month <= 2 ? year - 1 : year
        let era = y / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// `n` ASCII digits at `at`, or nil.
    static func digits(_ b: [UInt8], _ at: Int, _ n: Int) -> Int? {
        guard at >= 0, at + n <= b.count else { return nil }
        var v = 0
        for k in at..<(at + n) {
            guard FlatJSONReader.isDigit(b[k]) else { return nil }
            v = v * 10 + Int(b[k] - 0x30)
        }
        return v
    }

    /// `YYYY-MM-DD` to days since the epoch.
    static func date(_ b: [UInt8]) -> Int? {
        guard b.count == 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
              let y = digits(b, 0, 4), let m = digits(b, 5, 2), let d = digits(b, 8, 2) else { return nil }
        return days(year: y, month: m, day: d)
    }

    /// `HH:MM:SS` at `at` to seconds of the day (a leap second 60 is kept).
    static func timeOfDay(_ b: [UInt8], at: Int = 0) -> Int? {
        guard at + 8 <= b.count, b[at + 2] == UInt8(ascii: ":"), b[at + 5] == UInt8(ascii: ":"),
              let h = digits(b, at, 2), let m = digits(b, at + 3, 2), let s = digits(b, at + 6, 2),
              h < 24, m < 60, s <= 60 else { return nil }
        return h * 3600 + m * 60 + s
    }

    /// An ISO 8601 / RFC 3339 time (`2024-05-01T12:34:56Z`, a space for the
    /// `T`, an optional fraction, then `Z`, `UTC`, `GMT`, `±HHMM`, `±HH:MM` or
    /// nothing for UTC) to whole-second Unix milliseconds.
    static func iso8601Ms(_ b: [UInt8]) -> Int64? {
        guard b.count >= 19, let day = date(Array(b[0..<10])),
              b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: " "),
              let tod = timeOfDay(b, at: 11) else { return nil }
        var i = 19
        if i < b.count && b[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            while i < b.count, FlatJSONReader.isDigit(b[i]) { i += 1 }
            guard i > start else { return nil }
        }
        var offset = 0
        let rest = Array(b[i...])
        switch rest {
        case [], Array("Z".utf8), Array("z".utf8), Array("UTC".utf8), Array("GMT".utf8): offset = 0
        default:
            guard let sign = rest.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-"),
                  let h = digits(rest, 1, 2), h <= 23 else { return nil }
            let m: Int?
            if rest.count == 5 { m = digits(rest, 3, 2) }
            else if rest.count == 6 && rest[3] == UInt8(ascii: ":") { m = digits(rest, 4, 2) }
            else if rest.count == 3 { m = 0 }
            else { m = nil }
            guard let mm = m, mm < 60 else { return nil }
            offset = (h * 3600 + mm * 60) * (sign == UInt8(ascii: "-") ? -1 : 1)
        }
        let seconds = day * 86_400 + tod - offset
        guard seconds >= 0 else { return nil }
        return Int64(seconds) * 1000
    }
}

/// Splits one JSON CDN log message into objects: a single object, an array
/// of objects, or several objects one after another (newline-delimited JSON,
/// as log files and HTTP deliveries send them). Calls `object` for each
/// object with the reader at its `{`; the callee reads it with
/// `readObject` and returns the item to emit. Non-object values are
/// `not_an_object`, an empty array `empty_batch`, and malformed JSON
/// `invalid_json` up to the end of the line where the error is (parsing
/// resumes on the next line).
enum FlatJSONMessage {
    static func forEachObject(_ message: UnsafeRawBufferPointer, _ emit: (CdnLogItem) -> Void,
                              object: (inout FlatJSONReader, Int) -> CdnLogItem) {
        var r = FlatJSONReader(message)
        r.skipByteOrderMark()
        r.skipWhitespace()
        if r.atEnd { return emit(.reject(.invalidJSON, payload: 0..<message.count)) }
        while true {
            r.skipWhitespace()
            guard let c = r.peek() else { return }
            let start = r.index
            var probe = r
            guard probe.skipValue(depth: 0) else {
                // Resume after the line holding the error.
                var end = max(probe.index, start)
                while end < message.count && message[end] != 0x0A { end += 1 }
                emit(.reject(.invalidJSON, payload: start..<end))
                r.index = min(end + 1, message.count)
                continue
            }
            if c == UInt8(ascii: "{") {
                emit(object(&r, start))
                r.index = probe.index // the object was validated: its end is known
            } else if c == UInt8(ascii: "[") {
                r.index += 1
                r.skipWhitespace()
                if r.peek() == UInt8(ascii: "]") {
                    emit(.reject(.emptyBatch, payload: start..<probe.index))
                } else {
                    while r.index < probe.index {
                        r.skipWhitespace()
                        let e = r.index
                        if r.peek() == UInt8(ascii: "{") {
                            var element = r
                            _ = element.skipValue(depth: 1)
                            emit(object(&r, e))
                            r.index = element.index
                        } else {
                            _ = r.skipValue(depth: 1)
                            emit(.reject(.notAnObject, payload: e..<r.index))
                        }
                        r.skipWhitespace()
                        guard r.peek() == UInt8(ascii: ",") else { break } // `]` (validated)
                        r.index += 1
                    }
                }
                r.index = probe.index
            } else {
                emit(.reject(.notAnObject, payload: start..<probe.index))
                r.index = probe.index
            }
        }
    }
}

extension FlatJSONReader {
    /// A number (or a number in a string, as DataStream 2 writes them).
    func double(_ v: FlatJSONValue?) -> CdnField<Double> {
        guard let v, let b = text(v) else { return .absent }
        guard let d = CdnValues.double(b) else { return .invalid }
        return .value(d)
    }

    /// A non-negative integer, plain or in a string.
    func integer(_ v: FlatJSONValue?) -> CdnField<Int64> {
        guard let v, let b = text(v) else { return .absent }
        guard let i = CdnValues.integer(b) else { return .invalid }
        return .value(i)
    }

    /// An HTTP status 0...999, plain or in a string.
    func status(_ v: FlatJSONValue?) -> CdnField<Int32> {
        guard let v, let b = text(v) else { return .absent }
        guard let s = CdnValues.status(b) else { return .invalid }
        return .value(s)
    }

    /// A text value (numbers as written); `""` when absent. Bytes that are
    /// not UTF-8 are replaced (U+FFFD), never trusted.
    func string(_ v: FlatJSONValue?) -> String {
        guard let v, let b = text(v) else { return "" }
        return String(decoding: b, as: UTF8.self)
    }
}
