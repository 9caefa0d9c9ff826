import QoSCore

/// How full a player's batch may get before it leaves early.
public enum PlayerBatching {
    public static let maxBeacons = 100
    public static let maxBytes = 64 << 10
}

/// Players that batch their beacons (`qos generate --batch-seconds S`): a
/// session's beacons leave together, as one message holding a JSON array
/// keyed by the session id, when the batch's S seconds are over, at the
/// session's `view_end`, or when the batch is full (`maxBeacons`,
/// `maxBytes`, far below the 1 MiB message limit). One message may carry a
/// JSON array of beacons (docs/semantics.md §1), so the engine's results are
/// those of the unbatched traffic as long as S stays within the allowed
/// lateness: a beacon leaves at most S seconds after its event time.
///
/// Time is the delivery order of the unbatched stream: the newest event
/// time seen so far (late copies carry older times and do not move it).
/// Messages that are not one beacon (malformed and injected future
/// messages) pass through at once, unbatched. Memory is bounded by the
/// sessions in flight.
public struct PlayerBatcher<Base: IteratorProtocol>: Sequence, IteratorProtocol
where Base.Element == GeneratedMessage {
    var base: Base
    var baseDone = false
    let periodMs: Int64
    let maxBeacons: Int
    let maxBytes: Int
    /// The newest event time delivered so far.
    var now: Int64 = .min

    struct Batch {
        var generation: Int
        var payload: [UInt8]
        var count: Int
    }
    /// Open batches by session id.
    var open: [String: Batch] = [:]
    /// Deadlines in the order the batches opened: since `now` never goes
    /// back, that is also deadline order. An entry whose generation no
    /// longer matches its session's open batch was sent early (full, or
    /// `view_end`) and is skipped.
    var deadlines: [(at: Int64, key: String, generation: Int)] = []
    var deadlineHead = 0
    var generation = 0
    /// Messages ready to leave, in order.
    var ready: [GeneratedMessage] = []
    var readyHead = 0

    public init(_ base: Base, periodMs: Int64, maxBeacons: Int = PlayerBatching.maxBeacons,
                maxBytes: Int = PlayerBatching.maxBytes) {
        precondition(periodMs > 0, "a batch period must be positive")
        precondition(maxBeacons >= 1 && maxBytes < BeaconLimits.messageBytesMax, "batch limits out of range")
        self.base = base
        self.periodMs = periodMs
        self.maxBeacons = maxBeacons
        self.maxBytes = maxBytes
    }

    public mutating func next() -> GeneratedMessage? {
        while readyHead == ready.count {
            ready.removeAll(keepingCapacity: true)
            readyHead = 0
            guard !baseDone, let m = base.next() else {
                baseDone = true
                // End of traffic: every open batch leaves, in deadline order.
                sendDue(until: .max)
                if readyHead == ready.count { return nil }
                break
            }
            take(m)
        }
        defer { readyHead += 1 }
        return ready[readyHead]
    }

    mutating func take(_ m: GeneratedMessage) {
        guard let b = m.beacon, m.expectedReject == nil else {
            ready.append(m)
            return
        }
        if m.ts > now {
            now = m.ts
            sendDue(until: now)
        }
        if var batch = open[m.key] {
            if batch.count == maxBeacons || batch.payload.count + 1 + m.payload.count + 1 > maxBytes {
                send(m.key)
                start(m)
            } else {
                open[m.key] = nil  // unique, so the append below does not copy
                batch.payload.append(UInt8(ascii: ","))
                batch.payload.append(contentsOf: m.payload)
                batch.count += 1
                open[m.key] = batch
            }
        } else {
            start(m)
        }
        if b.event == .viewEnd { send(m.key) }
    }

    mutating func start(_ m: GeneratedMessage) {
        generation += 1
        var payload: [UInt8] = [UInt8(ascii: "[")]
        payload.append(contentsOf: m.payload)
        open[m.key] = Batch(generation: generation, payload: payload, count: 1)
        deadlines.append((now + periodMs, m.key, generation))
    }

    /// Sends the session's open batch, stamped with the time it leaves
    /// (the message's Kafka timestamp, and its due time when paced).
    mutating func send(_ key: String, at time: Int64? = nil) {
        guard var batch = open.removeValue(forKey: key) else { return }
        batch.payload.append(UInt8(ascii: "]"))
        assert(batch.payload.count <= BeaconLimits.messageBytesMax)
        ready.append(GeneratedMessage(key: key, payload: batch.payload, ts: time ?? now, expectedReject: nil))
    }

    /// Sends every batch whose deadline is not after `time`.
    mutating func sendDue(until time: Int64) {
        while deadlineHead < deadlines.count, deadlines[deadlineHead].at <= time {
            let d = deadlines[deadlineHead]
            deadlineHead += 1
            if open[d.key]?.generation == d.generation { send(d.key, at: d.at) }
        }
        if deadlineHead > 4096, deadlineHead * 2 > deadlines.count {
            deadlines.removeFirst(deadlineHead)
            deadlineHead = 0
        }
    }
}
