/// Every knob of the core engine, with the defaults of docs/semantics.md. All durations are
/// milliseconds of event time unless the name says otherwise.
public struct EngineConfig: Sendable, Equatable {
    /// Tumbling window size (docs/semantics.md §3, default 2 min).
    public var windowMs: Int64 = 120_000
    /// Allowed lateness subtracted from the max `ts` for the watermark (default 30 s).
    public var latenessMs: Int64 = 30_000
    /// Beacons more than this behind the partition watermark are rejected (default 24 h).
    public var maxLatenessMs: Int64 = 86_400_000
    /// Beacons more than this ahead of the engine clock are rejected (default 5 min).
    public var futureToleranceMs: Int64 = 300_000
    /// Beacons with an earlier `ts` are rejected as `invalid_value:ts`
    /// (default 2000-01-01T00:00:00Z: an unset device clock, not an event).
    public var tsMinMs: Int64 = BeaconLimits.tsMinMs
    /// Session inactivity timeout (default 5 min).
    public var sessionTimeoutMs: Int64 = 300_000
    /// Maximum session length (default 6 h).
    public var sessionMaxMs: Int64 = 21_600_000
    /// Startup times outside [0, this] are not counted (default 5 min).
    public var startupMaxMs: Int64 = 300_000
    /// A segment download slower than this is a `slow_request` (default 200 ms).
    public var slowRequestMs: Int64 = 200
    /// A CDN log record served slower than this is a `slow_response` (default 200 ms).
    public var slowResponseMs: Int64 = 200
    /// Distinct dimension groups per table per window; more go to `__other__`.
    public var groupsPerWindowMax: Int = 100_000
    /// Completion threshold: max playhead ≥ this fraction of the duration.
    public var completionFraction: Double = 0.9
    /// Reject rows held per partition between flushes, in bytes (`RejectRow.heldBytes`):
    /// past it the engine reports `rejectsHeldOverCap` and the driver flushes early.
    public var rejectBytesHeldMax: Int = EngineConfig.rejectBytesHeldMaxDefault

    /// 4 MiB: about 10 000 rows of typical beacons, 1 000 of 4 KiB payloads.
    public static let rejectBytesHeldMaxDefault = 4 << 20

    public init() {}

    /// The widest range of event time one session's state spans:
    /// `session_max + session_timeout + lateness + max_lateness` (saturating).
    /// Every time a session stores (its beacons' `ts`, its arrival mark, its
    /// close-queue due) lies within this of its earliest `ts`.
    public var sessionTimeSpanMs: Int64 {
        [sessionMaxMs, sessionTimeoutMs, latenessMs, maxLatenessMs].reduce(0) { a, b in
            let (v, o) = a.addingReportingOverflow(b)
            return o ? .max : v
        }
    }

    /// The limit on `sessionTimeSpanMs`: sessions store times as 32-bit
    /// offsets from their earliest `ts` (2^31 − 1 ms ≈ 24.8 days).
    public static let sessionTimeSpanMaxMs = Int64(Int32.max)

    /// The longest window (1 day): the daemon writes a window once the
    /// watermark passes its end, so a month-long window would be written
    /// after a month; longer periods are roll-ups of written windows.
    public static let windowMaxMs: Int64 = 86_400_000

    /// One line naming what is wrong with this config and how to fix it, or
    /// nil when it is usable.
    public var problem: String? {
        let durations = [("lateness", latenessMs), ("max_lateness", maxLatenessMs),
                         ("session_timeout", sessionTimeoutMs), ("session_max", sessionMaxMs)]
        for (name, v) in durations where v < 0 { return "\(name) must be ≥ 0 (got \(v) ms)" }
        // A zero timeout or length would end a session at every beacon.
        for (name, v) in durations.suffix(2) where v == 0 { return "\(name) must be > 0" }
        if windowMs > Self.windowMaxMs {
            return "window must be at most 1 day (got \(windowMs / 1000) s): a longer window is written only "
                + "after it ends — roll windows up with `qos reaggregate --grain` instead"
        }
        if sessionTimeSpanMs > Self.sessionTimeSpanMaxMs {
            let days = Double(sessionTimeSpanMs) / 86_400_000
            return "session_max + session_timeout + lateness + max_lateness is "
                + "\(days.formatted1) days; it must stay below 24.8 days (2^31 ms) — lower max_lateness or session_max"
        }
        return nil
    }

    /// Start of the window containing `ts` (epoch-aligned, floor for negatives).
    @inline(__always) public func windowStart(_ ts: Int64) -> Int64 {
        let r = ts % windowMs
        return r >= 0 ? ts - r : ts - r - windowMs
    }
}

private extension Double {
    /// One decimal, without Foundation.
    var formatted1: String {
        guard isFinite, abs(self) < 1e15 else { return "\(self)" }
        let tenths = Int64((self * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))"
    }
}
