import Testing
@testable import Kafka

/// librdkafka 2.0.2 reports an out-of-range position reset only as a log
/// line; the partition and offset it names are read from it
/// (`offsetResetPosition`). The line's shape is librdkafka's (rdkafka_offset.c,
/// checked against the real client in KafkaTests' retention test).
@Suite struct OffsetResetLineTests {
    @Test func thePartitionAndOffsetAreReadFromTheLine() {
        let line = "[thrd:main]: beacons [3]: offset reset (at offset 39230, broker 1) to cached BEGINNING offset 0: "
            + "fetch failed due to requested offset not available on the broker: Broker: Offset out of range"
        let got = offsetResetPosition(line)
        #expect(got?.partition == TopicPartition("beacons", 3))
        #expect(got?.offset == 39_230)
        let named = offsetResetPosition("cdn-logs.v2_x [12]: offset reset (at offset 7, broker 2) to END: reason: err")
        #expect(named?.partition == TopicPartition("cdn-logs.v2_x", 12) && named?.offset == 7)
    }

    @Test func anOffsetThatIsNotANumberIsUnknown() {
        let got = offsetResetPosition("[thrd:main]: t [0]: offset reset (at offset INVALID, broker -1) to BEGINNING: r: e")
        #expect(got?.partition == TopicPartition("t", 0))
        #expect(got?.offset == nil)
    }

    @Test func otherLinesNameNoPartition() {
        for line in ["", "offset reset", "[thrd:main]: beacons: offset reset (at offset 5)",
                     "[thrd:main]: beacons [x]: offset reset (at offset 5)", "[thrd:main]: beacons [-1]: offset reset",
                     "[thrd:main]: [0]: offset reset (at offset 5)", "Committed offset 5 for beacons [0]"] {
            #expect(offsetResetPosition(line) == nil, "\(line)")
        }
    }
}
