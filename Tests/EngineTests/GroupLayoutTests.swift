import Engine
import QoSCore
import Sketches
import Testing

/// The inline size of a window group. Every partition keeps its own share of
/// every open window, so a catch-up over many partitions holds, grows and
/// pages in many of these (docs/architecture.md "Window shares in memory").
@Suite struct GroupLayoutTests {
    /// 848 bytes before DDSketch's constants moved behind one shared
    /// reference and the segment metrics into a box of the groups that have
    /// them (bench/results/speed.md sections 54–55).
    @Test func aGroupHoldsItsSketchesWithoutTheirConstantsOrUnusedSegmentMetrics() {
        let group = MemoryLayout<GroupMetrics<DataSketchesKit>>.size
        let sketch = MemoryLayout<DurationSketch>.size
        #expect(sketch <= 56, "DurationSketch is \(sketch) bytes")
        #expect(group <= 384, "GroupMetrics is \(group) bytes")
    }
}
