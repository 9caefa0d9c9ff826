#if canImport(Glibc)
import Glibc
#endif
import Generator
import Testing
@testable import QoSCore
import SplitMix

@Suite struct DecoderTests {
    func decode(_ s: String) -> [DecodedItem] { BeaconDecoder.decode(Array(s.utf8)) }

    func reasons(_ s: String) -> [String] {
        decode(s).map { if case .reject(let r, _) = $0 { return r.code } else { return "ok" } }
    }

    func beacon(_ s: String) -> Beacon? {
        let items = decode(s)
        guard items.count == 1, case .beacon(let b) = items[0] else { return nil }
        return b
    }

    @Test func decodesEveryField() throws {
        let json = """
        {"event":"segment","ts":1700000000123,"session_id":"s-1","seq":7,"viewer_id":"v","video_id":"vid",
         "video_duration_ms":600000,"live":false,"ip":"81.2.69.142","country":"GB","region":"GB-ENG",
         "user_agent":"Mozilla/5.0","device_type":"desktop","os":"Linux","browser":"Firefox",
         "player_name":"hls.js","player_version":"1.5.7","cdn":"akamai","pop":"fra","bitrate_kbps":3000,
         "played_ms":10000,"playhead_ms":55000,"duration_ms":0,"error_code":"E","fatal":true,"reason":"ended",
         "http_status":200,"download_ms":120,"ttfb_ms":30,"bytes":1048576,"cache":"HIT","extra":{"a":[1,2,{"b":null}]}}
        """
        let b = try #require(beacon(json))
        #expect(b.event == .segment && b.ts == 1_700_000_000_123 && b.sessionId == "s-1" && b.seq == 7)
        #expect(b.viewerId == "v" && b.videoId == "vid" && b.videoDurationMs == 600_000 && b.live == false)
        #expect(b.ip == "81.2.69.142" && b.country == "GB" && b.region == "GB-ENG" && b.userAgent == "Mozilla/5.0")
        #expect(b.deviceType == "desktop" && b.os == "Linux" && b.browser == "Firefox")
        #expect(b.playerName == "hls.js" && b.playerVersion == "1.5.7" && b.cdn == "akamai" && b.pop == "fra")
        #expect(b.bitrateKbps == 3000 && b.playedMs == 10000 && b.playheadMs == 55000 && b.durationMs == 0)
        #expect(b.errorCode == "E" && b.fatal == true && b.reason == .ended)
        #expect(b.httpStatus == 200 && b.downloadMs == 120 && b.ttfbMs == 30 && b.bytes == 1_048_576 && b.cache == "HIT")
        // The encoder writes what the decoder reads.
        #expect(beacon(String(decoding: BeaconEncoder.encode(b), as: UTF8.self)) == b)
    }

    @Test func escapesAndUnicode() throws {
        let b = try #require(beacon(#"{"ev\u0065nt":"view_start","ts":1,"session_id":"a\"b\\c\/d\n\u00e9\ud83d\ude00","video_id":"日本"}"#))
        #expect(b.sessionId == "a\"b\\c/d\né😀")
        #expect(b.videoId == "日本")
        #expect(reasons(#"{"event":"view_start","ts":1,"session_id":"\ud83d"}"#) == ["invalid_utf8"])
        #expect(reasons(#"{"event":"view_start","ts":1,"session_id":"\x"}"#) == ["invalid_json"])
    }

    @Test func nullMeansAbsent() throws {
        let b = try #require(beacon(#"{"event":"heartbeat","ts":5,"session_id":"s","video_id":null,"seq":null}"#))
        #expect(b.videoId == nil && b.seq == nil)
        #expect(reasons(#"{"event":"heartbeat","ts":null,"session_id":"s"}"#) == ["missing_field:ts"])
    }

    /// `cache`'s usual values are matched as whole tokens and stored as
    /// literals; every other spelling takes the general string path.
    @Test func cacheValuesDecodeAsWritten() throws {
        func cache(_ value: String) -> String?? {
            beacon(#"{"event":"segment","ts":5,"session_id":"s","cache":"# + value + "}").map(\.cache)
        }
        #expect(cache(#""HIT""#) == .some("HIT") && cache(#""MISS""#) == .some("MISS"))
        #expect(cache(#""\u0048IT""#) == .some("HIT") && cache(#""HIT ""#) == .some("HIT "))
        #expect(cache(#""HITS""#) == .some("HITS") && cache(#""MIS""#) == .some("MIS"))
        #expect(cache(#""""#) == .some(""))
        #expect(cache("null") == .some(nil))
        #expect(reasons(#"{"event":"segment","ts":5,"session_id":"s","cache":1}"#) == ["wrong_type:cache"])
    }

    /// `Beacon.cache` keeps `HIT` and `MISS` as a code and any other value
    /// in the box, however it is set; copies stay independent.
    @Test func cacheIsACodeOrAStringInTheBox() {
        var b = Beacon(event: .segment, ts: 1, sessionId: "s")
        #expect(b.cache == nil && !b.cacheHit && !b.hasRareStrings)
        b.cache = "HIT"
        #expect(b.cache == "HIT" && b.cacheHit && !b.hasRareStrings)
        b.cache = "STALE"
        #expect(b.cache == "STALE" && !b.cacheHit && b.hasRareStrings)
        var c = b
        c.cache = "MISS"
        #expect(b.cache == "STALE" && c.cache == "MISS" && b != c)
        c.cache = "STALE"
        #expect(b == c)
        b.cache = nil
        #expect(b.cache == nil && c.cache == "STALE")
        b.setUsualCache(hit: true)
        c.setUsualCache(hit: true)
        #expect(b.cache == "HIT" && c.cache == "HIT" && b.cacheHit && b == c)
    }

    @Test func arraysDecodeElementByElement() {
        let r = reasons(#"[{"event":"view_start","ts":1,"session_id":"a"}, 5, {"event":"nope","ts":1,"session_id":"a"}, {"ts":1}]"#)
        #expect(r == ["ok", "not_an_object", "unknown_event", "missing_field:event"])
        #expect(reasons("[]") == ["empty_batch"])
        #expect(reasons(#"[{"event":"view_start","ts":1,"session_id":"a"},"#) == ["invalid_json"])
    }

    @Test func rejectReasonCodes() {
        // The colon after a key (read with the key): required, whitespace around it allowed.
        #expect(reasons(#"{"event":"view_start","ts" 1,"session_id":"a"}"#) == ["invalid_json"])
        #expect(reasons(#"{"event":"view_start","ts"1,"session_id":"a"}"#) == ["invalid_json"])
        #expect(reasons(#"{"event":"view_start","ts" : 1,"session_id":"a"}"#) == ["ok"])
        #expect(reasons("{\"event\":\"view_start\",\"ts\"\t:1,\"session_id\":\"a\"}") == ["ok"])
        #expect(reasons("") == ["invalid_json"])
        #expect(reasons("{") == ["invalid_json"])
        #expect(reasons(#"{"event":"view_start","ts":1,"session_id":"a"} x"#) == ["invalid_json"])
        #expect(reasons("42") == ["not_an_object"])
        #expect(reasons(#"{"ts":1,"session_id":"a"}"#) == ["missing_field:event"])
        #expect(reasons(#"{"event":"view_start","session_id":"a"}"#) == ["missing_field:ts"])
        #expect(reasons(#"{"event":"view_start","ts":1}"#) == ["missing_field:session_id"])
        #expect(reasons(#"{"event":"view_start","ts":"1","session_id":"a"}"#) == ["wrong_type:ts"])
        #expect(reasons(#"{"event":"view_start","ts":1.5,"session_id":"a"}"#) == ["wrong_type:ts"])
        #expect(reasons(#"{"event":"view_start","ts":99999999999999999999,"session_id":"a"}"#) == ["wrong_type:ts"])
        #expect(reasons(#"{"event":"view_start","ts":-1,"session_id":"a"}"#) == ["invalid_value:ts"])
        #expect(reasons(#"{"event":5,"ts":1,"session_id":"a"}"#) == ["wrong_type:event"])
        #expect(reasons(#"{"event":"view_start","ts":1,"session_id":7}"#) == ["wrong_type:session_id"])
        #expect(reasons(#"{"event":"view_start","ts":1,"session_id":"a","live":"yes"}"#) == ["wrong_type:live"])
        #expect(reasons(#"{"event":"view_start","ts":1,"session_id":"a","played_ms":-5}"#) == ["invalid_value:played_ms"])
        #expect(reasons(#"{"event":"view_end","ts":1,"session_id":"a","reason":"bored"}"#) == ["invalid_value:reason"])
        #expect(reasons(#"{"event":"unknown","ts":1,"session_id":"a"}"#) == ["unknown_event"])
        #expect(reasons(#"{"event":"view_start","ts":1,"session_id":""}"#) == ["invalid_value:session_id"])
        let long = String(repeating: "x", count: 129)
        #expect(reasons(#"{"event":"view_start","ts":1,"session_id":"\#(long)"}"#) == ["field_too_long:session_id"])
        let ua = String(repeating: "u", count: 1025)
        #expect(reasons(#"{"event":"view_start","ts":1,"session_id":"a","user_agent":"\#(ua)"}"#) == ["field_too_long:user_agent"])
        let big = #"{"event":"view_start","ts":1,"session_id":"a","pad":""# + String(repeating: "p", count: 1 << 20) + "\"}"
        #expect(reasons(big) == ["too_large"])
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(reasons(#"{"event":"view_start","ts":1,"session_id":"a","x":\#(deep)}"#) == ["invalid_json"])
        #expect(BeaconDecoder.decode([0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]).count == 1)
        #expect(reasons("{\"event\":\"view_start\",\"ts\":1,\"session_id\":\"\u{1}\"}") == ["invalid_json"])
    }

    /// The word-compare key and event lookup recognises every known name
    /// whether its bytes are loaded as words (24 bytes follow the token) or
    /// gathered one by one (near the end of a message); near misses stay unknown.
    @Test func everyKeyAndEventIsRecognisedAtAnyPosition() throws {
        for (i, name) in FieldReader.names.enumerated() {
            let key = name.description
            for tail in ["", String(repeating: " ", count: 30)] {
                let m = Array(#"{"\#(key)":null"#.utf8) + Array(tail.utf8) + [UInt8(ascii: "}")]
                m.withUnsafeBytes { raw in
                    var p = JSONCursor(raw)
                    p.advance()
                    let tok = p.readRawString()!
                    #expect(FieldReader.field(tok, p)?.rawValue == i, "\(key) tail \(tail.count)")
                }
            }
            for miss in [key + "x", String(key.dropLast()), "x" + key, key.uppercased()] {
                for tail in ["", String(repeating: " ", count: 30)] {
                    let m = Array(#"{"\#(miss)":1"#.utf8) + Array(tail.utf8) + [UInt8(ascii: "}")]
                    m.withUnsafeBytes { raw in
                        var p = JSONCursor(raw)
                        p.advance()
                        let tok = p.readRawString()!
                        #expect(FieldReader.field(tok, p) == nil, "\(miss)")
                    }
                }
            }
        }
        for e in EventType.allCases {
            for tail in ["", String(repeating: " ", count: 30)] {
                let b = try #require(beacon(#"{"ts":1,"session_id":"s","event":"\#(e.name)"\#(tail)}"#))
                #expect(b.event == e)
                #expect(reasons(#"{"ts":1,"session_id":"s","event":"\#(e.name)_"\#(tail)}"#) == ["unknown_event"])
                #expect(reasons(#"{"ts":1,"session_id":"s","event":"\#(e.name.dropLast())"\#(tail)}"#) == ["unknown_event"])
            }
        }
    }

    /// A guessed key is compared as whole words without reading a byte past
    /// the buffer: every known key's token, at every offset of buffers that
    /// end right after it (the last byte before a page the process may not
    /// read, so an over-read ends the test run), matches exactly itself —
    /// not with any one byte changed (quotes included), not cut short — and
    /// moves the cursor past it only when it matches.
    @Test func aKeyTokenIsComparedInPlaceWithoutReadingPastTheBuffer() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let region = try #require(mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        #expect(region != MAP_FAILED)
        defer { munmap(region, 2 * page) }
        #expect(mprotect(region + page, page, PROT_NONE) == 0)
        let guardStart = region + page
        var checked = 0
        /// A cursor at `candidate`, placed to end right at the guarded page
        /// after `before` bytes of `filler`.
        func atPageEnd(_ candidate: [UInt8], before: Int, filler: UInt8) -> JSONCursor {
            let count = before + candidate.count
            let start = guardStart - count
            memset(start, Int32(filler), before)
            candidate.withUnsafeBytes { memcpy(start + before, $0.baseAddress!, candidate.count) }
            var p = JSONCursor(UnsafeRawBufferPointer(start: start, count: count))
            p.index = before
            return p
        }
        let tokens = FieldReader.names.enumerated().flatMap { f, name in
            let key = [UInt8(ascii: "\"")] + Array(name.description.utf8) + [UInt8(ascii: "\""), UInt8(ascii: ":")]
            return [(FieldReader.keyTokens[f], key, name), (FieldReader.separatedKeyTokens[f], [UInt8(ascii: ",")] + key, name)]
        }
        for (token, bytes, name) in tokens {
            #expect(token.length == bytes.count && token.bytes == bytes)
            for before in 0..<12 {  // bytes of the buffer before the token
                let variants: [([UInt8], Bool)] = [(bytes, true), (Array(bytes.dropLast()), false)]
                    + bytes.indices.map { k in var v = bytes; v[k] ^= 0x20; return (v, false) }
                for (candidate, matches) in variants {
                    var p = atPageEnd(candidate, before: before, filler: UInt8(ascii: ","))
                    #expect(FieldReader.readKey(token, &p) == matches, "\(name) after \(before) bytes: \(candidate)")
                    #expect(p.index == (matches ? p.count : before))
                    checked += 1
                }
            }
        }
        // Event values: the predictor's first-letter switch and whole-token
        // compare, on the same guarded buffers.
        let predictor = FieldReader.KeyPredictor()
        for e in EventType.allCases {
            let bytes = Array("\"\(e.name)\"".utf8)
            for before in 0..<12 {
                let variants: [([UInt8], EventType?)] = [(bytes, e), (Array(bytes.dropLast()), nil),
                                                         (Array(bytes.dropLast()) + Array("_\"".utf8), nil)]
                    + bytes.indices.map { k in var v = bytes; v[k] ^= 0x20; return (v, nil) }
                for (candidate, expected) in variants {
                    var p = atPageEnd(candidate, before: before, filler: UInt8(ascii: ":"))
                    #expect(predictor.readEvent(&p) == expected, "\(e.name) after \(before) bytes: \(candidate)")
                    #expect(p.index == (expected == nil ? before : p.count))
                    checked += 1
                }
            }
        }
        // Plain string content (a lent session id's guessed length): every
        // length from 8 to 40 at the end of the page, clean, and with one
        // byte at any position made a quote, backslash, control or non-ASCII byte.
        var rng = SplitMix64(seed: 25)
        for count in 8...40 {
            let clean = (0..<count).map { _ in UInt8(0x20 + rng.next() % 95) }.map { $0 == 0x22 || $0 == 0x5C ? 0x61 : $0 }
            let variants: [([UInt8], Bool)] = [(clean, true)] + (0..<count).flatMap { k in
                [UInt8(0x22), 0x5C, 0x00, 0x1F, 0x80, 0xC3, 0xFF].map { bad in var v = clean; v[k] = bad; return (v, false) }
            }
            for (candidate, plain) in variants {
                let p = atPageEnd(candidate, before: 0, filler: 0)
                #expect(p.isPlainASCII(0, count: count) == plain, "\(candidate)")
                checked += 1
            }
        }
        #expect(checked > 10_000)
    }

    /// Digits read a word at a time agree with reading them one by one:
    /// every byte value at every position of a word of digits, and words
    /// whose digits stop anywhere.
    @Test func eightDigitsAtOnceMatchTheBytewiseValue() {
        func bytewise(_ b: [UInt8]) -> UInt32? {
            var v: UInt32 = 0
            for c in b { guard c >= 0x30 && c <= 0x39 else { return nil }; v = v * 10 + UInt32(c - 0x30) }
            return v
        }
        func word(_ b: [UInt8]) -> UInt64 { b.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } }
        var rng = SplitMix64(seed: 8)
        var checked = 0
        for _ in 0..<200 {
            let digits = (0..<8).map { _ in UInt8(0x30 + rng.next() % 10) }
            #expect(JSONCursor.eightDigits(word(digits)) == bytewise(digits))
            for k in 0..<8 {
                for c in 0...255 {
                    var b = digits
                    b[k] = UInt8(c)
                    #expect(JSONCursor.eightDigits(word(b)) == bytewise(b), "\(b)")
                    checked += 1
                }
            }
        }
        // A word with its first other byte anywhere (any value, any bytes
        // after it): the digits before it counted and read exactly.
        for _ in 0..<20_000 {
            let n = Int(rng.next() % 8)
            var b = (0..<8).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            for k in 0..<n { b[k] = UInt8(0x30 + rng.next() % 10) }
            if b[n] >= 0x30 && b[n] <= 0x39 { b[n] = [0x00, 0x2F, 0x3A, 0x2E, 0x65, 0x7D, 0xB0, 0xFF][Int(rng.next() % 8)] }
            let others = JSONCursor.nonDigitBytes(word(b))
            #expect(others != 0 && others.trailingZeroBitCount >> 3 == n, "\(b)")
            if n > 0 {
                #expect(JSONCursor.leadingDigitsValue(word(b), count: n) == bytewise(Array(b.prefix(n))), "\(b)")
            }
        }
        #expect(JSONCursor.eightDigits(word(Array("99999999".utf8))) == 99_999_999)
        #expect(JSONCursor.eightDigits(word(Array("00000000".utf8))) == 0)
        #expect(checked == 200 * 8 * 256)
    }

    /// The integer fast path and the general number lexer agree.
    @Test func integersTakeTheFastPathOnlyWhenPlain() throws {
        func ts(_ v: String) -> [String] { reasons(#"{"event":"heartbeat","session_id":"s","ts":\#(v)}"#) }
        #expect(try #require(beacon(#"{"event":"heartbeat","session_id":"s","ts":0}"#)).ts == 0)
        #expect(try #require(beacon(#"{"event":"heartbeat","session_id":"s","ts":999999999999999999}"#)).ts == 999_999_999_999_999_999)
        #expect(try #require(beacon(#"{"event":"heartbeat","session_id":"s","ts":9223372036854775807}"#)).ts == .max)
        #expect(ts("9223372036854775808") == ["wrong_type:ts"])  // overflow
        #expect(ts("01") == ["invalid_json"])
        #expect(ts("1.0") == ["wrong_type:ts"])
        #expect(ts("1e3") == ["wrong_type:ts"])
        #expect(ts("-1") == ["invalid_value:ts"])
        #expect(ts("1x") == ["invalid_json"])
        // Every length up to 19 digits, at the message's end and not, with a
        // fraction or exponent after any of them (the eight-digit words
        // stop at the first byte that is no digit).
        var rng = SplitMix64(seed: 19)
        for n in 1...19 {
            let digits = "1" + String((1..<n).map { _ in Character(String(rng.next() % 10)) })
            let value = Int64(digits)!
            #expect(try #require(beacon(#"{"event":"heartbeat","session_id":"s","ts":\#(digits)}"#)).ts == value, "\(digits)")
            #expect(try #require(beacon(#"{"ts":\#(digits),"event":"heartbeat","session_id":"s"}"#)).ts == value, "\(digits)")
            #expect(ts(digits + ".5") == ["wrong_type:ts"], "\(digits)")
            #expect(ts(digits + "e2") == ["wrong_type:ts"], "\(digits)")
            #expect(ts(digits + "x") == ["invalid_json"], "\(digits)")
        }
    }

    /// Strings are scanned eight bytes at a time: a quote, backslash, control
    /// character or non-ASCII byte at any offset is still seen.
    @Test func stringsAreScannedCorrectlyAtEveryOffset() throws {
        for k in 0..<20 {
            let pad = String(repeating: "a", count: k)
            let b = try #require(beacon(#"{"event":"heartbeat","ts":1,"session_id":"\#(pad)\"q\\b\#(pad)"}"#))
            #expect(b.sessionId == pad + "\"q\\b" + pad)
            #expect(try #require(beacon(#"{"event":"heartbeat","ts":1,"session_id":"\#(pad)é\#(pad)"}"#)).sessionId == pad + "é" + pad)
            var raw = Array(#"{"event":"heartbeat","ts":1,"session_id":"\#(pad)X\#(pad)"}"#.utf8)
            let x = raw.firstIndex(of: UInt8(ascii: "X"))!
            raw[x] = 0x0A  // a raw control character
            #expect(reasonsOf(raw) == ["invalid_json"])
            raw[x] = 0xFF  // not UTF-8
            #expect(reasonsOf(raw) == ["invalid_utf8"])
        }
    }

    /// decodeEach hands a plain ASCII session id over as bytes (sessionId
    /// left empty) and anything else as the String; the last key wins.
    @Test func sessionIdsComeAsBytesWhenPlain() {
        func each(_ json: String) -> [(String, String?)] {
            var out: [(String, String?)] = []
            Array(json.utf8).withUnsafeBytes { raw in
                BeaconDecoder.decodeEach(raw, onBeacon: { b, id in
                    out.append((b.sessionId, id.map { String(decoding: $0, as: UTF8.self) }))
                }, onReject: { _, _ in })
            }
            return out
        }
        #expect(each(#"{"event":"heartbeat","ts":1,"session_id":"abc-123"}"#).map { $0.1 } == ["abc-123"])
        #expect(each(#"{"event":"heartbeat","ts":1,"session_id":"abc-123"}"#).map { $0.0 } == [""])
        #expect(each(#"{"event":"heartbeat","ts":1,"session_id":"a\u0062c"}"#).map { $0.0 } == ["abc"])
        #expect(each(#"{"event":"heartbeat","ts":1,"session_id":"é"}"#).map { $0.1 } == [nil])
        #expect(each(#"{"event":"heartbeat","ts":1,"session_id":"x","session_id":"\u0079"}"#).map { $0.0 } == ["y"])
        #expect(each(#"{"event":"heartbeat","ts":1,"session_id":"\u0079","session_id":"x"}"#).map { $0.1 } == ["x"])
        #expect(each(#"[{"event":"heartbeat","ts":1,"session_id":"p"},{"event":"heartbeat","ts":1,"session_id":"q"}]"#).map { $0.1 } == ["p", "q"])
        #expect(reasons(#"{"event":"heartbeat","ts":1,"session_id":""}"#) == ["invalid_value:session_id"])
        #expect(reasons(#"{"event":"heartbeat","ts":1,"session_id":"\#(String(repeating: "a", count: 129))"}"#) == ["field_too_long:session_id"])
        // The array API still carries the String.
        #expect(beacon(#"{"event":"heartbeat","ts":1,"session_id":"abc-123"}"#)?.sessionId == "abc-123")
    }

    /// The engine reuses one FieldReader for every message: after `reset()`
    /// it must equal a fresh one whatever the previous object set.
    @Test func resetClearsEveryField() {
        let full = #"{"event":"view_end","ts":1,"session_id":"s\u002d1","seq":1,"viewer_id":"v","video_id":"vid","#
            + #""video_duration_ms":5,"live":true,"ip":"1.2.3.4","country":"US","region":"CA","user_agent":"ua","#
            + #""device_type":"tv","os":"x","browser":"b","player_name":"p","player_version":"1","cdn":"c","pop":"pp","#
            + #""bitrate_kbps":1,"played_ms":1,"playhead_ms":1,"duration_ms":1,"error_code":"E","fatal":true,"#
            + #""reason":"ended","http_status":200,"download_ms":1,"ttfb_ms":1,"bytes":1,"cache":"HIT"}"#
        // Every wire name is a Beacon field, and `full` sets every one of them.
        let isSet: [String: (Beacon) -> Bool] = [
            "event": { $0.event == .viewEnd }, "ts": { $0.ts == 1 }, "session_id": { $0.sessionId == "s-1" },
            "seq": { $0.seq != nil }, "viewer_id": { $0.viewerId != nil }, "video_id": { $0.videoId != nil },
            "video_duration_ms": { $0.videoDurationMs != nil }, "live": { $0.live != nil }, "ip": { $0.ip != nil },
            "country": { $0.country != nil }, "region": { $0.region != nil }, "user_agent": { $0.userAgent != nil },
            "device_type": { $0.deviceType != nil }, "os": { $0.os != nil }, "browser": { $0.browser != nil },
            "player_name": { $0.playerName != nil }, "player_version": { $0.playerVersion != nil },
            "cdn": { $0.cdn != nil }, "pop": { $0.pop != nil }, "bitrate_kbps": { $0.bitrateKbps != nil },
            "played_ms": { $0.playedMs != nil }, "playhead_ms": { $0.playheadMs != nil },
            "duration_ms": { $0.durationMs != nil }, "error_code": { $0.errorCode != nil }, "fatal": { $0.fatal != nil },
            "reason": { $0.reason != nil }, "http_status": { $0.httpStatus != nil }, "download_ms": { $0.downloadMs != nil },
            "ttfb_ms": { $0.ttfbMs != nil }, "bytes": { $0.bytes != nil }, "cache": { $0.cache != nil },
        ]
        #expect(Set(isSet.keys) == Set(FieldReader.names.map { $0.description }))
        var reader = FieldReader()
        Array(full.utf8).withUnsafeBytes { raw in
            BeaconDecoder.decodeEach(raw, reader: &reader, onBeacon: { b, _ in
                for (name, set) in isSet { #expect(set(b), "\(name) not set") }
                #expect(b.sessionId == "s-1")
            }, onReject: { r, _ in Issue.record("rejected: \(r)") })
        }
        #expect(reader != FieldReader())
        reader.reset()
        #expect(reader == FieldReader())
        // A reject's error and a byte-range session id are cleared too.
        Array(#"{"event":"heartbeat","ts":"x","session_id":"abc"}"#.utf8).withUnsafeBytes { raw in
            BeaconDecoder.decodeEach(raw, reader: &reader, onBeacon: { _, _ in }, onReject: { _, _ in })
        }
        #expect(reader.error != nil && reader.sessionIdRange != nil)
        reader.reset()
        #expect(reader == FieldReader())
    }

    /// Beacon keeps its rare strings in a shared box and its numbers with a
    /// presence mask: copies stay independent, an emptied box equals none,
    /// and a present zero is not an absent number.
    @Test func beaconCopiesAreIndependentValues() {
        var a = Beacon(event: .viewStart, ts: 1, sessionId: "s")
        a.country = "US"
        a.playedMs = 5
        var b = a
        b.country = "FR"
        b.playedMs = nil
        b.userAgent = "x"
        #expect(a.country == "US" && a.playedMs == 5 && a.userAgent == nil)
        #expect(b.country == "FR" && b.playedMs == nil && b.userAgent == "x")
        #expect(a != b)
        b.country = nil
        b.userAgent = nil
        var c = Beacon(event: .viewStart, ts: 1, sessionId: "s")
        #expect(b == c)
        #expect("\(b)" == "\(c)")
        c.playedMs = 0
        #expect(b != c && c.playedMs == 0)
        #expect("\(a)".contains("country: \"US\"") && "\(a)".contains("playedMs: 5"))
    }

    /// One reader across a generated stream decodes exactly what a fresh reader per message does.
    @Test func reusedReaderDecodesLikeFreshOnes() {
        var o = GeneratorOptions()
        o.sessions = 40
        var reader = FieldReader()
        var n = 0
        for m in TrafficGenerator(o) {
            var reused: [String] = [], fresh: [String] = []
            m.payload.withUnsafeBytes { raw in
                BeaconDecoder.decodeEach(raw, reader: &reader, onBeacon: { b, id in
                    reused.append("\(b) \(id.map { Array($0) } ?? [])")
                }, onReject: { r, range in reused.append("\(r) \(range)") })
                BeaconDecoder.decodeEach(raw, onBeacon: { b, id in
                    fresh.append("\(b) \(id.map { Array($0) } ?? [])")
                }, onReject: { r, range in fresh.append("\(r) \(range)") })
            }
            #expect(reused == fresh)
            n += 1
        }
        #expect(n > 500)
    }

    /// A reader that learned the key order (`FieldReader.KeyPredictor`)
    /// decodes exactly what a fresh reader does, whatever the order: keys
    /// shuffled per object, near-misses of known names (prefixes,
    /// extensions, other case), escaped spellings of known names, unknown
    /// keys, whitespace around separators, and objects cut at every byte
    /// (keys at and past the end).
    @Test func aLearnedKeyOrderNeverChangesWhatIsDecoded() {
        var rng = SplitMix64(seed: 17)
        let pairs = [#""event":"heartbeat""#, #""event":"segment""#, #""ts":5"#, #""session_id":"abc""#, #""seq":3"#,
                     #""played_ms":10"#, #""playhead_ms":7"#, #""bitrate_kbps":300"#, #""cache":"HIT""#,
                     #""tsx":1"#, #""t":2"#, #""TS":3"#, #""ts":9"#, #""session_i":"x""#, #""played_msec":4"#,
                     #""video_duration_ms":60000"#, #""live":true"#, #""x":{"ts":1}"#, #""bytes":"#,
                     #""xs":8"#, #""deq":1"#, #""zache":"M""#, #""Seq":2"#,
                     #""event":"seek_end""#, #""event":"segments""#, #""event":"se\u0067ment""#, #""event":"rebuffer_end""#,
                     #""event":"Heartbeat""#, #""ts":12345678901234"#, #""ts":1234567890123456789"#, #""seq":00"#,
                     // Session ids of one length (guessed after the first), longer, shorter, escaped, not ASCII.
                     #""session_id":"0123456789""#, #""session_id":"abcdefghij""#, #""session_id":"0123456789ab""#,
                     #""session_id":"01234567""#, #""session_id":"0123\u0034\u00355""#, #""session_id":"éé345678""#,
                     #""session_id":"012345678\\""#, #""session_id":"01234567\\""#,
                     #""session_id":"""#]
        var warmed = DecodeScratch()
        var objects = 0
        for round in 0..<3_000 {
            // Long objects, and short ones (whose keys all lie near the end of the buffer).
            var chosen = round % 3 == 0 ? (0..<3).map { _ in pairs[Int(rng.next() % UInt64(pairs.count))] }
                                        : pairs.filter { _ in rng.next() % 3 != 0 }
            if round % 2 == 0 { chosen.sort() }  // a stable order, so the predictor learns and is then tried
            else { chosen.shuffle(using: &rng) }
            // Whitespace after a colon or a comma, in some objects: where the
            // separator, key and colon are matched at once, and where they are not.
            var body = chosen.joined(separator: round % 11 == 0 ? ", " : ",")
            if round % 7 == 0 { body = body.replacingOccurrences(of: "\":", with: "\": ") }
            // A space before a colon: the key's token and colon do not match whole.
            if round % 13 == 0 { body = body.replacingOccurrences(of: "\":", with: "\" :") }
            // No colon at all: invalid whether the key was guessed or not.
            if round % 17 == 0 { body = body.replacingOccurrences(of: "\":", with: "\"") }
            var text = Array(("{" + body + "}").utf8)
            if round % 5 == 0 { text = Array(text.prefix(Int(rng.next() % UInt64(text.count + 1)))) }
            let fresh = BeaconDecoder.decode(text).map { "\($0)" }
            var got: [String] = []
            text.withUnsafeBytes { raw in
                BeaconDecoder.decodeLending(raw, scratch: &warmed, onBeacon: { b in
                    var own = b
                    if own.sessionIdSpan != nil { own.ownSessionId(from: raw) }
                    got.append("\(DecodedItem.beacon(own))")
                }, onReject: { got.append("\(DecodedItem.reject($0, payload: $1))") })
            }
            #expect(got == fresh, "\(String(decoding: text, as: UTF8.self))")
            objects += 1
        }
        #expect(objects == 3_000)
    }

    /// The decode stage's lending decoder yields what the array API does,
    /// the session id read from the message when it is lent, over generated
    /// traffic, arrays, escaped / non-ASCII ids and rejects; and a lent id
    /// is a span of the very message (the engine reads it from the copy).
    @Test func lendingDecoderEqualsTheArrayAPI() {
        var o = GeneratorOptions()
        o.sessions = 40
        var messages = TrafficGenerator(o).map { $0.payload }
        messages += [#"[{"event":"heartbeat","ts":1,"session_id":"p"},{"event":"heartbeat","ts":2,"session_id":"q\u0072"}]"#,
                     #"{"event":"heartbeat","ts":1,"session_id":"é"}"#, #"{"event":"heartbeat","ts":"x","session_id":"abc"}"#,
                     #"{"event":"heartbeat","ts":1,"session_id":"a","session_id":"b"}"#, "[1,2]", "nope"].map { Array($0.utf8) }
        var scratch = DecodeScratch()
        var lent = 0
        for m in messages {
            let expected = BeaconDecoder.decode(m).map { "\($0)" }
            var got: [String] = []
            let copy = m  // the engine applies the items with a copy of the record's bytes
            m.withUnsafeBytes { raw in
                BeaconDecoder.decodeLending(raw, scratch: &scratch) { item in
                    guard case .beacon(var b) = item, b.sessionIdSpan != nil else { return got.append("\(item)") }
                    copy.withUnsafeBytes { c in b.sessionId = String(decoding: b.sessionIdBytes(in: c)!, as: UTF8.self) }
                    #expect(b.sessionIdSpan != nil && !b.sessionId.isEmpty)
                    b.sessionIdSpan = nil
                    lent += 1
                    got.append("\(DecodedItem.beacon(b))")
                }
            }
            #expect(got == expected)
        }
        #expect(lent > 500)
    }

    func reasonsOf(_ bytes: [UInt8]) -> [String] {
        BeaconDecoder.decode(bytes).map { if case .reject(let r, _) = $0 { return r.code } else { return "ok" } }
    }

    @Test func invalidUTF8InAKnownFieldIsRejected() {
        var bytes = Array(#"{"event":"view_start","ts":1,"session_id":"ab"}"#.utf8)
        bytes[bytes.count - 3] = 0xC3 // a lone lead byte
        let items = BeaconDecoder.decode(bytes)
        guard case .reject(let r, let range) = items[0] else { Issue.record("accepted"); return }
        #expect(r == .invalidUTF8 && range == 0..<bytes.count)
    }

    /// 100 000 seeded random mutations of valid beacons: every message yields
    /// at least one item, every item is a beacon or a reject with an
    /// in-bounds payload, and every beacon survives an encode/decode round trip.
    @Test func fuzzedBeaconsNeverCrash() {
        var rng = SplitMix64(seed: 20261125)
        let seeds = DecoderTests.seedMessages
        var beacons = 0, rejects = 0
        for _ in 0..<100_000 {
            var m = Array(seeds[Int(rng.next() % UInt64(seeds.count))].utf8)
            for _ in 0...(rng.next() % 4) { mutate(&m, &rng) }
            let items = BeaconDecoder.decode(m)
            #expect(!items.isEmpty)
            for item in items {
                switch item {
                case .beacon(let b):
                    beacons += 1
                    let again = BeaconDecoder.decode(BeaconEncoder.encode(b))
                    if case .beacon(let c) = again.first, again.count == 1 { #expect(c == b) } else {
                        Issue.record("round trip failed for \(b)")
                    }
                case .reject(_, let range):
                    rejects += 1
                    #expect(range.lowerBound >= 0 && range.upperBound <= m.count)
                case .cdnLog:
                    Issue.record("the beacon decoder returned a CDN log record")
                }
            }
        }
        #expect(beacons > 1000 && rejects > 1000)
    }

    static let seedMessages = [
        #"{"event":"view_start","ts":1700000000000,"session_id":"s1","seq":1,"viewer_id":"v1","video_id":"vid-9","live":false,"user_agent":"Mozilla/5.0 (X11)","cdn":"akamai"}"#,
        #"[{"event":"heartbeat","ts":1700000010000,"session_id":"s1","played_ms":10000,"bitrate_kbps":3000},{"event":"segment","ts":1700000010001,"session_id":"s1","http_status":200,"download_ms":120,"bytes":100000,"cache":"HIT"}]"#,
        #"{"event":"error","ts":1700000020000,"session_id":"s\u00e9","error_code":"NET","fatal":true,"x":{"y":[1,2.5e3,"z",null,true]}}"#,
        #"{"event":"view_end","ts":1700000030000,"session_id":"s1","reason":"ended","playhead_ms":599000}"#,
    ]

    func mutate(_ m: inout [UInt8], _ rng: inout SplitMix64) {
        let specials: [UInt8] = Array("\"\\{}[],:0123456789-.eEtfnu ".utf8) + [0x00, 0x1F, 0x80, 0xC3, 0xFF]
        let n = m.count
        switch rng.next() % 6 {
        case 0 where n > 0: m[Int(rng.next() % UInt64(n))] = UInt8(truncatingIfNeeded: rng.next())
        case 1: m.insert(specials[Int(rng.next() % UInt64(specials.count))], at: Int(rng.next() % UInt64(n + 1)))
        case 2 where n > 0:
            let a = Int(rng.next() % UInt64(n)); let b = min(n, a + Int(rng.next() % 16))
            m.removeSubrange(a..<b)
        case 3 where n > 0: m.removeLast(Int(rng.next() % UInt64(n)))
        case 4 where n > 0:
            let a = Int(rng.next() % UInt64(n)); let b = min(n, a + Int(rng.next() % 32))
            m.insert(contentsOf: m[a..<b], at: Int(rng.next() % UInt64(n)))
        default: if n > 0 { m[Int(rng.next() % UInt64(n))] = specials[Int(rng.next() % UInt64(specials.count))] }
        }
    }
}
