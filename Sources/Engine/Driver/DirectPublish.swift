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
    /// Window tables submitted with an `__other__` row (`WindowState.tablesAtGroupCap`).
    private(set) var tablesAtGroupCap: Int64 = 0
    /// The position of the first record (the start of every flush's source range).
    var rangeStart = ""
    /// Flushes submitted and not yet published, at most this many: a flush
    /// holds its windows (their sessions rows) until published.
    static let pendingMax = 3
    /// Guards everything below; signalled when a flush is added or published
    /// and when the publish thread ends.
    private let done = NSCondition()
    /// Submitted flushes in submit order, each until it is published; the
    /// publish thread works on the first.
    private var pending: [FlushWork] = []
    private var closed = false
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
    /// Returns whether anything was submitted. While `pendingMax` flushes
    /// are pending, the caller encodes their files instead of sleeping
    /// (`FlushWork.help`): the publish thread, which also syncs and renames
    /// every file, is what a replay waits on when windows close quickly.
    func submit(windows: [WindowState<DataSketchesKit>], rejects: [RejectRow], names: [String],
                range: String, lateFrom: Int) throws -> Bool {
        guard !windows.isEmpty || !rejects.isEmpty else { return false }
        if !started {
            started = true
            Thread { [self] in publishLoop() }.start()
        }
        flushes += 1
        tablesAtGroupCap += Int64(windows.reduce(0) { $0 + $1.tablesAtGroupCap })
        let work = FlushWork(Job(windows: windows, rejects: rejects, names: names, flush: flushes,
                                 lateFrom: lateFrom, range: range), writer)
        done.lock()
        defer { done.unlock() }
        while error == nil && !closed && pending.count >= Self.pendingMax { helpOrWait() }
        if let error { throw error }
        guard !closed else { return false }
        pending.append(work)
        done.broadcast()
        return true
    }

    /// Waits until every submitted flush is published; returns the file
    /// count. The caller (the engine's thread, done with its input) encodes
    /// files of the flushes still pending meanwhile: the last flushes of a
    /// replay come in quick succession (`FlushWork`).
    func finish() throws -> Int {
        done.lock()
        defer { done.unlock() }
        closed = true
        done.broadcast()
        guard started else { return 0 }
        while !finished { helpOrWait() }
        if let error { throw error }
        return files
    }

    /// Stops taking flushes (after an error elsewhere); what was submitted is still published.
    func close() { done.withLock { closed = true; done.broadcast() } }

    /// With `done` held: encodes units of the oldest pending flush that has
    /// any left to take (the lock released meanwhile), or waits for a signal.
    private func helpOrWait() {
        if let work = pending.first(where: \.hasUnitsToTake) {
            done.unlock()
            work.help()
            done.lock()
        } else {
            done.wait()
        }
    }

    /// The publish thread: each pending flush in order, its files encoded
    /// (with whoever helps) and published.
    private func publishLoop() {
        var failure: Error?
        var count = 0
        done.lock()
        while failure == nil {
            while pending.isEmpty && !closed { done.wait() }
            guard let work = pending.first else { break }
            done.unlock()
            do {
                let planned = try work.files()
                try writer.publish(planned)
                try dump?.record(planned)
                count += planned.count
            } catch {
                failure = error
            }
            done.lock()
            pending.removeFirst()
            done.broadcast()
        }
        finished = true
        error = failure
        files = count
        done.broadcast()
        done.unlock()
    }
}

/// The encoding of one flush, cut into units any thread may take: each
/// on-time window (its own files: `WindowFileWriter.plan` without
/// `combineBaseByHour`), then the late deltas, then the rejects. `files()`
/// returns them in unit order, the order `plan` + `planRejects` give on one
/// thread, so the files, their bytes and their publish order do not depend
/// on who encoded what.
final class FlushWork: @unchecked Sendable {
    typealias PlannedFile = WindowFileWriter.PlannedFile
    private let units: [() throws -> [PlannedFile]]
    private let cond = NSCondition()
    /// Guarded by `cond`: the next unit to take, how many taken units ended, their files.
    private var next = 0
    private var ended = 0
    private var results: [[PlannedFile]]
    private var failure: Error?

    init(_ job: DirectPublish.Job, _ writer: WindowFileWriter) {
        let (names, flush, range, lateFrom) = (job.names, job.flush, job.range, job.lateFrom)
        var units: [() throws -> [PlannedFile]] = job.windows.filter { !$0.isDelta }.map { w in
            { try writer.plan([w], names: names, flush: flush, sourceRange: range, lateFrom: lateFrom) }
        }
        let deltas = job.windows.filter(\.isDelta)
        if !deltas.isEmpty {
            units.append { try writer.plan(deltas, names: names, flush: flush, sourceRange: range, lateFrom: lateFrom) }
        }
        let rejects = job.rejects
        if !rejects.isEmpty {
            units.append { try writer.planRejects(rejects, flush: flush, sourceRange: range) }
        }
        self.units = units
        results = Array(repeating: [], count: units.count)
    }

    /// Whether a unit is left for `help` to take.
    var hasUnitsToTake: Bool { cond.withLock { next < units.count && failure == nil } }

    /// Encodes units until none is left to take (or one failed).
    func help() {
        while true {
            cond.lock()
            guard next < units.count, failure == nil else { cond.unlock(); return }
            let i = next
            next += 1
            cond.unlock()
            let outcome = Result { try units[i]() }
            cond.lock()
            switch outcome {
            case .success(let files): results[i] = files
            case .failure(let e): if failure == nil { failure = e }
            }
            ended += 1
            cond.broadcast()
            cond.unlock()
        }
    }

    /// Encodes units as `help` does, waits for those other threads took,
    /// and returns every unit's files in unit order (or the first failure).
    func files() throws -> [PlannedFile] {
        help()
        cond.lock()
        defer { cond.unlock() }
        while ended < next { cond.wait() }
        if let failure { throw failure }
        assert(next == units.count, "a unit was left unencoded")
        return results.flatMap { $0 }
    }
}
