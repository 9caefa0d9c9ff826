// The consumer's own fetch path: Fetch requests to each partition leader,
// record batches read in place, one zstd decompression per batch into a
// buffer kept across batches, records lent to the caller
// (docs/kafka-fetch.md). librdkafka keeps the group, the offsets and every
// partition this path hands back to it.

import CZstd
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How a partition leaves the fetch path: back to librdkafka at `offset`.
struct HandBack {
    let partition: TopicPartition
    let offset: Int64
    let reason: String
}

/// A record lent by `NativeFetcher.deliver` (valid during the callback).
struct FetchedRecord {
    let partition: TopicPartition
    let offset: Int64
    let timestampMs: Int64
    let key: UnsafeRawBufferPointer?
    let value: UnsafeRawBufferPointer
}

/// Settings read from the consumer's librdkafka properties.
struct NativeFetchSettings {
    var clientId = "videoqos"
    var fetch = FetchSettings(maxWaitMs: 500, minBytes: 1, maxBytes: 52_428_800, partitionMaxBytes: 1_048_576, isolation: 1)
    var maxResponseBytes = 100_000_000
    var socketTimeoutMs = 60_000
    /// The longest the polling thread waits on a broker beyond a fetch's own
    /// wait: to connect, for a response's first bytes, between its bytes.
    /// Rebalances and librdkafka's events are served between polls, so a
    /// silent broker must not hold a poll for `socket.timeout.ms`.
    var stallMs = 3_000
    /// Failed exchanges in a row with one broker before its partitions go
    /// back to librdkafka (which rides out outages on its own threads).
    var brokerFailuresMax = 3
    /// `auto.offset.reset`: earliest, latest, or nil (error).
    var reset: ListOffsetsSpec? = .earliest
    var retryBackoffMs = 100

    /// Reads the librdkafka properties the fetch path follows; nil when a
    /// setting asks for something it does not do (TLS, SASL, a rack).
    init?(_ properties: [String: String]) {
        func int(_ k: String) -> Int? { properties[k].flatMap { Int($0) } }
        if let p = properties["security.protocol"], p.lowercased() != "plaintext" { return nil }
        if let r = properties["client.rack"], !r.isEmpty { return nil }
        if let c = properties["client.id"] { clientId = c }
        if let v = int("fetch.wait.max.ms") { fetch.maxWaitMs = Int32(clamping: v) }
        if let v = int("fetch.min.bytes") { fetch.minBytes = Int32(clamping: v) }
        if let v = int("fetch.max.bytes") { fetch.maxBytes = Int32(clamping: v) }
        if let v = int("max.partition.fetch.bytes") ?? int("fetch.message.max.bytes") { fetch.partitionMaxBytes = Int32(clamping: v) }
        if let v = int("receive.message.max.bytes") { maxResponseBytes = v }
        if let v = int("socket.timeout.ms") { socketTimeoutMs = v; stallMs = Swift.min(stallMs, v) }
        if let v = int("retry.backoff.ms") { retryBackoffMs = v }
        switch properties["isolation.level"]?.lowercased() {
        case nil, "read_committed": fetch.isolation = 1
        case "read_uncommitted": fetch.isolation = 0
        default: return nil
        }
        switch properties["auto.offset.reset"]?.lowercased() {
        case nil, "earliest", "smallest", "beginning": reset = .earliest
        case "latest", "largest", "end": reset = .latest
        default: reset = nil
        }
    }
}

/// Where each partition's leader is (from librdkafka's metadata).
struct LeaderMap {
    var brokers: [Int32: (host: String, port: Int32)] = [:]
    var leaders: [TopicPartition: Int32] = [:]
}

final class NativeFetcher {
    struct PartitionState {
        /// The next offset to hand over.
        var next: Int64
        var paused = false
        var highWatermark: Int64 = -1
        var lowWatermark: Int64 = -1
    }

    let settings: NativeFetchSettings
    /// Partitions this path fetches; the rest are librdkafka's.
    private(set) var partitions: [TopicPartition: PartitionState] = [:]
    private var map = LeaderMap()
    private var connections: [Int32: BrokerConnection] = [:]
    private var metadataStale = true
    private var retryAfter: UInt64 = 0
    /// Partitions to give back to librdkafka, taken by `takeHandBacks`.
    private var handBacks: [HandBack] = []
    /// Errors to report as consumer events (offset resets).
    private var reports: [KafkaError] = []
    /// Looks up leaders (librdkafka's metadata); throws when it cannot.
    private let lookupLeaders: ([String]) throws -> LeaderMap

    // The response being handed over.
    private var pending: [(broker: Int32, parts: [FetchedPartition])] = []
    private var pendingIndex = 0
    private var partIndex = 0
    private var set: RecordSetReader?
    private var records: BatchRecordReader?
    private var batch: RecordBatchHeader?
    private var abortedQueue: [(Int64, Int64)] = []
    private var abortedProducers: Set<Int64> = []
    private let decompressed = RawBuffer()
    private var dctx: OpaquePointer?

    init(settings: NativeFetchSettings, lookupLeaders: @escaping ([String]) throws -> LeaderMap) {
        self.settings = settings
        self.lookupLeaders = lookupLeaders
    }

    deinit {
        if let dctx { ZSTD_freeDCtx(dctx) }
    }

    func close() {
        for c in connections.values { c.close() }
        connections.removeAll()
        dropPending()
    }

    // MARK: Ownership (the consumer's polling thread)

    func owns(_ tp: TopicPartition) -> Bool { partitions[tp] != nil }

    /// Adds partitions at known offsets.
    func add(_ entries: [(TopicPartition, Int64)]) {
        for (tp, off) in entries {
            precondition(off >= 0, "a fetch path partition starts at a known offset")
            partitions[tp] = PartitionState(next: off)
        }
        metadataStale = true
        dropPending()
    }

    func remove(_ tps: [TopicPartition]) {
        for tp in tps { partitions[tp] = nil }
        pendingResets.removeAll { tps.contains($0) }
        dropPending()
    }

    func removeAll() {
        partitions.removeAll()
        pendingResets = []
        dropPending()
    }

    func seek(_ tp: TopicPartition, to offset: Int64) {
        partitions[tp]?.next = offset
        pendingResets.removeAll { $0 == tp }
        dropPending()
    }

    func setPaused(_ tp: TopicPartition, _ paused: Bool) {
        partitions[tp]?.paused = paused
        dropPending()
    }

    func state(_ tp: TopicPartition) -> PartitionState? { partitions[tp] }

    func takeHandBacks() -> [HandBack] {
        defer { handBacks = [] }
        return handBacks
    }

    func takeReports() -> [KafkaError] {
        defer { reports = [] }
        return reports
    }

    /// Gives a partition back to librdkafka at `at` (default: its position).
    private func handBack(_ tp: TopicPartition, _ reason: String, at: Int64? = nil) {
        guard let st = partitions.removeValue(forKey: tp) else { return }
        handBacks.append(HandBack(partition: tp, offset: at ?? st.next, reason: reason))
    }

    /// Forgets the response being handed over: the positions say where the
    /// next fetch starts, so nothing is lost or handed over twice.
    private func dropPending() {
        pending = []
        pendingIndex = 0
        partIndex = 0
        set = nil
        records = nil
        batch = nil
    }

    // MARK: Offsets (ListOffsets)

    /// The earliest or latest offset of each partition, per leader; partitions
    /// whose leader cannot say are absent.
    /// Drops the response being handed over: the answers arrive in the
    /// connections' buffers it is read from.
    func listOffsets(_ tps: [TopicPartition], _ spec: ListOffsetsSpec, timeoutMs: Int) -> [TopicPartition: Int64] {
        dropPending()
        refreshMetadataIfStale(topics: Set(tps.map(\.topic)))
        var byLeader: [Int32: [TopicPartition]] = [:]
        for tp in tps { if let l = map.leaders[tp] { byLeader[l, default: []].append(tp) } }
        var out: [TopicPartition: Int64] = [:]
        for (leader, list) in byLeader {
            guard let conn = connection(leader, timeoutMs: timeoutMs),
                  let version = conn.versions.pick(.listOffsets, 1...2) else { continue }
            let topics = Dictionary(grouping: list, by: \.topic).map { ($0.key, $0.value.map { ($0.partition, spec) }) }
            do {
                try conn.roundTrip(.listOffsets, version: version, timeoutMs: timeoutMs) { w in
                    encodeListOffsets(&w, version: version, isolation: settings.fetch.isolation, topics)
                }
                for (t, p, e, off) in try parseListOffsets(conn.response.bytes, version: version) where e == 0 && off >= 0 {
                    out[TopicPartition(t, p)] = off
                }
            } catch {
                metadataStale = true
            }
        }
        return out
    }

    // MARK: Fetching

    private func refreshMetadataIfStale(topics: Set<String>) {
        guard metadataStale, !topics.isEmpty else { return }
        guard let m = try? lookupLeaders(topics.sorted()) else {
            // No metadata (the cluster is unreachable): after a few tries in
            // a row, librdkafka takes the partitions and rides it out.
            metadataFailures += 1
            if metadataFailures >= settings.brokerFailuresMax {
                metadataFailures = 0
                for tp in partitions.keys.sorted() { handBack(tp, "no metadata from the cluster") }
            }
            return
        }
        metadataFailures = 0
        do {
            map = m
            metadataStale = false
            // A leader that moved: its connection is kept; one no longer named is closed.
            let live = Set(m.leaders.values)
            for (id, c) in connections where !live.contains(id) { c.close(); connections[id] = nil }
        }
    }

    private func connection(_ broker: Int32, timeoutMs: Int) -> BrokerConnection? {
        if let c = connections[broker], c.isOpen { return c }
        guard let addr = map.brokers[broker] else { metadataStale = true; return nil }
        let c = BrokerConnection(host: addr.host, port: addr.port, clientId: settings.clientId,
                                 maxResponseBytes: settings.maxResponseBytes)
        do {
            try c.open(timeoutMs: timeoutMs)
        } catch {
            metadataStale = true
            return nil
        }
        connections[broker] = c
        return c
    }

    /// Hands over up to `max` records: from the response in hand, else from
    /// a new fetch (which waits up to `waitMs` for records).
    /// A partition's offset reset is reported through `onReport` after the
    /// records (its own records come from a later fetch).
    func deliver(max: Int, waitMs: Int, onReport: (KafkaError) -> Void,
                 _ onRecord: (FetchedRecord) throws -> Void) rethrows -> Int {
        var n = 0
        defer { for r in takeReports() { onReport(r) } }
        if pendingIndex >= pending.count {
            fetch(waitMs: waitMs)
        }
        while n < max, pendingIndex < pending.count {
            n += try deliverPending(max: max - n, onRecord)
        }
        return n
    }

    private var brokerFailures: [Int32: Int] = [:]
    /// Partitions whose position the log no longer holds, reset before the
    /// next fetch (`auto.offset.reset`).
    private var pendingResets: [TopicPartition] = []
    /// Fetches sent so far: turns the partitions' order in a request.
    private var fetchRound: UInt = 0
    private var metadataFailures = 0

    /// Counts a failed exchange with `broker`; past `brokerFailuresMax` in a
    /// row, its partitions go back to librdkafka.
    private func brokerFailed(_ broker: Int32) {
        let n = (brokerFailures[broker] ?? 0) + 1
        brokerFailures[broker] = n
        guard n >= settings.brokerFailuresMax else { return }
        brokerFailures[broker] = nil
        let addr = map.brokers[broker].map { "\($0.host):\($0.port)" } ?? "broker \(broker)"
        for (tp, leader) in map.leaders where leader == broker && partitions[tp] != nil {
            handBack(tp, "\(n) failed exchanges in a row with \(addr)")
        }
    }

    /// Sends one Fetch to every leader with fetchable partitions, then reads
    /// the answers; partitions whose leader fails are retried after a
    /// metadata refresh, or handed back after repeated failures.
    private func fetch(waitMs: Int) {
        dropPending()
        // Resets take this poll: their reports reach the caller before any
        // record from the new positions (docs/architecture.md "When Kafka
        // moves a position" reads the records that follow a report).
        let resets = pendingResets
        pendingResets = []
        if !resets.isEmpty {
            for tp in resets { resetOffset(tp) }
            return
        }
        let fetchable = partitions.filter { !$0.value.paused }
        // Nothing to fetch, or a backoff: wait as a fetch would have, so
        // that a caller polling in a loop does not spin.
        guard !fetchable.isEmpty else { return sleepMs(waitMs) }
        let now = monotonicNanos()
        if now < retryAfter {
            let left = Int((retryAfter - now) / 1_000_000) + 1
            sleepMs(Swift.min(left, waitMs))
            if monotonicNanos() < retryAfter { return }
        }
        refreshMetadataIfStale(topics: Set(fetchable.keys.map(\.topic)))
        var byLeader: [Int32: [TopicPartition]] = [:]
        for tp in fetchable.keys {
            guard let l = map.leaders[tp], l >= 0 else { metadataStale = true; continue }
            byLeader[l, default: []].append(tp)
        }
        var s = settings.fetch
        s.maxWaitMs = Int32(clamping: min(Int(s.maxWaitMs), waitMs))
        fetchRound &+= 1
        var sent: [(Int32, BrokerConnection, Int16)] = []
        for (leader, tps) in byLeader.sorted(by: { $0.key < $1.key }) {
            guard let conn = connection(leader, timeoutMs: settings.stallMs) else { brokerFailed(leader); continue }
            guard let version = conn.versions.pick(.fetch, 4...11) else {
                for tp in tps { handBack(tp, "broker \(conn.host):\(conn.port) serves no Fetch version 4-11") }
                continue
            }
            // A broker fills a response in request order up to fetch.max.bytes
            // (KIP-74): the order turns by one partition each fetch, so that
            // no partition waits behind the others while catching up.
            let ordered = tps.sorted()
            let turn = Int(fetchRound % UInt(ordered.count))
            let rotated = ordered[turn...] + ordered[..<turn]
            var topics: [(String, [FetchPartitionRequest])] = []
            for tp in rotated {
                let request = FetchPartitionRequest(partition: tp.partition, offset: partitions[tp]!.next,
                                                    maxBytes: s.partitionMaxBytes)
                if let i = topics.firstIndex(where: { $0.0 == tp.topic }) { topics[i].1.append(request) }
                else { topics.append((tp.topic, [request])) }
            }
            do {
                try conn.send(.fetch, version: version, timeoutMs: settings.stallMs) { w in
                    encodeFetch(&w, version: version, s, topics)
                }
                sent.append((leader, conn, version))
            } catch {
                metadataStale = true
                brokerFailed(leader)
            }
        }
        var failed = false
        var throttleMs: Int32 = 0
        for (leader, conn, version) in sent {
            do {
                try conn.receive(timeoutMs: Int(s.maxWaitMs) + settings.stallMs, stallMs: settings.stallMs)
                let (parts, throttle) = try parseFetch(conn.response.bytes, version: version)
                pending.append((leader, parts))
                throttleMs = Swift.max(throttleMs, throttle)
                brokerFailures[leader] = nil
            } catch {
                failed = true
                metadataStale = true
                conn.close()
                brokerFailed(leader)
            }
        }
        if failed || (sent.isEmpty && !byLeader.isEmpty) || metadataStale {
            retryAfter = monotonicNanos() &+ UInt64(settings.retryBackoffMs) * 1_000_000
        }
        if throttleMs > 0 {
            // A quota: the broker asks for no request before then (KIP-219).
            retryAfter = Swift.max(retryAfter, monotonicNanos() &+ UInt64(Swift.min(throttleMs, 60_000)) * 1_000_000)
        }
    }

    /// Hands over records of the pending responses, partition by partition.
    private func deliverPending(max: Int, _ onRecord: (FetchedRecord) throws -> Void) rethrows -> Int {
        var n = 0
        let (broker, parts) = pending[pendingIndex]
        let buffer = connections[broker]?.response.bytes ?? UnsafeRawBufferPointer(start: nil, count: 0)
        while partIndex < parts.count {
            let part = parts[partIndex]
            let tp = TopicPartition(part.topic, part.partition)
            if set == nil {
                guard startPartition(part, tp) else { partIndex += 1; continue }
                set = RecordSetReader(buffer, range: part.records)
            }
            let (delivered, done) = try deliverPartition(tp, max: max - n, onRecord)
            n += delivered
            if !done { return n }
            set = nil
            partIndex += 1
        }
        pendingIndex += 1
        partIndex = 0
        return n
    }

    /// Takes a partition's error and watermarks; false when it has no records to read.
    private func startPartition(_ part: FetchedPartition, _ tp: TopicPartition) -> Bool {
        guard partitions[tp] != nil else { return false }
        switch part.error {
        case KafkaErrorCode.none:
            partitions[tp]!.highWatermark = part.highWatermark
            if part.logStartOffset >= 0 { partitions[tp]!.lowWatermark = part.logStartOffset }
            abortedQueue = part.aborted.sorted { $0.1 < $1.1 }
            abortedProducers = []
            return !part.records.isEmpty
        case KafkaErrorCode.offsetOutOfRange:
            // Reset before the next fetch, not now: the ListOffsets answer
            // would land in the buffer the rest of this response is read from.
            if !pendingResets.contains(tp) { pendingResets.append(tp) }
            return false
        case let e where KafkaErrorCode.isRetriable(e):
            metadataStale = true
            return false
        default:
            handBack(tp, "Fetch error \(part.error)")
            return false
        }
    }

    /// `auto.offset.reset` for a partition whose position the log no longer holds.
    private func resetOffset(_ tp: TopicPartition) {
        guard let st = partitions[tp] else { return }
        guard let spec = settings.reset else {
            handBack(tp, "offset \(st.next) out of range and auto.offset.reset is error")
            return
        }
        guard let to = listOffsets([tp], spec, timeoutMs: settings.stallMs)[tp] else {
            metadataStale = true
            return
        }
        partitions[tp]!.next = to
        reports.append(KafkaError(.offsetReset,
                                  "Kafka offset out of range (\(tp)), position reset by auto.offset.reset: offset \(st.next) moved to \(to)",
                                  code: Int32(KafkaErrorCode.offsetOutOfRange), topicPartition: tp, offset: st.next))
    }

    /// Hands over the records of one partition's record set; `done` when it
    /// has none left (or the partition left the fetch path). The hot loop
    /// works on locals — the position, the batch's reader — and stores them
    /// back when it returns: a dictionary lookup or an exclusivity check per
    /// record cost more than reading the record.
    private func deliverPartition(_ tp: TopicPartition, max: Int,
                                  _ onRecord: (FetchedRecord) throws -> Void) rethrows -> (Int, done: Bool) {
        guard var next = partitions[tp]?.next else { return (0, true) }
        let high = partitions[tp]!.highWatermark
        var records = self.records
        var header = self.batch
        self.records = nil
        self.batch = nil
        var n = 0
        defer {
            if partitions[tp] != nil { partitions[tp]!.next = next }
            if records != nil { self.records = records; self.batch = header }
        }
        while true {
            if let h = header {
                let timestampBase = h.logAppendTime ? h.maxTimestamp : h.baseTimestamp
                while n < max {
                    let record: BatchRecord?
                    do { record = try records!.next() } catch {
                        handBack(tp, "record batch at offset \(h.baseOffset): \(error)", at: next)
                        records = nil
                        return (n, true)
                    }
                    guard let record else { break }
                    let offset = h.baseOffset &+ Int64(record.offsetDelta)
                    guard offset >= next else { continue }
                    next = offset &+ 1
                    n += 1
                    try onRecord(FetchedRecord(
                        partition: tp, offset: offset,
                        timestampMs: h.logAppendTime ? timestampBase : timestampBase &+ record.timestampDelta,
                        key: record.key, value: record.value ?? UnsafeRawBufferPointer(start: nil, count: 0)))
                }
                if records!.left > 0 { return (n, false) }
                next = Swift.max(next, h.lastOffset &+ 1)
                records = nil
                header = nil
                if n >= max { return (n, false) }
            }
            let item: RecordSetItem
            do { item = try set!.next() } catch {
                handBack(tp, "record set: \(error)", at: next)
                return (n, true)
            }
            switch item {
            case .end, .partial:
                return (n, true)
            case .oldFormat(let base):
                handBack(tp, "message format 0/1 at offset \(base)", at: next)
                return (n, true)
            case .batch(let h, let range):
                guard h.lastOffset >= next else { continue }
                // The CRC does not cover the base offset: a batch past the
                // partition's end is not trusted.
                if high >= 0 && h.lastOffset >= high {
                    handBack(tp, "record batch at offset \(h.baseOffset) lies past the high watermark \(high)", at: next)
                    return (n, true)
                }
                if h.isControl || skipAborted(h) {
                    if h.isControl { controlBatch(h, range) }
                    next = Swift.max(next, h.lastOffset &+ 1)
                    continue
                }
                switch h.compression {
                case 0:
                    records = BatchRecordReader(set!.buffer, range: range, count: h.recordCount)
                case 4:
                    do {
                        try decompressZstd(UnsafeRawBufferPointer(rebasing: set!.buffer[range]))
                    } catch {
                        handBack(tp, "zstd batch at offset \(h.baseOffset): \(error)", at: next)
                        return (n, true)
                    }
                    records = BatchRecordReader(decompressed.bytes, range: 0..<decompressed.count, count: h.recordCount)
                default:
                    handBack(tp, "codec \(h.compression) at offset \(h.baseOffset)", at: next)
                    return (n, true)
                }
                header = h
            }
        }
    }

    /// read_committed: a transactional batch of a producer whose
    /// transaction was aborted is skipped (the response lists each aborted
    /// transaction by producer and first offset; its abort marker ends it).
    private func skipAborted(_ h: RecordBatchHeader) -> Bool {
        guard settings.fetch.isolation == 1, h.isTransactional, !h.isControl else { return false }
        while let first = abortedQueue.first, first.1 <= h.lastOffset {
            abortedProducers.insert(first.0)
            abortedQueue.removeFirst()
        }
        return abortedProducers.contains(h.producerId)
    }

    private func controlBatch(_ h: RecordBatchHeader, _ range: Range<Int>) {
        guard h.compression == 0 else { return }
        var r = BatchRecordReader(set!.buffer, range: range, count: h.recordCount)
        if let rec = try? r.next(), (try? ControlRecord(key: rec.key)) == .abort {
            abortedProducers.remove(h.producerId)
        }
    }

    /// One decompression per batch, straight into the kept buffer (sized by
    /// the frame's bound, grown when a frame holds more).
    private func decompressZstd(_ src: UnsafeRawBufferPointer) throws(WireError) {
        if dctx == nil { dctx = ZSTD_createDCtx() }
        guard let dctx else { throw WireError("cannot create a zstd context") }
        let limit = Swift.max(settings.maxResponseBytes, 1 << 20) * 4
        var want = Swift.max(src.count * 8, 1024)
        if let bound = ZstdFrameSizeHint.decompressBound?(src.baseAddress, src.count),
           bound < ZstdFrameSizeHint.error {
            want = Int(Swift.min(bound, UInt64(limit)))
        }
        decompressed.reserve(Swift.min(want, limit))
        while true {
            let r = ZSTD_decompressDCtx(dctx, decompressed.base, decompressed.capacity, src.baseAddress, src.count)
            if ZSTD_isError(r) == 0 {
                decompressed.count = r
                return
            }
            guard ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall, decompressed.capacity < limit else {
                throw WireError(String(cString: ZSTD_getErrorName(r)))
            }
            decompressed.reserve(Swift.min(limit, decompressed.capacity * 2))
        }
    }

    private func sleepMs(_ ms: Int) {
        guard ms > 0 else { return }
        var ts = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
        var left = timespec()
        while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
    }
}
