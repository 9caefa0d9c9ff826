import QoSCore

/// Exact stand-ins for the sketches, used only by tests: a set for distinct
/// counts, the sorted values for quantiles. They make every metric checkable
/// to the exact number.
struct ExactKit: SketchKit {
    typealias Distinct = ExactDistinct
    typealias Quantiles = ExactQuantiles
}

struct ExactDistinct: DistinctCounter {
    var items: Set<String> = []
    init() {}
    mutating func insert(_ item: String) { items.insert(item) }
    mutating func merge(_ other: ExactDistinct) { items.formUnion(other.items) }
    var estimate: Double { Double(items.count) }
    var isEmpty: Bool { items.isEmpty }
    func serialized() -> [UInt8] { Array(items.sorted().joined(separator: "\n").utf8) }
}

struct ExactQuantiles: QuantileSummary {
    var values: [Double] = []
    init() {}
    mutating func add(_ value: Double) { values.append(value) }
    mutating func merge(_ other: ExactQuantiles) { values += other.values }
    /// Nearest-rank quantile.
    func quantile(_ q: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let s = values.sorted()
        return s[min(s.count - 1, Int((q * Double(s.count - 1)).rounded(.down)))]
    }
    var count: Double { Double(values.count) }
    var isEmpty: Bool { values.isEmpty }
    func serialized() -> [UInt8] { values.sorted().flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }
    static func == (a: ExactQuantiles, b: ExactQuantiles) -> Bool { a.values.sorted() == b.values.sorted() }
}

extension ExactKit: CheckpointableSketchKit {}

extension ExactDistinct: CheckpointableSketch {
    func checkpointBytes() -> [UInt8] {
        var w = StateWriter()
        w.uint(UInt64(items.count))
        for s in items.sorted() { w.string(s) }
        return w.bytes
    }
    init(checkpoint: [UInt8]) throws {
        var r = StateReader(checkpoint)
        for _ in 0..<(try r.count()) { items.insert(try r.string()) }
    }
}

extension ExactQuantiles: CheckpointableSketch {
    func checkpointBytes() -> [UInt8] {
        var w = StateWriter()
        w.uint(UInt64(values.count))
        for v in values { w.uint(v.bitPattern) }
        return w.bytes
    }
    init(checkpoint: [UInt8]) throws {
        var r = StateReader(checkpoint)
        for _ in 0..<(try r.count()) { values.append(Double(bitPattern: try r.uint())) }
    }
}
