/// Durations as settings spell them: `500ms`, `90s`, `2m`, `1h`, `1d`, a
/// whole non-negative number and one unit. (Named so, not `Duration`, to leave
/// `Swift.Duration` alone.)
public enum DurationText {
    static let units: [(suffix: String, ms: Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]

    /// The expected form, for error messages.
    public static let form = "a duration such as 500ms, 30s, 2m, 1h, 1d"

    /// Milliseconds, or nil when `text` is not a duration or overflows Int64.
    public static func milliseconds(_ text: String) -> Int64? {
        if case .ms(let v) = read(text) { return v }
        return nil
    }

    enum Reading { case ms(Int64), tooLong, notADuration }

    static func read(_ text: String) -> Reading {
        for (u, f) in units where text.hasSuffix(u) {
            let number = text.dropLast(u.count)
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int64(number) else {
                if !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }) { return .tooLong }
                continue
            }
            let (ms, overflow) = v.multipliedReportingOverflow(by: f)
            return overflow ? .tooLong : .ms(ms)
        }
        return .notADuration
    }

    /// `ms` in the largest unit that divides it: 120000 → `2m`, 1500 → `1500ms`.
    public static func format(_ ms: Int64) -> String {
        for (u, f) in units.reversed() where ms != 0 && ms % f == 0 { return "\(ms / f)\(u)" }
        return "\(ms)ms"
    }

    /// Milliseconds, or a `UserError` naming `name`, the text and the expected form.
    public static func parse(_ text: String, _ name: String) throws -> Int64 {
        switch read(text) {
        case .ms(let v): return v
        case .tooLong: throw UserError("\(name): '\(text)' is too long a duration — the largest is \(Int64.max / 86_400_000)d")
        case .notADuration: throw UserError("\(name): '\(text)' is not \(form)")
        }
    }
}
