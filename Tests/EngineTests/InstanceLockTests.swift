import Foundation
import Testing
import TestSupport
@testable import Engine

/// One process per instance id on a local sink (`InstanceLock`). `flock`
/// locks belong to an open file, so two locks in one test process conflict
/// as two processes' would; tests/interop/test_daemon.py runs two daemons.
@Suite struct InstanceLockTests {
    @Test func aSecondHolderIsRefusedAndAStoppedHolderLeavesNoFile() throws {
        let sink = makeTemporaryDirectory("qos-lock")
        defer { try? FileManager.default.removeItem(atPath: sink) }
        let path = sink + "/_qos/instances/a.lock"
        var first: InstanceLock? = try InstanceLock(sinkRoot: sink, instance: "a")
        #expect(FileManager.default.fileExists(atPath: path))
        let refused = #expect(throws: UserError.self) { _ = try InstanceLock(sinkRoot: sink, instance: "a") }
        #expect(refused?.message.contains("instance 'a' is already running") == true)
        _ = try InstanceLock(sinkRoot: sink, instance: "b")  // another id is free
        withExtendedLifetime(first) {}
        first = nil
        #expect(!FileManager.default.fileExists(atPath: path), "the stopped holder removed its file")
        #expect(try FileManager.default.contentsOfDirectory(atPath: sink + "/_qos/instances").isEmpty)
        let again = try InstanceLock(sinkRoot: sink, instance: "a")
        withExtendedLifetime(again) {}
    }

    @Test func aLockOnAFileNoLongerInTheDirectoryDoesNotCount() throws {
        let sink = makeTemporaryDirectory("qos-lock")
        defer { try? FileManager.default.removeItem(atPath: sink) }
        let path = sink + "/a.lock"
        let fd = open(path, O_RDWR | O_CREAT, 0o644)
        defer { close(fd) }
        #expect(InstanceLock.isStillNamed(path, fd))
        // Its holder stopped and removed it; the next one created a new file there.
        unlink(path)
        #expect(!InstanceLock.isStillNamed(path, fd))
        let other = open(path, O_RDWR | O_CREAT, 0o644)
        defer { close(other) }
        #expect(!InstanceLock.isStillNamed(path, fd))
        #expect(InstanceLock.isStillNamed(path, other))
    }

    /// Daemons share a sink; a compaction (which swaps hour directories
    /// under them) runs alone, and neither starts while the other holds it.
    @Test func daemonsShareASinkAndACompactionRunsAlone() throws {
        let sink = makeTemporaryDirectory("qos-lock")
        defer { try? FileManager.default.removeItem(atPath: sink) }
        var a: SinkLock? = try SinkLock(sinkRoot: sink, for: .daemon)
        var b: SinkLock? = try SinkLock(sinkRoot: sink, for: .daemon)
        let refused = #expect(throws: UserError.self) { _ = try SinkLock(sinkRoot: sink, for: .compaction) }
        #expect(refused?.message.contains("qos run is running on sink") == true)
        withExtendedLifetime((a, b)) {}
        a = nil
        #expect(throws: UserError.self) { _ = try SinkLock(sinkRoot: sink, for: .compaction) }
        b = nil
        var c: SinkLock? = try SinkLock(sinkRoot: sink, for: .compaction)
        let daemon = #expect(throws: UserError.self) { _ = try SinkLock(sinkRoot: sink, for: .daemon) }
        #expect(daemon?.message.contains("qos reaggregate --compact is compacting") == true)
        #expect(throws: UserError.self) { _ = try SinkLock(sinkRoot: sink, for: .compaction) }
        withExtendedLifetime(c) {}
        c = nil
        _ = try SinkLock(sinkRoot: sink, for: .daemon)
    }
}
