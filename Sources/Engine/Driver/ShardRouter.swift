import Foundation
import QoSCore

/// `qos replay --workers N` (N > 1): the sessions sharded by a hash of their
/// id over N engine threads (`ShardWorker`), their flushes merged into the
/// one engine's (`FlushMerge`). This router runs on the thread that drives
/// the replay: it takes the decoded records in input order, keeps the
/// partition's clock and its reject rows (a `QoSEngine` that only admits,
/// `QoSEngine.admit`), routes each admitted item with the clock as of it,
/// and decides every flush exactly when the one engine would: after a
/// record whose watermark passed an unwritten window's end (found by
/// probing the shards) or when the held rejects reach their cap.
/// docs/architecture.md "Sharding" gives the argument for exactness.
final class ShardRouter {
    let config: EngineConfig
    /// The partition's clock, the rejects and the message count.
    let clock: QoSEngine<DataSketchesKit>
    let shards: [ShardWorker]
    let merge: FlushMerge
    let wall: any Clock
    let partition: Int32 = 0
    var lateFlush: LateFlushPolicy
    /// Items waiting to be sent to each shard.
    var pending: [[ShardItem]]
    static let batchItems = 1024
    let probe = ProbeReplies()
    /// The position of the first record (the start of every flush's source range).
    var rangeStart: String?
    /// The least admitted time: no window starts before its window.
    var minAdmitted = Int64.max
    /// Mirrors the shards' `WindowAggregator.writtenThrough`.
    var writtenThrough = Int64.min
    var failure: Error?
    /// Probes sent (how often the router waited for the shards).
    private(set) var probes = 0

    init(workers: Int, config: EngineConfig, enricher: Enricher, direct: DirectPublish, wall: any Clock,
         lateFlushIntervalMs: Int64, rebuildInternersAlways: Bool) {
        self.config = config
        clock = QoSEngine(config: config)
        _ = clock.partition(partition)
        shards = (0..<workers).map { _ in
            ShardWorker(config: config, enricher: enricher, partition: 0, rebuildInternersAlways: rebuildInternersAlways)
        }
        merge = FlushMerge(shards: shards, direct: direct, cap: config.groupsPerWindowMax)
        self.wall = wall
        lateFlush = LateFlushPolicy(intervalMs: lateFlushIntervalMs)
        pending = Array(repeating: [], count: workers)
    }

    /// Every engine's counters added up (the router's: messages and rejects).
    var counters: EngineCounters {
        var c = clock.counters
        for s in shards {
            let o = s.engine.counters
            c.accepted += o.accepted; c.duplicates += o.duplicates; c.lateEvents += o.lateEvents
            c.sessionsOpened += o.sessionsOpened; c.sessionsClosed += o.sessionsClosed
            for (k, v) in o.rejected { c.rejected[k, default: 0] += v }
        }
        return c
    }

    /// Replays `stage` to its end; returns the base windows written.
    func run(_ stage: DecodeStage, onPoll: () -> Void) throws -> Int {
        for s in shards { s.start() }
        merge.start()
        defer {
            for s in shards { s.join() }
            try? merge.join()
        }
        while true {
            var events: [SourceEvent] = []
            let now = wall.wallMs()
            let n = try stage.pollDecoded(onRecord: { route($0, $1, now) }, onEvent: { events.append($0) })
            if let e = failure ?? merge.failure { throw e }
            for e in events {
                switch e {
                case .assigned(let ps): try stage.startAssigned(Dictionary(uniqueKeysWithValues: ps.map { ($0, nil) }))
                case .revoked: try stage.completeRevoke()
                case .error: break
                }
            }
            onPoll()
            if n == 0 && stage.ended { break }
        }
        finish()
        for s in shards { s.join() }
        try merge.join()
        if let e = failure { throw e }
        return merge.windowsWritten
    }

    @inline(__always)
    func route(_ r: RawRecord, _ items: DecodedItems, _ now: Int64) {
        guard failure == nil else { return }
        guard r.partition == partition else {
            failure = UserError("--workers > 1 reads one partition; this input has partition \(r.partition) — use --workers 1")
            return
        }
        if rangeStart == nil { rangeStart = r.position.description }
        clock.countMessage()
        var routed = false
        items.forEach(beacon: { b, _ in
            guard clock.admit(beaconAt: b.ts, id: b.sessionIdBytes(in: r.bytes), message: r.bytes, partition: partition, source: r.position, nowMs: now) else { return }
            var own = b
            // The worker gets the beacon without its record: own the lent id.
            if own.sessionIdSpan != nil { own.ownSessionId(from: r.bytes) }
            send(.beacon(own), to: shard(own.sessionId), ts: own.ts, now)
            routed = true
        }, other: { item in
            guard clock.admit(item, message: r.bytes, partition: partition, source: r.position, nowMs: now) else { return }
            switch item {
            case .cdnLog(let c): send(item, to: shard(c.cdn, c.account, c.owner, c.pop), ts: c.timeMs, now)
            case .beacon(let b): send(item, to: shard(b.sessionId), ts: b.ts, now)
            case .reject: return
            }
            routed = true
        }, ahead: { _, _ in })  // the router looks no sessions up: beacon and id bytes are still prefetched
        afterRecord(r.position, routed: routed, now)
    }

    /// Queues an admitted item for shard `k`, with the clock as of it.
    @inline(__always)
    private func send(_ item: DecodedItem, to k: Int, ts: Int64, _ now: Int64) {
        if ts < minAdmitted { minAdmitted = ts }
        pending[k].append(ShardItem(item: item, clock: clock.partition(partition).maxTs))
        if pending[k].count >= Self.batchItems { send(k, now) }
    }

    /// The one engine's flush rule after a record (`StreamDriver.afterRecord`).
    /// A window can only be due once the watermark reached `lowestDueEnd`;
    /// past it, the shards are asked after every record that sent them
    /// anything (a record that sent nothing changed no shard's windows).
    @inline(__always)
    func afterRecord(_ position: SourcePosition, routed: Bool, _ now: Int64) {
        let wm = clock.replayWatermark
        if clock.rejectsHeldOverCap {
            flush(wm, through: position.description, now)
        } else if routed && wm >= lowestDueEnd && earliestDueEnd(now) <= wm {
            flush(wm, through: position.description, now)
        }
    }

    /// The least end an unwritten base window can have: every contribution
    /// (an event, a close instant) is at or after the least admitted time,
    /// and windows ending at or before `writtenThrough` take late deltas.
    var lowestDueEnd: Int64 {
        guard minAdmitted != .max else { return .max }
        var start = config.windowStart(minAdmitted)
        if writtenThrough != .min { start = max(start, writtenThrough) }
        return start + config.windowMs
    }

    /// Asks every shard (after what was routed to it) for its earliest unwritten window end.
    func earliestDueEnd(_ now: Int64) -> Int64 {
        probes += 1
        probe.expect(shards.count)
        let c = clock.partition(partition).maxTs
        for k in shards.indices {
            send(k, now)
            if !shards[k].input.put(.probe(clock: c, probe)) { probe.answer(.max) }
        }
        return probe.wait()
    }

    /// A flush at `wm` on every shard, then its merge (`FlushMerge`).
    func flush(_ wm: Int64, through: String, _ now: Int64) {
        let release = lateFlush.due(wm)
        let c = clock.partition(partition).maxTs
        for k in shards.indices {
            send(k, now)
            shards[k].input.put(.flush(clock: c, watermark: wm, releaseLate: release))
        }
        let rejects = clock.takeRejects(nowMs: wall.wallMs())
        merge.requests.put(.init(rejects: rejects, range: "\(rangeStart ?? "")..\(through)", releasesLate: release))
        if release { lateFlush.released(at: wm, flush: 0) }  // the merge keeps the flush numbers
        if wm > writtenThrough { writtenThrough = config.windowStart(wm) }
    }

    /// End of input (`QoSEngine.finish` on every shard).
    func finish() {
        guard failure == nil else { return }
        for k in shards.indices {
            send(k, wall.wallMs())
            shards[k].input.put(.finish)
        }
        let rejects = clock.takeRejects(nowMs: wall.wallMs())
        merge.requests.put(.init(rejects: rejects, range: "\(rangeStart ?? "")..end", releasesLate: true))
    }

    func send(_ k: Int, _ now: Int64) {
        guard !pending[k].isEmpty else { return }
        shards[k].input.put(.items(pending[k], nowMs: now))
        pending[k].removeAll(keepingCapacity: true)
    }

    /// The shard of a session id: FNV-1a 64 of its bytes (stable across runs and machines).
    @inline(__always)
    func shard(_ id: String) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var id = id
        id.withUTF8 { for b in $0 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 } }
        return Int(h % UInt64(shards.count))
    }

    /// The shard of a `cdn_edge` group: all of a group's records go to one
    /// shard, so its sketches are built as by the one engine.
    func shard(_ parts: String...) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for p in parts {
            var p = p
            p.withUTF8 { for b in $0 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 } }
            h = (h ^ 0xff) &* 0x100_0000_01b3
        }
        return Int(h % UInt64(shards.count))
    }
}
