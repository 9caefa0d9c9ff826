// The three requests the fetch path sends itself — ApiVersions, ListOffsets,
// Fetch — and their responses (docs/kafka-fetch.md "Requests"). Only
// non-flexible versions are used (request header v1, response header v0).

enum ApiKey: Int16 {
    case fetch = 1
    case listOffsets = 2
    case apiVersions = 18
}

/// Kafka error codes the fetch path acts on.
enum KafkaErrorCode {
    static let none: Int16 = 0
    static let offsetOutOfRange: Int16 = 1
    static let unknownTopicOrPartition: Int16 = 3
    static let leaderNotAvailable: Int16 = 5
    static let notLeaderOrFollower: Int16 = 6
    static let replicaNotAvailable: Int16 = 9
    static let kafkaStorageError: Int16 = 56
    static let fencedLeaderEpoch: Int16 = 74
    static let unknownLeaderEpoch: Int16 = 75
    static let offsetNotAvailable: Int16 = 78

    /// Errors that a metadata refresh and a retry resolve.
    static func isRetriable(_ code: Int16) -> Bool {
        [unknownTopicOrPartition, leaderNotAvailable, notLeaderOrFollower, replicaNotAvailable,
         kafkaStorageError, fencedLeaderEpoch, unknownLeaderEpoch, offsetNotAvailable].contains(code)
    }
}

/// The request header (v1) in front of a body.
func kafkaRequest(_ api: ApiKey, version: Int16, correlationId: Int32, clientId: String,
                  body: (inout WireWriter) -> Void) -> [UInt8] {
    var w = WireWriter()
    w.int32(0)  // size, patched below
    w.int16(api.rawValue)
    w.int16(version)
    w.int32(correlationId)
    w.string(clientId)
    body(&w)
    w.patchInt32(Int32(w.bytes.count - 4), at: 0)
    return w.bytes
}

// MARK: ApiVersions (v0)

/// The version range of each API the broker serves.
struct ApiVersions {
    var ranges: [Int16: ClosedRange<Int16>] = [:]

    static func parse(_ body: UnsafeRawBufferPointer) throws(WireError) -> ApiVersions {
        var r = WireReader(body)
        let error = try r.int16("ApiVersions error")
        guard error == 0 else { throw WireError("the broker answered ApiVersions with error \(error)") }
        var out = ApiVersions()
        for _ in 0..<(try r.arrayCount("api versions", minElementBytes: 6)) {
            let key = try r.int16("api key"), lo = try r.int16("min version"), hi = try r.int16("max version")
            if lo <= hi { out.ranges[key] = lo...hi }
        }
        return out
    }

    /// The highest version in `ours` the broker also serves.
    func pick(_ api: ApiKey, _ ours: ClosedRange<Int16>) -> Int16? {
        guard let theirs = ranges[api.rawValue], theirs.overlaps(ours) else { return nil }
        return min(theirs.upperBound, ours.upperBound)
    }
}

// MARK: ListOffsets (v1–v2)

/// ListOffsets' timestamps that name a position rather than a time.
enum ListOffsetsSpec: Int64 {
    case latest = -1
    case earliest = -2
}

func encodeListOffsets(_ w: inout WireWriter, version: Int16, isolation: Int8,
                       _ topics: [(String, [(Int32, ListOffsetsSpec)])]) {
    w.int32(-1)  // replica id: a consumer
    if version >= 2 { w.int8(isolation) }
    w.array(topics) { w, t in
        w.string(t.0)
        w.array(t.1) { w, p in w.int32(p.0); w.int64(p.1.rawValue) }
    }
}

/// (topic, partition, error code, offset) for each partition answered.
func parseListOffsets(_ body: UnsafeRawBufferPointer, version: Int16) throws(WireError) -> [(String, Int32, Int16, Int64)] {
    var r = WireReader(body)
    if version >= 2 { _ = try r.int32("throttle time") }
    var out: [(String, Int32, Int16, Int64)] = []
    for _ in 0..<(try r.arrayCount("topics", minElementBytes: 6)) {
        let topic = try r.string("topic") ?? ""
        for _ in 0..<(try r.arrayCount("partitions", minElementBytes: 22)) {
            let p = try r.int32("partition"), e = try r.int16("error")
            _ = try r.int64("timestamp")
            out.append((topic, p, e, try r.int64("offset")))
        }
    }
    return out
}

// MARK: Fetch (v4–v11)

struct FetchPartitionRequest {
    let partition: Int32
    let offset: Int64
    let maxBytes: Int32
}

struct FetchSettings {
    var maxWaitMs: Int32
    var minBytes: Int32
    var maxBytes: Int32
    var partitionMaxBytes: Int32
    /// 0 read_uncommitted, 1 read_committed.
    var isolation: Int8
}

func encodeFetch(_ w: inout WireWriter, version: Int16, _ s: FetchSettings,
                 _ topics: [(String, [FetchPartitionRequest])]) {
    w.int32(-1)  // replica id: a consumer
    w.int32(s.maxWaitMs)
    w.int32(s.minBytes)
    w.int32(s.maxBytes)
    w.int8(s.isolation)
    if version >= 7 {
        w.int32(0)   // session id: no fetch session
        w.int32(-1)  // session epoch: a full fetch
    }
    w.array(topics) { w, t in
        w.string(t.0)
        w.array(t.1) { w, p in
            w.int32(p.partition)
            if version >= 9 { w.int32(-1) }  // current leader epoch: unknown
            w.int64(p.offset)
            if version >= 5 { w.int64(-1) }  // log start offset: a consumer's is -1
            w.int32(p.maxBytes)
        }
    }
    if version >= 7 { w.int32(0) }  // forgotten topics
    if version >= 11 { w.string("") }  // rack id
}

/// One partition of a Fetch response; `records` indexes the response body.
struct FetchedPartition {
    let topic: String
    let partition: Int32
    let error: Int16
    let highWatermark: Int64
    let lastStableOffset: Int64
    let logStartOffset: Int64
    /// (producer id, first offset) of each aborted transaction in range.
    let aborted: [(Int64, Int64)]
    let records: Range<Int>
}

/// The partitions of a Fetch response and how long the broker asks the
/// client to wait (a quota's throttle, ms); a response-level error throws.
func parseFetch(_ body: UnsafeRawBufferPointer, version: Int16) throws(WireError) -> (parts: [FetchedPartition], throttleMs: Int32) {
    var r = WireReader(body)
    let throttle = try r.int32("throttle time")
    if version >= 7 {
        let error = try r.int16("fetch error")
        _ = try r.int32("session id")
        guard error == 0 else { throw WireError("the broker answered Fetch with error \(error)") }
    }
    var out: [FetchedPartition] = []
    for _ in 0..<(try r.arrayCount("topics", minElementBytes: 6)) {
        let topic = try r.string("topic") ?? ""
        for _ in 0..<(try r.arrayCount("partitions", minElementBytes: 30)) {
            let partition = try r.int32("partition")
            let error = try r.int16("partition error")
            let hw = try r.int64("high watermark")
            let lso = try r.int64("last stable offset")
            let logStart = version >= 5 ? try r.int64("log start offset") : -1
            var aborted: [(Int64, Int64)] = []
            for _ in 0..<(try r.arrayCount("aborted transactions", minElementBytes: 16)) {
                aborted.append((try r.int64("producer id"), try r.int64("first offset")))
            }
            if version >= 11 { _ = try r.int32("preferred read replica") }
            let size = Int(try r.int32("records size"))
            let start = r.position
            if size > 0 { try r.skip(size, "records") }
            out.append(FetchedPartition(topic: topic, partition: partition, error: error, highWatermark: hw,
                                        lastStableOffset: lso, logStartOffset: logStart, aborted: aborted,
                                        records: start..<(start + max(0, size))))
        }
    }
    return (out, throttle)
}
