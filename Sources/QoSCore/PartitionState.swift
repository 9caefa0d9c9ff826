/// The sessions of one input partition, its event-time watermark (docs/semantics.md §2)
/// and its share of the open windows. Close decisions depend only on this
/// partition's message order, and all of a partition's state lives here so
/// it can be checkpointed and moved to another instance on its own.
public final class PartitionState<K: SketchKit> {
    public let id: Int32
    public internal(set) var aggregator: WindowAggregator<K>
    /// Max `ts` applied so far (`.min` before the first beacon).
    public internal(set) var maxTs: Int64 = .min
    public internal(set) var sessions = SessionTable()
    var queue = CloseQueue()
    /// Reject rows not yet written, in arrival order (every flush takes them: `takeRejects`).
    public internal(set) var pendingRejects: [RejectRow] = []
    /// `heldBytes` of `pendingRejects`.
    public internal(set) var pendingRejectBytes = 0
    /// Recently closed sessions' `seq`s: repeats of them are duplicates.
    var closedSessions = ClosedSessions()
    /// Size of the last checkpoint snapshot (to size the next one's buffer).
    var snapshotSizeHint = 0

    public init(id: Int32, config: EngineConfig) {
        self.id = id
        self.aggregator = WindowAggregator(config: config)
    }

    /// `maxTs − lateness`, or `.min` before the first beacon.
    public func watermark(_ c: EngineConfig) -> Int64 {
        maxTs == .min ? .min : maxTs - c.latenessMs
    }

    /// Queues `s` for a watermark-driven close if it is not queued yet.
    func schedule(_ s: SessionState, _ c: EngineConfig) {
        guard !s.queued else { return }
        s.queued = true
        queue.push(s.closeDue(c), s)
    }

    /// Pops the next session whose close condition holds at `watermark`
    /// (close instant ≤ watermark and arrival mark + timeout ≤ watermark),
    /// re-queueing those popped early whose condition moved on. One at a
    /// time, so a caller that closes it lets it go before the next: at the
    /// end of a replay every session closes, and holding them all until the
    /// last one is closed kept them alive next to their `sessions` rows
    /// (bench/results/speed.md "Memory per session").
    func nextDueSession(_ watermark: Int64, _ c: EngineConfig) -> SessionState? {
        while let top = queue.peekDue, top <= watermark {
            let s = queue.pop()
            s.queued = false
            if s.closed { continue }
            if s.closeDue(c) <= watermark { return s }
            schedule(s, c)
        }
        return nil
    }
}

/// A binary min-heap of sessions by the due watermark of their entry,
/// which the session itself holds (`queuedDue`, 4 bytes) so that an entry is
/// one reference (8 bytes). Sessions with the same due leave in an order set
/// by the sequence of pushes and pops alone, so closes are deterministic for
/// a given input. (They are not in push order: a restored partition pushes
/// its sessions in id order anyway.)
struct CloseQueue {
    private var heap: [SessionState] = []

    var count: Int { heap.count }
    var peekDue: Int64? {
        heap.withUnsafeBufferPointer { b in
            b.isEmpty ? nil : UnsafeRawPointer(b.baseAddress!).load(as: Unmanaged<SessionState>.self)._withUnsafeGuaranteedRef { $0.queuedDue }
        }
    }

    mutating func push(_ due: Int64, _ s: SessionState) {
        s.queuedDue = due
        heap.append(s)
        heap.withUnsafeMutableBufferPointer { b in
            var i = b.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                guard Self.due(b, i) < Self.due(b, parent) else { break }
                b.swapAt(i, parent)
                i = parent
            }
        }
    }

    mutating func pop() -> SessionState {
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        } else {
            heap = []  // the end of a replay empties it: give its capacity back
        }
        return top
    }

    private mutating func siftDown(_ start: Int) {
        heap.withUnsafeMutableBufferPointer { b in
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < b.count && Self.due(b, l) < Self.due(b, m) { m = l }
                if r < b.count && Self.due(b, r) < Self.due(b, m) { m = r }
                if m == i { return }
                b.swapAt(i, m)
                i = m
            }
        }
    }

    /// The due of entry `i`, read without a reference count (the heap
    /// holds one): reading `heap[i]` retained and released the session,
    /// twice per comparison (bench/results/speed.md §11).
    @inline(__always) private static func due(_ b: UnsafeMutableBufferPointer<SessionState>, _ i: Int) -> Int64 {
        UnsafeRawPointer(b.baseAddress! + i).load(as: Unmanaged<SessionState>.self)._withUnsafeGuaranteedRef { $0.queuedDue }
    }
}
