import Engine
import QoSCore
import Sketches
import Testing

/// The inline size of a window group. Every partition keeps its own share of
/// every open window, so a catch-up over many partitions holds, grows and
/// pages in many of these (docs/architecture.md "Window shares in memory").
@Suite struct GroupLayoutTests {
    @Test func aGroupHoldsItsSketchesWithoutTheirConstants() {
        let group = MemoryLayout<GroupMetrics<DataSketchesKit>>.size
        let sketch = MemoryLayout<DurationSketch>.size

        #expect(sketch <= 56, "DurationSketch is \(sketch) bytes")
        #expect(group <= 384, "GroupMetrics is \(group) bytes")
    }
}
