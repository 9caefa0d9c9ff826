import SplitMix
import Testing
@testable import QoSCore

/// `JSONCursor.readPlainInteger`, the decoder's fast path for numbers,
/// against the rule it must keep, written out a byte at a time: at most 18
/// digits, no leading zero before a digit, no fraction or exponent, else
/// nil and the cursor unchanged (the general path then reads the number).
/// A faster reader (eight bytes at a time was tried: bench/results/speed.md
/// "Tried and not kept") must pass these unchanged.
@Suite struct PlainIntegerTests {
    /// The rule, a digit at a time.
    static func reference(_ bytes: [UInt8], from start: Int) -> (Int64, Int)? {
        var i = start
        func digit(_ k: Int) -> Bool { k < bytes.count && bytes[k] &- 0x30 < 10 }
        guard digit(i) else { return nil }
        var v: Int64 = 0
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while digit(i) {
                guard i - start < 18 else { return nil }
                v = v * 10 + Int64(bytes[i] - 0x30)
                i += 1
            }
        }
        if i < bytes.count, digit(i) || bytes[i] == UInt8(ascii: ".") || bytes[i] == UInt8(ascii: "e")
            || bytes[i] == UInt8(ascii: "E") { return nil }
        return (v, i)
    }

    static func read(_ bytes: [UInt8], from start: Int) -> (Int64, Int)? {
        bytes.withUnsafeBytes { raw in
            var p = JSONCursor(raw)
            p.index = start
            guard let v = p.readPlainInteger() else {
                #expect(p.index == start, "a refused number leaves the cursor where it was")
                return nil
            }
            return (v, p.index)
        }
    }

    /// Every length of digits from 1 to 20, after every prefix and before
    /// every terminator, with the buffer ending at every point after the
    /// digits (a number that ends the buffer, or is cut by its end).
    @Test func agreesWithTheRuleEverywhere() {
        var rng = SplitMix64(seed: 7)
        let terminators: [[UInt8]] = [[], Array(",".utf8), Array("}".utf8), Array(" ,".utf8), Array(".5".utf8),
                                      Array("e3".utf8), Array("E".utf8), Array(":".utf8), Array("/".utf8),
                                      [0xFF, 0x39], [0xFA], [0x3A], [0x2F, 0x31]]
        var checked = 0
        for length in 1...20 {
            for _ in 0..<6 {
                var digits = (0..<length).map { _ in UInt8(0x30 + rng.next() % 10) }
                if rng.next() % 3 == 0 { digits[0] = UInt8(ascii: "0") }
                for prefix in 0..<3 {
                    for t in terminators {
                        let tail = Array("123456789abcdefgh".utf8)
                        let full = [UInt8](repeating: UInt8(ascii: " "), count: prefix) + digits + t + tail
                        for end in (prefix + 1)...full.count {
                            let bytes = Array(full[0..<end])
                            let want = Self.reference(bytes, from: prefix)
                            let got = Self.read(bytes, from: prefix)
                            #expect(got?.0 == want?.0 && got?.1 == want?.1,
                                    "\(String(decoding: bytes, as: UTF8.self)) from \(prefix)")
                            checked += 1
                        }
                    }
                }
            }
        }
        #expect(checked > 10_000)
    }

    @Test func knownValues() {
        #expect(Self.read(Array("1767225600000,".utf8), from: 0)! == (1_767_225_600_000, 13))
        #expect(Self.read(Array("999999999999999999}".utf8), from: 0)! == (999_999_999_999_999_999, 18))
        #expect(Self.read(Array("1000000000000000000}".utf8), from: 0) == nil, "19 digits go to the general path")
        #expect(Self.read(Array("12345678".utf8), from: 0)! == (12_345_678, 8))
        #expect(Self.read(Array("0,".utf8), from: 0)! == (0, 1))
        #expect(Self.read(Array("01,".utf8), from: 0) == nil)
        #expect(Self.read(Array("-1,".utf8), from: 0) == nil)
        #expect(Self.read(Array("7.0,".utf8), from: 0) == nil)
    }
}
