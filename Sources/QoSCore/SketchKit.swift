/// The mergeable-state protocols behind the sketch columns (docs/semantics.md §4). The
/// aggregation code is generic over a `SketchKit`; the engine plugs in the
/// DataSketches HLL / DDSketch kit, tests can plug in an exact kit.

/// Distinct counting (`viewers_hll`, `unique_viewers`).
public protocol DistinctCounter: Sendable, Equatable {
    init()
    mutating func insert(_ item: String)
    mutating func merge(_ other: Self)
    var estimate: Double { get }
    var isEmpty: Bool { get }
    /// The serialized sketch written to Parquet.
    func serialized() -> [UInt8]
}

/// Quantile summaries of non-negative values (`*_sketch` columns).
public protocol QuantileSummary: Sendable, Equatable {
    init()
    mutating func add(_ value: Double)
    mutating func merge(_ other: Self)
    /// nil when empty.
    func quantile(_ q: Double) -> Double?
    var count: Double { get }
    var isEmpty: Bool { get }
    func serialized() -> [UInt8]
}

public protocol SketchKit {
    associatedtype Distinct: DistinctCounter
    associatedtype Quantiles: QuantileSummary
}
