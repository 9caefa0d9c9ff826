import QoSCore
import Sketches

/// The parameters of the sketches the engine writes, one home each: file
/// metadata, table docs, the reader's merge check and `qos inspect` use these.
public enum SketchParameters {
    /// DataSketches HLL_8 log2 of the register count.
    public static let hllLgK = 12
    /// DDSketch relative accuracy (1 %).
    public static let ddsketchRelativeAccuracy = 0.01
    /// The accuracy as file metadata writes it: "0.01".
    public static var ddsketchRelativeAccuracyText: String { "\(ddsketchRelativeAccuracy)" }
    /// The accuracy in percent for docs: "1".
    public static var ddsketchAccuracyPercent: String { "\(Int((ddsketchRelativeAccuracy * 100).rounded()))" }
}

/// The sketches the engine writes: DataSketches HLL_8 (lgK 12) for distinct
/// viewers and DDSketch (1 % relative accuracy, Python's `ceil` key
/// convention) for durations (`SketchParameters`). Thin wrappers so QoSCore
/// stays sketch-agnostic.
public enum DataSketchesKit: SketchKit {
    public typealias Distinct = ViewerHLL
    public typealias Quantiles = DurationSketch
}

public struct ViewerHLL: DistinctCounter {
    public var hll = HLLSketch(lgK: SketchParameters.hllLgK)
    public init() {}
    public init(_ hll: HLLSketch) { self.hll = hll }
    @inline(__always) public mutating func insert(_ item: String) { hll.update(item) }
    public mutating func merge(_ other: ViewerHLL) { hll.merge(other.hll) }
    public var estimate: Double { hll.estimate }
    public var isEmpty: Bool { hll.isEmpty }
    public func serialized() -> [UInt8] { hll.compactBytes() }
    public var serializedCount: Int { hll.compactByteCount }
}

public struct DurationSketch: QuantileSummary {
    public var sketch = DDSketch(relativeAccuracy: SketchParameters.ddsketchRelativeAccuracy)
    public init() {}
    public init(_ sketch: DDSketch) { self.sketch = sketch }
    @inline(__always) public mutating func add(_ value: Double) { sketch.add(value) }
    public mutating func merge(_ other: DurationSketch) { sketch.merge(other.sketch) }
    public func quantile(_ q: Double) -> Double? { sketch.quantile(q) }
    public var count: Double { sketch.count }
    public var isEmpty: Bool { sketch.isEmpty }
    public func serialized() -> [UInt8] { sketch.protobufBytes() }
    public var serializedCount: Int { sketch.protobufByteCount }
}

extension DataSketchesKit: CheckpointableSketchKit {}

extension ViewerHLL: CheckpointableSketch {
    /// The updatable form keeps LIST/SET slot layout, so a restored sketch
    /// serializes exactly as one that was never checkpointed.
    public func checkpointBytes() -> [UInt8] { hll.updatableBytes() }
    public var checkpointByteCount: Int { hll.updatableByteCount }
    public func writeCheckpoint(into buffer: UnsafeMutableBufferPointer<UInt8>) { hll.writeUpdatable(into: buffer) }
    public init(checkpoint: [UInt8]) throws { hll = try HLLSketch(bytes: checkpoint) }
}

extension DurationSketch: CheckpointableSketch {
    public func checkpointBytes() -> [UInt8] { sketch.protobufBytes() }
    public var checkpointByteCount: Int { sketch.protobufByteCount }
    public func writeCheckpoint(into buffer: UnsafeMutableBufferPointer<UInt8>) { sketch.writeProtobuf(into: buffer) }
    public init(checkpoint: [UInt8]) throws { sketch = try DDSketch(protobuf: checkpoint) }
}
