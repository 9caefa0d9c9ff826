/// Reads the known keys of one beacon object into a `Beacon`. Semantic
/// problems (wrong type, too long, bad value) are recorded, not thrown: the
/// object is still lexed to its end so the next one can be decoded.
struct FieldReader: Equatable {
    enum Field: Int, CaseIterable {
        case event, ts, sessionId, seq, viewerId, videoId, videoDurationMs, live, ip, country, region
        case userAgent, deviceType, os, browser, playerName, playerVersion, cdn, pop, bitrateKbps
        case playedMs, playheadMs, durationMs, errorCode, fatal, reason, httpStatus, downloadMs
        case ttfbMs, bytes, cache

        var name: String { FieldReader.names[rawValue].description }
    }

    /// Wire names, indexed by `Field.rawValue`.
    static let names: [StaticString] = [
        "event", "ts", "session_id", "seq", "viewer_id", "video_id", "video_duration_ms", "live", "ip",
        "country", "region", "user_agent", "device_type", "os", "browser", "player_name", "player_version",
        "cdn", "pop", "bitrate_kbps", "played_ms", "playhead_ms", "duration_ms", "error_code", "fatal",
        "reason", "http_status", "download_ms", "ttfb_ms", "bytes", "cache",
    ]

    var beacon = Beacon(event: .heartbeat, ts: 0, sessionId: "")
    var hasEvent = false
    var hasTs = false
    var hasSessionId = false
    /// Set when the session id was read as a byte range (`beacon.sessionId` is then empty).
    var sessionIdRange: Range<Int>?
    /// First semantic error in the object, if any.
    var error: RejectReason?

    /// What the reader learned of the key order; kept across objects.
    var predictor = KeyPredictor()

    /// Reads the key at the cursor (the cursor is at its opening quote) and
    /// the colon after it, and moves past both: the known field the key
    /// names, or nil for another key; false on a JSON syntax error. `after`
    /// is the previous key of the object (`KeyPredictor.start` for the
    /// first): when this key is the one that followed it last time, its
    /// token and the colon (`"name":`, the usual compact form) are matched
    /// whole instead of scanned, looked up and followed by a whitespace
    /// skip and a colon check (bench/results/speed.md section 31).
    @inline(__always)
    mutating func readKey(after previous: Int, from p: inout JSONCursor) -> (ok: Bool, field: Field?) {
        let slot = KeyPredictor.slot(event: hasEvent ? beacon.event : nil, after: previous)
        if let guess = predictor.guess(slot), predictor.readKey(named: guess, &p) {
            return (true, guess)
        }
        return readUnpredictedKey(slot: slot, from: &p)
    }

    /// After a value: the comma, key and colon that follow it (`,"name":`)
    /// when the key is the guessed one, the cursor moved past them; nil,
    /// the cursor unchanged, for anything else (whitespace, the object's
    /// end, another key), which the caller then reads the general way.
    @inline(__always)
    mutating func readSeparatedKey(after previous: Int, from p: inout JSONCursor) -> Field? {
        let slot = KeyPredictor.slot(event: hasEvent ? beacon.event : nil, after: previous)
        guard let guess = predictor.guess(slot), predictor.readSeparatedKey(named: guess, &p) else { return nil }
        return guess
    }

    /// `readKey(after:from:)` when the guess is missing or wrong: the key
    /// scanned and looked up, the guess for `slot` learned, the colon read.
    /// Kept out of line so the guessed path inlined into the object loop
    /// stays small.
    @inline(never)
    private mutating func readUnpredictedKey(slot: Int, from p: inout JSONCursor) -> (ok: Bool, field: Field?) {
        guard let key = p.readRawString() else { return (false, nil) }
        let field = FieldReader.field(key, p)
        predictor.learn(field, slot)
        p.skipWhitespace()
        guard p.next() == UInt8(ascii: ":") else { return (false, nil) }
        return (true, field)
    }

    /// Whether the cursor is at `token` (a known key with its quotes), byte
    /// for byte (a known name has no quote or backslash, so no escapes); if
    /// so, moves past it. Two or three word compares, none reading past the
    /// buffer's end: the last word is the one that ends with the token, so
    /// the last key of a line takes no slower path (bench/results/speed.md
    /// section 22). Only a short token in a buffer's first eight bytes is
    /// compared byte by byte.
    @inline(__always)
    static func readKey(_ token: KeyToken, _ p: inout JSONCursor) -> Bool {
        let i = p.index, end = i &+ token.length
        guard end <= p.count else { return false }
        let b = p.base
        if token.length <= 8 {
            if end < 8 {
                guard token.matchesByteByByte(b, at: i) else { return false }
            } else {
                guard b.loadUnaligned(fromByteOffset: end &- 8, as: UInt64.self) & token.tailMask == token.tail else { return false }
            }
        } else {
            guard b.loadUnaligned(fromByteOffset: i, as: UInt64.self) == token.head,
                  b.loadUnaligned(fromByteOffset: end &- 8, as: UInt64.self) == token.tail,
                  token.length <= 16 || b.loadUnaligned(fromByteOffset: i &+ 8, as: UInt64.self) == token.middle
            else { return false }
        }
        p.index = end
        return true
    }

    /// A token compared in place: a known key with its quotes and colon
    /// (`"name":`, `KeyToken(key:)`), or a known string value with its
    /// quotes (`"HIT"`, `KeyToken(string:)`), in little-endian words: the
    /// first eight bytes, the next eight, and the eight that end the token
    /// (for a token of eight bytes or fewer, only its bytes of that last
    /// word count: `tailMask`). Up to 24 bytes; none has a quote or a
    /// backslash inside, so a match is the whole string, unescaped.
    struct KeyToken: Equatable {
        let head: UInt64, middle: UInt64, tail: UInt64, tailMask: UInt64
        let length: Int
        /// The token's bytes, for the compare near a buffer's start.
        let bytes: [UInt8]

        /// `"name":`, the token of a key and its colon.
        init(key name: StaticString) { self.init(KeyToken.quoted(name) + [UInt8(ascii: ":")]) }

        /// `,"name":`, a key with the comma before it and the colon after.
        init(separatedKey name: StaticString) {
            self.init([UInt8(ascii: ",")] + KeyToken.quoted(name) + [UInt8(ascii: ":")])
        }

        /// `"value"`, the token of a string value.
        init(string value: StaticString) { self.init(KeyToken.quoted(value)) }

        private static func quoted(_ name: StaticString) -> [UInt8] {
            let inner = Array(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            precondition(!inner.contains(UInt8(ascii: "\"")) && !inner.contains(UInt8(ascii: "\\")),
                         "a token with a quote or backslash inside would not be the whole string")
            return [UInt8(ascii: "\"")] + inner + [UInt8(ascii: "\"")]
        }

        private init(_ token: [UInt8]) {
            precondition(token.count <= 24, "a token longer than readKey(_:_:) compares")
            func word(_ at: Int) -> UInt64 {  // bytes at..<at+8, zero outside the token
                (0..<8).reduce(0) { w, k in
                    at + k >= 0 && at + k < token.count ? w | UInt64(token[at + k]) << (8 * UInt64(k)) : w
                }
            }
            length = token.count
            bytes = token
            head = word(0)
            middle = word(8)
            tail = word(token.count - 8)
            tailMask = token.count >= 8 ? .max : ~UInt64(0) << (8 * UInt64(8 - token.count))
        }

        func matchesByteByByte(_ b: UnsafeRawBufferPointer, at i: Int) -> Bool {
            for k in 0..<length where b[i + k] != bytes[k] { return false }
            return true
        }
    }

    /// Each known key's token, by `Field.rawValue`.
    static let keyTokens: [KeyToken] = names.map { KeyToken(key: $0) }
    /// The same with the comma before it.
    static let separatedKeyTokens: [KeyToken] = names.map { KeyToken(separatedKey: $0) }

    /// Reads the value of a `field` key (nil: another key, whose value is
    /// validated and skipped). Returns false only on a JSON syntax error.
    /// Inlined into the object loop: the dispatch on the field is the only
    /// work between the key and the field's own reader (bench/results/speed.md section 35).
    @inline(__always)
    mutating func read(_ field: Field?, from p: inout JSONCursor) -> Bool {
        guard let field else { return p.skipValue(depth: 1) }
        if p.peek() == UInt8(ascii: "n") {
            // null: treated as absent.
            return p.readLiteral("null")
        }
        switch field {
        case .event: return readEvent(&p)
        case .ts: return readInt(&p, field, min: 0) { b, v in b.ts = v } && mark(&hasTs)
        case .sessionId: return readSessionId(&p)
        case .seq: return readInt(&p, field, min: 0, max: BeaconLimits.seqMax) { b, v in b.seq = UInt32(v) }
        case .viewerId: return readString(&p, field, BeaconLimits.viewerIdBytesMax) { b, v in b.viewerId = v }
        case .videoId: return readString(&p, field, BeaconLimits.videoIdBytesMax) { b, v in b.videoId = v }
        case .videoDurationMs: return readInt(&p, field, min: 0, max: BeaconLimits.positionMsMax) { b, v in b.videoDurationMs = v }
        case .live: return readBool(&p, field) { b, v in b.live = v }
        case .fatal: return readBool(&p, field) { b, v in b.fatal = v }
        case .userAgent: return readString(&p, field, BeaconLimits.userAgentBytesMax) { b, v in b.userAgent = v }
        case .reason: return readReason(&p)
        case .bitrateKbps: return readInt(&p, field, min: 0, max: BeaconLimits.bitrateKbpsMax) { b, v in b.bitrateKbps = v }
        case .playedMs: return readInt(&p, field, min: 0, max: BeaconLimits.durationMsMax) { b, v in b.playedMs = v }
        case .playheadMs: return readInt(&p, field, min: 0, max: BeaconLimits.positionMsMax) { b, v in b.playheadMs = v }
        case .durationMs: return readInt(&p, field, min: 0, max: BeaconLimits.durationMsMax) { b, v in b.durationMs = v }
        case .httpStatus: return readInt(&p, field, min: 0, max: 999) { b, v in b.httpStatus = v }
        case .downloadMs: return readInt(&p, field, min: 0, max: BeaconLimits.durationMsMax) { b, v in b.downloadMs = v }
        case .ttfbMs: return readInt(&p, field, min: 0, max: BeaconLimits.durationMsMax) { b, v in b.ttfbMs = v }
        case .bytes: return readInt(&p, field, min: 0, max: BeaconLimits.segmentBytesMax) { b, v in b.bytes = v }
        case .cache: return readCache(&p)
        default: return readDimension(&p, field)
        }
    }

    private mutating func readDimension(_ p: inout JSONCursor, _ field: Field) -> Bool {
        let set: (inout Beacon, String) -> Void
        switch field {
        case .ip: set = { $0.ip = $1 }
        case .country: set = { $0.country = $1 }
        case .region: set = { $0.region = $1 }
        case .deviceType: set = { $0.deviceType = $1 }
        case .os: set = { $0.os = $1 }
        case .browser: set = { $0.browser = $1 }
        case .playerName: set = { $0.playerName = $1 }
        case .playerVersion: set = { $0.playerVersion = $1 }
        case .cdn: set = { $0.cdn = $1 }
        case .pop: set = { $0.pop = $1 }
        case .errorCode: set = { $0.errorCode = $1 }
        default: set = { $0.cache = $1 }
        }
        return readString(&p, field, BeaconLimits.otherStringBytesMax, set)
    }

    /// `cache`, on every segment beacon: its two usual values, `"HIT"` and
    /// `"MISS"`, matched as whole tokens and stored as a code
    /// (`Beacon.CacheCode`: no String built from the bytes per beacon); any
    /// other value as a dimension.
    private mutating func readCache(_ p: inout JSONCursor) -> Bool {
        if FieldReader.readKey(hitToken, &p) { beacon.setUsualCache(hit: true); return true }
        if FieldReader.readKey(missToken, &p) { beacon.setUsualCache(hit: false); return true }
        return readDimension(&p, .cache)
    }

    /// The tokens `readCache` matches, held by the reader (a `static let`
    /// is reached through a one-time initialization check on every read).
    private let hitToken = KeyToken(string: "HIT"), missToken = KeyToken(string: "MISS")

    private func mark(_ flag: inout Bool) -> Bool { flag = true; return true }

    private mutating func fail(_ r: RejectReason) { if error == nil { error = r } }

    /// A plain ASCII session id (no escapes) is kept as its byte range:
    /// the engine looks sessions up by bytes and builds the String only for
    /// a new session. Anything else takes the general string path.
    private mutating func readSessionId(_ p: inout JSONCursor) -> Bool {
        guard p.peek() == UInt8(ascii: "\"") else {
            fail(.wrongType(Field.sessionId.name)); return p.skipValue(depth: 1)
        }
        // A player's ids have one length: the id as long as the last plain
        // one, when its bytes are plain ASCII and a quote follows them.
        let start = p.index &+ 1, guess = predictor.sessionIdLength
        if guess > 0 && start &+ guess < p.count && p.base[start &+ guess] == UInt8(ascii: "\"")
            && p.isPlainASCII(start, count: guess) {
            p.index = start &+ guess &+ 1
            return lendSessionId(start..<(start &+ guess))
        }
        var probe = p
        guard let raw = probe.readRawString() else { return false }
        if !raw.hasEscapes && raw.length <= BeaconLimits.sessionIdBytesMax && p.isASCII(raw) {
            p = probe
            if raw.length >= 8 { predictor.sessionIdLength = raw.length }
            return lendSessionId(raw.start..<raw.end)
        }
        sessionIdRange = nil
        return readString(&p, .sessionId, BeaconLimits.sessionIdBytesMax) { b, v in b.sessionId = v } && mark(&hasSessionId)
    }

    /// The session id is the plain bytes at `range` of the message.
    @inline(__always)
    private mutating func lendSessionId(_ range: Range<Int>) -> Bool {
        sessionIdRange = range
        if !beacon.sessionId.isEmpty { beacon.sessionId = "" }  // (an assignment releases the old value)
        hasSessionId = true
        return true
    }

    private mutating func readString(_ p: inout JSONCursor, _ field: Field, _ limit: Int,
                                     _ set: (inout Beacon, String) -> Void) -> Bool {
        guard p.peek() == UInt8(ascii: "\"") else {
            fail(.wrongType(field.name)); return p.skipValue(depth: 1)
        }
        guard let raw = p.readRawString() else { return false }
        guard raw.length <= limit * 6 else { fail(.fieldTooLong(field.name)); return true }
        guard let s = p.string(raw) else { fail(.invalidUTF8); return true }
        guard s.utf8.count <= limit else { fail(.fieldTooLong(field.name)); return true }
        set(&beacon, s)
        return true
    }

    private mutating func readInt(_ p: inout JSONCursor, _ field: Field, min lo: Int64 = .min, max hi: Int64 = .max,
                                  _ set: (inout Beacon, Int64) -> Void) -> Bool {
        if let v = p.readPlainInteger() {
            guard v >= lo && v <= hi else { fail(.invalidValue(field.name)); return true }
            set(&beacon, v)
            return true
        }
        guard let c = p.peek(), c == UInt8(ascii: "-") || (c &- 0x30) < 10 else {
            fail(.wrongType(field.name)); return p.skipValue(depth: 1)
        }
        guard let tok = p.readNumber() else { return false }
        guard tok.isInteger, let v = p.int64(tok) else { fail(.wrongType(field.name)); return true }
        guard v >= lo && v <= hi else { fail(.invalidValue(field.name)); return true }
        set(&beacon, v)
        return true
    }

    private mutating func readBool(_ p: inout JSONCursor, _ field: Field, _ set: (inout Beacon, Bool) -> Void) -> Bool {
        if p.peek() == UInt8(ascii: "t"), p.readLiteral("true") { set(&beacon, true); return true }
        if p.peek() == UInt8(ascii: "f"), p.readLiteral("false") { set(&beacon, false); return true }
        fail(.wrongType(field.name))
        return p.skipValue(depth: 1)
    }

    private mutating func readEvent(_ p: inout JSONCursor) -> Bool {
        guard p.peek() == UInt8(ascii: "\"") else { fail(.wrongType("event")); return p.skipValue(depth: 1) }
        if let e = predictor.readEvent(&p) {
            beacon.event = e
            hasEvent = true
            return true
        }
        guard let raw = p.readRawString() else { return false }
        guard let e = FieldReader.event(raw, p) else { fail(.unknownEvent); return true }
        beacon.event = e
        hasEvent = true
        return true
    }

    private mutating func readReason(_ p: inout JSONCursor) -> Bool {
        guard p.peek() == UInt8(ascii: "\"") else { fail(.wrongType("reason")); return p.skipValue(depth: 1) }
        guard let raw = p.readRawString() else { return false }
        if p.keyEquals(raw, "ended") { beacon.reason = .ended }
        else if p.keyEquals(raw, "exit") { beacon.reason = .exit }
        else if p.keyEquals(raw, "error") { beacon.reason = .error }
        else { fail(.invalidValue("reason")) }
        return true
    }

    static let eventNames: [StaticString] = [
        "view_start", "play_start", "heartbeat", "rebuffer_start", "rebuffer_end", "pause", "resume",
        "seek_start", "seek_end", "bitrate_change", "error", "view_end", "segment",
    ]

    /// A token's first 24 bytes as little-endian words, bytes past its end
    /// zeroed (no known key or event is longer); nil when it is longer.
    /// Near the end of the buffer the bytes are gathered one by one.
    @inline(__always) static func words(_ raw: JSONCursor.RawString, _ p: JSONCursor) -> (UInt64, UInt64, UInt64)? {
        let n = raw.length
        guard n <= 24 else { return nil }
        if raw.start + 24 > p.count {
            var w: (UInt64, UInt64, UInt64) = (0, 0, 0)
            for k in 0..<n {
                let b = UInt64(p.base[raw.start + k]) << (8 * UInt64(k % 8))
                switch k / 8 { case 0: w.0 |= b; case 1: w.1 |= b; default: w.2 |= b }
            }
            return w
        }
        @inline(__always) func word(_ k: Int) -> UInt64 {
            let valid = n - 8 * k
            if valid <= 0 { return 0 }
            let w = p.base.loadUnaligned(fromByteOffset: raw.start + 8 * k, as: UInt64.self)
            return valid >= 8 ? w : w & ((1 << (8 * UInt64(valid))) - 1)
        }
        return (word(0), word(1), word(2))
    }

    /// The known key a token names (escaped tokens are compared after unescaping).
    static func field(_ raw: JSONCursor.RawString, _ p: JSONCursor) -> Field? {
        if raw.hasEscapes {
            for f in Field.allCases where p.keyEquals(raw, names[f.rawValue]) { return f }
            return nil
        }
        guard let w = words(raw, p) else { return nil }
        return fieldByWords(raw.length, w.0, w.1, w.2)
    }

    static func event(_ raw: JSONCursor.RawString, _ p: JSONCursor) -> EventType? {
        if !raw.hasEscapes {
            guard let w = words(raw, p) else { return nil }
            return eventByWords(raw.length, w.0, w.1, w.2)
        }
        for e in EventType.allCases where p.keyEquals(raw, eventNames[Int(e.rawValue)]) { return e }
        return nil
    }

    /// Generated from the names below: the key's words (see `words`) to its case.
    @inline(__always) static func fieldByWords(_ n: Int, _ w0: UInt64, _ w1: UInt64, _ w2: UInt64) -> Field? {
        switch w0 {
        case 0x000000746e657665:
            if n == 5 && w1 == 0x0 && w2 == 0x0 { return .event }  // event
            return nil
        case 0x0000000000007374:
            if n == 2 && w1 == 0x0 && w2 == 0x0 { return .ts }  // ts
            return nil
        case 0x5f6e6f6973736573:
            if n == 10 && w1 == 0x6469 && w2 == 0x0 { return .sessionId }  // session_id
            return nil
        case 0x0000000000716573:
            if n == 3 && w1 == 0x0 && w2 == 0x0 { return .seq }  // seq
            return nil
        case 0x695f726577656976:
            if n == 9 && w1 == 0x64 && w2 == 0x0 { return .viewerId }  // viewer_id
            return nil
        case 0x64695f6f65646976:
            if n == 8 && w1 == 0x0 && w2 == 0x0 { return .videoId }  // video_id
            return nil
        case 0x75645f6f65646976:
            if n == 17 && w1 == 0x6d5f6e6f69746172 && w2 == 0x73 { return .videoDurationMs }  // video_duration_ms
            return nil
        case 0x000000006576696c:
            if n == 4 && w1 == 0x0 && w2 == 0x0 { return .live }  // live
            return nil
        case 0x0000000000007069:
            if n == 2 && w1 == 0x0 && w2 == 0x0 { return .ip }  // ip
            return nil
        case 0x007972746e756f63:
            if n == 7 && w1 == 0x0 && w2 == 0x0 { return .country }  // country
            return nil
        case 0x00006e6f69676572:
            if n == 6 && w1 == 0x0 && w2 == 0x0 { return .region }  // region
            return nil
        case 0x6567615f72657375:
            if n == 10 && w1 == 0x746e && w2 == 0x0 { return .userAgent }  // user_agent
            return nil
        case 0x745f656369766564:
            if n == 11 && w1 == 0x657079 && w2 == 0x0 { return .deviceType }  // device_type
            return nil
        case 0x000000000000736f:
            if n == 2 && w1 == 0x0 && w2 == 0x0 { return .os }  // os
            return nil
        case 0x00726573776f7262:
            if n == 7 && w1 == 0x0 && w2 == 0x0 { return .browser }  // browser
            return nil
        case 0x6e5f726579616c70:
            if n == 11 && w1 == 0x656d61 && w2 == 0x0 { return .playerName }  // player_name
            return nil
        case 0x765f726579616c70:
            if n == 14 && w1 == 0x6e6f69737265 && w2 == 0x0 { return .playerVersion }  // player_version
            return nil
        case 0x00000000006e6463:
            if n == 3 && w1 == 0x0 && w2 == 0x0 { return .cdn }  // cdn
            return nil
        case 0x0000000000706f70:
            if n == 3 && w1 == 0x0 && w2 == 0x0 { return .pop }  // pop
            return nil
        case 0x5f65746172746962:
            if n == 12 && w1 == 0x7370626b && w2 == 0x0 { return .bitrateKbps }  // bitrate_kbps
            return nil
        case 0x6d5f646579616c70:
            if n == 9 && w1 == 0x73 && w2 == 0x0 { return .playedMs }  // played_ms
            return nil
        case 0x6461656879616c70:
            if n == 11 && w1 == 0x736d5f && w2 == 0x0 { return .playheadMs }  // playhead_ms
            return nil
        case 0x6e6f697461727564:
            if n == 11 && w1 == 0x736d5f && w2 == 0x0 { return .durationMs }  // duration_ms
            return nil
        case 0x6f635f726f727265:
            if n == 10 && w1 == 0x6564 && w2 == 0x0 { return .errorCode }  // error_code
            return nil
        case 0x0000006c61746166:
            if n == 5 && w1 == 0x0 && w2 == 0x0 { return .fatal }  // fatal
            return nil
        case 0x00006e6f73616572:
            if n == 6 && w1 == 0x0 && w2 == 0x0 { return .reason }  // reason
            return nil
        case 0x6174735f70747468:
            if n == 11 && w1 == 0x737574 && w2 == 0x0 { return .httpStatus }  // http_status
            return nil
        case 0x64616f6c6e776f64:
            if n == 11 && w1 == 0x736d5f && w2 == 0x0 { return .downloadMs }  // download_ms
            return nil
        case 0x00736d5f62667474:
            if n == 7 && w1 == 0x0 && w2 == 0x0 { return .ttfbMs }  // ttfb_ms
            return nil
        case 0x0000007365747962:
            if n == 5 && w1 == 0x0 && w2 == 0x0 { return .bytes }  // bytes
            return nil
        case 0x0000006568636163:
            if n == 5 && w1 == 0x0 && w2 == 0x0 { return .cache }  // cache
            return nil
        default: return nil
        }
    }

    /// Generated from the names below: the key's words (see `words`) to its case.
    @inline(__always) static func eventByWords(_ n: Int, _ w0: UInt64, _ w1: UInt64, _ w2: UInt64) -> EventType? {
        switch w0 {
        case 0x6174735f77656976:
            if n == 10 && w1 == 0x7472 && w2 == 0x0 { return .viewStart }  // view_start
            return nil
        case 0x6174735f79616c70:
            if n == 10 && w1 == 0x7472 && w2 == 0x0 { return .playStart }  // play_start
            return nil
        case 0x6165627472616568:
            if n == 9 && w1 == 0x74 && w2 == 0x0 { return .heartbeat }  // heartbeat
            return nil
        case 0x7265666675626572:
            if n == 14 && w1 == 0x74726174735f && w2 == 0x0 { return .rebufferStart }  // rebuffer_start
            if n == 12 && w1 == 0x646e655f && w2 == 0x0 { return .rebufferEnd }  // rebuffer_end
            return nil
        case 0x0000006573756170:
            if n == 5 && w1 == 0x0 && w2 == 0x0 { return .pause }  // pause
            return nil
        case 0x0000656d75736572:
            if n == 6 && w1 == 0x0 && w2 == 0x0 { return .resume }  // resume
            return nil
        case 0x6174735f6b656573:
            if n == 10 && w1 == 0x7472 && w2 == 0x0 { return .seekStart }  // seek_start
            return nil
        case 0x646e655f6b656573:
            if n == 8 && w1 == 0x0 && w2 == 0x0 { return .seekEnd }  // seek_end
            return nil
        case 0x5f65746172746962:
            if n == 14 && w1 == 0x65676e616863 && w2 == 0x0 { return .bitrateChange }  // bitrate_change
            return nil
        case 0x000000726f727265:
            if n == 5 && w1 == 0x0 && w2 == 0x0 { return .error }  // error
            return nil
        case 0x646e655f77656976:
            if n == 8 && w1 == 0x0 && w2 == 0x0 { return .viewEnd }  // view_end
            return nil
        case 0x00746e656d676573:
            if n == 7 && w1 == 0x0 && w2 == 0x0 { return .segment }  // segment
            return nil
        default: return nil
        }
    }

    /// Which key followed which in the objects read so far: beacons of one
    /// player and event type list their keys in one order, so the next key
    /// is most often the one that followed the previous key, in a beacon of
    /// the same event type, last time. A guess is always checked byte for
    /// byte (`readKey(_:_:)`); a wrong one costs that check and is
    /// replaced. Not part of a reader's state (`==` ignores it): it changes
    /// how fast a key is read, never what (docs/architecture.md, the data
    /// path's decoder step; bench/results/speed.md section 10).
    ///
    /// Its constants are literals and its name table a copy it holds: a
    /// `static let` computed at first use is reached through a one-time
    /// initialization check on every read, which cost ≈ 1 % of a replay
    /// read once per key (bench/results/speed.md §11).
    struct KeyPredictor: Equatable {
        /// Bounds of `Field` and `EventType` raw values (asserted in `init`:
        /// past them, guesses would only be wrong more often, never trusted).
        private static let fieldsMax = 40, eventsMax = 16
        /// `after` for an object's first key, and after a key that is not a known field.
        static let start = 0, unknown = fieldsMax + 1
        private static let perEvent = fieldsMax + 2
        /// By `slot`: the field seen next last time (nil: nothing yet, or another key).
        private var next = [Field?](repeating: nil, count: (KeyPredictor.eventsMax + 1) * KeyPredictor.perEvent)
        /// The length of the last plain session id of 8 bytes or more
        /// (0: none yet), tried first for the next (`readSessionId`).
        var sessionIdLength = 0
        /// `FieldReader.keyTokens` and `separatedKeyTokens`.
        private let keyTokens = FieldReader.keyTokens
        private let separatedKeyTokens = FieldReader.separatedKeyTokens
        /// Each event name's string token, by `EventType.rawValue`.
        private let eventTokens = FieldReader.eventNames.map { KeyToken(string: $0) }

        init() {
            assert(Field.allCases.count <= Self.fieldsMax && EventType.allCases.count <= Self.eventsMax,
                   "KeyPredictor's bounds are below the number of fields or event types")
        }

        /// Whether the cursor is at the key token of `f`, moving past it if so
        /// (`FieldReader.readKey(_:_:)` with this predictor's token table).
        @inline(__always) func readKey(named f: Field, _ p: inout JSONCursor) -> Bool {
            FieldReader.readKey(keyTokens[f.rawValue], &p)
        }

        /// `readKey(named:_:)` for the key with its comma before it.
        @inline(__always) func readSeparatedKey(named f: Field, _ p: inout JSONCursor) -> Bool {
            FieldReader.readKey(separatedKeyTokens[f.rawValue], &p)
        }

        /// The event whose name is the string token at the cursor (its
        /// quotes included, no escapes), moving past it; nil, the cursor
        /// unchanged, for any other value (which the general path then reads).
        /// The name's first letter picks the one to three tokens compared
        /// whole (bench/results/speed.md section 31).
        @inline(__always) func readEvent(_ p: inout JSONCursor) -> EventType? {
            guard p.index &+ 1 < p.count else { return nil }
            @inline(__always) func at(_ e: EventType) -> Bool { FieldReader.readKey(eventTokens[Int(e.rawValue)], &p) }
            switch p.base[p.index &+ 1] {
            case UInt8(ascii: "s"):
                if at(.segment) { return .segment }
                if at(.seekStart) { return .seekStart }
                if at(.seekEnd) { return .seekEnd }
            case UInt8(ascii: "h"):
                if at(.heartbeat) { return .heartbeat }
            case UInt8(ascii: "p"):
                if at(.playStart) { return .playStart }
                if at(.pause) { return .pause }
            case UInt8(ascii: "v"):
                if at(.viewStart) { return .viewStart }
                if at(.viewEnd) { return .viewEnd }
            case UInt8(ascii: "r"):
                if at(.rebufferStart) { return .rebufferStart }
                if at(.rebufferEnd) { return .rebufferEnd }
                if at(.resume) { return .resume }
            case UInt8(ascii: "b"):
                if at(.bitrateChange) { return .bitrateChange }
            case UInt8(ascii: "e"):
                if at(.error) { return .error }
            default:
                break
            }
            return nil
        }

        /// The `after` value for a key just read.
        @inline(__always) static func after(_ field: Field?) -> Int { field.map { $0.rawValue + 1 } ?? unknown }

        /// The table slot for the key after `previous` in an object whose
        /// event (if read already) is `event`.
        @inline(__always) static func slot(event: EventType?, after previous: Int) -> Int {
            Int(event?.rawValue ?? UInt8(eventsMax)) * perEvent + previous
        }

        @inline(__always) func guess(_ slot: Int) -> Field? { next[slot] }

        @inline(__always) mutating func learn(_ field: Field?, _ slot: Int) {
            if next[slot] != field { next[slot] = field }
        }

        static func == (a: KeyPredictor, b: KeyPredictor) -> Bool { true }
    }

    /// Final checks: the reason a required field is missing or empty, if it is.
    /// Inlined: called on a reader the decoder holds `inout`, an outlined
    /// call took a copy of the whole reader (312 bytes) per object first
    /// (bench/results/speed.md section 28).
    @inline(__always)
    func missing() -> RejectReason? {
        if !hasEvent { return .missingField("event") }
        if !hasTs { return .missingField("ts") }
        if !hasSessionId { return .missingField("session_id") }
        if sessionIdRange?.isEmpty ?? beacon.sessionId.isEmpty { return .invalidValue("session_id") }
        return nil
    }

    /// Ready for the next object: equal to a fresh `FieldReader()`. Clears
    /// only what the previous object set (the engine reuses one reader for
    /// every message); `resetClearsEveryField` (DecoderTests) checks that
    /// every `Beacon` field is covered.
    mutating func reset() {
        hasEvent = false; hasTs = false; hasSessionId = false
        sessionIdRange = nil
        if error != nil { error = nil }
        beacon.event = .heartbeat; beacon.ts = 0
        if !beacon.sessionId.isEmpty { beacon.sessionId = "" }
        beacon.clearOptionalFields()
    }
}
