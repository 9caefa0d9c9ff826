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
}
