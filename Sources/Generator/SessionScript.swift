import QoSCore
import SplitMix

/// Knobs of the synthetic traffic. Defaults describe a healthy platform.
public struct GeneratorOptions: Sendable {
    public var seed: UInt64 = 1
    public var sessions: Int = 1000
    /// Beacons per second of event time (sets how densely sessions start).
    public var rate: Double = 2000
    /// Event time of the first session, epoch ms (default 2026-01-01T00:00:00Z).
    public var startMs: Int64 = 1_767_225_600_000
    /// Startup-time multiplier (2 = twice as slow).
    public var slowStartup: Double = 1
    /// `slowStartup` applies to sessions starting at or after this event
    /// time (epoch ms): a slow-startup incident that begins mid-stream.
    public var slowStartupFromMs: Int64 = .min
    /// Stall-probability multiplier.
    public var rebufferRate: Double = 1
    /// A degraded PoP, `cdn/pop`: slow downloads, 5xx, stalls, slow starts.
    public var slowPop: String?
    /// A broken player, `name@version`: fatal errors before and during playback.
    public var failingPlayer: String?
    /// Share of beacons delivered 1–10 minutes late.
    public var lateFraction: Double = 0
    /// Share of beacons delivered twice.
    public var duplicateFraction: Double = 0
    /// Share of extra malformed messages (each with a known reject reason).
    public var malformedFraction: Double = 0
    /// Share of extra beacons 10–60 min ahead of the beacon they follow (in
    /// real time: ahead of the clock, rejected as `ts_in_future`).
    public var futureFraction: Double = 0
    /// Start as if traffic had been flowing this long: sessions start from
    /// `startMs − warmStartMs`, and only beacons from `startMs` on are sent
    /// (sessions in progress at the start lack their earlier beacons). Gives
    /// steady-state traffic from the first second (soak tests).
    public var warmStartMs: Int64 = 0
    /// Put `country` / `region` explicitly into `view_start` beacons.
    public var explicitGeo = false
    /// Give `segment` beacons the session's `cdn`, `pop`, `ip`, `user_agent`
    /// and `video_id` (what a CDN's access log knows of the request). Draws
    /// nothing from the random streams, so the traffic is otherwise the same.
    public var stampSegments = false

    public init() {}
}

/// The beacons of one scripted playback session, in time order.
struct SessionScript {
    let o: GeneratorOptions
    var rng: SplitMix64
    var out: [Beacon] = []
    var t: Int64
    var seq: UInt32 = 0
    var played: Int64 = 0       // not yet reported in a beacon
    var playhead: Int64 = 0
    var bitrateIndex = 2
    let sessionId: String
    let degraded: Bool
    let failing: Bool
    let live: Bool
    let durationMs: Int64
    let startMs: Int64
    /// The view's request context, copied into segments with `stampSegments`.
    var context = Beacon(event: .segment, ts: 0, sessionId: "")

    init(index: Int, start: Int64, options: GeneratorOptions, world: World) {
        o = options
        rng = SplitMix64(seed: options.seed &* 0x2545_F491_4F6C_DD1D ^ UInt64(index) &* 0x9E37_79B9)
        t = start
        startMs = start
        sessionId = World.sessionId(seed: options.seed, index: index)
        let viewer = world.viewer(world.viewerRank(&rng))
        let video = world.video(world.videoRank(&rng))
        live = video.live
        durationMs = video.durationMs
        let cdn = Catalog.cdns[rng.weighted([5, 3, 2])]
        let pop = cdn.pops[rng.index(cdn.pops.count)]
        degraded = options.slowPop == "\(cdn.cdn)/\(pop)"
        failing = options.failingPlayer == "\(viewer.player.name)@\(viewer.player.version)"
        var b = beacon(.viewStart)
        b.viewerId = viewer.id; b.videoId = video.id; b.live = video.live
        b.videoDurationMs = video.live ? nil : video.durationMs
        b.ip = viewer.ip; b.userAgent = viewer.userAgent
        b.playerName = viewer.player.name; b.playerVersion = viewer.player.version
        b.cdn = cdn.cdn; b.pop = pop
        if options.explicitGeo {
            b.country = viewer.geo.country.isEmpty ? nil : viewer.geo.country
            b.region = viewer.geo.country.isEmpty ? nil : "\(viewer.geo.country)-\(viewer.geo.subdivision)"
        }
        bitrateIndex = viewer.mobile ? 1 : 3
        if options.stampSegments {
            context.cdn = cdn.cdn; context.pop = pop; context.ip = viewer.ip
            context.userAgent = viewer.userAgent; context.videoId = video.id
        }
        out.append(b)
    }

    mutating func beacon(_ e: EventType) -> Beacon {
        seq += 1
        var b = Beacon(event: e, ts: t, sessionId: sessionId)
        b.seq = seq
        return b
    }

    /// Appends a beacon that reports the content played since the last report.
    mutating func report(_ e: EventType, _ edit: (inout Beacon) -> Void = { _ in }) {
        var b = beacon(e)
        if played > 0 || e == .heartbeat { b.playedMs = played; played = 0 }
        b.playheadMs = playhead
        edit(&b)
        out.append(b)
    }

    mutating func script() -> [Beacon] {
        let failP = failing ? 0.25 : 0.015
        if rng.chance(failP) { return fail(before: true) }
        let popSlow = degraded ? 3.0 : 1.0
        let slowStart = startMs >= o.slowStartupFromMs ? o.slowStartup : 1
        let startup = Int64(min(60_000, max(150, rng.logNormal(median: 1100 * slowStart * popSlow, sigma: 0.6))))
        if rng.chance(0.03 + (startup > 8000 ? 0.3 : 0)) {
            t += min(startup, rng.int(2000...15000))
            report(.viewEnd) { $0.reason = .exit }
            return out
        }
        t += startup
        out.append({ var b = beacon(.playStart); b.bitrateKbps = Catalog.ladder[bitrateIndex]; return b }())
        return play()
    }

    mutating func fail(before: Bool) -> [Beacon] {
        t += rng.int(300...4000)
        let code = Catalog.errorCodes[rng.index(Catalog.errorCodes.count)]
        report(.error) { $0.errorCode = code; $0.fatal = true }
        t += rng.int(50...500)
        report(.viewEnd) { $0.reason = .error }
        return out
    }

    mutating func play() -> [Beacon] {
        let target = Int64(rng.logNormal(median: 240_000, sigma: 1.0))
        let limit = live ? target : min(target, durationMs)
        var watched: Int64 = 0
        while watched < limit {
            let step = min(10_000, limit - watched)
            if rng.chance(failing ? 0.02 : 0.001) { return fail(before: false) }
            stepEvents(step)
            watched += step
        }
        if !live && watched >= durationMs {
            playhead = durationMs
            report(.viewEnd) { $0.reason = .ended }
        } else if rng.chance(0.92) {
            report(.viewEnd) { $0.reason = .exit }
        }
        // else: the player vanished without view_end (closed by inactivity).
        return out
    }

    /// One heartbeat interval of playback with its segments and incidents.
    mutating func stepEvents(_ step: Int64) {
        let popSlow = degraded ? 4.0 : 1.0
        segments(step, popSlow)
        advance(step)
        if rng.chance(0.015 * o.rebufferRate * popSlow) { stall(popSlow) }
        if rng.chance(0.01) { seek() }
        if rng.chance(0.005) {
            report(.pause)
            t += rng.int(5000...120_000)
            report(.resume)
        }
        if rng.chance(0.06) { shift(up: rng.chance(degraded ? 0.2 : 0.6)) }
        let rate = Catalog.ladder[bitrateIndex]
        report(.heartbeat) { $0.bitrateKbps = rate }
    }

    mutating func advance(_ ms: Int64) {
        t += ms
        played += ms
        playhead += ms
    }

    mutating func segments(_ step: Int64, _ popSlow: Double) {
        for k in 0..<Int(max(1, step / 6000)) {
            var b = beacon(.segment)
            if o.stampSegments {
                b.cdn = context.cdn; b.pop = context.pop; b.ip = context.ip
                b.userAgent = context.userAgent; b.videoId = context.videoId
            }
            b.ts = t + Int64(k) * 6000 + rng.int(0...500)
            let download = Int64(max(5, rng.logNormal(median: 90 * popSlow, sigma: 0.7)))
            b.downloadMs = download
            b.ttfbMs = max(1, download / 4 + rng.int(0...20))
            b.bytes = Catalog.ladder[bitrateIndex] * 6000 / 8
            let r = rng.unit()
            b.httpStatus = r < 0.002 * popSlow * popSlow ? 503 : r < 0.004 * popSlow * popSlow ? 404 : r < 0.005 * popSlow ? 0 : 200
            b.cache = rng.chance(degraded ? 0.5 : 0.88) ? "HIT" : "MISS"
            out.append(b)
        }
    }

    mutating func stall(_ popSlow: Double) {
        report(.rebufferStart)
        let d = Int64(max(100, rng.logNormal(median: 1200 * popSlow, sigma: 0.8)))
        t += d
        let given = rng.chance(0.5)
        report(.rebufferEnd) { if given { $0.durationMs = d } }
    }

    mutating func seek() {
        report(.seekStart)
        let d = rng.int(200...1500)
        if rng.chance(0.5) {
            t += d / 3
            report(.rebufferStart)
            t += d / 3
            report(.rebufferEnd)
        } else {
            t += 2 * d / 3
        }
        t += d / 3
        playhead = min(live ? playhead + 30_000 : max(0, durationMs - 1), playhead + rng.int(5000...60_000))
        report(.seekEnd)
    }

    mutating func shift(up: Bool) {
        let next = up ? min(Catalog.ladder.count - 1, bitrateIndex + 1) : max(0, bitrateIndex - 1)
        guard next != bitrateIndex else { return }
        bitrateIndex = next
        report(.bitrateChange) { $0.bitrateKbps = Catalog.ladder[next] }
    }
}
