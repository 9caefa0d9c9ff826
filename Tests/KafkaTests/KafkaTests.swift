// Kafka module tests: real librdkafka clients against an in-process
// MockBroker over TCP (127.0.0.1).

import Foundation
import Testing
@testable import Kafka

// MARK: - Helpers

/// Logs from librdkafka are kept quiet unless KAFKA_TEST_LOG=1.
let testLog: KafkaLogHandler = ProcessInfo.processInfo.environment["KAFKA_TEST_LOG"] == "1"
    ? KafkaLog.stderr(maxLevel: 7) : KafkaLog.silent

/// Fast group timings for the mock cluster. Keep session.timeout.ms short:
/// the 2.0.2 mock waits up to session.timeout.ms − 1 s for members to
/// (re)join whenever a rebalance is not a first join. Do NOT lower
/// topic.metadata.refresh.interval.ms: in librdkafka 2.0.2 a metadata
/// refresh that lands while the group leader waits for assignor metadata
/// makes it rejoin (seen as 9 s join loops against the mock).
let fastGroup: [String: String] = {
    var d = [
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "300",
        "reconnect.backoff.ms": "100",
        "reconnect.backoff.max.ms": "500",
    ]
    if let dbg = ProcessInfo.processInfo.environment["KAFKA_TEST_DEBUG"] { d["debug"] = dbg }
    return d
}()

/// Keeps the last librdkafka log lines (with debug=cgrp) to explain a
/// failure: a test prints them when something took too long.
final class LogCapture: @unchecked Sendable {
    private let lines = Locked<[String]>([])
    let t0 = Date().timeIntervalSince1970
    var handler: KafkaLogHandler {
        { [lines, t0] m in
            let t = String(format: "%.3f", Date().timeIntervalSince1970 - t0)
            lines.with { l in l.append("\(t) \(m.client) \(m.facility): \(m.message)"); if l.count > 3000 { l.removeFirst(1000) } }
        }
    }
    func dump(_ filter: (String) -> Bool = { _ in true }) -> String { lines.get.filter(filter).suffix(150).joined(separator: "\n") }
}

func uniqueGroup(_ name: String) -> String { "\(name)-\(UInt32.random(in: 0...UInt32.max))" }

func produceKeyed(_ broker: MockBroker, topic: String, count: Int, from start: Int = 0, sessions: Int = 97) throws {
    let p = try KafkaProducer(brokers: broker.bootstrapServers, logHandler: testLog)
    defer { p.close() }
    for i in start..<(start + count) {
        try p.produce(topic: topic, key: Array("session-\(i % sessions)".utf8), payload: Array("msg-\(i)".utf8))
    }
    try p.flush(timeoutMs: 20_000)
    #expect(p.stats.delivered == count)
    #expect(p.stats.failed == 0)
}

final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func with<R>(_ body: (inout T) -> R) -> R { lock.lock(); defer { lock.unlock() }; return body(&value) }
    var get: T { with { $0 } }
}

/// Runs `body` on its own thread; `join()` waits for it.
final class Worker: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    init(_ body: @escaping @Sendable () -> Void) {
        let t = Thread { [done] in body(); done.signal() }
        t.start()
    }
    func join() { done.wait() }
}

func now() -> Double { Date().timeIntervalSince1970 }

/// A simulated checkpoint store: next offset per partition, shared by all
/// consumers of a group (like the sink's checkpoint files).
typealias Store = Locked<[TopicPartition: Int64]>

/// Polls until `stop()` returns true or `timeout` seconds pass. Implements
/// the checkpointing pattern: start assigned partitions at the store's
/// offsets; on revoke, write the processed positions to the store before
/// releasing. Returns every message processed.
func checkpointingLoop(_ c: KafkaConsumer, store: Store, timeout: Double, batch: Int = 200,
                       processed: Locked<[KafkaMessage]>, events: Locked<[String]>? = nil,
                       perBatchDelay: Double = 0, revokeDelay: Double = 0,
                       timeline: Locked<[(at: Double, what: String)]>? = nil, stop: () -> Bool) throws {
    var pending: [TopicPartition: Int64] = [:]  // processed but not yet checkpointed
    let deadline = now() + timeout
    while now() < deadline && !stop() {
        for ev in try c.poll(maxMessages: batch, timeoutMs: 100) {
            switch ev {
            case .message(let m):
                processed.with { $0.append(m) }
                pending[m.topicPartition] = m.offset + 1
            case .assigned(let tps):
                events?.with { $0.append("assigned \(tps.count)") }
                timeline?.with { $0.append((now(), "assigned \(tps.count)")) }
                let start = store.with { s in s.filter { tps.contains($0.key) } }
                try c.completeAssign(startOffsets: start, otherwise: KafkaOffset.beginning)
            case .revoked(let tps, _):
                events?.with { $0.append("revoked \(tps.count)") }
                let flush = pending.filter { tps.contains($0.key) }
                store.with { s in for (k, v) in flush { s[k] = v } }
                for tp in tps { pending[tp] = nil }
                // A slow flush: the partitions must stay ours meanwhile.
                if revokeDelay > 0 { Thread.sleep(forTimeInterval: revokeDelay) }
                timeline?.with { $0.append((now(), "revokeCompleted \(tps.count)")) }
                try c.completeRevoke()
            case .error(let e):
                events?.with { $0.append("error \(e.message)") }
            }
        }
        if perBatchDelay > 0 { Thread.sleep(forTimeInterval: perBatchDelay) }
    }
    store.with { s in for (k, v) in pending { s[k] = v } }
}

// MARK: - Tests

/// Serialized: each test holds threads in blocking polls against its own
/// mock cluster, and run side by side (two fetch paths, five codecs) they
/// starved each other of the test pool's threads past the time limit.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct KafkaTests {

    @Test(arguments: KafkaFetchPath.allCases)
    func produceAndConsumeEveryMessageExactlyOnce(path: KafkaFetchPath) throws {
        // Three brokers: the fetch path talks to each partition's leader.
        let broker = try MockBroker(brokers: 3, topics: ["beacons": 6], logHandler: testLog)
        defer { broker.close() }
        let n = 3000
        try produceKeyed(broker, topic: "beacons", count: n)

        let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: uniqueGroup("g1"), topics: ["beacons"],
                                  extra: fastGroup, logHandler: testLog, fetchPath: path)
        #expect(c.fetchesNatively == (path == .native))
        defer { c.close() }
        #expect(try c.checkTopics() == ["beacons": 6])
        var seen: [String: Int] = [:]              // payload -> times
        var keyPartition: [String: Set<Int32>] = [:]
        var lastOffset: [Int32: Int64] = [:]
        var assigned: [TopicPartition] = []
        let deadline = now() + 30
        var total = 0
        while total < n && now() < deadline {
            for ev in try c.poll(maxMessages: 500, timeoutMs: 200) {
                switch ev {
                case .message(let m):
                    total += 1
                    seen[String(decoding: m.payload, as: UTF8.self), default: 0] += 1
                    keyPartition[String(decoding: m.key ?? [], as: UTF8.self), default: []].insert(m.partition)
                    // Offsets are contiguous from 0 within a partition.
                    #expect(m.offset == (lastOffset[m.partition] ?? -1) + 1)
                    lastOffset[m.partition] = m.offset
                    #expect(m.topic == "beacons")
                    #expect(m.timestampMs != nil)
                case .assigned(let tps):
                    assigned = tps
                    try c.completeAssign()
                case .revoked:
                    try c.completeRevoke()
                case .error(let e):
                    Issue.record("unexpected error event: \(e)")
                }
            }
        }
        #expect(total == n)
        #expect(seen.count == n)
        #expect(seen.values.allSatisfy { $0 == 1 })
        #expect((0..<n).allSatisfy { seen["msg-\($0)"] == 1 })
        #expect(keyPartition.count == 97)
        #expect(keyPartition.values.allSatisfy { $0.count == 1 }, "a key landed in several partitions")
        #expect(Set(keyPartition.values.compactMap(\.first)).count == 6, "keys should spread over all 6 partitions")
        #expect(Set(assigned) == Set((0..<6).map { TopicPartition("beacons", $0) }))
        #expect(c.assignment.count == 6)
        // Nothing more arrives.
        let extra = try c.poll(maxMessages: 100, timeoutMs: 500).filter { if case .message = $0 { return true }; return false }
        #expect(extra.isEmpty)
        // Watermarks and lag agree with what we consumed.
        var highSum: Int64 = 0
        for p in 0..<Int32(6) {
            let w = try c.queryWatermarks(TopicPartition("beacons", p))
            #expect(w.low == 0)
            #expect(w.high == (lastOffset[p] ?? -1) + 1)
            highSum += w.high
        }
        #expect(highSum == Int64(n))
        #expect(c.lag().values.reduce(0, +) == 0)
    }

    @Test(arguments: KafkaFetchPath.allCases)
    func commitThenRestartFromCommittedAndExplicitOffsets(path: KafkaFetchPath) throws {
        let broker = try MockBroker(topics: ["t": 6], logHandler: testLog)
        defer { broker.close() }
        let n = 600
        try produceKeyed(broker, topic: "t", count: n)
        let group = uniqueGroup("g2")

        // First consumer: process 250 messages, commit exactly those.
        var first: [String] = []
        var commitOffsets: [TopicPartition: Int64] = [:]
        do {
            let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: group, topics: ["t"],
                                      extra: fastGroup, logHandler: testLog, fetchPath: path)
            let deadline = now() + 30
            while first.count < 250 && now() < deadline {
                for ev in try c.poll(maxMessages: 250 - first.count, timeoutMs: 200) {
                    switch ev {
                    case .message(let m):
                        first.append(String(decoding: m.payload, as: UTF8.self))
                        commitOffsets[m.topicPartition] = m.offset + 1
                    case .assigned: try c.completeAssign()
                    case .revoked: try c.completeRevoke()
                    case .error(let e): Issue.record("unexpected error: \(e)")
                    }
                }
            }
            #expect(first.count == 250)
            #expect(c.nextOffsets.filter { $0.value > 0 } == commitOffsets)
            try c.commit(commitOffsets, async: false)
            #expect(try c.committed(Array(commitOffsets.keys)) == commitOffsets)
            // lag(): known partitions only (cached watermarks come with fetches).
        let lag = c.lag()
        #expect(!lag.isEmpty)
        for (tp, l) in lag {
            #expect(l == (try c.queryWatermarks(tp)).high - (commitOffsets[tp] ?? 0), "lag of \(tp)")
        }
            c.close()
        }

        // Second consumer, same group: auto-completed assignment starts at the committed offsets.
        var second: [String] = []
        do {
            let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: group, topics: ["t"],
                                      extra: fastGroup, logHandler: testLog, fetchPath: path)
            defer { c.close() }
            let deadline = now() + 30
            while first.count + second.count < n && now() < deadline {
                for ev in try c.poll(maxMessages: 500, timeoutMs: 200) {
                    if case .message(let m) = ev { second.append(String(decoding: m.payload, as: UTF8.self)) }
                    // .assigned is left to poll()'s auto-completion (committed offsets).
                }
            }
            _ = try c.poll(maxMessages: 100, timeoutMs: 300).map { if case .message(let m) = $0 { second.append(String(decoding: m.payload, as: UTF8.self)) } }
        }
        #expect(Set(first).isDisjoint(with: second))
        #expect(first.count + second.count == n)
        #expect(Set(first + second).count == n)

        // Third consumer, new group: explicit start offsets (a checkpoint).
        let explicit: [TopicPartition: Int64] = [TopicPartition("t", 0): 5, TopicPartition("t", 3): 17]
        let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: uniqueGroup("g2b"), topics: ["t"],
                                  extra: fastGroup, logHandler: testLog, fetchPath: path)
        defer { c.close() }
        var minOffset: [Int32: Int64] = [:]
        var count = 0
        var high: [Int32: Int64] = [:]
        let deadline = now() + 30
        var expected = -1
        while count != expected && now() < deadline {
            for ev in try c.poll(maxMessages: 500, timeoutMs: 200) {
                switch ev {
                case .assigned(let tps):
                    #expect(tps.count == 6)
                    try c.completeAssign(startOffsets: explicit, otherwise: KafkaOffset.beginning)
                    for tp in tps { high[tp.partition] = try c.queryWatermarks(tp).high }
                    expected = high.values.reduce(0) { $0 + Int($1) } - 5 - 17
                case .message(let m):
                    count += 1
                    minOffset[m.partition] = min(minOffset[m.partition] ?? .max, m.offset)
                default: break
                }
            }
        }
        #expect(count == n - 22)
        #expect(minOffset[0] == 5)
        #expect(minOffset[3] == 17)
        #expect(minOffset[1] == 0)

        // seek back within an assigned partition re-delivers from there.
        try c.seek(TopicPartition("t", 3), to: 10)
        var again: [Int64] = []
        let d2 = now() + 10
        while again.count < Int(high[3]! - 10) && now() < d2 {
            for ev in try c.poll(maxMessages: 500, timeoutMs: 200) {
                if case .message(let m) = ev { #expect(m.partition == 3); again.append(m.offset) }
            }
        }
        #expect(again == Array(10..<high[3]!))
    }

    @Test(arguments: ["range", "cooperative-sticky"], KafkaFetchPath.allCases)
    func rebalanceWithSecondMemberLosesAndDuplicatesNothing(strategy: String, path: KafkaFetchPath) throws {
        let broker = try MockBroker(topics: ["r": 6], logHandler: testLog)
        defer { broker.close() }
        let n = 4000
        try produceKeyed(broker, topic: "r", count: n / 2)
        let group = uniqueGroup("g3")
        // librdkafka's mock coordinator waits session.timeout.ms - 1 s for the
        // members to rejoin after B joins, then elects with whoever did: were A
        // still in its slow revoke (1.5 s, and longer when the machine is
        // loaded), B would get partitions A has not released, which no real
        // broker does (it waits max.poll.interval.ms). 12 s leaves A an 11 s
        // window instead of 5 s. (Twice, with 6 s and with 12 s, the check
        // below failed with "B assigned 3.5 s early": it then compared B's
        // first assignment with A's last revoke, most likely that of a second
        // rebalance, 2 s after the first plus A's 1.5 s delay. It now compares
        // the first of each and prints both members' timelines when it fails.)
        let slowRevokeGroup = fastGroup.merging(["session.timeout.ms": "12000",
                                                 "partition.assignment.strategy": strategy]) { $1 }
        let store = Store([:])
        let processedA = Locked<[KafkaMessage]>([]), processedB = Locked<[KafkaMessage]>([])
        let eventsA = Locked<[String]>([]), eventsB = Locked<[String]>([])
        let timelineA = Locked<[(at: Double, what: String)]>([]), timelineB = Locked<[(at: Double, what: String)]>([])
        let total: @Sendable () -> Int = { processedA.get.count + processedB.get.count }
        let stopAt = Locked<Double?>(nil)
        let stop: @Sendable () -> Bool = {
            // Run until everything was seen, then 1 s more to catch duplicates.
            if let t = stopAt.get { return now() > t }
            if total() >= n { stopAt.with { $0 = now() + 1 } }
            return false
        }
        let errors = Locked<[String]>([])
        let captureA = LogCapture()
        let a = Worker {
            do {
                let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: group, topics: ["r"],
                                          extra: slowRevokeGroup.merging(["debug": "cgrp,broker"]) { $1 },
                                          logHandler: captureA.handler, fetchPath: path)
                defer { c.close() }
                // Slow consumer, so B joins while A still has work.
                try checkpointingLoop(c, store: store, timeout: 60, batch: 50, processed: processedA,
                                      events: eventsA, perBatchDelay: 0.02, revokeDelay: 1.5, timeline: timelineA, stop: stop)
            } catch { errors.with { $0.append("A: \(error)") } }
        }
        // Let A get all partitions and process some, then start B and produce the rest.
        let d = now() + 20
        while processedA.get.count < 300 && now() < d { Thread.sleep(forTimeInterval: 0.05) }
        #expect(processedA.get.count >= 300)
        if processedA.get.count < 300 { print("slow start A:\n" + captureA.dump()) }
        let b = Worker {
            do {
                let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: group, topics: ["r"],
                                          extra: slowRevokeGroup, logHandler: testLog, fetchPath: path)
                defer { c.close() }
                try checkpointingLoop(c, store: store, timeout: 60, batch: 50, processed: processedB,
                                      events: eventsB, perBatchDelay: 0.02, timeline: timelineB, stop: stop)
            } catch { errors.with { $0.append("B: \(error)") } }
        }
        // Produce the second half once B owns partitions, so both get work.
        let d2 = now() + 30
        while !eventsB.get.contains(where: { $0.hasPrefix("assigned") }) && now() < d2 { Thread.sleep(forTimeInterval: 0.05) }
        try produceKeyed(broker, topic: "r", count: n / 2, from: n / 2)
        a.join(); b.join()
        #expect(errors.get.isEmpty, "\(errors.get)")

        let all = processedA.get + processedB.get
        var count: [String: Int] = [:]
        for m in all { count["\(m.partition)@\(m.offset)", default: 0] += 1 }
        let dups = count.filter { $0.value > 1 }
        #expect(dups.isEmpty, "duplicates: \(dups.keys.sorted().prefix(10))")
        #expect(Set(all.map { String(decoding: $0.payload, as: UTF8.self) }).count == n)
        #expect(all.count == n)
        // A saw the revoke of all 6 and got a share back; B got the rest.
        // Eager: A gives up all 6, then gets 3 back. Cooperative: A only gives up 3.
        #expect(eventsA.get.contains(strategy == "range" ? "revoked 6" : "revoked 3"), "\(eventsA.get)")
        #expect(eventsB.get.contains { $0.hasPrefix("assigned") }, "\(eventsB.get)")
        #expect(!processedB.get.isEmpty)
        // B got partitions only after A finished its (slow) revoke handling:
        // the revoke event comes before librdkafka releases the partitions.
        // The first of each: a later rebalance (the mock coordinator may run
        // another) revokes B too, so A's later revokes say nothing about B's
        // first assignment.
        let start = min(timelineA.get.first?.at ?? 0, timelineB.get.first?.at ?? 0)
        let story = (timelineA.get.map { ($0.at, "A \($0.what)") } + timelineB.get.map { ($0.at, "B \($0.what)") })
            .sorted { $0.0 < $1.0 }.map { String(format: "%.2f %@", $0.0 - start, $0.1) }.joined(separator: ", ")
        if let revoked = timelineA.get.first(where: { $0.what.hasPrefix("revokeCompleted") && $0.what != "revokeCompleted 0" })?.at,
           let bAssigned = timelineB.get.first(where: { $0.what.hasPrefix("assigned") && $0.what != "assigned 0" })?.at {
            #expect(bAssigned >= revoked, "B was assigned \(revoked - bAssigned) s before A released its partitions: \(story)")
        } else {
            Issue.record("missing timings: \(story)")
        }
        let bParts = Set(processedB.get.map(\.partition)), aLate = Set(processedA.get.suffix(200).map(\.partition))
        #expect(bParts.isDisjoint(with: aLate), "after the rebalance each partition has one owner")
    }

    @Test(arguments: KafkaFetchPath.allCases)
    func brokerOutageReportsErrorThenResumes(path: KafkaFetchPath) throws {
        let broker = try MockBroker(topics: ["o": 3], logHandler: testLog)
        defer { broker.close() }
        try produceKeyed(broker, topic: "o", count: 300)
        let capture = LogCapture()
        let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: uniqueGroup("g4"), topics: ["o"],
                                  extra: fastGroup.merging(["session.timeout.ms": "10000", "debug": "cgrp,fetch"]) { $1 },
                                  logHandler: capture.handler, fetchPath: path)
        defer { c.close() }
        var got: [String] = []
        var errors: [KafkaError] = []
        func pump(until: () -> Bool, seconds: Double) throws {
            let d = now() + seconds
            while !until() && now() < d {
                for ev in try c.poll(maxMessages: 500, timeoutMs: 100) {
                    switch ev {
                    case .message(let m): got.append(String(decoding: m.payload, as: UTF8.self))
                    case .assigned: try c.completeAssign()
                    case .revoked: try c.completeRevoke()
                    case .error(let e): errors.append(e)
                    }
                }
            }
        }
        let tStart = now()
        try pump(until: { got.count >= 300 }, seconds: 30)
        #expect(got.count == 300)
        if got.count < 300 || now() - tStart > 6 {
            print("slow start (\(now() - tStart) s):\n" + capture.dump())
        }
        #expect(errors.isEmpty)

        try broker.setBrokerDown(1)
        try pump(until: { !errors.isEmpty }, seconds: 10)
        #expect(!errors.isEmpty, "no error event while the broker was down")
        #expect(errors.contains { $0.kind == .unreachable }, "\(errors.prefix(3).map(\.message))")
        #expect(errors.allSatisfy { !$0.message.contains("\n") })
        try pump(until: { false }, seconds: 2)  // stay down a while longer (< session timeout)
        try broker.setBrokerUp(1)

        try produceKeyed(broker, topic: "o", count: 300, from: 300)
        try pump(until: { got.count >= 600 }, seconds: 40)
        try pump(until: { false }, seconds: 0.5)
        #expect(got.count == 600)
        #expect(Set(got).count == 600)
    }

    /// Topics written with each codec read the same through both fetch
    /// paths, record for record (offset, key, value, timestamp); what the
    /// native path does not decompress itself goes back to librdkafka, once
    /// per partition, and is still read once.
    @Test(arguments: ["none", "zstd", "gzip", "snappy", "lz4"])
    func everyCodecReadsTheSameThroughBothFetchPaths(codec: String) throws {
        let broker = try MockBroker(brokers: 3, topics: ["z": 4], logHandler: testLog)
        defer { broker.close() }
        let p = try KafkaProducer(brokers: broker.bootstrapServers,
                                  extra: ["compression.codec": codec, "linger.ms": "20"], logHandler: testLog)
        for i in 0..<2000 {
            try p.produce(topic: "z", key: i % 7 == 0 ? nil : Array("k\(i % 31)".utf8),
                          payload: Array("value-\(i)-".utf8) + [UInt8](repeating: UInt8(i % 251), count: i % 300))
        }
        try p.flush(timeoutMs: 20_000)
        p.close()

        func read(_ path: KafkaFetchPath) throws -> (records: [String], events: [String]) {
            let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: uniqueGroup("gz"), topics: ["z"],
                                      extra: fastGroup, logHandler: testLog, fetchPath: path)
            defer { c.close() }
            var out: [String] = [], events: [String] = []
            let d = now() + 30
            while out.count < 2000 && now() < d {
                for ev in try c.poll(maxMessages: 333, timeoutMs: 100) {
                    switch ev {
                    case .message(let m):
                        out.append("\(m.partition)@\(m.offset) \(m.key.map { String(decoding: $0, as: UTF8.self) } ?? "nil") "
                                   + "\(m.payload.count):\(m.payload.hashValue) \(m.timestampMs ?? -1)")
                    case .assigned: try c.completeAssign()
                    case .revoked: try c.completeRevoke()
                    case .error(let e): events.append(e.message)
                    }
                }
            }
            #expect(c.lag().values.allSatisfy { $0 == 0 }, "\(c.lag())")
            return (out, events)
        }
        let viaLibrdkafka = try read(.librdkafka)
        let viaNative = try read(.native)
        #expect(viaLibrdkafka.records.count == 2000)
        #expect(viaNative.records.count == 2000)
        #expect(viaNative.records.sorted() == viaLibrdkafka.records.sorted())
        let handedBack = viaNative.events.filter { $0.contains("goes back to librdkafka") }
        #expect(handedBack.count == (["none", "zstd"].contains(codec) ? 0 : 4), "\(viaNative.events)")
    }

    @Test func closeDuringOutageDoesNotHang() throws {
        let broker = try MockBroker(topics: ["c": 2], logHandler: testLog)
        defer { broker.close() }
        let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: uniqueGroup("g8"), topics: ["c"],
                                  extra: fastGroup, logHandler: testLog)
        var assigned = false
        let d = now() + 20
        while !assigned && now() < d {
            for ev in try c.poll(timeoutMs: 100) { if case .assigned = ev { assigned = true; try c.completeAssign() } }
        }
        #expect(assigned)
        _ = try c.poll(timeoutMs: 200)
        try broker.setBrokerDown(1)
        _ = try c.poll(timeoutMs: 500)
        let t0 = now()
        c.close()
        #expect(now() - t0 < 15)
        try broker.setBrokerUp(1)
    }

    /// A member that stops polling for longer than max.poll.interval.ms (as
    /// a paused process does) loses its assignment before the lost revoke
    /// reaches it: `assignmentLost` says so in between, which is what the
    /// daemon's fence reads before an epoch's commit point.
    @Test func aMemberThatStoppedPollingSeesItsAssignmentLost() throws {
        let broker = try MockBroker(topics: ["f": 2], logHandler: testLog)
        defer { broker.close() }
        let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: uniqueGroup("g10"), topics: ["f"],
                                  extra: fastGroup.merging(["max.poll.interval.ms": "6000"]) { $1 }, logHandler: testLog)
        defer { c.close() }
        var assigned = false
        let d = now() + 20
        while !assigned && now() < d {
            for ev in try c.poll(timeoutMs: 100) { if case .assigned = ev { assigned = true; try c.completeAssign() } }
        }
        #expect(assigned)
        #expect(!c.assignmentLost)
        // No poll: librdkafka leaves the group once the interval is over.
        let lostBy = now() + 20
        while !c.assignmentLost && now() < lostBy { Thread.sleep(forTimeInterval: 0.2) }
        #expect(c.assignmentLost)
        var lostRevoke = false
        let r = now() + 10
        while !lostRevoke && now() < r {
            for ev in try c.poll(timeoutMs: 100) { if case .revoked(_, let lost) = ev { lostRevoke = lost; try c.completeRevoke() } }
        }
        #expect(lostRevoke)
    }

    @Test(arguments: KafkaFetchPath.allCases)
    func checkpointOffsetBelowRetentionIsReported(path: KafkaFetchPath) throws {
        // The mock keeps only ~5 MiB per partition: 25 000 × 300 B pushes the
        // log start past 0, so a checkpoint at offset 0 is out of range.
        let broker = try MockBroker(topics: ["x": 1], logHandler: testLog)
        defer { broker.close() }
        let p = try KafkaProducer(brokers: broker.bootstrapServers, logHandler: testLog)
        let payload = [UInt8](repeating: 120, count: 300)
        try produceAll(0..<25_000, producer: p, topic: "x", rate: nil) { _ in OutgoingMessage(key: nil, payload: payload) }
        p.close()
        let tp = TopicPartition("x", 0)
        /// A fresh member started at `start`: the reset it reports, the
        /// first offset it reads, and whether the report came first.
        func startAt(_ start: Int64, group: String) throws -> (KafkaError?, Int64?, Bool) {
            let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: uniqueGroup(group), topics: ["x"],
                                      extra: fastGroup, logHandler: testLog, fetchPath: path)
            defer { c.close() }
            var reset: KafkaError? = nil
            var first: Int64? = nil
            var reportedFirst = false
            let d = now() + 20
            while (reset == nil || first == nil) && now() < d {
                for ev in try c.poll(maxMessages: 1000, timeoutMs: 100) {
                    switch ev {
                    case .assigned: try c.completeAssign(startOffsets: [tp: start])
                    case .error(let e) where e.kind == .offsetReset: reset = e
                    case .message(let m): if first == nil { first = m.offset; reportedFirst = reset != nil }
                    default: break
                    }
                }
            }
            return (reset, first, reportedFirst)
        }
        let probe = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: uniqueGroup("g9w"), topics: ["x"],
                                      extra: fastGroup, logHandler: testLog)
        let w = try probe.queryWatermarks(tp)
        probe.close()
        #expect(w.high == 25_000)
        #expect(w.low > 0, "mock retention should have dropped the oldest messages")
        let (reset, firstOffset, _) = try startAt(0, group: "g9")
        #expect(reset != nil, "no offsetReset error event")
        #expect(reset?.message.contains("\n") == false)
        // The partition and the offset Kafka could not serve are named.
        #expect(reset?.topicPartition == tp)
        #expect(reset?.offset == 0)
        #expect(firstOffset == w.low)

        // A start past the log's end (a topic recreated under a checkpoint):
        // reset to the beginning, below the start, reported before it is read.
        let (reset2, first2, reportedFirst) = try startAt(w.high + 500, group: "g9b")
        #expect(reset2?.topicPartition == tp)
        #expect(reset2?.offset == w.high + 500)
        #expect(first2 == w.low)
        #expect(reportedFirst)
    }

    @Test func badConfigurationIsOneLineNamingTheKey() throws {
        let e1 = #expect(throws: KafkaError.self) {
            _ = try KafkaConsumer(brokers: "127.0.0.1:1", groupId: "g", topics: ["t"],
                                  extra: ["no.such.property": "1"], logHandler: testLog)
        }
        #expect(e1?.kind == .configuration)
        #expect(e1?.key == "no.such.property")
        #expect(e1?.message.contains("'no.such.property'") == true)
        #expect(e1?.message.contains("\n") == false)

        let e2 = #expect(throws: KafkaError.self) {
            _ = try KafkaConsumer(brokers: "127.0.0.1:1", groupId: "g", topics: ["t"],
                                  extra: ["session.timeout.ms": "soon"], logHandler: testLog)
        }
        #expect(e2?.message.contains("'session.timeout.ms'") == true)
        #expect(e2?.message.contains("\n") == false)

        let e3 = #expect(throws: KafkaError.self) {
            _ = try KafkaProducer(brokers: "127.0.0.1:1", extra: ["compression.codec": "rar"], logHandler: testLog)
        }
        #expect(e3?.key == "compression.codec")

        // Auto-commit would break checkpointed offsets: refused.
        let e4 = #expect(throws: KafkaError.self) {
            _ = try KafkaConsumer(brokers: "127.0.0.1:1", groupId: "g", topics: ["t"],
                                  extra: ["enable.auto.commit": "true"], logHandler: testLog)
        }
        #expect(e4?.key == "enable.auto.commit")

        // Valid pass-through keys are accepted.
        let c = try KafkaConsumer(brokers: "127.0.0.1:1", groupId: "g", topics: ["t"],
                                  extra: ["fetch.min.bytes": "1", "client.rack": "r1", "enable.auto.commit": "false"],
                                  logHandler: testLog)
        c.close()
    }

    @Test func unknownTopicAndUnreachableBrokerAreOneLineErrors() throws {
        let broker = try MockBroker(topics: ["exists": 2], logHandler: testLog)
        defer { broker.close() }
        let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: uniqueGroup("g5"), topics: ["nope"],
                                  extra: fastGroup, logHandler: testLog)
        defer { c.close() }
        let e = #expect(throws: KafkaError.self) { try c.checkTopics(timeoutMs: 5000) }
        #expect(e?.kind == .unknownTopic)
        #expect(e?.message == "topic 'nope' does not exist on brokers \(broker.bootstrapServers) — create it or fix --topic")
        // Checking did not auto-create it.
        #expect(throws: KafkaError.self) { try c.checkTopics(timeoutMs: 5000) }
        let p = try KafkaProducer(brokers: broker.bootstrapServers, logHandler: testLog)
        defer { p.close() }
        #expect(try p.checkTopic("exists") == 2)
        #expect(throws: KafkaError.self) { try p.checkTopic("nope") }
        // Note: once subscribed (first poll), the 2.0.2 mock cluster
        // auto-creates a missing subscribed topic with 4 partitions; a real
        // broker does not (the consumer sends AllowAutoTopicCreation=false).
        // Hence checkTopics() before the first poll.

        // Nothing listens on port 1.
        let t0 = now()
        let c2 = try KafkaConsumer(brokers: "127.0.0.1:1", groupId: "g", topics: ["beacons"], logHandler: testLog)
        defer { c2.close() }
        let u = #expect(throws: KafkaError.self) { try c2.checkTopics(timeoutMs: 2000) }
        #expect(u?.kind == .unreachable)
        #expect(u?.message.hasPrefix("cannot reach Kafka at 127.0.0.1:1") == true, "\(u?.message ?? "")")
        #expect(u?.message.hasSuffix("— check --brokers and that the broker is running") == true)
        #expect(u?.message.contains("\n") == false)
        #expect(now() - t0 < 6)
    }

    @Test func mockBrokerOnFixedPortThroughForwarder() throws {
        // Find a free port, then ask for it explicitly.
        let probe = try MockBroker(port: 0, logHandler: testLog)
        let port = Int(probe.bootstrapServers.split(separator: ":").last!)!
        probe.close()
        let broker = try MockBroker(port: port, topics: ["f": 6], logHandler: testLog)
        defer { broker.close() }
        #expect(broker.bootstrapServers == "127.0.0.1:\(port)")
        #expect(broker.clusterBootstrapServers != broker.bootstrapServers)

        // The port is taken now: a second broker fails with a one-line error.
        let e = #expect(throws: KafkaError.self) { _ = try MockBroker(port: port, logHandler: testLog) }
        #expect(e?.kind == .portInUse)
        #expect(e?.message.contains("port \(port) is already in use") == true)

        try produceKeyed(broker, topic: "f", count: 200)
        let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: uniqueGroup("g6"), topics: ["f"],
                                  extra: fastGroup, logHandler: testLog)
        defer { c.close() }
        var n = 0
        let d = now() + 30
        while n < 200 && now() < d {
            n += try c.poll(maxMessages: 500, timeoutMs: 200).filter { if case .message = $0 { return true }; return false }.count
        }
        #expect(n == 200)
    }

    @Test func produceAllPacesAtTheRequestedRate() throws {
        let broker = try MockBroker(topics: ["p": 2], logHandler: testLog)
        defer { broker.close() }
        let producer = try KafkaProducer(brokers: broker.bootstrapServers, logHandler: testLog)
        defer { producer.close() }
        let msgs = (0..<100).map { OutgoingMessage(key: "k\($0 % 7)", payload: Array("v\($0)".utf8), timestampMs: 1_767_225_600_000 + Int64($0)) }
        let t0 = now()
        var progressCalls = 0
        let r = try produceAll(msgs, producer: producer, topic: "p", rate: 200, progressInterval: 0.1,
                               progress: { _ in progressCalls += 1 })
        let paced = now() - t0
        #expect(r.sent == 100 && r.delivered == 100 && r.failed == 0)
        #expect(paced >= 0.45, "100 messages at 200/s must take ≈0.5 s, took \(paced)")
        #expect(paced < 3)
        #expect(progressCalls >= 3)

        // As fast as possible, generic element type through the transform.
        let t1 = now()
        let r2 = try produceAll(0..<5000, producer: producer, topic: "p", rate: nil, useEventTimestamps: true) { i in
            OutgoingMessage(key: "s\(i % 11)", payload: Array("x\(i)".utf8), timestampMs: 1_767_225_600_000 + Int64(i))
        }
        #expect(r2.sent == 5000 && r2.delivered == 5000)
        #expect(now() - t1 < 10)
        let w0 = try producer.queryWatermarks(TopicPartition("p", 0)), w1 = try producer.queryWatermarks(TopicPartition("p", 1))
        #expect(w0.high + w1.high == 5100)

        // Event timestamps were used as Kafka timestamps.
        let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: uniqueGroup("g7"), topics: ["p"],
                                  extra: fastGroup, logHandler: testLog)
        defer { c.close() }
        var ts: [Int64] = []
        let d = now() + 30
        while ts.count < 5100 && now() < d {
            for ev in try c.poll(maxMessages: 1000, timeoutMs: 200) {
                if case .message(let m) = ev, let t = m.timestampMs { ts.append(t) }
            }
        }
        #expect(ts.count == 5100)
        #expect(ts.filter { $0 < 1_767_225_600_000 + 5000 }.count == 5000)
    }
}
