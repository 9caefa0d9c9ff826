import Testing
@testable import QoSCore

/// Whole units of decimal text, truncated from the digits (a CDN record's
/// time, docs/semantics.md "CDN access logs"): a `Double` rounded
/// `1767225659.99999999` up into the next second.
@Suite struct DecimalTextTests {
    func whole(_ s: String, shift: Int = 0, maxDigits: Int = 15) -> Int64? {
        DecimalText.wholePart(Array(s.utf8), shift: shift, maxDigits: maxDigits)
    }

    @Test func truncatesWhatADoubleRoundsUp() {
        #expect(Double("1767225659.99999999").map { Int64($0.rounded(.towardZero)) } == 1_767_225_660)  // the old way
        #expect(whole("1767225659.99999999") == 1_767_225_659)
        #expect(whole("1.76722565999999999999e9") == 1_767_225_659)
        #expect(whole("1767225659999.99999", shift: -3) == 1_767_225_659)  // milliseconds
        #expect(whole("1767225659999999.9", shift: -6) == 1_767_225_659)   // microseconds
    }

    @Test func readsEveryDecimalForm() {
        let cases: [(String, Int64?)] = [
            ("0", 0), ("007", 7), ("12.5", 12), (".5", 0), ("5.", 5), ("+42", 42), ("0.0001e4", 1), ("0.00009e4", 0),
            ("1e3", 1000), ("1E+3", 1000), ("12345e-2", 123), ("1e-400", 0), ("10.50e1", 105),
            ("-1", nil), ("", nil), (".", nil), ("e5", nil), ("1e", nil), ("1e+", nil), ("1.2.3", nil), ("1x", nil),
            ("0x10", nil), (" 1", nil), ("1 ", nil), ("NaN", nil), ("Infinity", nil),
        ]
        for (text, expected) in cases { #expect(whole(text) == expected, "\(text)") }
    }

    @Test func boundsTheWholePartByItsDigits() {
        #expect(whole("999999999999999") == 999_999_999_999_999)
        #expect(whole("1000000000000000") == nil)
        #expect(whole("1e15") == nil)
        #expect(whole("1e99999999999") == nil)
        #expect(whole("1e14") == 100_000_000_000_000)
        #expect(whole(String(repeating: "0", count: 500) + "12") == 12)
        #expect(whole("1." + String(repeating: "9", count: 80)) == nil)  // more than 64 significant digits
    }
}
