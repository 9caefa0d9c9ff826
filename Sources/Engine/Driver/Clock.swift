#if canImport(Glibc)
import Glibc
#endif

/// The time the driver reads: wall-clock ms (idleness, checkpoint policy,
/// the engine's `ts_in_future` check) and a monotonic clock in seconds
/// (latency, caught-up detection, run duration). Injected so tests can
/// drive rebalances, idleness and checkpoint policy without sleeping.
public protocol Clock: AnyObject {
    func wallMs() -> Int64
    func monotonicSeconds() -> Double
}

/// The operating system's clocks.
public final class SystemClock: Clock {
    public init() {}
    public func wallMs() -> Int64 { wallClockMs() }
    public func monotonicSeconds() -> Double { Engine.monotonicSeconds() }
}

/// A clock that moves only when told to (tests).
public final class ManualClock: Clock, @unchecked Sendable {
    public var nowMs: Int64
    public var monotonic: Double

    public init(wallMs: Int64, monotonic: Double = 1000) {
        nowMs = wallMs
        self.monotonic = monotonic
    }

    public func wallMs() -> Int64 { nowMs }
    public func monotonicSeconds() -> Double { monotonic }

    /// Moves both clocks forward.
    public func advance(ms: Int64) {
        nowMs += ms
        monotonic += Double(ms) / 1000
    }
}
