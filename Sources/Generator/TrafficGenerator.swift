import QoSCore
import SplitMix

/// Viewers and videos, derived from the seed so a viewer keeps its device,
/// player and address across sessions (returning viewers).
struct World {
    struct Viewer {
        let id: String
        let userAgent: String
        let player: (name: String, version: String)
        let geo: GeoRange
        let ip: String
        let mobile: Bool
    }
    struct Video { let id: String; let live: Bool; let durationMs: Int64 }

    let seed: UInt64
    let viewers: Int
    let videos: Int
    private let viewerZipf: Zipf
    private let videoZipf: Zipf

    init(seed: UInt64, sessions: Int) {
        self.seed = seed
        viewers = max(10, sessions / 3)
        videos = max(20, sessions / 25)
        viewerZipf = Zipf(n: viewers, s: 0.7)
        videoZipf = Zipf(n: videos, s: 1.0)
    }

    func viewerRank(_ rng: inout SplitMix64) -> Int { viewerZipf.sample(&rng) }
    func videoRank(_ rng: inout SplitMix64) -> Int { videoZipf.sample(&rng) }

    static func sessionId(seed: UInt64, index: Int) -> String {
        var r = SplitMix64(seed: seed ^ 0x5E55_1011 &+ UInt64(index))
        return hex(r.next()) + "-" + hex(r.next() & 0xFFFF_FFFF, width: 8)
    }

    static func hex(_ v: UInt64, width: Int = 16) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }

    func viewer(_ i: Int) -> Viewer {
        var r = SplitMix64(seed: seed ^ 0xB1E3_0000 &+ UInt64(i) &* 0x1000_0001)
        let d = Catalog.devices[r.weighted(Catalog.devices.map(\.weight))]
        let g = Catalog.geo[r.weighted(Catalog.geo.map(\.weight))]
        let mobile = d.userAgent.contains("Mobile") || d.userAgent.contains("iPhone")
        return Viewer(id: "viewer-" + World.hex(r.next(), width: 16), userAgent: d.userAgent,
                      player: d.players[r.index(d.players.count)], geo: g, ip: World.address(in: g, &r),
                      mobile: mobile)
    }

    func video(_ i: Int) -> Video {
        var r = SplitMix64(seed: seed ^ 0x71DE_0000 &+ UInt64(i))
        let live = r.chance(0.1)
        return Video(id: "video-\(i)", live: live, durationMs: live ? 0 : r.int(120_000...3_600_000))
    }

    /// A host address inside the range (never the network or broadcast address).
    static func address(in g: GeoRange, _ r: inout SplitMix64) -> String {
        if let v4 = g.v4 {
            let hostBits = 32 - v4.prefix
            let host = UInt32(1 + r.next() % UInt64((1 << hostBits) - 2))
            let a = v4.base | host
            return "\(a >> 24).\(a >> 16 & 255).\(a >> 8 & 255).\(a & 255)"
        }
        // IPv6 ranges in the catalog are /19…/32 prefixes written as `xxxx::/n`
        // or `xxxx:yyyy::/n`: keep the written groups, randomise the rest
        // within the prefix.
        let prefix = g.network.split(separator: "/")[0].split(separator: ":", omittingEmptySubsequences: true)
        var groups = prefix.compactMap { UInt16($0, radix: 16) }
        let len = Int(g.network.split(separator: "/")[1]) ?? 32
        while groups.count < 8 { groups.append(0) }
        for i in 0..<8 {
            let bitsFixed = max(0, min(16, len - 16 * i))
            let mask: UInt16 = bitsFixed == 16 ? 0xFFFF : bitsFixed == 0 ? 0 : ~(UInt16.max >> bitsFixed)
            groups[i] = (groups[i] & mask) | (UInt16(truncatingIfNeeded: r.next()) & ~mask)
        }
        if groups[7] == 0 { groups[7] = 1 }
        return groups.map { String($0, radix: 16) }.joined(separator: ":")
    }
}

/// One generated Kafka message / NDJSON line.
public struct GeneratedMessage: Sendable {
    /// The session id (the Kafka key).
    public var key: String
    public var payload: [UInt8]
    /// Event time the message belongs to (for real-time pacing).
    public var ts: Int64
    /// For injected malformed messages: the reject reason the engine must
    /// give (`ts_in_future` for `futureFraction` beacons, in real time).
    public var expectedReject: String?
    /// The beacon the payload encodes (nil for malformed and future messages).
    public var beacon: Beacon? = nil
    /// True for the second delivery of a beacon (`duplicateFraction`).
    public var isDuplicate = false
}

/// Streams the traffic of `options.sessions` sessions in delivery order:
/// sessions start by a Poisson process, their beacons interleave by time,
/// late and duplicate copies are delivered after a delay. Memory is bounded
/// by the sessions in flight.
public struct TrafficGenerator: Sequence, IteratorProtocol {
    let options: GeneratorOptions
    let world: World
    var rng: SplitMix64
    var started = 0
    var nextStart: Int64
    let meanGapMs: Double
    /// Sessions in flight: their remaining beacons, ordered by next ts.
    var active = MinHeap<(key: Int64, order: Int, beacons: ArraySlice<Beacon>)>()
    /// Delayed copies (late / duplicate), by delivery time.
    var delayed = MinHeap<(key: Int64, order: Int, beacon: Beacon, duplicate: Bool)>()
    var order = 0
    var pendingMalformed: GeneratedMessage?
    var pendingFuture: GeneratedMessage?

    public init(_ options: GeneratorOptions) {
        self.options = options
        world = World(seed: options.seed, sessions: options.sessions)
        rng = SplitMix64(seed: options.seed ^ 0xA11C_E5ED)
        nextStart = options.startMs - Swift.max(options.warmStartMs, 0)
        // About 70 beacons per session on average.
        meanGapMs = 70_000 / Swift.max(options.rate, 0.001)
    }

    public mutating func next() -> GeneratedMessage? {
        if let m = pendingMalformed { pendingMalformed = nil; return m }
        if let m = pendingFuture { pendingFuture = nil; return m }
        var b: Beacon
        var duplicate = false
        while true {
            startSessionsDue()
            let fromActive = active.peek?.key
            let fromDelayed = delayed.peek?.key
            if let d = fromDelayed, fromActive == nil || d <= fromActive! {
                let d = delayed.pop()
                b = d.beacon
                duplicate = d.duplicate
                if b.ts < options.startMs { continue }  // warm start: before the traffic's start
                break
            }
            guard fromActive != nil else { return nil }
            var top = active.pop()
            b = top.beacons.removeFirst()
            if let n = top.beacons.first { top.key = n.ts; active.push(top) }
            if b.ts < options.startMs { continue }
            if rng.chance(options.lateFraction) {
                order += 1
                delayed.push((b.ts + rng.int(60_000...600_000), order, b, false))
                continue
            }
            if rng.chance(options.duplicateFraction) {
                order += 1
                delayed.push((b.ts + rng.int(0...5000), order, b, true))
            }
            break
        }
        if rng.chance(options.malformedFraction) { pendingMalformed = Malformed.make(&rng, ts: b.ts) }
        // Drawn only when asked, so other seeds' output stays as it was.
        if options.futureFraction > 0 && rng.chance(options.futureFraction) { pendingFuture = future(b) }
        return GeneratedMessage(key: b.sessionId, payload: BeaconEncoder.encode(b), ts: b.ts, expectedReject: nil,
                                beacon: b, isDuplicate: duplicate)
    }

    /// A copy of `b` 10–60 min ahead of it, under a session id of its own
    /// (so that, when accepted after all, it opens its own session).
    mutating func future(_ b: Beacon) -> GeneratedMessage {
        var f = b
        f.ts = b.ts + rng.int(600_000...3_600_000)
        f.sessionId = "future-" + World.hex(rng.next(), width: 16)
        return GeneratedMessage(key: f.sessionId, payload: BeaconEncoder.encode(f), ts: f.ts,
                                expectedReject: RejectReason.tsInFuture.code)
    }

    /// Starts every session whose start time is not after the next beacon due.
    mutating func startSessionsDue() {
        while started < options.sessions {
            let horizon = Swift.min(active.peek?.key ?? .max, delayed.peek?.key ?? .max)
            guard nextStart <= horizon else { return }
            var script = SessionScript(index: started, start: nextStart, options: options, world: world)
            var beacons = script.script()
            beacons = beacons.enumerated().sorted { ($0.element.ts, $0.offset) < ($1.element.ts, $1.offset) }.map(\.element)
            order += 1
            active.push((beacons[0].ts, order, beacons[...]))
            started += 1
            nextStart += Int64(rng.exponential(mean: meanGapMs))
        }
    }
}

/// Malformed payloads of known kinds, each with the reject reason it must get.
enum Malformed {
    static func make(_ rng: inout SplitMix64, ts: Int64) -> GeneratedMessage {
        let sid = "bad-\(rng.next() % 1_000_000)"
        let cases: [(String, String)] = [
            (#"{"event":"heartbeat","ts":\#(ts),"session_id":"\#(sid)""#, "invalid_json"),
            (#"{"event":"heartbeat","session_id":"\#(sid)"}"#, "missing_field:ts"),
            (#"{"event":"heartbeat","ts":"\#(ts)","session_id":"\#(sid)"}"#, "wrong_type:ts"),
            (#"{"event":"teleport","ts":\#(ts),"session_id":"\#(sid)"}"#, "unknown_event"),
            (#"{"event":"heartbeat","ts":\#(ts),"session_id":"\#(String(repeating: "x", count: 200))"}"#, "field_too_long:session_id"),
            (#"["not a beacon"]"#, "not_an_object"),
            ("\u{1F}\u{8B}binary\u{0}garbage", "invalid_json"),
            (#"{"event":"heartbeat","ts":\#(ts),"session_id":"\#(sid)","played_ms":-40}"#, "invalid_value:played_ms"),
        ]
        let (text, reason) = cases[rng.index(cases.count)]
        return GeneratedMessage(key: sid, payload: Array(text.utf8), ts: ts, expectedReject: reason)
    }
}

/// A binary min-heap ordered by (key, order). The keys live in an array of
/// their own, so sifting compares plain integers instead of copying (and
/// retaining) elements.
struct MinHeap<T> where T: Any {
    private var items: [T] = []
    private var keys: [(Int64, Int)] = []
    private let keyOf: (T) -> (Int64, Int)

    init() where T == (key: Int64, order: Int, beacons: ArraySlice<Beacon>) { keyOf = { ($0.key, $0.order) } }
    init() where T == (key: Int64, order: Int, beacon: Beacon, duplicate: Bool) { keyOf = { ($0.key, $0.order) } }

    var peek: T? { items.first }

    mutating func push(_ x: T) {
        items.append(x)
        keys.append(keyOf(x))
        var i = items.count - 1
        while i > 0, keys[i] < keys[(i - 1) / 2] {
            swap(i, (i - 1) / 2)
            i = (i - 1) / 2
        }
    }

    mutating func pop() -> T {
        let top = items[0]
        let last = items.removeLast(), lastKey = keys.removeLast()
        if !items.isEmpty {
            items[0] = last
            keys[0] = lastKey
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < keys.count, keys[l] < keys[m] { m = l }
                if r < keys.count, keys[r] < keys[m] { m = r }
                if m == i { break }
                swap(i, m)
                i = m
            }
        }
        return top
    }

    private mutating func swap(_ a: Int, _ b: Int) {
        items.swapAt(a, b)
        keys.swapAt(a, b)
    }
}
