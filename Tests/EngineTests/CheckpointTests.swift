import Foundation
import Synchronization
import Testing
@testable import Engine
import Parquet
import QoSCore
import Sketches
import TestSupport

/// The checkpoint store's integrity checks: CRC32C of manifests, the ledger
/// against a lost newest manifest, the sink identity, and storage errors that
/// keep errno. Those about the sink's state run on a local directory and on
/// S3 (moto on loopback, `StorageUnderTest`): one logic over `SinkStorage`.
@Suite struct CheckpointTests {
    /// A checkpoint writes each sketch in place (`StateWriter.sketch`): the
    /// same bytes as its `checkpointBytes()` behind their length, for HLL
    /// sketches in every mode and DDSketches empty, of zeros only, wide and
    /// collapsed; and they restore to equal sketches.
    @Test func sketchesWrittenInPlaceEqualTheirCheckpointBytes() throws {
        var hlls: [ViewerHLL] = [ViewerHLL()]
        for n in [1, 7, 60, 900, 20_000] {
            var h = ViewerHLL()
            for i in 0 ..< n { h.insert("viewer-\(n)-\(i)") }
            hlls.append(h)
        }
        var ddsketches: [DurationSketch] = [DurationSketch()]
        var zeros = DurationSketch()
        zeros.add(0)
        ddsketches.append(zeros)
        var wide = DurationSketch()
        for i in 0 ..< 3_000 { wide.add(Double(i % 13 == 0 ? 0 : i * i)) }
        ddsketches.append(wide)
        var collapsed = DurationSketch(DDSketch(binLimit: 40))
        for e in 0 ..< 200 { collapsed.add(pow(1.3, Double(e))) }
        ddsketches.append(collapsed)
        for h in hlls {
            var inPlace = StateWriter(), copied = StateWriter()
            inPlace.sketch(h)
            copied.blob(h.checkpointBytes())
            #expect(inPlace.bytes == copied.bytes && h.checkpointByteCount == h.checkpointBytes().count)
            var r = StateReader(inPlace.bytes)
            #expect(try ViewerHLL(checkpoint: r.blob()).estimate == h.estimate)
        }
        for d in ddsketches {
            var inPlace = StateWriter(), copied = StateWriter()
            inPlace.int(-3)  // written after other fields, as in a group
            copied.int(-3)
            inPlace.sketch(d)
            copied.blob(d.checkpointBytes())
            #expect(inPlace.bytes == copied.bytes && d.checkpointByteCount == d.checkpointBytes().count)
            var r = StateReader(inPlace.bytes)
            _ = try r.int()
            #expect(try DurationSketch(checkpoint: r.blob()).sketch == d.sketch)
        }
    }

    func part(_ p: Int32, seq: Int64, next: Int64) -> PartitionCheckpoint {
        PartitionCheckpoint(topic: "beacons", partition: p, seq: seq, nextOffset: next, state: [1, 2, 3, UInt8(p)])
    }

    func store(_ t: SinkUnderTest, _ instance: String = "a") throws -> CheckpointStore {
        let s = try CheckpointStore(sink: t.sink, instance: instance)
        try s.openState(accept: false, log: { _ in })
        return s
    }

    @Test(arguments: StorageUnderTest.all)
    func manifestRoundTripsWithIdentitiesAndRefusesAnyFlippedByte(_ storage: StorageUnderTest) throws {
        let t = try storage.make()
        let s = try store(t)
        try s.checkCluster("cluster-1", topic: "beacons", accept: false, log: { _ in })
        try s.commit(files: [], partitions: [part(0, seq: 1, next: 10), part(1, seq: 1, next: 20)])
        let m = try s.manifests()
        #expect(m.count == 1 && m[0].sinkId == s.sinkId && m[0].clusterId == "cluster-1")
        #expect(m[0].partitions.map(\.nextOffset) == [10, 20] && s.sinkId.hasPrefix("videoqos-sink-"))
        let rel = try #require(try t.files("_qos/manifests").first)
        let good = try #require(try t.storage.read(rel))
        for i in stride(from: 0, to: good.count, by: storage == .local ? 3 : 7) {
            var bad = good
            bad[i] ^= 0x04
            try t.storage.publish(rel, bad)
            #expect(performing: { try s.manifests() }, throws: { e in
                guard case .corrupt(let p, _)? = e as? CheckpointError else { return false }
                return p == t.storage.display(rel) && "\(e)".contains("move it away")
            })
        }
    }

    /// A manifest or partition snapshot of a later format version (a newer
    /// qos ran on the sink) is refused as such, with the way out, not as
    /// damage; the same bytes with a broken checksum are still damage.
    @Test func stateOfANewerFormatIsNamedAsSuch() throws {
        func bumped(_ bytes: [UInt8], to digit: Character, reseal: Bool) -> [UInt8] {
            var b = Array(bytes.dropLast(4))
            b[7] = UInt8(ascii: digit.unicodeScalars.first!)
            if reseal { CRC32C.seal(&b) } else { b += bytes.suffix(4) }
            return b
        }
        let t = try StorageUnderTest.local.make()
        let s = try store(t)
        try s.commit(files: [], partitions: [part(0, seq: 1, next: 10)])
        let rel = try #require(try t.files("_qos/manifests").first)
        let good = try #require(try t.storage.read(rel))
        #expect(good.starts(with: Array("QOSMANI3".utf8)))
        try t.storage.publish(rel, bumped(good, to: "4", reseal: true))
        #expect(performing: { try s.manifests() }, throws: { e in
            guard case .newerFormat(let p, let detail)? = e as? CheckpointError else { return false }
            return p == t.storage.display(rel) && detail.contains("format version 4")
                && "\(e)".contains("newer release of qos") && !"\(e)".contains("corrupt")
        })
        try t.storage.publish(rel, bumped(good, to: "4", reseal: false))
        #expect(performing: { try s.manifests() }, throws: { e in
            guard case .corrupt? = e as? CheckpointError else { return false }
            return true
        })

        let engine = QoSEngine<DataSketchesKit>()
        engine.apply(Beacon(event: .viewStart, ts: 1_767_225_600_000, sessionId: "s"), partition: 0,
                     source: .memory(name: "t", partition: 0, index: 0), nowMs: 1_767_225_600_000)
        let snap = engine.snapshot(partition: 0)
        #expect(snap.starts(with: Array("QOSPART4".utf8)))
        #expect(performing: { try QoSEngine<DataSketchesKit>().restore(partition: 0, from: bumped(snap, to: "5", reseal: true)) },
                throws: { e in
                    guard let e = e as? StateError else { return false }
                    return e.isNewerFormat && e.message.contains("partition snapshot of format version 5")
                })
        #expect(throws: StateError(message: "not a partition snapshot")) {
            try QoSEngine<DataSketchesKit>().restore(partition: 0, from: bumped(snap, to: "5", reseal: false))
        }
        #expect(CheckpointError.newerFormat(path: "m", detail: "d").description.contains("run that release or a later one"))
    }

    @Test(arguments: StorageUnderTest.all)
    func lostNewestManifestIsRefusedUntilAccepted(_ storage: StorageUnderTest) throws {
        let t = try storage.make()
        let s = try store(t)
        try s.commit(files: [], partitions: [part(0, seq: 1, next: 10)])
        try s.commit(files: [], partitions: [part(0, seq: 2, next: 15)])
        t.storage.remove(try #require(try t.files("_qos/manifests/a").last))
        #expect(performing: { try store(t) }, throws: { e in
            guard case .stateLost(_, let detail)? = e as? CheckpointError else { return false }
            return detail.contains("beacons/0") && detail.contains("sequence 2") && detail.contains(t.storage.display("_qos/ledger/a"))
                && "\(e)".contains("--accept-state-loss")
        })
        var logged: [String] = []
        let accepted = try CheckpointStore(sink: t.sink, instance: "b")
        try accepted.openState(accept: true, log: { logged.append($0) })
        #expect(logged.count == 1 && logged[0].contains("accepting state loss"))
        _ = try store(t)  // needed once
    }

    /// A partition moved from instance a to b: a's ledger is collected, b's
    /// still catches b's lost newest manifest.
    @Test(arguments: StorageUnderTest.all)
    func ledgersOfInstancesMovedPastAreCollected(_ storage: StorageUnderTest) throws {
        let t = try storage.make()
        let a = try store(t, "a")
        try a.commit(files: [], partitions: [part(0, seq: 1, next: 10)])
        let b = try store(t, "b")
        try b.commit(files: [], partitions: [part(0, seq: 2, next: 12)])
        try b.commit(files: [], partitions: [part(0, seq: 3, next: 14)])
        try b.collectGarbage()
        #expect(try t.storage.list("_qos/ledger") == ["b"])
        t.storage.remove("_qos/manifests/b/000000000002.manifest")
        #expect(throws: CheckpointError.self) { try store(t, "c") }
    }

    /// Collection runs after every epoch and reads a manifest only the first
    /// time it sees one: a daemon's own are known from their commit, another
    /// instance's is read once, however many epochs follow.
    @Test(arguments: StorageUnderTest.all)
    func collectionReadsEachManifestOnce(_ storage: StorageUnderTest) throws {
        let t = try storage.make()
        try store(t, "other").commit(files: [], partitions: [part(1, seq: 1, next: 5)])
        let s = try store(t, "a")
        let started = s.manifestsDecoded
        for i in 1...25 {
            try s.commit(files: [], partitions: [part(0, seq: Int64(i), next: Int64(10 + i))])
            if i == 10 { try store(t, "late").commit(files: [], partitions: [part(2, seq: 1, next: 7)]) }
            try s.collectGarbage()
        }
        #expect(s.manifestsDecoded - started == 1, "only the manifest of 'late' is new to a")
        #expect(try t.storage.list("_qos/manifests/a") == ["000000000025.manifest"])
        // Partitions 1 and 2 are checkpointed nowhere else: those manifests stay.
        #expect(try t.storage.list("_qos/manifests").sorted() == ["a", "late", "other"])
        #expect(CheckpointStore.latest(try s.manifests(), topic: "beacons").mapValues(\.seq) == [0: 25, 1: 1, 2: 1])
    }

    /// Every restart of `qos run` is a new instance name: the manifests of
    /// earlier instances must not stay forever once superseded.
    @Test(arguments: StorageUnderTest.all)
    func supersededManifestsOfEarlierInstancesAreCollected(_ storage: StorageUnderTest) throws {
        let t = try storage.make()
        for (i, name) in ["run-1", "run-2", "run-3", "run-4"].enumerated() {
            let s = try store(t, name)
            try s.commit(files: [], partitions: [part(0, seq: Int64(2 * i + 1), next: 10), part(1, seq: Int64(2 * i + 1), next: 5)])
            try s.commit(files: [], partitions: [part(0, seq: Int64(2 * i + 2), next: 12), part(1, seq: Int64(2 * i + 2), next: 6)])
            try s.collectGarbage()
        }
        #expect(try t.storage.list("_qos/manifests") == ["run-4"])
        #expect(try t.storage.list("_qos/manifests/run-4") == ["000000000002.manifest"])
        // A partition still held only by an earlier instance keeps its manifest.
        let s5 = try store(t, "run-5")
        try s5.commit(files: [], partitions: [part(0, seq: 9, next: 13)])
        try s5.collectGarbage()
        #expect(try t.storage.list("_qos/manifests") == ["run-4", "run-5"])
        #expect(CheckpointStore.latest(try s5.manifests(), topic: "beacons").mapValues(\.seq) == [0: 9, 1: 8])
    }

    @Test(arguments: StorageUnderTest.all)
    func deletedStateWithPublishedFilesIsRefused(_ storage: StorageUnderTest) throws {
        let t = try storage.make()
        _ = try store(t)
        try t.storage.makeDirectory("overall/dt=2026-01-01/hour=00")
        try t.storage.publish("overall/dt=2026-01-01/hour=00/x.parquet", [0])
        t.storage.removeTree("_qos")
        #expect(try t.files("_qos").isEmpty)
        #expect(performing: { try store(t) }, throws: { e in
            guard case .stateLost(_, let detail)? = e as? CheckpointError else { return false }
            return detail.contains("no checkpoint state") && detail.contains(t.storage.display("overall/dt=2026-01-01/hour=00/x.parquet"))
        })
    }

    @Test(arguments: StorageUnderTest.all)
    func sinkDeletedOrReplacedStopsTheNextCommit(_ storage: StorageUnderTest) throws {
        let t = try storage.make()
        let s = try store(t)
        try s.commit(files: [], partitions: [part(0, seq: 1, next: 10)])
        t.storage.removeTree("")
        #expect(performing: { try s.commit(files: [], partitions: [part(0, seq: 2, next: 11)]) }, throws: { e in
            guard case .sinkReplaced(_, let detail)? = e as? CheckpointError else { return false }
            return detail.contains("was deleted") && detail.contains(t.storage.display("_qos/sink-id"))
        })
        _ = try store(t)  // a new sink there gets a new identity
        #expect(performing: { try s.checkIdentity() }, throws: { e in
            guard case .sinkReplaced(_, let detail)? = e as? CheckpointError else { return false }
            return detail.contains("was replaced")
        })
    }

    @Test(arguments: StorageUnderTest.all)
    func daemonsStartedAtOnceOnAnEmptySinkShareOneIdentity(_ storage: StorageUnderTest) throws {
        let t = try storage.make()
        // The primitive: of two creates of one name, the second is refused
        // and leaves the first's bytes.
        #expect(try t.storage.create("_qos/probe", [1]))
        #expect(try !t.storage.create("_qos/probe", [2]))
        #expect(try t.storage.read("_qos/probe") == [1])
        #expect(try t.storage.list("_qos") == ["probe"])  // no temporary name left

        // A daemon that found no identity file a moment ago, while another
        // created one since, adopts it: it never writes its own over it.
        let first = try store(t, "first")
        let late = try CheckpointStore(sink: t.sink, instance: "late")
        #expect(try late.settleIdentity(known: nil, replace: false) == first.sinkId)
        #expect(try late.readSinkId() == first.sinkId)
        // One restored from the manifests by two daemons at once: the same.
        t.storage.remove("_qos/sink-id")
        #expect(try late.settleIdentity(known: first.sinkId, replace: false) == first.sinkId)
        #expect(try first.settleIdentity(known: first.sinkId, replace: false) == first.sinkId)
        try first.checkIdentity()
        // Restored while another daemon wrote a different one: refused.
        #expect(performing: { try late.settleIdentity(known: CheckpointStore.newSinkId(), replace: false) }, throws: { e in
            guard case .sinkReplaced(_, let detail)? = e as? CheckpointError else { return false }
            return detail.contains("another identity")
        })
        t.storage.removeTree("")

        // Stores opened at the same moment on an empty sink: each used to
        // write its own identity, and all but the last stopped at their
        // first checkpoint with "sink was replaced". Local only: moto checks
        // If-None-Match and then writes, so two of its request threads can
        // both create (S3 itself decides atomically).
        guard storage == .local else { return }
        let n = 8
        let stores = try (0..<n).map { try CheckpointStore(sink: t.sink, instance: "i\($0)") }
        final class Outcomes: @unchecked Sendable {  // guarded by `lock`
            let lock = NSLock()
            var all: [Result<String, any Error>] = []
        }
        let outcomes = Outcomes()
        let ready = DispatchGroup(), go = DispatchSemaphore(value: 0), done = DispatchGroup()
        for s in stores {
            let store = UncheckedBox(s)  // each thread owns its store
            ready.enter(); done.enter()
            Thread {
                ready.leave()
                go.wait()
                let r = Result { try store.value.openState(accept: false, log: { _ in }); return store.value.sinkId }
                outcomes.lock.lock(); outcomes.all.append(r); outcomes.lock.unlock()
                done.leave()
            }.start()
        }
        ready.wait()
        for _ in 0..<n { go.signal() }
        done.wait()
        let ids = try outcomes.all.map { try $0.get() }
        #expect(Set(ids).count == 1)
        #expect(try stores[0].readSinkId() == ids.first)
        for (i, s) in stores.enumerated() {
            try s.commit(files: [], partitions: [part(Int32(i), seq: 1, next: 1)])  // none finds the sink replaced
        }
    }

    /// The commit point never replaces a manifest: what is there stays, and
    /// only the same bytes count as committed (our own earlier attempt).
    @Test(arguments: StorageUnderTest.all)
    func aCommitNeverReplacesAnotherWritersManifest(_ storage: StorageUnderTest) throws {
        let t = try storage.make()
        let s = t.sink.storage
        #expect(try s.commit("_qos/manifests/x/000000000001.manifest", [1, 2]))
        #expect(try s.commit("_qos/manifests/x/000000000001.manifest", [1, 2]))
        #expect(try !s.commit("_qos/manifests/x/000000000001.manifest", [1, 3]))
        #expect(try s.read("_qos/manifests/x/000000000001.manifest") == [1, 2])
        #expect(try s.list("_qos/manifests/x") == ["000000000001.manifest"])  // no temporary name left
    }

    @Test func aFileSystemWithoutHardLinksStillCreatesOnce() throws {
        let dir = NSTemporaryDirectory() + "qos-create-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // link(2) refused (a FUSE mount, FAT): renameat2(RENAME_NOREPLACE);
        // that refused too: O_EXCL.
        let noLinks = LocalStorage.ExclusivePlacement(link: { _, _ in errno = EPERM; return -1 })
        let noLinksNoRename = LocalStorage.ExclusivePlacement(link: { _, _ in errno = EOPNOTSUPP; return -1 },
                                                              renameNoReplace: { _, _ in errno = EINVAL; return -1 })
        for (i, placement) in [noLinks, noLinksNoRename].enumerated() {
            let s = LocalStorage(root: dir, exclusivePlacement: placement)
            #expect(try s.create("_qos/f\(i)", [1, 2]))
            #expect(try !s.create("_qos/f\(i)", [3]))
            #expect(try s.read("_qos/f\(i)") == [1, 2])
        }
        #expect(try LocalStorage(root: dir).list("_qos") == ["f0", "f1"])  // no temporary name left
        // Any other failure is an error naming the file.
        let failing = LocalStorage(root: dir, exclusivePlacement: .init(link: { _, _ in errno = EIO; return -1 }))
        #expect(performing: { try failing.create("_qos/f2", [1]) }, throws: { e in
            (e as? StorageError)?.errno == EIO && "\(e)".contains("_qos/f2")
        })
        #expect(try LocalStorage(root: dir).list("_qos") == ["f0", "f1"])
    }

    /// `removeTree` (staging directories, a dead instance's manifests, a
    /// compaction's leftovers) removes what `rm -rf` would: hidden names
    /// too, or the directory holding one stays; a symbolic link goes as a
    /// link, and what it points to outside the tree is left alone.
    @Test func removeTreeTakesHiddenNamesAndNeverFollowsLinks() throws {
        let root = DriverTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fm = FileManager.default
        let tree = "\(root)/_staging/i/000000000007", outside = "\(root)/outside"
        try fm.createDirectory(atPath: "\(tree)/.hidden-dir", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: outside, withIntermediateDirectories: true)
        for f in ["\(tree)/.a.tmp", "\(tree)/b.parquet", "\(tree)/.hidden-dir/c", "\(outside)/keep"] {
            #expect(fm.createFile(atPath: f, contents: Data([1])))
        }
        try fm.createSymbolicLink(atPath: "\(tree)/to-outside", withDestinationPath: outside)
        try fm.createSymbolicLink(atPath: "\(tree)/.to-keep", withDestinationPath: "\(outside)/keep")
        CheckpointStore.removeTree("\(root)/_staging")
        #expect(!fm.fileExists(atPath: "\(root)/_staging"))
        #expect(fm.fileExists(atPath: "\(outside)/keep"))
        #expect(try fm.contentsOfDirectory(atPath: outside) == ["keep"])
        CheckpointStore.removeTree("\(root)/no-such-thing")  // nothing there: nothing happens
        // A link named as the tree itself goes as a link.
        try fm.createSymbolicLink(atPath: "\(root)/link", withDestinationPath: outside)
        CheckpointStore.removeTree("\(root)/link")
        #expect(fm.fileExists(atPath: "\(outside)/keep") && (try? fm.destinationOfSymbolicLink(atPath: "\(root)/link")) == nil)
    }

    /// A daemon killed while `create` wrote a manifest leaves the temporary
    /// file (hidden, so never read as a manifest). The next start of that
    /// instance deletes it once it is surely no other writer's; so does the
    /// instance that collects a dead instance's manifests, and then its
    /// directory goes too. Other dot files are left alone.
    @Test func temporaryManifestsOfKilledWritersAreDeletedOnceStale() throws {
        let t = try StorageUnderTest.local.make()
        // The temporary name `create` really uses, caught on its way to link(2).
        let seen = Mutex<String?>(nil)
        let spy = LocalStorage(root: t.root, exclusivePlacement: .init(link: { tmp, final in
            seen.withLock { $0 = tmp }
            return Glibc.link(tmp, final)
        }))
        #expect(try spy.create("_probe/000000000001.manifest", [1]))
        let tmp = try #require(seen.withLock { $0 })
        let name = String(tmp.split(separator: "/").last!)
        #expect(LocalStorage.isCreateTemporary(name) && !FileManager.default.fileExists(atPath: tmp))
        #expect(!LocalStorage.isCreateTemporary(".a.tmp") && !LocalStorage.isCreateTemporary("000000000001.manifest"))

        func leave(_ rel: String, minutesAgo: Double) throws {
            let path = "\(t.root)/\(rel)"
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            #expect(FileManager.default.createFile(atPath: path, contents: Data([9, 9])))
            try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -minutesAgo * 60)], ofItemAtPath: path)
        }
        let stale = "_qos/manifests/a/\(name)"
        let fresh = "_qos/manifests/a/.000000000002.manifest.77.12345.tmp"
        try leave(stale, minutesAgo: 20)
        try leave(fresh, minutesAgo: 1)
        try leave("_qos/manifests/a/.notes", minutesAgo: 60)
        let hidden = { (inst: String) in Set(CheckpointStore.listFiles("\(t.root)/_qos/manifests/\(inst)", hidden: true)) }

        let a = try store(t, "a")
        #expect(a.epoch == 0)
        #expect(hidden("a") == [".notes", String(fresh.split(separator: "/").last!)])

        // A dead instance: its last manifest holds no partition and is old, and
        // a temporary one of an epoch it never committed is there too.
        let dead = try store(t, "dead")
        try dead.commit(files: [], partitions: [])
        try leave("_qos/manifests/dead/.000000000002.manifest.4242.99.tmp", minutesAgo: 15)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -15 * 60)],
                                              ofItemAtPath: "\(t.root)/_qos/manifests/dead/000000000001.manifest")
        try a.commit(files: [], partitions: [part(0, seq: 1, next: 10)])
        try a.collectGarbage()
        #expect(!FileManager.default.fileExists(atPath: "\(t.root)/_qos/manifests/dead"))
        #expect(try t.storage.list("_qos/manifests") == ["a"])
    }

    @Test(arguments: StorageUnderTest.all)
    func otherClusterIsRefused(_ storage: StorageUnderTest) throws {
        let t = try storage.make()
        let s = try store(t)
        try s.checkCluster("one", topic: "beacons", accept: false, log: { _ in })
        try s.commit(files: [], partitions: [part(0, seq: 1, next: 10)])
        let b = try store(t, "b")
        #expect(throws: CheckpointError.clusterChanged(sink: t.root, stored: "one", current: "two")) {
            try b.checkCluster("two", topic: "beacons", accept: false, log: { _ in })
        }
        try b.checkCluster("one", topic: "beacons", accept: false, log: { _ in })
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

    /// Version 2 (checksum and identities, uncompressed, no format state)
    /// still loads; version 3 compresses its body and keeps each partition's
    /// format state, under the checksum.
    @Test func versionTwoManifestStillDecodesAndVersionThreeKeepsFormatState() throws {
        var w = StateWriter()
        for b in "QOSMANI2".utf8 { w.uint(UInt64(b)) }
        w.string("old"); w.int(7); w.string("sink-1"); w.string("cluster-1"); w.uint(1)
        w.string("beacons"); w.int(3); w.int(5); w.int(99); w.blob([1])
        w.uint(0)
        w.seal()
        let old = try Manifest.decode(w.bytes)
        #expect(old.sinkId == "sink-1" && old.partitions.map(\.nextOffset) == [99] && old.partitions[0].formatState == [])

        var p = part(3, seq: 5, next: 99)
        p.formatState = [9, 8, 7]
        p.state = Array(repeating: [1, 2, 3, 4, 5, 6, 7, 8], count: 20_000).flatMap { $0 } + [42]
        let m = Manifest(instance: "new", epoch: 8, sinkId: "s", clusterId: "c", partitions: [p, part(4, seq: 1, next: 2)], files: [])
        var bytes = try m.encode()
        #expect(bytes.starts(with: Array("QOSMANI3".utf8)))
        #expect(bytes.count < 20_000, "the body is not compressed: \(bytes.count) bytes")
        let back = try Manifest.decode(bytes)
        #expect(back.partitions.map(\.formatState) == [[9, 8, 7], []])
        #expect(back.partitions.map(\.state) == m.partitions.map(\.state))
        #expect(back.instance == "new" && back.epoch == 8 && back.sinkId == "s" && back.clusterId == "c")
        // A flipped byte of the compressed body fails the checksum.
        bytes[bytes.count / 2] ^= 1
        #expect(throws: StateError.checksumMismatch) { try Manifest.decode(bytes) }
        // A sealed body that is not a zstd frame, or not of its stated size, is a StateError too.
        for (size, frame) in [(10, [UInt8]([1, 2, 3])), (1 << 41, [UInt8]([1])), (5, try zstdCompress([1, 2, 3], level: 1))] {
            var v = StateWriter()
            for b in "QOSMANI3".utf8 { v.uint(UInt64(b)) }
            v.uint(UInt64(size)); v.blob(frame); v.seal()
            #expect(throws: StateError.self) { try Manifest.decode(v.bytes) }
        }
    }

    @Test func fsyncOfAMissingDirectoryThrowsWithErrno() {
        #expect(performing: { try FileSink.fsyncDirectory("/nonexistent-qos-dir") }, throws: { e in
            (e as? StorageError)?.errno == ENOENT && "\(e)".contains("/nonexistent-qos-dir")
        })
    }
}

/// `FileSink.publish(all:)`: a replay flush's files, published together,
/// each directory synced once after its last file.
@Suite struct SinkBatchPublishTests {
    @Test func everyFileLandsWholeAndNoTemporaryNameStays() throws {
        let root = makeTemporaryDirectory("qos-batch-publish")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let sink = FileSink(root: root)
        let a = "\(root)/video/dt=2026-01-01/hour=00", b = "\(root)/geo/dt=2026-01-01/hour=01"
        let files: [(bytes: [UInt8], dir: String, name: String)] = [
            (Array("one".utf8), a, "1.parquet"), (Array("two".utf8), b, "2.parquet"),
            (Array("three".utf8), a, "3.parquet"), ([], b, "4.parquet"),
        ]
        try sink.publish(all: files)
        for f in files {
            #expect(FileManager.default.contents(atPath: "\(f.dir)/\(f.name)").map { Array($0) } == f.bytes)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: a).sorted() == ["1.parquet", "3.parquet"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: b).sorted() == ["2.parquet", "4.parquet"])
    }

    @Test func aDirectoryThatCannotBeMadeStopsTheBatchWithItsPath() throws {
        let root = makeTemporaryDirectory("qos-batch-publish")
        defer { try? FileManager.default.removeItem(atPath: root) }
        // A regular file where a partition directory must go.
        #expect(FileManager.default.createFile(atPath: "\(root)/geo", contents: Data()))
        let sink = FileSink(root: root)
        #expect(performing: {
            try sink.publish(all: [(Array("x".utf8), "\(root)/video", "1.parquet"), (Array("y".utf8), "\(root)/geo/hour=00", "2.parquet")])
        }, throws: { e in (e as? StorageError)?.errno == ENOTDIR && "\(e)".contains("\(root)/geo") })
        #expect(FileManager.default.fileExists(atPath: "\(root)/video/1.parquet"), "files before the failure stay published")
    }
}
