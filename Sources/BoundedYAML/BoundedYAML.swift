import Yams

/// The YAML documents an operator hands the program — the config file, alert
/// rules, a Fastly field map, uap-core regexes — composed with a bound on how
/// deeply they nest. Yams composes a document recursively, so a document
/// nested thousands of levels deep (`[[[[…`, `- - - …`) overflows the stack:
/// a crash with a backtrace instead of an error naming the file. No document
/// the program reads nests more than a few levels; the bound is far above that
/// and far below the depth at which a thread's stack runs out.
public enum BoundedYAML {
    /// Levels allowed, counted as `NestingScan` counts them (an upper bound of
    /// the true depth: indentation columns, block indicators and open flow
    /// collections on a line).
    public static let nestingMax = 512

    /// The document nests deeper than `nestingMax`.
    public struct TooDeep: Error, CustomStringConvertible {
        public let line: Int
        public var description: String {
            "line \(line): nested deeper than \(BoundedYAML.nestingMax) levels (indentation, `- ` and `[`/`{` counted)"
        }
    }

    /// `Yams.compose`, after `NestingScan` found the document shallow enough.
    public static func compose(yaml text: String) throws -> Node? {
        if let line = NestingScan.firstLineDeeperThan(nestingMax, in: text) { throw TooDeep(line: line) }
        return try Yams.compose(yaml: text)
    }
}

/// A single pass over YAML text that bounds its nesting from above without
/// parsing it: per line, the indentation in columns, plus the block indicators
/// (`- `, `? `, `: `) on it, plus the flow collections open at that point.
/// Quoted scalars and comments are skipped, so brackets and colons inside them
/// do not count. Overcounting is harmless (the bound is generous);
/// undercounting a nested document would let it reach the recursive composer.
enum NestingScan {
    /// The 1-based line where the bound first exceeds `limit`, or nil.
    static func firstLineDeeperThan(_ limit: Int, in text: String) -> Int? {
        var text = text
        return text.withUTF8 { scan($0, limit: limit) }
    }

    private static func scan(_ b: UnsafeBufferPointer<UInt8>, limit: Int) -> Int? {
        let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), newline = UInt8(ascii: "\n")
        func separates(_ c: UInt8) -> Bool {
            switch c {
            case space, tab, newline, UInt8(ascii: "\r"), UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: ","),
                 UInt8(ascii: ":"), UInt8(ascii: "-"), UInt8(ascii: "?"): true
            default: false
            }
        }
        enum Quote { case none, single, double }
        var quote = Quote.none, escaped = false, comment = false
        var line = 1, indent = 0, indicators = 0, flow = 0, atLineStart = true
        var prev = newline
        var i = 0
        while i < b.count {
            let c = b[i]
            defer { prev = c; i += 1 }
            if c == newline {
                line += 1; indent = 0; indicators = 0; atLineStart = true; comment = false
                continue
            }
            if comment { continue }
            switch quote {
            case .double:
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { quote = .none }
                continue
            case .single:
                if c == UInt8(ascii: "'") {
                    if i + 1 < b.count, b[i + 1] == UInt8(ascii: "'") { i += 1 } else { quote = .none }  // `''` is a quote
                }
                continue
            case .none:
                break
            }
            if atLineStart {
                if c == space { indent += 1; continue }
                atLineStart = false
            }
            switch c {
            case UInt8(ascii: "#") where prev == space || prev == tab || prev == newline:
                comment = true
            case UInt8(ascii: "'") where separates(prev):
                quote = .single
            case UInt8(ascii: "\"") where separates(prev):
                quote = .double
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                if separates(prev) { flow += 1 }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                if flow > 0 { flow -= 1 }
            case UInt8(ascii: "-"), UInt8(ascii: "?"), UInt8(ascii: ":"):
                let next = i + 1 < b.count ? b[i + 1] : newline
                if next == space || next == tab || next == newline || next == UInt8(ascii: "\r") { indicators += 1 }
            default:
                continue
            }
            if indent + indicators + flow > limit { return line }
        }
        return nil
    }
}
