/// The mergeable-state protocols behind the sketch columns (docs/semantics.md §4). The
/// aggregation code is generic over a `SketchKit`; the engine plugs in the
/// DataSketches HLL / DDSketch kit, tests can plug in an exact kit.

/// A sketch written to Parquet as bytes (the `*_hll` and `*_sketch` columns).
public protocol SerializedSketch {
    /// The serialized sketch written to Parquet.
    func serialized() -> [UInt8]
    /// `serialized().count`; a kit whose sketches can tell without building
    /// the bytes says so, since row groups are sized before they are written.
    var serializedCount: Int { get }
}

extension SerializedSketch {
    public var serializedCount: Int { serialized().count }
}

/// Distinct counting (`viewers_hll`, `unique_viewers`).
public protocol DistinctCounter: SerializedSketch, Sendable, Equatable {
    init()
    mutating func insert(_ item: String)
    mutating func merge(_ other: Self)
    var estimate: Double { get }
    var isEmpty: Bool { get }
}

/// Quantile summaries of non-negative values (`*_sketch` columns).
public protocol QuantileSummary: SerializedSketch, Sendable, Equatable {
    init()
    mutating func add(_ value: Double)
    mutating func merge(_ other: Self)
    /// nil when empty.
    func quantile(_ q: Double) -> Double?
    var count: Double { get }
    var isEmpty: Bool { get }
}

public protocol SketchKit {
    associatedtype Distinct: DistinctCounter
    associatedtype Quantiles: QuantileSummary
}
