import Foundation
import QoSCore

/// An admitted item (a beacon or a CDN log record) for one shard, with the
/// router's clock (the partition's max admitted `ts`) once it is applied.
struct ShardItem {
    var item: DecodedItem
    var clock: Int64
}

/// What the router sends a shard, in input order (docs/architecture.md "Sharding").
enum ShardMessage {
    /// Items of this shard's sessions; `nowMs` is the engine clock of the future check.
    case items([ShardItem], nowMs: Int64)
    /// Take the clock, close what it makes due, and answer the earliest end
    /// of an unwritten window (`QoSEngine.nextDueEnd`).
    case probe(clock: Int64, ProbeReplies)
    /// Take the clock and flush at `watermark`, as the one engine would.
    case flush(clock: Int64, watermark: Int64, releaseLate: Bool)
    /// End of input: close every session, write every window.
    case finish
}

/// One shard's part of one flush: its windows and the strings their keys refer to.
struct ShardFlush {
    var windows: [WindowState<DataSketchesKit>]
    var names: [String]
}

/// The answers of every shard to one probe.
final class ProbeReplies: @unchecked Sendable {
    private let cond = NSCondition()
    private var left = 0
    private var earliest = Int64.max

    /// Before sending a probe to `shards` shards.
    func expect(_ shards: Int) {
        cond.withLock { left = shards; earliest = .max }
    }

    func answer(_ nextDueEnd: Int64) {
        cond.withLock {
            earliest = min(earliest, nextDueEnd)
            left -= 1
            if left == 0 { cond.broadcast() }
        }
    }

    /// The earliest unwritten window end over all shards, once all answered.
    func wait() -> Int64 {
        cond.lock()
        defer { cond.unlock() }
        while left > 0 { cond.wait() }
        return earliest
    }
}

/// One engine thread of a sharded replay: a `QoSEngine` that sees the
/// sessions whose id hashes to it and takes its clock from the router
/// (`QoSEngine.advanceClock`), so every decision that depends on the
/// watermark is the one engine's decision. It never rejects: the router
/// admitted every item it sends, against the same clock.
final class ShardWorker: @unchecked Sendable {
    let engine: QoSEngine<DataSketchesKit>
    let partition: Int32
    let input = BoundedQueue<ShardMessage>(capacity: 4)
    /// Its part of each flush, in flush order (the merge takes them).
    let flushes = BoundedQueue<ShardFlush>(capacity: 4)
    private let done = DispatchSemaphore(value: 0)
    private var started = false

    init(config: EngineConfig, enricher: Enricher, partition: Int32, rebuildInternersAlways: Bool) {
        engine = QoSEngine(config: config, enricher: enricher)
        engine.internerRebuild.always = rebuildInternersAlways
        self.partition = partition
        // The partition exists from the start, so each flush marks its windows
        // written even in a shard that has seen no session yet.
        _ = engine.partition(partition)
    }

    func start() {
        started = true
        Thread { [self] in loop(); done.signal() }.start()
    }

    /// Stops taking messages and waits for the thread (once).
    func join() {
        input.close()
        if started { done.wait(); started = false }
    }

    private func loop() {
        let pid = partition
        let source = SourcePosition.memory(name: "shard", partition: pid, index: 0)
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        messages: while let m = try? input.take() {
            switch m {
            case .items(let items, let now):
                for x in items {
                    engine.advanceClock(partition: pid, to: x.clock)
                    engine.ingest(x.item, message: none, partition: pid, source: source, nowMs: now)
                }
            case .probe(let clock, let replies):
                engine.advanceClock(partition: pid, to: clock)
                replies.answer(engine.nextDueEnd)
            case .flush(let clock, let watermark, let releaseLate):
                engine.advanceClock(partition: pid, to: clock)
                let windows = engine.flush(watermark: watermark, releaseLate: releaseLate)
                guard flushes.put(ShardFlush(windows: windows, names: engine.interner.strings)) else { break messages }
            case .finish:
                let windows = engine.finish()
                guard flushes.put(ShardFlush(windows: windows, names: engine.interner.strings)) else { break messages }
            }
        }
        // The router's next put fails instead of waiting on a thread that is gone.
        input.close()
        flushes.close()
    }
}
