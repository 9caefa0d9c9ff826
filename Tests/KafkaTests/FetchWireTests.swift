// The fetch path's wire reading (docs/kafka-fetch.md): record batches built
// here byte by byte, read back; cut and corrupted ones are errors, never
// crashes; and a scripted broker over TCP drives `NativeFetcher` through
// transactions, compression, old formats, resets and garbage.

import CZstd
import Foundation
import QoSCore
import Testing
@testable import Kafka

// MARK: - Building batches and responses (the test's own encoder)

struct TestRecord {
    var offsetDelta: Int
    var key: [UInt8]?
    var value: [UInt8]?
    var headers: [([UInt8], [UInt8]?)] = []
    var timestampDelta: Int64 = 0
}

func zigzag(_ v: Int64) -> [UInt8] {
    var u = UInt64(bitPattern: (v << 1) ^ (v >> 63))
    var out: [UInt8] = []
    while u >= 0x80 { out.append(UInt8(u & 0x7f) | 0x80); u >>= 7 }
    out.append(UInt8(u))
    return out
}

func encodeRecords(_ records: [TestRecord]) -> [UInt8] {
    var out: [UInt8] = []
    for r in records {
        var body: [UInt8] = [0]
        body += zigzag(r.timestampDelta)
        body += zigzag(Int64(r.offsetDelta))
        if let k = r.key { body += zigzag(Int64(k.count)) + k } else { body += zigzag(-1) }
        if let v = r.value { body += zigzag(Int64(v.count)) + v } else { body += zigzag(-1) }
        body += zigzag(Int64(r.headers.count))
        for (hk, hv) in r.headers {
            body += zigzag(Int64(hk.count)) + hk
            if let hv { body += zigzag(Int64(hv.count)) + hv } else { body += zigzag(-1) }
        }
        out += zigzag(Int64(body.count)) + body
    }
    return out
}

func zstdCompress(_ b: [UInt8]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: ZSTD_compressBound(b.count))
    let n = out.withUnsafeMutableBytes { o in b.withUnsafeBytes { i in ZSTD_compress(o.baseAddress, o.count, i.baseAddress, i.count, 3) } }
    precondition(ZSTD_isError(n) == 0)
    return Array(out[0..<n])
}

/// A record batch (magic 2) as a broker stores it.
func testBatch(base: Int64, _ records: [TestRecord], attributes: Int16 = 0, producerId: Int64 = -1,
               baseTimestamp: Int64 = 1_700_000_000_000, magic: Int8 = 2) -> [UInt8] {
    var payload = encodeRecords(records)
    if attributes & 7 == 4 { payload = zstdCompress(payload) }
    var w = WireWriter()
    w.int64(base)
    w.int32(Int32(49 + payload.count))
    w.int32(0)  // leader epoch
    w.int8(magic)
    w.int32(0)  // crc (not checked by the fetch path)
    w.int16(attributes)
    w.int32(Int32(records.map(\.offsetDelta).max() ?? 0))
    w.int64(baseTimestamp)
    w.int64(baseTimestamp + (records.map(\.timestampDelta).max() ?? 0))
    w.int64(producerId)
    w.int16(0)
    w.int32(0)
    w.int32(Int32(records.count))
    var batch = w.bytes + payload
    if magic == 2 {
        let crc = CRC32C.checksum(batch[21...])
        for i in 0..<4 { batch[17 + i] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * UInt32(i))) }
    }
    return batch
}

func controlBatch(at offset: Int64, producerId: Int64, abort: Bool) -> [UInt8] {
    var key = WireWriter()
    key.int16(0); key.int16(abort ? 0 : 1)
    return testBatch(base: offset, [TestRecord(offsetDelta: 0, key: key.bytes, value: [0, 0, 0, 0, 0, 0])],
                     attributes: 0x30, producerId: producerId)
}

func values(_ range: Range<Int>, prefix: String = "v") -> [TestRecord] {
    range.enumerated().map { i, n in TestRecord(offsetDelta: i, key: Array("k\(n)".utf8), value: Array("\(prefix)\(n)".utf8)) }
}

/// Reads every record of a record set the way `NativeFetcher` does.
func readAll(_ set: [UInt8]) throws -> [(Int64, String)] {
    try set.withUnsafeBytes { b in
        var reader = RecordSetReader(b, range: 0..<b.count)
        var out: [(Int64, String)] = []
        while case .batch(let h, let range) = try reader.next() {
            var records = BatchRecordReader(b, range: range, count: h.recordCount)
            while let r = try records.next() {
                out.append((h.baseOffset + Int64(r.offsetDelta), String(decoding: r.value.map(Array.init) ?? [], as: UTF8.self)))
            }
        }
        return out
    }
}

// MARK: - A scripted broker over TCP

/// Answers ApiVersions itself and every other request with `answer`
/// (api key, version, body) → response body. One connection at a time.
final class ScriptedBroker: @unchecked Sendable {
    let port: Int32
    private let listener: Int32
    private let answer: @Sendable (Int16, Int16, [UInt8]) -> [UInt8]
    let requests = Locked<[(Int16, Int16)]>([])

    init(fetchVersions: ClosedRange<Int16> = 4...11,
         answer: @escaping @Sendable (Int16, Int16, [UInt8]) -> [UInt8]) throws {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        precondition(bound == 0 && listen(s, 4) == 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        port = Int32(UInt16(bigEndian: addr.sin_port))
        listener = s
        self.answer = answer
        let requests = self.requests
        let (client, done) = (Locked<Int32>(-1), DispatchSemaphore(value: 0))
        self.client = client
        self.done = done
        let thread = Thread {
            defer { done.signal() }
            while true {
                let c = accept(s, nil, nil)
                if c < 0 { return }
                client.with { $0 = c }
                ScriptedBroker.serve(c, fetchVersions: fetchVersions, answer: answer, requests: requests)
                client.with { $0 = -1 }
                close(c)
            }
        }
        thread.start()
    }

    /// The connection being served (-1: none).
    private let client: Locked<Int32>
    /// Signalled when the serving thread ends.
    private let done: DispatchSemaphore

    /// Stops accepting, ends the connection being served and waits for the
    /// serving thread before the listening socket's number is freed: a
    /// thread still looping on a closed number would accept the next
    /// broker's connections (another test's, with other versions).
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        client.with { if $0 >= 0 { shutdown($0, Int32(SHUT_RDWR)) } }
        done.wait()
        close(listener)
    }

    private static func readN(_ fd: Int32, _ n: Int) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: n)
        var got = 0
        while got < n {
            let r = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, n - got, 0) }
            if r <= 0 { return nil }
            got += r
        }
        return buf
    }

    private static func serve(_ fd: Int32, fetchVersions: ClosedRange<Int16>,
                              answer: (Int16, Int16, [UInt8]) -> [UInt8], requests: Locked<[(Int16, Int16)]>) {
        while let head = readN(fd, 4) {
            let size = Int(head.withUnsafeBytes { Int32(bigEndian: $0.loadUnaligned(as: Int32.self)) })
            guard let req = readN(fd, size) else { return }
            let (api, version, corr, body): (Int16, Int16, Int32, [UInt8]) = req.withUnsafeBytes { b in
                var r = WireReader(b)
                let api = try! r.int16(""), v = try! r.int16(""), c = try! r.int32("")
                _ = try! r.string("")
                return (api, v, c, Array(b[r.position...]))
            }
            requests.with { $0.append((api, version)) }
            var w = WireWriter()
            if api == ApiKey.apiVersions.rawValue {
                w.int16(0)
                w.array([(Int16(1), fetchVersions), (Int16(2), Int16(0)...Int16(2)), (Int16(18), Int16(0)...Int16(2))]) { w, e in
                    w.int16(e.0); w.int16(e.1.lowerBound); w.int16(e.1.upperBound)
                }
            }
            let payload = api == ApiKey.apiVersions.rawValue ? w.bytes : answer(api, version, body)
            var out = WireWriter()
            out.int32(Int32(payload.count + 4))
            out.int32(corr)
            let bytes = out.bytes + payload
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }
}

/// A Fetch response (v4–v11) with one partition.
func fetchResponse(version: Int16, topic: String = "t", partition: Int32 = 0, error: Int16 = 0, high: Int64,
                   aborted: [(Int64, Int64)]? = nil, records: [UInt8]) -> [UInt8] {
    var w = WireWriter()
    w.int32(0)
    if version >= 7 { w.int16(0); w.int32(0) }
    w.int32(1)
    w.string(topic)
    w.int32(1)
    w.int32(partition)
    w.int16(error)
    w.int64(high)
    w.int64(high)
    if version >= 5 { w.int64(0) }
    if let aborted { w.array(aborted) { w, a in w.int64(a.0); w.int64(a.1) } } else { w.int32(-1) }
    if version >= 11 { w.int32(-1) }
    w.int32(Int32(records.count))
    return w.bytes + records
}

/// A ListOffsets response (v1–v2): partition 0 of topic "t" at `offset`.
func listOffsetsAnswer(version: Int16, offset: Int64) -> [UInt8] {
    var w = WireWriter()
    if version >= 2 { w.int32(0) }
    w.int32(1); w.string("t"); w.int32(1)
    w.int32(0); w.int16(0); w.int64(-1); w.int64(offset)
    return w.bytes
}

/// The fetch offset of partition 0 in a Fetch request.
func requestedOffset(version: Int16, _ body: [UInt8]) -> Int64 {
    body.withUnsafeBytes { b in
        var r = WireReader(b)
        _ = try! r.skip(4 + 4 + 4 + 4 + 1 + (version >= 7 ? 8 : 0), "")
        _ = try! r.int32(""); _ = try! r.string(""); _ = try! r.int32(""); _ = try! r.int32("")
        if version >= 9 { _ = try! r.int32("") }
        return try! r.int64("")
    }
}

func fetcher(_ broker: ScriptedBroker, properties: [String: String] = [:], at offset: Int64 = 0) -> NativeFetcher {
    let port = broker.port
    let f = NativeFetcher(settings: NativeFetchSettings(properties.merging(["socket.timeout.ms": "3000"]) { a, _ in a })!,
                          lookupLeaders: { _ in
        LeaderMap(brokers: [1: ("127.0.0.1", port)], leaders: [TopicPartition("t", 0): 1])
    })
    f.add([(TopicPartition("t", 0), offset)])
    return f
}

/// Polls `f` until `stop` or 40 polls; returns the values and the reports.
func drain(_ f: NativeFetcher, max: Int = 1000, polls: Int = 40, until stop: ([String]) -> Bool = { _ in false })
    -> (values: [String], offsets: [Int64], reports: [KafkaError]) {
    var vals: [String] = [], offs: [Int64] = [], reports: [KafkaError] = []
    for _ in 0..<polls {
        _ = f.deliver(max: max, waitMs: 10, onReport: { reports.append($0) }) { r in
            vals.append(String(decoding: Array(r.value), as: UTF8.self))
            offs.append(r.offset)
        }
        if stop(vals) { break }
    }
    return (vals, offs, reports)
}

// MARK: - Tests

@Suite struct FetchWireTests {
    /// A record's varints (its timestamp delta here) read back as Kafka
    /// writes them, one to ten bytes; eleven bytes are an error, not a loop.
    @Test func varintsReadAsKafkaWritesThem() throws {
        let samples: [Int64] = [0, 1, -1, 63, -64, 64, 300, -300, 8191, -8192, 8192, Int64(Int32.max), Int64(Int32.min),
                                1 << 40, Int64.min, Int64.max]
        for v in samples {
            let body = encodeRecords([TestRecord(offsetDelta: 0, key: nil, value: [1], timestampDelta: v)])
            let got = try body.withUnsafeBytes { b throws -> Int64? in
                var r = BatchRecordReader(b, range: 0..<b.count, count: 1)
                return try r.next()?.timestampDelta
            }
            #expect(got == v)
        }
        // attributes, then a timestamp delta of 11 continuation bytes.
        let bad: [UInt8] = zigzag(13) + [0] + [UInt8](repeating: 0xff, count: 11) + [0]
        #expect(throws: WireError.self) {
            try bad.withUnsafeBytes { b throws in
                var r = BatchRecordReader(b, range: 0..<b.count, count: 1)
                _ = try r.next()
            }
        }
    }

    @Test func aBatchReadsBackItsRecordsWithKeysAndHeaders() throws {
        var records = values(0..<5)
        records[1].key = nil
        records[2].value = nil
        records[3].headers = [(Array("h".utf8), Array("x".utf8)), (Array("n".utf8), nil)]
        records[4].timestampDelta = 42
        let set = testBatch(base: 100, records) + testBatch(base: 105, values(5..<7), attributes: 4)
        try set.withUnsafeBytes { b in
            var reader = RecordSetReader(b, range: 0..<b.count)
            guard case .batch(let h, let range) = try reader.next() else { Issue.record("no batch"); return }
            #expect(h.baseOffset == 100 && h.recordCount == 5 && h.lastOffset == 104 && h.compression == 0)
            var rr = BatchRecordReader(b, range: range, count: h.recordCount)
            var got: [BatchRecord] = []
            while let r = try rr.next() { got.append(r) }
            #expect(got.count == 5)
            #expect(got[0].key.map(Array.init) == Array("k0".utf8))
            #expect(got[1].key == nil)
            #expect(got[2].value == nil)
            #expect(got[3].value.map(Array.init) == Array("v3".utf8))
            #expect(got[4].timestampDelta == 42 && got[4].offsetDelta == 4)
            guard case .batch(let h2, _) = try reader.next() else { Issue.record("no second batch"); return }
            #expect(h2.baseOffset == 105 && h2.compression == 4)
            guard case .end = try reader.next() else { Issue.record("not the end"); return }
        }
        // A batch cut short is left for the next fetch; a format-1 message set is named.
        let cut = Array(set.dropLast(3))
        try cut.withUnsafeBytes { b in
            var reader = RecordSetReader(b, range: 0..<b.count)
            guard case .batch = try reader.next() else { Issue.record("no batch"); return }
            guard case .partial = try reader.next() else { Issue.record("cut batch not partial"); return }
        }
        let old = testBatch(base: 7, values(0..<2), magic: 1)
        try old.withUnsafeBytes { b in
            var reader = RecordSetReader(b, range: 0..<b.count)
            guard case .oldFormat(let base) = try reader.next() else { Issue.record("format 1 not named"); return }
            #expect(base == 7)
        }
    }

    /// Every cut and 3 000 random corruptions of a record set: records or
    /// a `WireError`, never a crash or a read outside the bytes.
    @Test func cutAndCorruptedRecordSetsAreErrorsNotCrashes() throws {
        var records = values(0..<20)
        records[5].headers = [(Array("h".utf8), Array("v".utf8))]
        let set = testBatch(base: 0, records) + testBatch(base: 20, values(20..<30))
        let whole = try readAll(set)
        #expect(whole.count == 30)
        for n in 0..<set.count {
            let got = (try? readAll(Array(set[0..<n]))) ?? []
            #expect(got.count <= 30)
        }
        var rng = SystemRandomNumberGenerator()
        var errors = 0
        for _ in 0..<3000 {
            var bad = set
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bad[Int.random(in: 0..<bad.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            do { _ = try readAll(bad) } catch is WireError { errors += 1 }
        }
        #expect(errors > 0, "no corruption was ever noticed")
    }

    @Test(arguments: [Int16(4), 7, 11])
    func readCommittedSkipsAbortedTransactionsAndControlBatches(version: Int16) throws {
        // Producer 1's transaction (offsets 0-2) is aborted, producer 2's
        // (3-4) committed; 5 and 6 are their markers; 7-8 are not transactional.
        let set = testBatch(base: 0, values(0..<3), attributes: 0x10, producerId: 1)
            + testBatch(base: 3, values(3..<5), attributes: 0x10 | 4, producerId: 2)
            + controlBatch(at: 5, producerId: 1, abort: true)
            + controlBatch(at: 6, producerId: 2, abort: false)
            + testBatch(base: 7, values(7..<9))
        let broker = try ScriptedBroker(fetchVersions: 4...version) { api, v, body in
            guard api == ApiKey.fetch.rawValue else { return [] }
            let from = requestedOffset(version: v, body)
            return fetchResponse(version: v, high: 9, aborted: [(1, 0)], records: from == 0 ? set : [])
        }
        defer { broker.stop() }
        let committed = fetcher(broker)
        let got = drain(committed, until: { $0.count >= 4 })
        #expect(got.values == ["v3", "v4", "v7", "v8"])
        #expect(got.offsets == [3, 4, 7, 8])
        #expect(committed.state(TopicPartition("t", 0))?.next == 9)
        #expect(committed.state(TopicPartition("t", 0))?.highWatermark == 9)
        #expect(broker.requests.get.contains { $0 == (ApiKey.fetch.rawValue, version) })
        committed.close()

        let uncommitted = fetcher(broker, properties: ["isolation.level": "read_uncommitted"])
        #expect(drain(uncommitted, until: { $0.count >= 7 }).values == ["v0", "v1", "v2", "v3", "v4", "v7", "v8"])
        uncommitted.close()
    }

    /// Records handed over a few at a time across polls, from the middle of
    /// a batch, once each; a start inside a batch skips its earlier records.
    @Test func recordsResumeWhereAPollStopped() throws {
        let set = testBatch(base: 0, values(0..<10), attributes: 4) + testBatch(base: 10, values(10..<25))
        let broker = try ScriptedBroker { api, v, body in
            guard api == ApiKey.fetch.rawValue else { return [] }
            let from = requestedOffset(version: v, body)
            return fetchResponse(version: v, high: 25, records: from < 25 ? set : [])
        }
        defer { broker.stop() }
        let f = fetcher(broker, at: 4)
        let got = drain(f, max: 3, until: { $0.count >= 21 })
        #expect(got.offsets == Array(4..<25))
        #expect(got.values == (4..<25).map { "v\($0)" })
        f.close()
    }

    @Test func outOfRangeResetsByAutoOffsetResetAndReports() throws {
        let broker = try ScriptedBroker { api, v, body in
            if api == ApiKey.listOffsets.rawValue { return listOffsetsAnswer(version: v, offset: 40) }
            let from = requestedOffset(version: v, body)
            if from < 40 { return fetchResponse(version: v, error: KafkaErrorCode.offsetOutOfRange, high: 45, records: []) }
            return fetchResponse(version: v, high: 45, records: from == 40 ? testBatch(base: 40, values(40..<45)) : [])
        }
        defer { broker.stop() }
        let f = fetcher(broker, at: 3)
        let got = drain(f, until: { $0.count >= 5 })
        #expect(got.offsets == Array(40..<45))
        #expect(got.reports.count == 1)
        #expect(got.reports.first?.kind == .offsetReset)
        #expect(got.reports.first?.offset == 3)
        #expect(got.reports.first?.topicPartition == TopicPartition("t", 0))
        f.close()
    }

    /// An out-of-range partition in front of one with records: the reset
    /// waits for the next fetch, so its ListOffsets answer does not land in
    /// the buffer the other partition's records are still read from.
    @Test func aResetDoesNotOverwriteTheRecordsOfTheSameResponse() throws {
        let records = testBatch(base: 0, values(0..<50, prefix: "p1-"))
        let broker = try ScriptedBroker { api, v, body in
            if api == ApiKey.listOffsets.rawValue {
                // A long answer, as if many partitions were asked for.
                return listOffsetsAnswer(version: v, offset: 0) + [UInt8](repeating: 0xAB, count: 4096)
            }
            var w = WireWriter()
            w.int32(0)
            if v >= 7 { w.int16(0); w.int32(0) }
            w.int32(1); w.string("t")
            w.int32(2)
            var out = w.bytes
            for p in [Int32(0), 1] {
                let set: [UInt8] = p == 1 ? records : []
                var pw = WireWriter()
                pw.int32(p); pw.int16(p == 0 ? KafkaErrorCode.offsetOutOfRange : 0)
                pw.int64(p == 0 ? 10 : 50); pw.int64(p == 0 ? 10 : 50)
                if v >= 5 { pw.int64(0) }
                pw.int32(-1)
                if v >= 11 { pw.int32(-1) }
                pw.int32(Int32(set.count))
                out += pw.bytes + set
            }
            return out
        }
        defer { broker.stop() }
        let port = broker.port
        let f = NativeFetcher(settings: NativeFetchSettings(["socket.timeout.ms": "3000"])!, lookupLeaders: { _ in
            LeaderMap(brokers: [1: ("127.0.0.1", port)], leaders: [TopicPartition("t", 0): 1, TopicPartition("t", 1): 1])
        })
        f.add([(TopicPartition("t", 0), 20), (TopicPartition("t", 1), 0)])
        var got: [String] = []
        var reports: [KafkaError] = []
        _ = f.deliver(max: 10, waitMs: 10, onReport: { reports.append($0) }) { r in
            got.append(String(decoding: Array(r.value), as: UTF8.self))
        }
        for _ in 0..<10 where reports.isEmpty {
            _ = f.deliver(max: 10, waitMs: 10, onReport: { reports.append($0) }) { r in
                got.append(String(decoding: Array(r.value), as: UTF8.self))
            }
        }
        #expect(Array(got.prefix(50)) == (0..<50).map { "p1-\($0)" })
        #expect(reports.contains { $0.kind == .offsetReset && $0.offset == 20 })
        #expect(f.state(TopicPartition("t", 0))?.next == 0)
        f.close()
    }

    /// What the path does not read goes back to librdkafka at the offset it
    /// reached: another codec, message format 1, a broken batch, a broker
    /// without Fetch v4+.
    @Test(arguments: ["lz4", "format1", "garbage", "old broker"])
    func whatThePathDoesNotReadIsHandedBack(kind: String) throws {
        let tail: [UInt8]
        switch kind {
        case "lz4": tail = testBatch(base: 3, values(3..<5), attributes: 3)
        case "format1": tail = testBatch(base: 3, values(3..<5), magic: 1)
        default: tail = testBatch(base: 3, values(3..<5)).enumerated().map { $0.offset > 61 ? 0xff : $0.element }
        }
        let set = testBatch(base: 0, values(0..<3)) + tail
        let broker = try ScriptedBroker(fetchVersions: kind == "old broker" ? 0...3 : 4...11) { api, v, body in
            guard api == ApiKey.fetch.rawValue else { return [] }
            return fetchResponse(version: v, high: 5, records: requestedOffset(version: v, body) == 0 ? set : [])
        }
        defer { broker.stop() }
        let f = fetcher(broker)
        let got = drain(f, polls: 5)
        let backs = f.takeHandBacks()
        #expect(backs.count == 1)
        #expect(backs.first?.partition == TopicPartition("t", 0))
        if kind == "old broker" {
            #expect(got.values.isEmpty)
            #expect(backs.first?.offset == 0)
        } else {
            #expect(got.values == ["v0", "v1", "v2"])
            #expect(backs.first?.offset == 3, "\(backs)")
        }
        #expect(!f.owns(TopicPartition("t", 0)))
        f.close()
    }

    /// A broker that answers Fetch with noise: no crash, no record that is
    /// not the partition's, the partition handed back or retried — for 300
    /// random answers.
    @Test func garbageFetchResponsesNeverCrash() throws {
        let valid = fetchResponse(version: 11, high: 3, records: testBatch(base: 0, values(0..<3)))
        let broker = try ScriptedBroker { _, _, _ in
            var b = valid
            switch Int.random(in: 0..<3) {
            case 0: b = Array(b.prefix(Int.random(in: 0..<b.count)))
            case 1: for _ in 0..<3 { b[Int.random(in: 0..<b.count)] = UInt8.random(in: 0...255) }
            default: b = (0..<Int.random(in: 0..<200)).map { _ in UInt8.random(in: 0...255) }
            }
            return b
        }
        defer { broker.stop() }
        for _ in 0..<300 {
            let f = fetcher(broker)
            let got = drain(f, polls: 1)
            // Whatever was handed over is the partition's records, in order
            // (the CRC covers the values; the offsets only increase).
            #expect(Set(got.values).isSubset(of: ["v0", "v1", "v2"]))
            #expect(got.values == got.values.sorted())
            #expect(got.offsets == got.offsets.sorted() && Set(got.offsets).count == got.offsets.count)
            f.close()
        }
    }
}
