import Foundation
import Testing
@testable import QoSCore

/// `SourcePosition` and its interned `SourceName`: the text of a position
/// (`rejects.source`) is that of its name, and a name is one value however
/// and on whichever thread it is built.
@Suite struct SourcePositionTests {
    @Test func aPositionReadsAsItsNameAndPlace() {
        let path = "/data/beacons/2026-01-01/part-00017.ndjson"  // longer than a String stores inline
        #expect(SourcePosition.file(name: SourceName(path), line: 42).description == path + ":42")
        #expect(SourcePosition.kafka(topic: "video-qos-beacons-production", partition: 3, offset: 9).description
            == "video-qos-beacons-production/3/9")
        #expect(SourcePosition.memory(name: "m", partition: 0, index: 7).description == "memory:m/0/7")
        #expect(SourceName("") == .empty && SourceName.empty.description == "")
    }

    @Test func equalNamesAreOneValueAndDifferentNamesAreNot() {
        let a = SourceName("/tmp/qos-bench-abcdef/beacons.ndjson")
        // The same text built anew (not the same String storage).
        let b = SourceName(String(decoding: Array("/tmp/qos-bench-abcdef/beacons.ndjson".utf8), as: UTF8.self))
        #expect(a == b && a.hashValue == b.hashValue)
        #expect(a != SourceName("/tmp/qos-bench-abcdef/beacons.ndjson.zst"))
        #expect(SourcePosition.file(name: a, line: 1) == .file(name: b, line: 1))
        #expect(SourcePosition.file(name: a, line: 1) != .file(name: b, line: 2))
        #expect(Set([a, b, "x", SourceName("x")]).count == 2)
    }

    @Test func namesInternedOnManyThreadsAtOnceAreOneValuePerText() {
        let texts = (0..<50).map { "/input/part-\($0)-of-a-long-enough-path.ndjson" }
        let results = UnsafeMutableBufferPointer<SourceName>.allocate(capacity: 8 * texts.count)
        defer { results.deallocate() }
        nonisolated(unsafe) let out = results
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for (i, text) in texts.enumerated() { (out.baseAddress! + t * texts.count + i).initialize(to: SourceName(text)) }
        }
        let first = Array(results[0..<texts.count])
        let alike = (1..<8).allSatisfy { t in Array(results[(t * texts.count)..<((t + 1) * texts.count)]) == first }
        #expect(alike, "every thread got the same names")
        #expect(Set(results).count == texts.count)
        #expect(results[0..<texts.count].map(\.string) == texts)
    }
}
