/// A bounds-checked cursor over JSON bytes: the lexer under `BeaconDecoder`.
/// Builds nothing it is not asked for; strings are returned as byte ranges
/// and only unescaped / validated when a known field needs them.
struct JSONCursor {
    let base: UnsafeRawBufferPointer
    var index: Int = 0
    var count: Int { base.count }

    init(_ base: UnsafeRawBufferPointer) { self.base = base }

    var atEnd: Bool { index >= base.count }

    @inline(__always) func slice(_ r: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: base[r]) }

    @inline(__always) func peek() -> UInt8? {
        index < base.count ? base[index] : nil
    }

    @inline(__always) mutating func next() -> UInt8? {
        guard index < base.count else { return nil }
        defer { index += 1 }
        return base[index]
    }

    @inline(__always) mutating func advance() { index += 1 }

    /// A UTF-8 byte order mark (EF BB BF) at the start of a message or file
    /// is not part of the JSON text (as RFC 8259 §8.1 allows a parser to do).
    @inline(__always) mutating func skipByteOrderMark() {
        if index == 0 && base.count >= 3 && base[0] == 0xEF && base[1] == 0xBB && base[2] == 0xBF { index = 3 }
    }

    @inline(__always) mutating func skipWhitespace() {
        while index < base.count {
            let c = base[index]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            index += 1
        }
    }

    /// A string token: the bytes between the quotes, and whether any escape occurs.
    struct RawString {
        var start: Int
        var end: Int
        var hasEscapes: Bool
        var length: Int { end - start }
    }

    /// Reads a string token (validating escapes, rejecting raw control
    /// characters). Cursor ends past the closing quote.
    mutating func readRawString() -> RawString? {
        guard next() == UInt8(ascii: "\"") else { return nil }
        let start = index
        var escapes = false
        // Sixteen, then eight bytes at a time while none of them is a quote,
        // a backslash or a control character.
        let quote = SIMD16<UInt8>(repeating: UInt8(ascii: "\"")), backslash = SIMD16<UInt8>(repeating: UInt8(ascii: "\\"))
        let space = SIMD16<UInt8>(repeating: 0x20)
        while index + 16 <= base.count {
            let v = base.loadUnaligned(fromByteOffset: index, as: SIMD16<UInt8>.self)
            if any((v .== quote) .| (v .== backslash) .| (v .< space)) { break }
            index += 16
        }
        while index + 8 <= base.count {
            let w = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            let special = JSONCursor.specialBytes(w)
            // Straight to the first special byte (the lowest flag is exact).
            if special != 0 { index += special.trailingZeroBitCount >> 3; break }
            index += 8
        }
        while index < base.count {
            let c = base[index]
            if c == UInt8(ascii: "\"") {
                index += 1
                return RawString(start: start, end: index - 1, hasEscapes: escapes)
            }
            if c < 0x20 { return nil }
            if c == UInt8(ascii: "\\") {
                escapes = true
                index += 1
                guard let e = next() else { return nil }
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                     UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    continue
                case UInt8(ascii: "u"):
                    guard index + 4 <= base.count else { return nil }
                    for k in 0..<4 where JSONCursor.hexValue(base[index + k]) == nil { return nil }
                    index += 4
                default:
                    return nil
                }
            } else {
                index += 1
            }
        }
        return nil
    }

    /// Whether any byte of `w` is `"`, `\` or below 0x20 (SWAR: a byte is
    /// zero after the xor / below n after the subtraction exactly when its
    /// high bit survives the mask).
    @inline(__always) static func hasSpecialByte(_ w: UInt64) -> Bool { specialBytes(w) != 0 }

    /// The high bit of every flagged byte of `w` (little-endian: the lowest
    /// set bit is the first special byte in memory; a borrow can flag bytes
    /// after a true one, never before).
    @inline(__always) static func specialBytes(_ w: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        let q = w ^ (ones &* 0x22), b = w ^ (ones &* 0x5C)
        let zeroQ = (q &- ones) & ~q, zeroB = (b &- ones) & ~b
        let control = (w &- ones &* 0x20) & ~w
        return (zeroQ | zeroB | control) & highs
    }

    /// Whether the token's bytes are all ASCII (then they are valid UTF-8).
    @inline(__always) func isASCII(_ raw: RawString) -> Bool {
        var i = raw.start
        while i + 8 <= raw.end {
            if base.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
            i += 8
        }
        while i < raw.end {
            if base[i] >= 0x80 { return false }
            i += 1
        }
        return true
    }

    /// Whether the `count` (8 or more) bytes from `start`, all within the
    /// buffer, are ASCII with no quote, backslash or control character: a
    /// string token's plain content. Whole words, the last one ending at
    /// the range's end (`specialBytes` flags every such byte; its false
    /// flags come only after a true one).
    @inline(__always) func isPlainASCII(_ start: Int, count: Int) -> Bool {
        assert(count >= 8 && start >= 0 && start + count <= base.count, "a range of 8 bytes or more in the buffer")
        let highs: UInt64 = 0x8080_8080_8080_8080
        var i = start, flags: UInt64 = 0
        let last = start &+ count &- 8
        while i < last {
            let w = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            flags |= JSONCursor.specialBytes(w) | (w & highs)
            i &+= 8
        }
        let w = base.loadUnaligned(fromByteOffset: last, as: UInt64.self)
        return flags | JSONCursor.specialBytes(w) | (w & highs) == 0
    }

    static func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(c - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(c - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// Builds the Swift string of a token, unescaping and validating UTF-8.
    /// Returns nil for invalid UTF-8 or an unpaired surrogate escape.
    func string(_ raw: RawString) -> String? {
        let slice = UnsafeRawBufferPointer(rebasing: base[raw.start..<raw.end])
        if !raw.hasEscapes {
            // ASCII needs no validation (and skips the unspecialized generic path).
            if isASCII(raw) { return String(decoding: slice.assumingMemoryBound(to: UInt8.self), as: UTF8.self) }
            return String(validating: slice, as: UTF8.self)
        }
        guard let bytes = unescaped(raw) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The unescaped bytes of a token (escapes validated by `readRawString`).
    func unescaped(_ raw: RawString) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(raw.length)
        var i = raw.start
        while i < raw.end {
            let c = base[i]
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            let e = base[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard let scalar = unicodeEscape(at: &i, end: raw.end) else { return nil }
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: out.append(e)
            }
        }
        return out
    }

    /// `i` points just past `\u`. Handles surrogate pairs.
    private func unicodeEscape(at i: inout Int, end: Int) -> Unicode.Scalar? {
        let hi = hex4(i)
        i += 4
        if hi >= 0xD800 && hi < 0xDC00 {
            guard i + 6 <= end, base[i] == UInt8(ascii: "\\"), base[i + 1] == UInt8(ascii: "u") else { return nil }
            let lo = hex4(i + 2)
            guard lo >= 0xDC00 && lo < 0xE000 else { return nil }
            i += 6
            return Unicode.Scalar(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
        }
        return Unicode.Scalar(hi) // nil for a lone low surrogate
    }

    private func hex4(_ at: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 4 | (JSONCursor.hexValue(base[at + k]) ?? 0) }
        return v
    }

    /// A number token. `isInteger` is false when it has a fraction or exponent.
    struct NumberToken { var start: Int; var end: Int; var isInteger: Bool }

    /// Lexes a JSON number per RFC 8259.
    mutating func readNumber() -> NumberToken? {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let d = peek(), isDigit(d) else { return nil }
        if d == UInt8(ascii: "0") { index += 1 } else { skipDigits() }
        var integer = true
        if peek() == UInt8(ascii: ".") {
            integer = false
            index += 1
            guard let f = peek(), isDigit(f) else { return nil }
            skipDigits()
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            integer = false
            index += 1
            if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { index += 1 }
            guard let f = peek(), isDigit(f) else { return nil }
            skipDigits()
        }
        return NumberToken(start: start, end: index, isInteger: integer)
    }

    @inline(__always) private func isDigit(_ c: UInt8) -> Bool { c &- 0x30 < 10 }

    @inline(__always) private mutating func skipDigits() {
        while index < base.count, isDigit(base[index]) { index += 1 }
    }

    /// Fast path for the common number: a non-negative integer of at most
    /// 18 digits with no fraction or exponent. Returns it and moves past it;
    /// returns nil (cursor unchanged) for anything else, which `readNumber`
    /// then handles.
    @inline(__always) mutating func readPlainInteger() -> Int64? {
        var i = index
        let end = base.count
        guard i < end, isDigit(base[i]) else { return nil }
        var v: Int64 = 0
        if base[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            // A word at a time while it fits the 18 digits: all eight
            // bytes digits, or the digits before its first other byte (a
            // 13-digit timestamp: two words; a short count: one).
            while i &- index <= 10 && i &+ 8 <= end {
                let w = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                let others = JSONCursor.nonDigitBytes(w)
                if others == 0 {
                    v = v &* 100_000_000 &+ Int64(JSONCursor.digitsValue(w))
                    i &+= 8
                    continue
                }
                let n = others.trailingZeroBitCount >> 3
                if n > 0 {
                    v = v &* JSONCursor.powerOfTen(n) &+ Int64(JSONCursor.leadingDigitsValue(w, count: n))
                    i &+= n
                }
                break
            }
            while i < end, isDigit(base[i]) {
                guard i - index < 18 else { return nil }
                v = v &* 10 &+ Int64(base[i] &- 0x30)
                i += 1
            }
        }
        if i < end {
            let c = base[i]
            if isDigit(c) || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") { return nil }
        }
        index = i
        return v
    }

    /// The value of eight ASCII digits in a little-endian word (the first
    /// digit in its lowest byte), nil when any byte is not a digit.
    @inline(__always) static func eightDigits(_ w: UInt64) -> UInt32? {
        nonDigitBytes(w) == 0 ? digitsValue(w) : nil
    }

    /// The high bit of each byte of `w` that is not an ASCII digit, exact
    /// up to and including the first (lowest) such byte: a byte xor 0x30
    /// is below 10 exactly for a digit, and adding 0x76 sets the high bit
    /// of 10 and more; a carry out of a byte comes only from a byte that
    /// is itself flagged, so the bytes after the first flagged one may be
    /// wrong, never those before it (bench/results/speed.md section 32).
    @inline(__always) static func nonDigitBytes(_ w: UInt64) -> UInt64 {
        let t = w ^ 0x3030_3030_3030_3030
        return (t | (t &+ 0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080
    }

    /// The value of a word of eight ASCII digits (checked by the caller):
    /// the digits paired, the pairs paired, and the quads paired
    /// (bench/results/speed.md section 31).
    @inline(__always) static func digitsValue(_ w: UInt64) -> UInt32 {
        var x = w &- 0x3030_3030_3030_3030
        x = (x &* 10 &+ (x >> 8)) & 0x00FF_00FF_00FF_00FF
        x = (x &* 100 &+ (x >> 16)) & 0x0000_FFFF_0000_FFFF
        x = (x &* 10_000 &+ (x >> 32)) & 0xFFFF_FFFF
        return UInt32(truncatingIfNeeded: x)
    }

    /// The value of the first `count` (1...7) bytes of `w`, all digits:
    /// they are moved to the word's top and the bytes below filled with
    /// "0", leading zeros of an eight-digit word.
    @inline(__always) static func leadingDigitsValue(_ w: UInt64, count n: Int) -> UInt32 {
        assert(n >= 1 && n <= 7, "a partial word's digits")
        let bits = UInt64(truncatingIfNeeded: 8 &* n)
        return digitsValue(w << (64 &- bits) | 0x3030_3030_3030_3030 >> bits)
    }

    /// 10 to the power `n` (1...7), the scale of `n` more digits.
    @inline(__always) static func powerOfTen(_ n: Int) -> Int64 {
        switch n {
        case 1: return 10
        case 2: return 100
        case 3: return 1_000
        case 4: return 10_000
        case 5: return 100_000
        case 6: return 1_000_000
        default: return 10_000_000
        }
    }

    /// The Int64 value of an integer token, nil on overflow.
    func int64(_ t: NumberToken) -> Int64? {
        var i = t.start
        let negative = base[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        var v: Int64 = 0
        while i < t.end {
            let d = Int64(base[i] &- 0x30)
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = negative ? m.subtractingReportingOverflow(d) : m.addingReportingOverflow(d)
            if o1 || o2 { return nil }
            v = s
            i += 1
        }
        return v
    }

    /// Matches the literal `true`, `false` or `null` at the cursor.
    mutating func readLiteral(_ lit: StaticString) -> Bool {
        let n = lit.utf8CodeUnitCount
        guard index + n <= base.count else { return false }
        let p = lit.utf8Start
        for k in 0..<n where base[index + k] != p[k] { return false }
        index += n
        return true
    }

    /// Skips (and validates) any JSON value. Depth-capped, never traps.
    mutating func skipValue(depth: Int) -> Bool {
        guard depth <= BeaconLimits.nestingDepthMax else { return false }
        skipWhitespace()
        guard let c = peek() else { return false }
        switch c {
        case UInt8(ascii: "\""): return readRawString() != nil
        case UInt8(ascii: "{"): return skipContainer(close: UInt8(ascii: "}"), keyed: true, depth: depth)
        case UInt8(ascii: "["): return skipContainer(close: UInt8(ascii: "]"), keyed: false, depth: depth)
        case UInt8(ascii: "t"): return readLiteral("true")
        case UInt8(ascii: "f"): return readLiteral("false")
        case UInt8(ascii: "n"): return readLiteral("null")
        default: return readNumber() != nil
        }
    }

    private mutating func skipContainer(close: UInt8, keyed: Bool, depth: Int) -> Bool {
        index += 1
        skipWhitespace()
        if peek() == close { index += 1; return true }
        while true {
            skipWhitespace()
            if keyed {
                guard readRawString() != nil else { return false }
                skipWhitespace()
                guard next() == UInt8(ascii: ":") else { return false }
            }
            guard skipValue(depth: depth + 1) else { return false }
            skipWhitespace()
            guard let c = next() else { return false }
            if c == close { return true }
            guard c == UInt8(ascii: ",") else { return false }
        }
    }

    /// Compares a key token with an ASCII literal; a token with escapes is
    /// compared after unescaping (`"status\u005fcode"` is `status_code`).
    @inline(__always) func keyEquals(_ raw: RawString, _ lit: StaticString) -> Bool {
        if raw.hasEscapes { return unescapedEquals(raw, lit) }
        let n = lit.utf8CodeUnitCount
        guard raw.length == n else { return false }
        let p = lit.utf8Start
        for k in 0..<n where base[raw.start + k] != p[k] { return false }
        return true
    }

    /// `keyEquals` for a token with escapes (rare: kept out of line).
    @inline(never) func unescapedEquals(_ raw: RawString, _ lit: StaticString) -> Bool {
        guard let bytes = unescaped(raw) else { return false }
        return bytes.elementsEqual(UnsafeBufferPointer(start: lit.utf8Start, count: lit.utf8CodeUnitCount))
    }
}

/// JSON string tokens for lexers outside this module (the Engine's CDN log
/// lexer): the same scan and validation as `JSONCursor.readRawString`.
public enum JSONStringToken {
    /// The string token whose opening quote is at `at`: the range between
    /// the quotes, whether it has escapes, and the index past the closing
    /// quote; nil for a token that is not a valid JSON string.
    public static func scan(_ base: UnsafeRawBufferPointer, at: Int) -> (range: Range<Int>, escaped: Bool, next: Int)? {
        var c = JSONCursor(base)
        c.index = at
        guard let raw = c.readRawString() else { return nil }
        return (raw.start..<raw.end, raw.hasEscapes, c.index)
    }
}
