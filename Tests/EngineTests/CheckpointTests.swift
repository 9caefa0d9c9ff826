import Foundation
import Testing
@testable import Engine
import QoSCore

/// The checkpoint store's integrity checks on a real directory: CRC32C of
/// manifests, the ledger against a lost newest manifest, the sink identity,
/// and storage errors that keep errno.
@Suite struct CheckpointTests {
    func tempSink() -> String {
        let d = NSTemporaryDirectory() + "qos-ckpt-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func part(_ p: Int32, seq: Int64, next: Int64) -> PartitionCheckpoint {
        PartitionCheckpoint(topic: "beacons", partition: p, seq: seq, nextOffset: next, state: [1, 2, 3, UInt8(p)])
    }

    func store(_ sink: String, _ instance: String = "a") throws -> CheckpointStore {
        let s = try CheckpointStore(sink: FileSink(root: sink), instance: instance)
        try s.openState(accept: false, log: { _ in })
        return s
    }

    func manifestPaths(_ sink: String) -> [String] {
        let dir = "\(sink)/_qos/manifests/a"
        return CheckpointStore.listFiles(dir).map { "\(dir)/\($0)" }
    }

    @Test func manifestRoundTripsWithIdentitiesAndRefusesAnyFlippedByte() throws {
        let sink = tempSink()
        let s = try store(sink)
        try s.checkCluster("cluster-1", topic: "beacons", accept: false, log: { _ in })
        try s.commit(files: [], partitions: [part(0, seq: 1, next: 10), part(1, seq: 1, next: 20)])
        let m = try s.manifests()
        #expect(m.count == 1 && m[0].sinkId == s.sinkId && m[0].clusterId == "cluster-1")
        #expect(m[0].partitions.map(\.nextOffset) == [10, 20] && s.sinkId.hasPrefix("videoqos-sink-"))
        let path = manifestPaths(sink)[0]
        let good = try Inspector.readFile(path)
        for i in stride(from: 0, to: good.count, by: 3) {
            var bad = good
            bad[i] ^= 0x04
            try Data(bad).write(to: URL(fileURLWithPath: path))
            #expect(performing: { try s.manifests() }, throws: { e in
                guard case .corrupt(let p, _)? = e as? CheckpointError else { return false }
                return p == path && "\(e)".contains("move it away")
            })
        }
    }

    @Test func lostNewestManifestIsRefusedUntilAccepted() throws {
        let sink = tempSink()
        let s = try store(sink)
        try s.commit(files: [], partitions: [part(0, seq: 1, next: 10)])
        try s.commit(files: [], partitions: [part(0, seq: 2, next: 15)])
        unlink(manifestPaths(sink).last!)
        #expect(performing: { try store(sink) }, throws: { e in
            guard case .stateLost(_, let detail)? = e as? CheckpointError else { return false }
            return detail.contains("beacons/0") && detail.contains("sequence 2") && "\(e)".contains("--accept-state-loss")
        })
        var logged: [String] = []
        let accepted = try CheckpointStore(sink: FileSink(root: sink), instance: "b")
        try accepted.openState(accept: true, log: { logged.append($0) })
        #expect(logged.count == 1 && logged[0].contains("accepting state loss"))
        _ = try store(sink)  // needed once
    }

    /// A partition moved from instance a to b: a's ledger is collected, b's
    /// still catches b's lost newest manifest.
    @Test func ledgersOfInstancesMovedPastAreCollected() throws {
        let sink = tempSink()
        let a = try store(sink, "a")
        try a.commit(files: [], partitions: [part(0, seq: 1, next: 10)])
        let b = try store(sink, "b")
        try b.commit(files: [], partitions: [part(0, seq: 2, next: 12)])
        try b.commit(files: [], partitions: [part(0, seq: 3, next: 14)])
        b.collectGarbage(try b.manifests())
        #expect(CheckpointStore.listFiles("\(sink)/_qos/ledger") == ["b"])
        unlink("\(sink)/_qos/manifests/b/000000000002.manifest")
        #expect(throws: CheckpointError.self) { try store(sink, "c") }
    }

    /// Every restart of `qos run` is a new instance name: the manifests of
    /// earlier instances must not stay forever once superseded.
    @Test func supersededManifestsOfEarlierInstancesAreCollected() throws {
        let sink = tempSink()
        for (i, name) in ["run-1", "run-2", "run-3", "run-4"].enumerated() {
            let s = try store(sink, name)
            try s.commit(files: [], partitions: [part(0, seq: Int64(2 * i + 1), next: 10), part(1, seq: Int64(2 * i + 1), next: 5)])
            try s.commit(files: [], partitions: [part(0, seq: Int64(2 * i + 2), next: 12), part(1, seq: Int64(2 * i + 2), next: 6)])
            s.collectGarbage(try s.manifests())
        }
        #expect(CheckpointStore.listFiles("\(sink)/_qos/manifests") == ["run-4"])
        #expect(CheckpointStore.listFiles("\(sink)/_qos/manifests/run-4") == ["000000000002.manifest"])
        // A partition still held only by an earlier instance keeps its manifest.
        let s5 = try store(sink, "run-5")
        try s5.commit(files: [], partitions: [part(0, seq: 9, next: 13)])
        s5.collectGarbage(try s5.manifests())
        #expect(CheckpointStore.listFiles("\(sink)/_qos/manifests") == ["run-4", "run-5"])
        #expect(CheckpointStore.latest(try s5.manifests(), topic: "beacons").mapValues(\.seq) == [0: 9, 1: 8])
    }

    @Test func deletedStateWithPublishedFilesIsRefused() throws {
        let sink = tempSink()
        _ = try store(sink)
        try FileSink.makeDirectories("\(sink)/overall/dt=2026-01-01/hour=00")
        try FileSink.writeDurably([0], to: "\(sink)/overall/dt=2026-01-01/hour=00/x.parquet")
        CheckpointStore.removeTree("\(sink)/_qos")
        #expect(performing: { try store(sink) }, throws: { e in
            guard case .stateLost(_, let detail)? = e as? CheckpointError else { return false }
            return detail.contains("no checkpoint state")
        })
    }

    @Test func sinkDeletedOrReplacedStopsTheNextCommit() throws {
        let sink = tempSink()
        let s = try store(sink)
        try s.commit(files: [], partitions: [part(0, seq: 1, next: 10)])
        CheckpointStore.removeTree(sink)
        #expect(performing: { try s.commit(files: [], partitions: [part(0, seq: 2, next: 11)]) }, throws: { e in
            guard case .sinkReplaced(_, let detail)? = e as? CheckpointError else { return false }
            return detail.contains("was deleted")
        })
        _ = try store(sink)  // a new sink there gets a new identity
        #expect(performing: { try s.checkIdentity() }, throws: { e in
            guard case .sinkReplaced(_, let detail)? = e as? CheckpointError else { return false }
            return detail.contains("was replaced")
        })
    }

    @Test func otherClusterIsRefused() throws {
        let sink = tempSink()
        let s = try store(sink)
        try s.checkCluster("one", topic: "beacons", accept: false, log: { _ in })
        try s.commit(files: [], partitions: [part(0, seq: 1, next: 10)])
        let t = try store(sink, "b")
        #expect(throws: CheckpointError.clusterChanged(sink: sink, stored: "one", current: "two")) {
            try t.checkCluster("two", topic: "beacons", accept: false, log: { _ in })
        }
        try t.checkCluster("one", topic: "beacons", accept: false, log: { _ in })
    }

    /// Manifests of older versions (no checksum, no identities) still load.
    @Test func versionOneManifestStillDecodes() throws {
        var w = StateWriter()
        for b in "QOSMANI1".utf8 { w.uint(UInt64(b)) }
        w.string("old"); w.int(7); w.uint(1)
        w.string("beacons"); w.int(3); w.int(5); w.int(99); w.blob([1])
        w.uint(1); w.string("_staging/old/000000000007/0-x.parquet"); w.string("overall/x.parquet")
        let m = try Manifest.decode(w.bytes, path: "p")
        #expect(m.instance == "old" && m.epoch == 7 && m.sinkId == "" && m.clusterId == "")
        #expect(m.partitions.map(\.nextOffset) == [99] && m.partitions[0].source == "p" && m.files.count == 1)
    }

    @Test func fsyncOfAMissingDirectoryThrowsWithErrno() {
        #expect(performing: { try FileSink.fsyncDirectory("/nonexistent-qos-dir") }, throws: { e in
            (e as? StorageError)?.errno == ENOENT && "\(e)".contains("/nonexistent-qos-dir")
        })
    }
}
