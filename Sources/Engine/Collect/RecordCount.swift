/// Records in a request body, counted without decoding it, so that a body
/// with more than `--max-records` is refused (413) before any parsing or
/// validation spends time on it (README, "qos collect").
enum RecordCount {
    /// Top-level elements of a JSON array (`[a, b, c]` is 3, `[]` is 0),
    /// counted by its commas outside strings and nested values; any other
    /// body is one record (an object, or one reject). A malformed array
    /// counts as far as it goes.
    static func jsonElements(_ body: [UInt8]) -> Int {
        guard let first = body.firstIndex(where: { !isSpace($0) }), body[first] == UInt8(ascii: "[") else { return 1 }
        var depth = 0, commas = 0, sawValue = false, inString = false, escaped = false
        for c in body[first...] {
            if inString {
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
                continue
            }
            if depth == 1 && !isSpace(c) && c != UInt8(ascii: ",") && c != UInt8(ascii: "]") { sawValue = true }
            switch c {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"): depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            case UInt8(ascii: ","): if depth == 1 { commas += 1 }
            default: break
            }
            if depth == 0 { break }
        }
        return sawValue || commas > 0 ? commas + 1 : 0
    }

    /// Lines holding something other than spaces, tabs and `\r` (CMCD's
    /// one-report-per-line body).
    static func lines(_ body: [UInt8]) -> Int {
        var count = 0, blank = true
        for c in body {
            if c == 0x0a {
                if !blank { count += 1 }
                blank = true
            } else if blank && c != 0x20 && c != 0x09 && c != 0x0d {
                blank = false
            }
        }
        return blank ? count : count + 1
    }

    static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09 }
}
