/// The core engine: decoded beacons in, finished windows out. Pure logic:
/// time comes in as arguments (`nowMs` for the future check, watermarks for
/// flushes), I/O stays in the `Engine` module.
public final class QoSEngine<K: SketchKit> {
    public let config: EngineConfig
    /// Dimension strings; replaced by a rebuilt one at a flush (see
    /// `rebuildInternersIfDue`), so read ids with the interner of their time.
    public internal(set) var interner = StringInterner()
    /// Player version, city, AS organization and fatal error code of sessions.
    public internal(set) var values = ValueInterner()
    /// When the interners are rebuilt from what is still referenced.
    public var internerRebuild = InternerRebuildPolicy()
    /// Strings each interner held after its last rebuild.
    var internedAfterRebuild = (dimensions: 0, values: 0)
    public internal(set) var partitions: [Int32: PartitionState<K>] = [:] {
        didSet { lastPartition = nil }
    }
    /// The partition of the previous lookup: beacons come in runs from one
    /// partition. Unretained: `partitions` holds it, and any change to
    /// `partitions` clears this.
    private var lastPartition: Unmanaged<PartitionState<K>>?
    public internal(set) var counters = EngineCounters()
    /// Some partition holds more than `config.rejectBytesHeldMax` of reject
    /// rows: the driver should flush (`takeRejects`) before reading on.
    public private(set) var rejectsHeldOverCap = false
    let enricher: Enricher
    /// The decoder's reader, reused for every message (see `FieldReader.reset`).
    private var reader = FieldReader()
    /// Sessions closed while a beacon is applied, kept alive until it is
    /// done (`apply` reads its session unretained); empty between beacons.
    var retired: [SessionState] = []
    /// Set by `finish`: sessions closed at the end of input leave no
    /// `ClosedSessions` entry (no beacon follows).
    var finishing = false

    public init(config: EngineConfig = EngineConfig(), enricher: Enricher = NoEnricher()) {
        if let problem = config.problem { preconditionFailure(problem) }
        self.config = config
        self.enricher = enricher
    }

    @inline(__always)
    public func partition(_ id: Int32) -> PartitionState<K> {
        partitionRef(id).takeUnretainedValue()
    }

    /// `partition(id)` unretained, for the per-beacon path (read it with
    /// `_withUnsafeGuaranteedRef`): a retained partition cost a retain and
    /// a release per beacon (bench/results/speed.md §11). Valid until
    /// `partitions` changes, which no beacon does once its partition exists.
    @inline(__always)
    func partitionRef(_ id: Int32) -> Unmanaged<PartitionState<K>> {
        if let p = lastPartition, p._withUnsafeGuaranteedRef({ $0.id == id }) { return p }
        if let p = partitions[id] {
            lastPartition = .passUnretained(p)
            return .passUnretained(p)
        }
        let p = PartitionState<K>(id: id, config: config)
        partitions[id] = p
        return .passUnretained(p)
    }

    /// The one partition when there is exactly one (a replay's), unretained:
    /// the watermark and the next window end a driver reads after every
    /// record then take no walk over `partitions` (bench/results/speed.md
    /// section 24). Nil otherwise, and right after `partitions` changed.
    @inline(__always)
    var onlyPartition: Unmanaged<PartitionState<K>>? {
        partitions.count == 1 ? lastPartition : nil
    }

    // MARK: Input

    /// Decodes one message and applies its beacons (or records its rejects).
    public func ingest(message: UnsafeRawBufferPointer, partition pid: Int32,
                       source: SourcePosition, nowMs: Int64) {
        counters.messages += 1
        BeaconDecoder.decodeEach(message, reader: &reader, onBeacon: { b, id in
            apply(b, id: id, partition: pid, source: source, raw: message, nowMs: nowMs)
        }, onReject: { reason, range in
            reject(reason, partition: partition(pid), source: source, payload: UnsafeRawBufferPointer(rebasing: message[range]))
        })
    }

    /// Applies one item already decoded from `message` (pipelined callers
    /// decode on another thread; they count the message with `countMessage`).
    @inline(__always)
    public func ingest(_ item: DecodedItem, message: UnsafeRawBufferPointer, partition pid: Int32,
                       source: SourcePosition, nowMs: Int64) {
        switch item {
        case .beacon(let b):
            apply(b, id: b.sessionIdBytes(in: message), partition: pid, source: source, raw: message, nowMs: nowMs)
        case .reject(let reason, let range):
            reject(reason, partition: partition(pid), source: source,
                   payload: UnsafeRawBufferPointer(rebasing: message[range]))
        case .cdnLog(let r): apply(r, partition: pid, source: source, raw: message, nowMs: nowMs)
        }
    }

    /// Applies one beacon the decode stage decoded from `message` and
    /// stored (`DecodedBatch`): lent in place, not copied; `idHash` is
    /// `SessionTable.hash` of its lent session id, computed on the decode
    /// thread (ignored when the id is not lent).
    @inline(__always)
    public func ingest(beacon b: inout Beacon, idHash: UInt32, message: UnsafeRawBufferPointer, partition pid: Int32,
                       source: SourcePosition, nowMs: Int64) {
        // The id first: with `b` read twice in one argument list, the
        // compiler copied the whole beacon to pass it.
        let id = b.sessionIdBytes(in: message)
        apply(b, id: id, idHash: idHash, partition: pid, source: source, raw: message, nowMs: nowMs)
    }

    public func countMessage() { counters.messages += 1 }

    /// A hint for a beacon a few ahead in partition `pid` whose lent session
    /// id hashes to `idHash`: prefetch its table bucket, or (`session`) the
    /// session in it (`SessionTable.prefetch`). Changes nothing: only the
    /// partition used last is looked at (no partition is created).
    @inline(__always)
    public func prefetchSession(partition pid: Int32, idHash: UInt32, session: Bool) {
        guard let a = prefetchAddress(partition: pid, idHash: idHash, session: session) else { return }
        SessionTable.hint(a, session: session)
    }

    /// What `prefetchSession` hints. A function of its own so that the
    /// partition's reference ends before the hint, a call into C that the
    /// compiler would otherwise retain and release it around.
    @inline(__always)
    private func prefetchAddress(partition pid: Int32, idHash: UInt32, session: Bool) -> UnsafeRawPointer? {
        guard let p = lastPartition else { return nil }
        return p._withUnsafeGuaranteedRef { p in
            p.id == pid ? p.sessions.prefetchAddress(hash: idHash, session: session) : nil
        }
    }

    /// Applies one beacon (docs/semantics.md §2): admission, watermark closes, gap close,
    /// duplicate check, then the event itself.
    public func apply(_ b: Beacon, partition pid: Int32, source: SourcePosition,
                      raw: UnsafeRawBufferPointer? = nil, nowMs: Int64) {
        apply(b, id: nil, partition: pid, source: source, raw: raw, nowMs: nowMs)
    }

    /// `id`: the session id's bytes when `b.sessionId` was left empty by the
    /// decoder; `idHash`: their `SessionTable.hash`, when the caller has it.
    @inline(__always)
    func apply(_ b: Beacon, id: UnsafeRawBufferPointer?, idHash: UInt32? = nil, partition pid: Int32,
               source: SourcePosition, raw: UnsafeRawBufferPointer?, nowMs: Int64) {
        partitionRef(pid)._withUnsafeGuaranteedRef { p in
            apply(b, id: id, idHash: idHash, in: p, source: source, raw: raw, nowMs: nowMs)
        }
    }

    /// `apply` in partition `p`. The session is read unretained
    /// (`SessionTable.find`): a retained one cost five reference-count
    /// updates per beacon on the engine's thread (bench/results/speed.md
    /// section 38). A close during the beacon (a gap, a `view_end`) takes
    /// the table's reference into `retired`, let go once the beacon is done.
    @inline(__always)
    private func apply(_ b: Beacon, id: UnsafeRawBufferPointer?, idHash: UInt32?, in p: PartitionState<K>,
                       source: SourcePosition, raw: UnsafeRawBufferPointer?, nowMs: Int64) {
        guard admit(b.ts, field: "ts", p, source: source, raw: raw, within: id, nowMs: nowMs) else { return }
        let wm = p.watermark(config)
        closeDueSessions(p, watermark: wm)
        let found = id.map { p.sessions.find($0, hash: idHash ?? SessionTable.hash($0)) }
            ?? SessionTable.withBytes(b.sessionId) { p.sessions.find($0, hash: SessionTable.hash($0)) }
        let kept = found.flatMap { $0._withUnsafeGuaranteedRef { s -> Unmanaged<SessionState>? in
            guard s.isGap(b.ts, config) else { return found }
            let (instant, reason) = s.pendingClose(config)
            close(s, in: p, at: instant, reason: reason)
            return nil
        } }
        guard let session = kept ?? open(b, id: id, in: p) else {
            if !retired.isEmpty { retired.removeAll(keepingCapacity: true) }
            return  // a duplicate of a closed session's beacon
        }
        session._withUnsafeGuaranteedRef { s in apply(b, to: s, in: p, watermark: wm) }
        if !retired.isEmpty { retired.removeAll(keepingCapacity: true) }
    }

    /// The beacon's own part of `apply`, on its open session `s`.
    @inline(__always)
    private func apply(_ b: Beacon, to s: SessionState, in p: PartitionState<K>, watermark wm: Int64) {
        if let seq = b.seq, !s.acceptSeq(seq) {
            counters.duplicates += 1
            return contribute(b.ts, s, p) { $0.duplicates += 1 }
        }
        counters.accepted += 1
        s.arrivalMark = wm
        s.beacons += 1
        if b.ts < s.earliestTs { s.earliestTs = b.ts }
        if b.ts > s.latestTs { s.latestTs = b.ts }
        updateAttributes(s, b, p)
        if p.aggregator.isLate(b.ts, watermark: wm) {
            counters.lateEvents += 1
            contribute(b.ts, s, p) { $0.lateEvents += 1 }
        }
        applyEvent(b, s, p)
        if !s.closed { p.schedule(s, config) }
    }

    /// Time admission (docs/semantics.md §1) of an event time `ts` in `p`:
    /// before 2000 (`invalid_value:<field>`), too far ahead of `nowMs`, or too
    /// far behind the partition's watermark is a reject row; otherwise the
    /// partition's clock moves to `ts` and it returns true. `within`: bytes
    /// of `raw` inside the item (a beacon's lent session id), so that a
    /// refused item of a batch stores its own object, not the batch's start.
    @inline(__always)
    func admit(_ ts: Int64, field: String, _ p: PartitionState<K>, source: SourcePosition,
               raw: UnsafeRawBufferPointer?, within: UnsafeRawBufferPointer? = nil, nowMs: Int64) -> Bool {
        if _slowPath(ts < config.tsMinMs) {
            refuse(.invalidValue(field), p, source: source, raw: raw, within: within)
            return false
        }
        if ts > nowMs &+ config.futureToleranceMs {
            refuse(.tsInFuture, p, source: source, raw: raw, within: within)
            return false
        }
        if p.maxTs != .min && ts < p.watermark(config) - config.maxLatenessMs {
            refuse(.tsTooOld, p, source: source, raw: raw, within: within)
            return false
        }
        if ts > p.maxTs {
            if p.maxTs == .min { stampRejects(p, ts) }
            p.maxTs = ts
        }
        return true
    }

    /// The reject row of an item `admit` refused: its payload is the batch
    /// element holding `within` (`BeaconDecoder.element`), else `raw`.
    @inline(never)
    private func refuse(_ reason: RejectReason, _ p: PartitionState<K>, source: SourcePosition,
                        raw: UnsafeRawBufferPointer?, within: UnsafeRawBufferPointer?) {
        var payload = raw
        if let raw, let inner = within?.baseAddress, let base = raw.baseAddress {
            payload = BeaconDecoder.element(of: raw, containing: inner - base)
        }
        reject(reason, partition: p, source: source, payload: payload)
    }

    /// `admit` for a caller that only keeps the clock and the rejects (the
    /// router of a sharded replay, docs/architecture.md "Sharding"): the
    /// item is refused (a reject row held here) or admitted (the clock moved).
    public func admit(_ item: DecodedItem, message: UnsafeRawBufferPointer, partition pid: Int32,
                      source: SourcePosition, nowMs: Int64) -> Bool {
        switch item {
        case .beacon(let b):
            return admit(beaconAt: b.ts, id: b.sessionIdBytes(in: message), message: message, partition: pid,
                         source: source, nowMs: nowMs)
        case .cdnLog(let r):
            return admit(r.timeMs, field: "timestamp", partition(pid), source: source, raw: Self.bytes(of: r, in: message),
                         nowMs: nowMs)
        case .reject:
            ingest(item, message: message, partition: pid, source: source, nowMs: nowMs)
            return false
        }
    }

    /// `admit` for a beacon at `ts` (the router's beacons come apart from its
    /// other items); `id`: its session id's bytes when lent from `message`.
    public func admit(beaconAt ts: Int64, id: UnsafeRawBufferPointer?, message: UnsafeRawBufferPointer, partition pid: Int32,
                      source: SourcePosition, nowMs: Int64) -> Bool {
        admit(ts, field: "ts", partition(pid), source: source, raw: message, within: id, nowMs: nowMs)
    }

    /// Moves partition `pid`'s clock (its max applied `ts`) to `maxTs`, taken
    /// from another engine that sees every item (a sharded replay's router),
    /// and closes the sessions the new watermark makes due, as `apply` would.
    /// The clock never goes back.
    public func advanceClock(partition pid: Int32, to maxTs: Int64) {
        let p = partition(pid)
        precondition(maxTs >= p.maxTs, "a partition's clock went back")
        guard maxTs != .min else { return }
        if maxTs > p.maxTs {
            if p.maxTs == .min { stampRejects(p, maxTs) }
            p.maxTs = maxTs
        }
        let wm = p.watermark(config)
        closeDueSessions(p, watermark: wm)
    }

    /// Opens a session for `b`; the table holds the only reference to it.
    /// Nil when `b` repeats the `seq` of a recently closed session of its id
    /// (`ClosedSessions`): a duplicate, counted in that session's groups.
    private func open(_ b: Beacon, id: UnsafeRawBufferPointer?, in p: PartitionState<K>) -> Unmanaged<SessionState>? {
        let sid = id.map { String(decoding: $0, as: UTF8.self) } ?? b.sessionId
        var seqs = SeqSet()
        // An entry past its expiry counts as gone even before `expire` drops
        // it (its FIFO is in close order, not expiry order): the decision
        // depends on the watermark alone, as after a restore.
        if !p.closedSessions.isEmpty, let closed = p.closedSessions.entry(sid), closed.expires > p.watermark(config) {
            if let seq = b.seq, closed.seqs.contains(seq) {
                counters.duplicates += 1
                contributeDuplicate(b.ts, closed.dims, p)
                return nil
            }
            // A new session of the id: a later repeat of the closed one's beacons is still a duplicate.
            seqs = closed.seqs
            p.closedSessions.remove(sid)
        }
        let s = SessionState(id: sid, ts: b.ts)
        if !seqs.isEmpty { s.seqs = seqs }
        p.sessions.insert(s)
        counters.sessionsOpened += 1
        if b.event != .viewStart {
            s.missingStart = true
            updateAttributes(s, b, p)
            contribute(b.ts, s, p) { $0.missingStart += 1 }
        }
        return .passUnretained(s)
    }

    // MARK: Rejects

    /// Holds a reject row in its partition until the next flush takes it. Rows
    /// go to no window: a window may never be written (a clock stuck behind
    /// future beacons), and its rows would then stay in memory for good.
    func reject(_ reason: RejectReason, partition p: PartitionState<K>, source: SourcePosition,
                payload: UnsafeRawBufferPointer?) {
        counters.rejected[reason.code, default: 0] += 1
        let clock = p.maxTs == .min ? RejectRow.unstamped : p.maxTs
        let bytes = payload.map { Array($0.prefix(BeaconLimits.rejectPayloadBytesMax)) } ?? []
        hold(RejectRow(ingestedAt: clock, reason: reason.code, source: source.description, payload: bytes), in: p)
    }

    func hold(_ row: RejectRow, in p: PartitionState<K>) {
        p.pendingRejects.append(row)
        p.pendingRejectBytes += row.heldBytes
        if p.pendingRejectBytes > config.rejectBytesHeldMax { rejectsHeldOverCap = true }
    }

    /// The partition's first clock reading: rows rejected before it get it.
    func stampRejects(_ p: PartitionState<K>, _ ts: Int64) {
        for i in p.pendingRejects.indices where p.pendingRejects[i].ingestedAt == RejectRow.unstamped {
            p.pendingRejects[i].ingestedAt = ts
        }
    }

    /// Every partition's reject rows held since the last call, by partition
    /// then arrival, and forgets them. Rows of a partition that has no clock
    /// yet (no accepted beacon) get `nowMs`, the engine clock.
    public func takeRejects(nowMs: Int64) -> [RejectRow] {
        var out: [RejectRow] = []
        for p in partitions.values.sorted(by: { $0.id < $1.id }) where !p.pendingRejects.isEmpty {
            if p.maxTs == .min { stampRejects(p, nowMs) }
            out += p.pendingRejects
            p.pendingRejects = []
            p.pendingRejectBytes = 0
        }
        rejectsHeldOverCap = false
        return out
    }

    // MARK: Contributions

    /// Adds a contribution at `ts` to the session's group in every table.
    /// The common case (same window and groups as the session's previous
    /// contribution) touches no hash table.
    @inline(__always)
    func contribute(_ ts: Int64, _ s: SessionState, _ p: PartitionState<K>,
                    _ body: (inout GroupMetrics<K>) -> Void) {
        let (window, g) = groups(ts, s, p)
        window._withUnsafeGuaranteedRef { w in
            body(&w.tables[0].metrics[g.overall])
            body(&w.tables[1].metrics[g.video])
            body(&w.tables[2].metrics[g.geo])
            body(&w.tables[3].metrics[g.device])
            body(&w.tables[4].metrics[g.cdn])
        }
    }

    /// A duplicate of a closed session's beacon, in the closed session's
    /// groups of the window of its `ts` (as for an open session's duplicate).
    func contributeDuplicate(_ ts: Int64, _ dims: SessionDims, _ p: PartitionState<K>) {
        let w = p.aggregator.window(for: ts)
        for t in MetricTable.allCases {
            let i = w.tables[t.rawValue].slot(dims.key(t), cap: config.groupsPerWindowMax)
            w.tables[t.rawValue].metrics[i].duplicates += 1
        }
    }

    typealias Slots = (overall: Int, video: Int, geo: Int, device: Int, cdn: Int)

    /// The window state for `ts` (unretained: `WindowAggregator.windowRef`)
    /// and the session's group slot in each of its tables, from the
    /// session's cache when it is for that state.
    @inline(__always)
    func groups(_ ts: Int64, _ s: SessionState, _ p: PartitionState<K>) -> (Unmanaged<WindowState<K>>, Slots) {
        let ref = p.aggregator.windowRef(for: ts)
        let serial = ref._withUnsafeGuaranteedRef { $0.serial }
        if s.cacheSerial == serial && serial != 0 {
            let c = s.cacheSlots
            return (ref, (0, Int(c.0), Int(c.1), Int(c.2), Int(c.3)))
        }
        // The cache moves to another state: what it held back goes to the old one first.
        if s.hasPendingPlay { drainPendingPlay(s, p) }
        let w = ref.takeUnretainedValue()
        let cap = config.groupsPerWindowMax
        func slot(_ t: MetricTable) -> Int { w.tables[t.rawValue].slot(s.dims.key(t), cap: cap) }
        let g: Slots = (slot(.overall), slot(.video), slot(.geo), slot(.device), slot(.cdn))
        // `overall` has one group (slot 0); a slot past 16 bits is not cached.
        let max = Int(UInt16.max)
        if g.overall == 0 && g.video < max && g.geo < max && g.device < max && g.cdn < max {
            s.cacheSlots = (UInt16(g.video), UInt16(g.geo), UInt16(g.device), UInt16(g.cdn))
            s.cacheSerial = w.serial
        } else {
            s.cacheSerial = 0
        }
        return (ref, g)
    }

    /// Adds the played time `s` holds back (`SessionState.pendingPlayingMs`)
    /// to the groups of its contribution cache, and clears it. The sums are
    /// of non-negative values and saturate, so adding them at once gives
    /// the groups what adding each beacon's share would have.
    @inline(never)
    func drainPendingPlay(_ s: SessionState, _ p: PartitionState<K>) {
        guard s.hasPendingPlay else { return }
        guard let w = p.aggregator.state(serial: s.cacheSerial) else {
            preconditionFailure("played time held back for a window state no longer held")
        }
        addPendingPlay(s, to: w)
    }

    /// Drains every session of `p` (before its windows are flushed or
    /// checkpointed): a state and its serial are looked up once, not per session.
    func drainPendingPlay(_ p: PartitionState<K>) {
        var states: [(serial: UInt32, state: WindowState<K>)] = []
        p.sessions.forEach { s in
            guard s.hasPendingPlay else { return }
            if let hit = states.first(where: { $0.serial == s.cacheSerial }) { return addPendingPlay(s, to: hit.state) }
            guard let w = p.aggregator.state(serial: s.cacheSerial) else {
                preconditionFailure("played time held back for a window state no longer held")
            }
            states.append((s.cacheSerial, w))
            addPendingPlay(s, to: w)
        }
    }

    private func addPendingPlay(_ s: SessionState, to w: WindowState<K>) {
        precondition(s.cacheSerial != 0 && w.serial == s.cacheSerial, "played time held back without its cache")
        let playing = Int64(s.pendingPlayingMs), withRate = Int64(s.pendingBitratePlayedMs)
        let weighted = s.pendingBitrateMsSum
        let c = s.cacheSlots
        func add(_ m: inout GroupMetrics<K>) {
            m.playingMs +|= playing
            m.bitrateMsSum +|= weighted
            m.bitratePlayedMs +|= withRate
        }
        add(&w.tables[MetricTable.overall.rawValue].metrics[0])
        add(&w.tables[MetricTable.video.rawValue].metrics[Int(c.0)])
        add(&w.tables[MetricTable.geo.rawValue].metrics[Int(c.1)])
        add(&w.tables[MetricTable.device.rawValue].metrics[Int(c.2)])
        add(&w.tables[MetricTable.cdn.rawValue].metrics[Int(c.3)])
        s.pendingPlayingMs = 0
        s.pendingBitratePlayedMs = 0
        s.pendingBitrateMsSum = 0
    }

    /// Segment metrics go to `cdn`, under the beacon's own cdn/pop when
    /// present, else the session's. Not to `overall`: a flush sums its
    /// segment metrics from `cdn`, making its group if need be
    /// (`WindowState.fillOverallSegment`; docs/architecture.md "Segment
    /// metrics added once").
    func contributeSegment(_ b: Beacon, _ s: SessionState, _ p: PartitionState<K>) {
        let slow = config.slowRequestMs
        if b.cdn == nil && b.pop == nil {
            let (window, g) = groups(b.ts, s, p)
            window._withUnsafeGuaranteedRef { w in
                w.tables[MetricTable.cdn.rawValue].metrics[g.cdn].segment.add(b, slowMs: slow)
            }
            return
        }
        let w = p.aggregator.window(for: b.ts)
        let cap = config.groupsPerWindowMax
        let cdn = b.cdn != nil ? interner.intern(b.cdn) : s.dims.cdn
        let pop = b.pop != nil ? interner.intern(b.pop) : s.dims.pop
        let c = w.tables[MetricTable.cdn.rawValue].slot(GroupKey(cdn, pop), cap: cap)
        w.tables[MetricTable.cdn.rawValue].metrics[c].segment.add(b, slowMs: slow)
    }
}

/// Engine-wide counters (for summaries and `/metrics`).
public struct EngineCounters: Sendable, Equatable {
    public var messages: Int64 = 0
    public var accepted: Int64 = 0
    public var rejected: [String: Int64] = [:]
    public var duplicates: Int64 = 0
    public var lateEvents: Int64 = 0
    public var sessionsOpened: Int64 = 0
    public var sessionsClosed: Int64 = 0
    public init() {}
    public var rejectedTotal: Int64 { rejected.values.reduce(0, +) }
}
