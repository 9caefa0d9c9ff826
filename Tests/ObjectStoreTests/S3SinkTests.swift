import Foundation
import Testing
import TestSupport
@testable import Engine
@testable import ObjectStore

/// The epoch commit on a real S3 API (moto on loopback): the same
/// `CheckpointStore` as on a local directory, over `S3Storage`. A crash is
/// simulated by stopping between the commit point and the publish, or
/// before the commit point, then recovering with a fresh store.
@Suite(.serialized, .enabled(if: MotoServer.available, MotoServer.skipReason)) struct S3SinkTests {
    /// A fresh bucket's sink at `s3://qos-test/data`, and a raw client on it.
    func sink(_ moto: MotoServer) throws -> (FileSink, S3Client) {
        let env = ["AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_REGION": "us-east-1"]
        let sink = try FileSink.named("s3://qos-test/data", environment: env)
        let s3 = (sink.remote as! S3Storage).client
        try s3.createBucket()
        return (sink, s3)
    }

    func store(_ sink: FileSink, _ instance: String = "a") throws -> CheckpointStore {
        let s = try CheckpointStore(sink: sink, instance: instance)
        try s.openState(accept: false, log: { _ in })
        return s
    }

    func part(_ p: Int32, seq: Int64, next: Int64) -> PartitionCheckpoint {
        PartitionCheckpoint(topic: "beacons", partition: p, seq: seq, nextOffset: next, state: [1, 2, 3, UInt8(p)])
    }

    func file(_ sink: FileSink, _ name: String, _ bytes: [UInt8]) -> WindowFileWriter.PlannedFile {
        WindowFileWriter.PlannedFile(table: "overall", dir: "\(sink.root)/overall/dt=2026-01-01/hour=00", name: name,
                                     bytes: bytes, rows: 1, schema: [], columns: [])
    }

    func keys(_ s3: S3Client, under rel: String) throws -> [String] {
        try s3.list(prefix: "data/\(rel)").map { String($0.key.dropFirst(5)) }
    }

    @Test func anEpochIsStagedCommittedThenPublished() throws {
        let moto = try MotoServer()
        let (sink, s3) = try sink(moto)
        #expect(sink.root == "s3://qos-test/data")
        try sink.checkWritable()
        let s = try store(sink)
        let published = try s.commit(files: [file(sink, "a.parquet", [1, 2]), file(sink, "b.parquet", [3])],
                                     partitions: [part(0, seq: 1, next: 10)])
        #expect(published == ["overall/dt=2026-01-01/hour=00/a.parquet", "overall/dt=2026-01-01/hour=00/b.parquet"])
        #expect(try s3.get("data/overall/dt=2026-01-01/hour=00/a.parquet") == [1, 2])
        #expect(try keys(s3, under: "_staging/").isEmpty)
        #expect(try keys(s3, under: "_qos/manifests/") == ["_qos/manifests/a/000000000001.manifest"])
        // A restarted instance (another host) resumes from the store.
        let again = try store(sink, "a")
        #expect(again.epoch == 1)
        #expect(CheckpointStore.latest(try again.manifests(), topic: "beacons")[0]?.nextOffset == 10)
    }

    @Test func aCommittedButUnpublishedEpochIsFinishedByRecovery() throws {
        let moto = try MotoServer()
        let (sink, s3) = try sink(moto)
        let s = try store(sink)
        _ = try s.commitManifest(files: [file(sink, "a.parquet", [7, 7, 7])], partitions: [part(0, seq: 1, next: 5)])
        // The crash: after the commit point, before the publish.
        #expect(try s3.get("data/overall/dt=2026-01-01/hour=00/a.parquet") == nil)
        #expect(try keys(s3, under: "_staging/").count == 1)
        let recovered = try store(sink, "b")
        #expect(try recovered.manifests().count == 1)
        #expect(try s3.get("data/overall/dt=2026-01-01/hour=00/a.parquet") == [7, 7, 7])
        #expect(try keys(s3, under: "_staging/").isEmpty)
        // Recovering again changes nothing (a move is repeated only while its staged copy exists).
        _ = try recovered.recover()
        #expect(try keys(s3, under: "overall/") == ["overall/dt=2026-01-01/hour=00/a.parquet"])
    }

    @Test func anUncommittedEpochIsDiscarded() throws {
        let moto = try MotoServer()
        let (sink, s3) = try sink(moto)
        let s = try store(sink)
        try s.commit(files: [file(sink, "a.parquet", [1])], partitions: [part(0, seq: 1, next: 5)])
        // The crash: epoch 2's files staged, its manifest never written.
        try s3.put("data/_staging/a/000000000002/0-b.parquet", [9])
        let recovered = try store(sink, "a")
        #expect(try keys(s3, under: "_staging/").isEmpty)
        #expect(try keys(s3, under: "overall/") == ["overall/dt=2026-01-01/hour=00/a.parquet"])
        #expect(recovered.epoch == 1)
    }

    @Test func twoWritersCannotCommitTheSameEpoch() throws {
        let moto = try MotoServer()
        let (sink, _) = try sink(moto)
        let first = try store(sink, "a")
        let second = try store(sink, "a")  // the same instance name on two hosts
        try first.commit(files: [], partitions: [part(0, seq: 1, next: 10)])
        #expect(performing: { try second.commit(files: [], partitions: [part(0, seq: 1, next: 99)]) }, throws: { e in
            "\(e)".contains("already committed by another writer") && !"\(e)".contains("\n")
        })
        #expect(CheckpointStore.latest(try first.manifests(), topic: "beacons")[0]?.nextOffset == 10)
        // Our own commit retried after a lost reply finds our own bytes: committed.
        let storage = sink.remote!
        #expect(try storage.commit("_qos/x", [1, 2]) && storage.commit("_qos/x", [1, 2]))
        #expect(try !storage.commit("_qos/x", [1, 3]))
    }

    @Test func lostNewestManifestAndDeletedStateAreRefused() throws {
        let moto = try MotoServer()
        let (sink, s3) = try sink(moto)
        let s = try store(sink)
        try s.commit(files: [file(sink, "a.parquet", [1])], partitions: [part(0, seq: 1, next: 10)])
        try s.commit(files: [], partitions: [part(0, seq: 2, next: 15)])
        try s3.delete("data/_qos/manifests/a/000000000002.manifest")
        #expect(performing: { try store(sink) }, throws: { e in
            guard case .stateLost(_, let detail)? = e as? CheckpointError else { return false }
            return detail.contains("sequence 2")
        })
        for o in try s3.list(prefix: "data/_qos/") { try s3.delete(o.key) }
        #expect(performing: { try store(sink) }, throws: { e in
            guard case .stateLost(_, let detail)? = e as? CheckpointError else { return false }
            return detail.contains("no checkpoint state") && detail.contains("s3://qos-test/data/overall/")
        })
    }

    @Test func missingCredentialsAndBadAddressesAreOneLine() {
        // Instance metadata off: on an EC2 runner with a role the chain would find keys.
        #expect(performing: { try FileSink.named("s3://qos-test/x", environment: ["AWS_EC2_METADATA_DISABLED": "true"]) }, throws: { e in
            "\(e)".contains("AWS_ACCESS_KEY_ID") && !"\(e)".contains("\n")
        })
        #expect(performing: { try FileSink.named("s3://Bad_Bucket/x", environment: ["AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"]) },
                throws: { e in "\(e)".contains("s3://bucket/prefix") })
    }

    @Test func credentialsAndRegionComeFromTheSharedFilesWhenTheVariablesAreUnset() throws {
        let dir = NSTemporaryDirectory() + "qos-aws-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = s1\n\n[ci]\n# a comment\naws_access_key_id=AKCI\naws_secret_access_key=s2\naws_session_token = tok\n"
            .write(toFile: dir + "/credentials", atomically: true, encoding: .utf8)
        try "[default]\nregion = eu-west-1\n[profile ci]\nregion = ap-south-1\n".write(toFile: dir + "/config", atomically: true, encoding: .utf8)
        let files = ["AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials", "AWS_CONFIG_FILE": dir + "/config",
                     "AWS_EC2_METADATA_DISABLED": "true"]
        let d = try S3Storage(location: "s3://qos-test/x", environment: files).client.config
        #expect(d.credentials == S3Credentials(accessKeyId: "AKDEFAULT", secretAccessKey: "s1") && d.region == "eu-west-1")
        #expect(d.endpoint == "https://s3.eu-west-1.amazonaws.com" && !d.pathStyle)
        let ci = try S3Storage(location: "s3://qos-test/x", environment: files.merging(["AWS_PROFILE": "ci"]) { $1 }).client.config
        #expect(ci.credentials == S3Credentials(accessKeyId: "AKCI", secretAccessKey: "s2", sessionToken: "tok") && ci.region == "ap-south-1")
        // The variables win over the files.
        let v = try S3Storage(location: "s3://qos-test/x", environment: files.merging(["AWS_ACCESS_KEY_ID": "AKV", "AWS_SECRET_ACCESS_KEY": "sv",
                                                                                       "AWS_REGION": "us-west-2"]) { $1 }).client.config
        #expect(v.credentials == S3Credentials(accessKeyId: "AKV", secretAccessKey: "sv") && v.region == "us-west-2")
        #expect(performing: { try S3Storage(location: "s3://qos-test/x", environment: files.merging(["AWS_PROFILE": "nope"]) { $1 }) },
                throws: { "\($0)".contains("profile 'nope'") })
    }

    @Test func lastModifiedParsesAsUTC() {
        #expect(S3Storage.epochSeconds(iso: "1970-01-01T00:00:00.000Z") == 0)
        #expect(S3Storage.epochSeconds(iso: "2026-01-01T00:02:00.000Z") == 1_767_225_720)
        #expect(S3Storage.epochSeconds(iso: "2024-02-29T23:59:59Z") == 1_709_251_199)
        #expect(S3Storage.epochSeconds(iso: "junk") == nil)
    }
}
