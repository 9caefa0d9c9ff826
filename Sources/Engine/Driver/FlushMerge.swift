import Foundation
import QoSCore

/// The merge thread of a sharded replay (docs/architecture.md "Sharding"):
/// for each flush the router decided, it takes every shard's part (in
/// flush order), merges them into one flush — every table's groups renamed
/// into one interner and merged (counters summed, sketches merged, rows
/// concatenated; the writer sorts rows) — and hands it, with the router's
/// reject rows, to `DirectPublish` as the one engine's flush would have been.
/// Flush numbering and the late-delta range (`lateFrom`) are kept here,
/// because only the merge knows whether a flush was empty.
final class FlushMerge: @unchecked Sendable {
    struct Request {
        /// Reject rows held by the router since the previous flush, in input order.
        var rejects: [RejectRow]
        /// The input range, `first..through`.
        var range: String
        /// This flush released the late deltas (`LateFlushPolicy`).
        var releasesLate: Bool
    }

    let shards: [ShardWorker]
    let direct: DirectPublish
    let cap: Int
    let requests = BoundedQueue<Request>(capacity: 4)
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var error: Error?
    private var started = false
    /// Base windows written (read after `join`).
    private(set) var windowsWritten = 0
    /// The first flush whose late contributions the pending late deltas hold.
    private var pendingSince = 1

    init(shards: [ShardWorker], direct: DirectPublish, cap: Int) {
        self.shards = shards
        self.direct = direct
        self.cap = cap
    }

    var failure: Error? { lock.withLock { error } }

    func start() {
        started = true
        Thread { [self] in loop(); done.signal() }.start()
    }

    /// Waits until every request put is merged and submitted.
    func join() throws {
        requests.close()
        if started { done.wait(); started = false }
        if let failure { throw failure }
    }

    private func loop() {
        do {
            while let r = try requests.take() {
                var parts: [(windows: [WindowState<DataSketchesKit>], names: [String])] = []
                for s in shards {
                    guard let f = try s.flushes.take() else { throw UserError("a replay worker stopped before the end of input") }
                    parts.append((f.windows, f.names))
                }
                let merged = WindowState.merged(parts, cap: cap)
                if try direct.submit(windows: merged.windows, rejects: r.rejects, names: merged.names,
                                     range: r.range, lateFrom: pendingSince) {
                    windowsWritten += merged.windows.filter { !$0.isDelta }.count
                }
                if r.releasesLate { pendingSince = direct.flushes + 1 }
            }
        } catch {
            lock.withLock { self.error = error }
            requests.close()
            for s in shards { s.flushes.close(); s.input.close() }
        }
    }
}
