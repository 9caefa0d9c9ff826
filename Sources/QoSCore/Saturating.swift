import Synchronization

/// Overflow-safe arithmetic for every sum, product and ratio the engine
/// computes from accepted values (README "Numeric safety"). The decoder's
/// bounds keep honest sums far below Int64.max; if a value gets past them
/// anyway (a future field, a hostile Parquet file under `qos reaggregate`),
/// a sum sticks at Int64.max (or Int64.min) instead of trapping or
/// wrapping, and the process-wide `SaturationCounter` counts it.
public enum SaturationCounter {
    private static let count = Atomic<Int64>(0)

    /// Values saturated since the process started (`qos_saturated_values_total`).
    public static var total: Int64 { count.load(ordering: .relaxed) }

    /// The cold path: counts one saturation, returns the bound.
    @inline(never)
    static func saturated(negative: Bool) -> Int64 {
        count.wrappingAdd(1, ordering: .relaxed)
        return negative ? .min : .max
    }
}

infix operator +| : AdditionPrecedence
infix operator +|= : AssignmentPrecedence
infix operator *| : MultiplicationPrecedence

extension Int64 {
    /// Saturating addition (as Zig's `+|`): Int64.max or Int64.min on
    /// overflow, counted in `SaturationCounter`.
    @inline(__always)
    public static func +| (a: Int64, b: Int64) -> Int64 {
        let (r, o) = a.addingReportingOverflow(b)
        if _slowPath(o) { return SaturationCounter.saturated(negative: b < 0) }
        return r
    }

    @inline(__always)
    public static func +|= (a: inout Int64, b: Int64) { a = a +| b }

    /// Saturating multiplication, counted like `+|`.
    @inline(__always)
    public static func *| (a: Int64, b: Int64) -> Int64 {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        if _slowPath(o) { return SaturationCounter.saturated(negative: (a < 0) != (b < 0)) }
        return r
    }
}
