import Testing
@testable import QoSCore

/// The interners number distinct strings in the order first seen and find
/// them again by their bytes (`StringIds`, docs in Dimensions.swift).
@Suite struct InternerTests {
    @Test func idsFollowFirstSightAndFindEveryStringAgain() {
        let d = StringInterner()
        #expect(d.intern(nil) == StringInterner.unknownID && d.intern("") == StringInterner.unknownID)
        #expect(d.intern("unknown") == StringInterner.unknownID && d.intern("__other__") == StringInterner.otherID)
        // Short (inline) and long (heap) strings, many of them: the index grows and rehashes.
        let words = (0..<5_000).map { i in i % 3 == 0 ? "v\(i)" : "a-long-video-identifier-\(i)-with-more-than-fifteen-bytes" }
        let ids = words.map { d.intern($0) }
        #expect(ids == (0..<5_000).map { UInt32($0 + 2) })
        #expect(words.map { d.intern($0) } == ids)
        #expect(words.indices.allSatisfy { d.string(ids[$0]) == words[$0] } && d.count == 5_002)
        // A string built another way (a substring, from bytes) is the same string.
        #expect(d.intern(String("xx" + words[7]).dropFirst(2).description) == ids[7])
        #expect(d.intern(String(decoding: Array(words[8].utf8), as: UTF8.self)) == ids[8])
    }

    /// Equal bytes are one value; two spellings of one accented letter are
    /// two, as they are to a GROUP BY over the files (Swift's `==` would
    /// call them equal).
    @Test func stringsAreTheSameValueWhenTheirBytesAre() {
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        #expect(composed == decomposed)  // Swift's canonical equivalence
        let d = StringInterner(), v = ValueInterner()
        #expect(d.intern(composed) != d.intern(decomposed))
        #expect(d.string(d.intern(decomposed)).utf8.elementsEqual(decomposed.utf8))
        #expect(v.intern(composed) != v.intern(decomposed))
        #expect(v.string(v.intern(decomposed)).map { Array($0.utf8) } == Array(decomposed.utf8))
    }

    @Test func valueInternerKeepsNilApartFromTheEmptyString() {
        let v = ValueInterner()
        #expect(v.intern(nil) == 0 && v.string(0) == nil)
        let empty = v.intern(""), x = v.intern("4.2.1")
        #expect(empty != 0 && x != 0 && empty != x)
        #expect(v.string(empty) == "" && v.string(x) == "4.2.1" && v.intern("4.2.1") == x && v.count == 3)
        let (kept, map) = v.keeping([true, false, true])
        #expect(map == [0, .max, 1] && kept.string(1) == "4.2.1" && kept.count == 2 && kept.intern("") == 2)
    }
}
