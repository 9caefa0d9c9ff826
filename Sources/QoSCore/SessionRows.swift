
/// The `sessions` rows of one window state, packed (bench/results/speed.md
/// "Memory per session"): a closed session waits here until its window is
/// written, so at 500 000 concurrent sessions these rows are most of the
/// memory when many close at once (the end of a replay). A `SessionRow` is
/// about 480 bytes of fields plus two heap strings (its ids); here a row is
/// one 152-byte `Packed` value plus its ids' UTF-8 bytes, both kept in small
/// chunks that reuse the memory of the sessions that closed (`Chunked`,
/// `IdBytes`), and the low-cardinality strings (video, geography, device,
/// player, CDN, error code) are ids into a table of this buffer's distinct
/// strings. Every value is kept exactly: reading a row back gives the
/// `SessionRow` that was appended.
public struct SessionRows: RandomAccessCollection, Sendable, Equatable {
    /// One row's facts. Strings are `names` ids (`SessionRows.nil` = nil);
    /// the ids are `idLength` + `viewerLength` bytes at `idOffset` of `bytes`
    /// (an `IdBytes` offset).
    ///
    /// Numbers are kept in the width the engine's sessions need: times as
    /// 32-bit offsets from `startTs` (a session's times lie within
    /// `EngineConfig.sessionTimeSpanMs` of its earliest `ts`, below 2^31 ms),
    /// durations and the ASN in 32 bits, per-session counts in 16 (the
    /// beacon count in 32). A row with any value outside those widths (a
    /// checkpoint or test can hold anything) keeps all of its numbers in
    /// full in `wide`, a box shared by the row's copies; the accessors read
    /// from whichever holds them, so callers see `Int64`s either way.
    public struct Packed: Sendable, Equatable {
        public let startTs: Int64
        public let bitrateMsSum: Int64
        public let idOffset: Int
        /// The numbers in full when one of them does not fit its field below.
        private let wide: Wide?
        public let idLength: UInt32, viewerLength: UInt32
        public let videoId: UInt32, country: UInt32, region: UInt32, city: UInt32, asOrg: UInt32
        public let deviceType: UInt32, os: UInt32, browser: UInt32, playerName: UInt32, playerVersion: UInt32
        public let cdn: UInt32, pop: UInt32, fatalErrorCode: UInt32
        private let _asn: UInt32, _videoDuration: UInt32
        private let _startup: Int32, _end: Int32, _close: Int32
        private let _playing: UInt32, _rebuffer: UInt32, _seek: UInt32, _bitratePlayed: UInt32, _maxPlayhead: UInt32
        private let _beacons: UInt32
        private let _rebufferCount: UInt16, _seekCount: UInt16, _upshifts: UInt16, _downshifts: UInt16, _errors: UInt16
        let flags: UInt16
        public let closeReason: CloseReason

        /// A row's numbers at full width (`Packed.wide`).
        struct Numbers: Sendable, Equatable {
            var asn: Int64, videoDurationMs: Int64, startupMs: Int64, endTs: Int64, closeTs: Int64
            var playingMs: Int64, rebufferCount: Int64, rebufferMs: Int64, seekCount: Int64, seekMs: Int64
            var bitratePlayedMs: Int64, upshifts: Int64, downshifts: Int64, errors: Int64
            var maxPlayheadMs: Int64, beacons: Int64
        }
        final class Wide: Sendable, Equatable {
            let n: Numbers
            init(_ n: Numbers) { self.n = n }
            static func == (a: Wide, b: Wide) -> Bool { a.n == b.n }
        }

        static let hasAsn: UInt16 = 1 << 0, hasDuration: UInt16 = 1 << 1, hasStartup: UInt16 = 1 << 2
        static let liveKnown: UInt16 = 1 << 3, live: UInt16 = 1 << 4, missingStart: UInt16 = 1 << 5
        static let hadViewStart: UInt16 = 1 << 6, played: UInt16 = 1 << 7, vsf: UInt16 = 1 << 8
        static let vpf: UInt16 = 1 << 9, ebvs: UInt16 = 1 << 10, completed: UInt16 = 1 << 11

        /// `names`: the string ids in field order, `videoId` … `fatalErrorCode`.
        init(idOffset: Int, idLength: UInt32, viewerLength: UInt32,
             names n: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32),
             startTs: Int64, bitrateMsSum: Int64, numbers v: Numbers, flags: UInt16, closeReason: CloseReason) {
            self.idOffset = idOffset; self.idLength = idLength; self.viewerLength = viewerLength
            (videoId, country, region, city, asOrg, deviceType, os, browser) = (n.0, n.1, n.2, n.3, n.4, n.5, n.6, n.7)
            (playerName, playerVersion, cdn, pop, fatalErrorCode) = (n.8, n.9, n.10, n.11, n.12)
            self.startTs = startTs; self.bitrateMsSum = bitrateMsSum
            self.flags = flags; self.closeReason = closeReason
            func u32(_ x: Int64) -> UInt32? { UInt32(exactly: x) }
            func i32(_ x: Int64) -> Int32? { Int32(exactly: x) }
            func u16(_ x: Int64) -> UInt16? { UInt16(exactly: x) }
            func offset(_ t: Int64) -> Int32? {
                let (d, o) = t.subtractingReportingOverflow(startTs)
                return o ? nil : Int32(exactly: d)
            }
            if let asn = u32(v.asn), let dur = u32(v.videoDurationMs), let startup = i32(v.startupMs),
               let end = offset(v.endTs), let close = offset(v.closeTs), let playing = u32(v.playingMs),
               let rebuffer = u32(v.rebufferMs), let seek = u32(v.seekMs), let played = u32(v.bitratePlayedMs),
               let playhead = u32(v.maxPlayheadMs), let beacons = u32(v.beacons),
               let rc = u16(v.rebufferCount), let sc = u16(v.seekCount), let up = u16(v.upshifts),
               let down = u16(v.downshifts), let errors = u16(v.errors) {
                wide = nil
                (_asn, _videoDuration, _startup, _end, _close) = (asn, dur, startup, end, close)
                (_playing, _rebuffer, _seek, _bitratePlayed, _maxPlayhead, _beacons) = (playing, rebuffer, seek, played, playhead, beacons)
                (_rebufferCount, _seekCount, _upshifts, _downshifts, _errors) = (rc, sc, up, down, errors)
            } else {
                wide = Wide(v)
                (_asn, _videoDuration, _startup, _end, _close) = (0, 0, 0, 0, 0)
                (_playing, _rebuffer, _seek, _bitratePlayed, _maxPlayhead, _beacons) = (0, 0, 0, 0, 0, 0)
                (_rebufferCount, _seekCount, _upshifts, _downshifts, _errors) = (0, 0, 0, 0, 0)
            }
        }

        /// Row `o` as it reads in another `SessionRows`: its ids at `idOffset`
        /// there, its string ids renumbered by `map` (nil stays nil), every
        /// number as it is (an added field fails to compile here until it
        /// is copied too).
        init(moving o: Packed, idOffset: Int, names map: (UInt32) -> UInt32) {
            func m(_ id: UInt32) -> UInt32 { id == SessionRows.nil ? SessionRows.nil : map(id) }
            startTs = o.startTs; bitrateMsSum = o.bitrateMsSum; self.idOffset = idOffset; wide = o.wide
            idLength = o.idLength; viewerLength = o.viewerLength
            (videoId, country, region, city, asOrg) = (m(o.videoId), m(o.country), m(o.region), m(o.city), m(o.asOrg))
            (deviceType, os, browser, playerName) = (m(o.deviceType), m(o.os), m(o.browser), m(o.playerName))
            (playerVersion, cdn, pop, fatalErrorCode) = (m(o.playerVersion), m(o.cdn), m(o.pop), m(o.fatalErrorCode))
            (_asn, _videoDuration, _startup, _end, _close) = (o._asn, o._videoDuration, o._startup, o._end, o._close)
            (_playing, _rebuffer, _seek, _bitratePlayed, _maxPlayhead) = (o._playing, o._rebuffer, o._seek, o._bitratePlayed, o._maxPlayhead)
            _beacons = o._beacons
            (_rebufferCount, _seekCount, _upshifts, _downshifts, _errors) = (o._rebufferCount, o._seekCount, o._upshifts, o._downshifts, o._errors)
            flags = o.flags; closeReason = o.closeReason
        }

        /// Whether the numbers are in the box (a value outside the compact widths).
        var isWide: Bool { wide != nil }

        public var asn: Int64 { wide?.n.asn ?? Int64(_asn) }
        public var videoDurationMs: Int64 { wide?.n.videoDurationMs ?? Int64(_videoDuration) }
        public var startupMs: Int64 { wide?.n.startupMs ?? Int64(_startup) }
        public var endTs: Int64 { wide?.n.endTs ?? startTs &+ Int64(_end) }
        public var closeTs: Int64 { wide?.n.closeTs ?? startTs &+ Int64(_close) }
        public var playingMs: Int64 { wide?.n.playingMs ?? Int64(_playing) }
        public var rebufferCount: Int64 { wide?.n.rebufferCount ?? Int64(_rebufferCount) }
        public var rebufferMs: Int64 { wide?.n.rebufferMs ?? Int64(_rebuffer) }
        public var seekCount: Int64 { wide?.n.seekCount ?? Int64(_seekCount) }
        public var seekMs: Int64 { wide?.n.seekMs ?? Int64(_seek) }
        public var bitratePlayedMs: Int64 { wide?.n.bitratePlayedMs ?? Int64(_bitratePlayed) }
        public var upshifts: Int64 { wide?.n.upshifts ?? Int64(_upshifts) }
        public var downshifts: Int64 { wide?.n.downshifts ?? Int64(_downshifts) }
        public var errors: Int64 { wide?.n.errors ?? Int64(_errors) }
        public var maxPlayheadMs: Int64 { wide?.n.maxPlayheadMs ?? Int64(_maxPlayhead) }
        public var beacons: Int64 { wide?.n.beacons ?? Int64(_beacons) }

        @inline(__always) func has(_ f: UInt16) -> Bool { flags & f != 0 }
        public var asnValue: Int64? { has(Packed.hasAsn) ? asn : nil }
        public var videoDurationValue: Int64? { has(Packed.hasDuration) ? videoDurationMs : nil }
        public var startupValue: Int64? { has(Packed.hasStartup) ? startupMs : nil }
        public var liveValue: Bool? { has(Packed.liveKnown) ? has(Packed.live) : nil }
        public var missingStart: Bool { has(Packed.missingStart) }
        public var hadViewStart: Bool { has(Packed.hadViewStart) }
        public var played: Bool { has(Packed.played) }
        public var vsf: Bool { has(Packed.vsf) }
        public var vpf: Bool { has(Packed.vpf) }
        public var ebvs: Bool { has(Packed.ebvs) }
        public var completed: Bool { has(Packed.completed) }
        public var durationMs: Int64 { endTs - startTs }
    }

    /// The id of a nil string in `Packed`.
    public static let `nil` = UInt32.max

    /// The rows, in chunks (see `Chunked`).
    public private(set) var packed = Chunked<Packed>()
    /// The ids' UTF-8 bytes, row after row (session id, then viewer id).
    private var bytes = IdBytes()
    /// The distinct strings of the rows' string fields, numbered by their
    /// bytes (`StringIds`, as the engine's interners).
    private var nameIds = StringIds([])
    /// The distinct strings of the rows' string fields, by id.
    public var names: [String] { nameIds.strings }
    /// Each of `names` as its UTF-8 bytes, built once: a `sessions` file's
    /// string cells share these arrays instead of each copying its string
    /// (bench/results/speed.md section 25).
    public private(set) var nameBytes: [[UInt8]] = []

    public init() {}

    public init<S: Sequence>(_ rows: S) where S.Element == SessionRow {
        for r in rows { append(r) }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { packed.count }

    public subscript(i: Int) -> SessionRow {
        let p = packed[i]
        func s(_ id: UInt32) -> String { nameIds.strings[Int(id)] }
        return SessionRow(
            sessionId: sessionId(i), viewerId: viewerId(i), videoId: s(p.videoId),
            country: s(p.country), region: s(p.region), city: s(p.city), asn: p.asnValue,
            asOrg: s(p.asOrg), deviceType: s(p.deviceType), os: s(p.os), browser: s(p.browser),
            playerName: s(p.playerName), playerVersion: s(p.playerVersion), cdn: s(p.cdn), pop: s(p.pop),
            live: p.liveValue, videoDurationMs: p.videoDurationValue, startTs: p.startTs, endTs: p.endTs,
            closeTs: p.closeTs, closeReason: p.closeReason, missingStart: p.missingStart,
            hadViewStart: p.hadViewStart, played: p.played, startupMs: p.startupValue, playingMs: p.playingMs,
            rebufferCount: p.rebufferCount, rebufferMs: p.rebufferMs, seekCount: p.seekCount, seekMs: p.seekMs,
            bitrateMsSum: p.bitrateMsSum, bitratePlayedMs: p.bitratePlayedMs, upshifts: p.upshifts,
            downshifts: p.downshifts, errors: p.errors,
            fatalErrorCode: p.fatalErrorCode == SessionRows.nil ? nil : s(p.fatalErrorCode),
            vsf: p.vsf, vpf: p.vpf, ebvs: p.ebvs, completed: p.completed, maxPlayheadMs: p.maxPlayheadMs,
            beacons: p.beacons)
    }

    /// The string of a `Packed` string id (not `nil`).
    @inline(__always) public func name(_ id: UInt32) -> String { nameIds.strings[Int(id)] }
    public func optionalName(_ id: UInt32) -> String? { id == SessionRows.nil ? nil : nameIds.strings[Int(id)] }
    /// The UTF-8 bytes of a `Packed` string id (not `nil`), shared.
    @inline(__always) public func nameUTF8(_ id: UInt32) -> [UInt8] { nameBytes[Int(id)] }

    /// Row `i`'s session id / viewer id bytes.
    public func withIdBytes<R>(_ i: Int, viewer: Bool = false, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let p = packed[i]
        let skip = viewer ? Int(p.idLength) : 0
        let n = Int(viewer ? p.viewerLength : p.idLength)
        return bytes.withBytes(at: p.idOffset) { body(UnsafeRawBufferPointer(rebasing: $0[skip..<(skip + n)])) }
    }
    public func sessionId(_ i: Int) -> String { withIdBytes(i) { String(decoding: $0, as: UTF8.self) } }
    public func viewerId(_ i: Int) -> String { withIdBytes(i, viewer: true) { String(decoding: $0, as: UTF8.self) } }

    /// Whether row `a`'s session id sorts before row `b`'s as `String`s do
    /// (`<`): bytewise when both are ASCII (the same order), else as strings.
    public func sessionIdLess(_ a: Int, _ b: Int) -> Bool {
        withIdBytes(a) { x in
            withIdBytes(b) { y in
                var ascii = true
                for c in x where c >= 0x80 { ascii = false; break }
                if ascii { for c in y where c >= 0x80 { ascii = false; break } }
                guard ascii else { return String(decoding: x, as: UTF8.self) < String(decoding: y, as: UTF8.self) }
                return x.lexicographicallyPrecedes(y)
            }
        }
    }

    private mutating func id(_ s: String) -> UInt32 {
        let id = nameIds.id(s)
        if Int(id) == nameBytes.count { nameBytes.append(Array(s.utf8)) }  // a new name
        return id
    }

    public mutating func append(_ r: SessionRow) {
        let offset = bytes.append(r.sessionId.utf8, r.viewerId.utf8)
        var f: UInt16 = 0
        func set(_ b: Bool, _ bit: UInt16) { if b { f |= bit } }
        set(r.asn != nil, Packed.hasAsn); set(r.videoDurationMs != nil, Packed.hasDuration)
        set(r.startupMs != nil, Packed.hasStartup); set(r.live != nil, Packed.liveKnown)
        set(r.live == true, Packed.live); set(r.missingStart, Packed.missingStart)
        set(r.hadViewStart, Packed.hadViewStart); set(r.played, Packed.played); set(r.vsf, Packed.vsf)
        set(r.vpf, Packed.vpf); set(r.ebvs, Packed.ebvs); set(r.completed, Packed.completed)
        let strings = (id(r.videoId), id(r.country), id(r.region), id(r.city), id(r.asOrg), id(r.deviceType),
                       id(r.os), id(r.browser), id(r.playerName), id(r.playerVersion), id(r.cdn), id(r.pop),
                       r.fatalErrorCode.map { id($0) } ?? SessionRows.nil)
        let numbers = Packed.Numbers(
            asn: r.asn ?? 0, videoDurationMs: r.videoDurationMs ?? 0, startupMs: r.startupMs ?? 0,
            endTs: r.endTs, closeTs: r.closeTs, playingMs: r.playingMs, rebufferCount: r.rebufferCount,
            rebufferMs: r.rebufferMs, seekCount: r.seekCount, seekMs: r.seekMs, bitratePlayedMs: r.bitratePlayedMs,
            upshifts: r.upshifts, downshifts: r.downshifts, errors: r.errors, maxPlayheadMs: r.maxPlayheadMs,
            beacons: r.beacons)
        let p = Packed(idOffset: offset, idLength: UInt32(r.sessionId.utf8.count),
                       viewerLength: UInt32(r.viewerId.utf8.count), names: strings, startTs: r.startTs,
                       bitrateMsSum: r.bitrateMsSum, numbers: numbers, flags: f, closeReason: r.closeReason)
        packed.append(p)
    }

    public static func += <S: Sequence>(lhs: inout SessionRows, rhs: S) where S.Element == SessionRow {
        for r in rhs { lhs.append(r) }
    }

    /// Appends another window share's rows as they are stored: its names
    /// numbered here once each, each row's id bytes copied, its numbers
    /// kept. The flush merges every partition's rows of a window this way;
    /// taking each row apart into strings and appending it (the generic
    /// `+=`) decoded both ids and hashed its 13 names again, ≈ 6 800
    /// instructions a row (bench/results/speed.md section 61).
    public static func += (lhs: inout SessionRows, rhs: SessionRows) {
        guard !rhs.isEmpty else { return }
        var map: [UInt32] = []
        map.reserveCapacity(rhs.nameIds.strings.count)
        for name in rhs.nameIds.strings { map.append(lhs.id(name)) }
        for p in rhs.packed {
            let n = Int(p.idLength) + Int(p.viewerLength)
            let offset = rhs.bytes.withBytes(at: p.idOffset) { lhs.bytes.append(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            lhs.packed.append(Packed(moving: p, idOffset: offset, names: { map[Int($0)] }))
        }
    }

    public static func == (a: SessionRows, b: SessionRows) -> Bool { a.elementsEqual(b) }
}

/// An append-only array kept in fixed-size chunks of `Chunked.chunkSize`
/// elements. The `sessions` rows of a window grow by one per closed
/// session; one contiguous array would double into ever larger blocks that
/// glibc maps fresh from the kernel, so the memory of the sessions closed
/// meanwhile could not be reused for them. Chunks of a few KB come from the
/// same heap the freed sessions went back to (bench/results/speed.md
/// "Memory per session").
public struct Chunked<Element>: RandomAccessCollection {
    static var chunkSize: Int { 64 }
    private var chunks: [[Element]] = []
    public private(set) var count = 0

    public init() {}

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(i: Int) -> Element {
        _read {
            precondition(i >= 0 && i < count, "Chunked index out of range")
            yield chunks[i / Chunked.chunkSize][i % Chunked.chunkSize]
        }
    }

    mutating func append(_ e: Element) {
        if count % Chunked.chunkSize == 0 {
            var c: [Element] = []
            c.reserveCapacity(Chunked.chunkSize)
            chunks.append(c)
        }
        chunks[chunks.count - 1].append(e)
        count += 1
    }
}

extension Chunked: Sendable where Element: Sendable {}
extension Chunked: Equatable where Element: Equatable {
    public static func == (a: Chunked, b: Chunked) -> Bool { a.elementsEqual(b) }
}

/// The `sessions` rows' id bytes, in chunks of at least `IdBytes.chunkSize`
/// (for the reason `Chunked` gives). A row's ids lie within one chunk; an
/// offset is the chunk's index in its high 32 bits, the position in it in
/// the low 32.
struct IdBytes: Sendable {
    static let chunkSize = 4096
    private var chunks: [[UInt8]] = []

    /// Appends `a` then `b` into one chunk and returns where they start.
    mutating func append(_ a: String.UTF8View, _ b: String.UTF8View) -> Int {
        let k = chunk(for: a.count + b.count)
        let at = chunks[k].count
        chunks[k].append(contentsOf: a)
        chunks[k].append(contentsOf: b)
        return k << 32 | at
    }

    /// Appends `ids` (a row's session and viewer id bytes) into one chunk
    /// and returns where they start.
    mutating func append(_ ids: UnsafeRawBufferPointer) -> Int {
        let k = chunk(for: ids.count)
        let at = chunks[k].count
        chunks[k].append(contentsOf: ids)
        return k << 32 | at
    }

    /// The index of the last chunk, after starting a new one if it has no
    /// room for `n` more bytes.
    private mutating func chunk(for n: Int) -> Int {
        if chunks.isEmpty || chunks[chunks.count - 1].count + n > chunks[chunks.count - 1].capacity {
            var c: [UInt8] = []
            c.reserveCapacity(max(IdBytes.chunkSize, n))
            chunks.append(c)
        }
        return chunks.count - 1
    }

    /// The bytes from `offset` (as `append` returned it) to the end of its chunk.
    func withBytes<R>(at offset: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let c = offset >> 32, at = offset & 0xFFFF_FFFF
        return chunks[c].withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[at...])) }
    }
}

