import Foundation
import QoSCore

/// The epoch of `qos replay`: flush → plan → publish, with no snapshot and
/// no commit — a replay is run again from its input, never resumed, so it
/// keeps no manifests or checkpoints. The driver flushes after any record
/// that makes a window due (`StreamDriver.afterRecord`); the flushed windows
/// and rejects are encoded to Parquet and published on a thread of their
/// own, in flush order, while the engine goes on. Flushes are numbered 1, 2,
/// … (late-delta and reject file names) and each names the input from the
/// first record to the one that made it due (`videoqos.source` metadata).
final class DirectPublish: @unchecked Sendable {
    struct Job {
        var windows: [WindowState<DataSketchesKit>]
        var rejects: [RejectRow]
        var names: [String]
        var flush: Int
        /// The first flush whose late contributions its late deltas hold (`LateFlushPolicy`).
        var lateFrom: Int
        var range: String
    }

    let writer: WindowFileWriter
    /// Also every file's rows as JSON lines (`qos replay --json-dump`); set before the first flush.
    var dump: JSONDump?
    /// Flushes submitted so far.
    private(set) var flushes = 0
    /// The position of the first record (the start of every flush's source range).
    var rangeStart = ""
    private let queue = BoundedQueue<Job>(capacity: 2)
    private let done = NSCondition()
    private var finished = false
    private var error: Error?
    private var files = 0
    private var started = false

    init(writer: WindowFileWriter) {
        self.writer = writer
    }

    /// One epoch: `windows` (already flushed by the engine) and the reject
    /// rows held since the last one, ingested at `nowMs`. Returns whether
    /// anything was submitted.
    @discardableResult
    func run(engine: QoSEngine<DataSketchesKit>, windows: [WindowState<DataSketchesKit>], nowMs: Int64,
             through: String, lateFrom: Int) throws -> Bool {
        let rejects = engine.takeRejects(nowMs: nowMs)
        // The interner's strings as they are now: the engine may intern more while this encodes.
        return try submit(windows: windows, rejects: rejects, names: engine.interner.strings,
                          range: "\(rangeStart)..\(through)", lateFrom: lateFrom)
    }

    /// Queues one flush for encoding and publishing (numbered here) unless
    /// it is empty; `names`: the strings the windows' group keys refer to.
    /// Returns whether anything was submitted.
    func submit(windows: [WindowState<DataSketchesKit>], rejects: [RejectRow], names: [String],
                range: String, lateFrom: Int) throws -> Bool {
        guard !windows.isEmpty || !rejects.isEmpty else { return false }
        if let e = done.withLock({ error }) { throw e }
        if !started {
            started = true
            Thread { [self] in publishLoop() }.start()
        }
        flushes += 1
        queue.put(Job(windows: windows, rejects: rejects, names: names, flush: flushes,
                      lateFrom: lateFrom, range: range))
        return true
    }

    /// Waits until every submitted flush is published; returns the file count.
    func finish() throws -> Int {
        queue.close()
        guard started else { return 0 }
        done.lock()
        defer { done.unlock() }
        while !finished { done.wait() }
        if let error { throw error }
        return files
    }

    /// Stops taking flushes (after an error elsewhere); what was submitted is still published.
    func close() { queue.close() }

    /// The encode + publish thread.
    private func publishLoop() {
        var failure: Error?
        var count = 0
        do {
            while let job = try queue.take() {
                let planned = try writer.plan(job.windows, names: job.names, flush: job.flush, sourceRange: job.range,
                                              lateFrom: job.lateFrom)
                    + writer.planRejects(job.rejects, flush: job.flush, sourceRange: job.range)
                try writer.publish(planned)
                try dump?.record(planned)
                count += planned.count
            }
        } catch {
            failure = error
            queue.close()
        }
        done.lock()
        finished = true
        self.error = failure
        files = count
        done.broadcast()
        done.unlock()
    }
}
