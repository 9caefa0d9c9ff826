/// Every knob of the core engine, with SPEC defaults. All durations are
/// milliseconds of event time unless the name says otherwise.
public struct EngineConfig: Sendable, Equatable {
    /// Tumbling window size (SPEC §4, default 2 min).
    public var windowMs: Int64 = 120_000
    /// Allowed lateness subtracted from the max `ts` for the watermark (default 30 s).
    public var latenessMs: Int64 = 30_000
    /// Beacons more than this behind the partition watermark are rejected (default 24 h).
    public var maxLatenessMs: Int64 = 86_400_000
    /// Beacons more than this ahead of the engine clock are rejected (default 5 min).
    public var futureToleranceMs: Int64 = 300_000
    /// Session inactivity timeout (default 5 min).
    public var sessionTimeoutMs: Int64 = 300_000
    /// Maximum session length (default 6 h).
    public var sessionMaxMs: Int64 = 21_600_000
    /// Startup times outside [0, this] are not counted (default 5 min).
    public var startupMaxMs: Int64 = 300_000
    /// A segment download slower than this is a `slow_request` (default 200 ms).
    public var slowRequestMs: Int64 = 200
    /// Distinct dimension groups per table per window; more go to `__other__`.
    public var groupsPerWindowMax: Int = 100_000
    /// Completion threshold: max playhead ≥ this fraction of the duration.
    public var completionFraction: Double = 0.9

    public init() {}

    /// Start of the window containing `ts` (epoch-aligned, floor for negatives).
    @inline(__always) public func windowStart(_ ts: Int64) -> Int64 {
        let r = ts % windowMs
        return r >= 0 ? ts - r : ts - r - windowMs
    }
}
