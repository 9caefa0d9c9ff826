/// Whole units of a decimal number written as text (`1631233919.999`,
/// `1.63123391999999999999e9`, `183512` in µs), truncated exactly: the
/// digits are shifted, never converted to a `Double` — which rounds
/// `…919.99999999` up to the next second, and at a window's edge into the
/// next window (docs/semantics.md "CDN access logs": a record's time is
/// truncated to whole seconds).
public enum DecimalText {
    /// The integer part of the non-negative decimal `text` × 10^`shift`
    /// (`shift` −3 reads milliseconds as seconds); nil for anything but
    /// `[+]digits[.digits][(e|E)[+|-]digits]` with at least one digit, for a
    /// negative number, or for a whole part above `maxDigits` digits.
    public static func wholePart<C: Collection>(_ text: C, shift: Int = 0, maxDigits: Int = 15) -> Int64?
        where C.Element == UInt8 {
        var i = text.startIndex
        let end = text.endIndex
        if i < end, text[i] == UInt8(ascii: "+") { i = text.index(after: i) }
        // The significant digits, leading zeros dropped, and how many of them
        // stand before the decimal point.
        var digits: [UInt8] = []
        var beforePoint = 0, sawDigit = false, sawPoint = false
        while i < end {
            let c = text[i]
            if c >= 0x30 && c <= 0x39 {
                sawDigit = true
                if !(digits.isEmpty && c == 0x30) {
                    guard digits.count < 64 else { return nil }
                    digits.append(c &- 0x30)
                    if !sawPoint { beforePoint += 1 }
                } else if sawPoint {
                    beforePoint -= 1  // a zero between the point and the first significant digit
                }
            } else if c == UInt8(ascii: "."), !sawPoint {
                sawPoint = true
            } else {
                break
            }
            i = text.index(after: i)
        }
        guard sawDigit else { return nil }
        var exponent = 0
        if i < end, text[i] == UInt8(ascii: "e") || text[i] == UInt8(ascii: "E") {
            i = text.index(after: i)
            var negative = false
            if i < end, text[i] == UInt8(ascii: "+") || text[i] == UInt8(ascii: "-") {
                negative = text[i] == UInt8(ascii: "-")
                i = text.index(after: i)
            }
            var sawExponentDigit = false
            while i < end, text[i] >= 0x30 && text[i] <= 0x39 {
                sawExponentDigit = true
                if exponent < 10_000 { exponent = exponent * 10 + Int(text[i] &- 0x30) }
                i = text.index(after: i)
            }
            guard sawExponentDigit else { return nil }
            if negative { exponent = -exponent }
        }
        guard i == end else { return nil }
        let wholeDigits = beforePoint + exponent + shift
        guard wholeDigits <= maxDigits else { return nil }
        var v: Int64 = 0
        for k in 0..<max(0, wholeDigits) { v = v * 10 + Int64(k < digits.count ? digits[k] : 0) }
        return v
    }
}
