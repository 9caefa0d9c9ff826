import QoSCore

/// Real-time delivery of generated traffic (`qos generate --kafka --rate N`,
/// `qos demo`): hands out each message no sooner than the wall clock has
/// reached its event time, so no beacon is ever ahead of the clock (except
/// the ones `futureFraction` injects on purpose). Pacing is by event time,
/// not by message count: while sessions ramp up, fewer than `rate` beacons
/// fall in a second of event time, and a count-paced producer ran minutes
/// ahead of the clock.
///
/// With `speed` > 1 (time-lapse), event time runs `speed` times faster than
/// the clock from `eventStartMs` at the first `next()`; a message is due at
/// the later of that and its own `ts`. The clock and the wait are injected,
/// so tests run it on a fake clock without sleeping.
public struct RealTimePacer<Base: IteratorProtocol>: Sequence, IteratorProtocol
where Base.Element == GeneratedMessage {
    var base: Base
    let eventStartMs: Int64
    let speed: Double
    /// Wall time (epoch ms) at the first `next()`.
    var wallStartMs: Int64?
    /// The largest event time handed out (injected future beacons excluded).
    var clockTs: Int64 = .min
    let clock: () -> Int64
    /// Waits up to the given milliseconds (the caller may serve I/O meanwhile).
    let wait: (Int64) -> Void
    let shouldStop: () -> Bool

    public init(_ base: Base, eventStartMs: Int64, speed: Double = 1, clock: @escaping () -> Int64,
                wait: @escaping (Int64) -> Void, shouldStop: @escaping () -> Bool = { false }) {
        precondition(speed > 0 && speed.isFinite, "speed must be a positive number")
        self.base = base
        self.eventStartMs = eventStartMs
        self.speed = speed
        self.clock = clock
        self.wait = wait
        self.shouldStop = shouldStop
    }

    /// The wall time at which a message of event time `ts` may leave.
    public func dueMs(_ ts: Int64) -> Int64 {
        let start = wallStartMs ?? clock()
        let lapse = Double(ts - eventStartMs) / speed
        return Swift.max(ts, start + Int64(Swift.max(0, Swift.min(lapse, 1e15))))
    }

    public mutating func next() -> GeneratedMessage? {
        guard let m = base.next() else { return nil }
        if wallStartMs == nil { wallStartMs = clock() }
        // Late copies and malformed messages carry an older ts: they leave
        // at the pace of the newest beacon. Injected future beacons do not
        // move the pace.
        guard m.expectedReject != RejectReason.tsInFuture.code else { return m }
        clockTs = Swift.max(clockTs, m.ts)
        let due = dueMs(clockTs)
        while !shouldStop() {
            let now = clock()
            if now >= due { break }
            wait(due - now)
        }
        return m
    }
}
