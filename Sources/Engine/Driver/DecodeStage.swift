import Foundation
import QoSCore

/// The decode stage on a thread of its own: it polls a `RecordSource`,
/// takes each batch of records out of the source's buffers (copied, or
/// lent in place from a mapped file: `DecodedBatch.lend`) and decodes them
/// with the input format; the driver (`StreamDriver`, on the engine's thread)
/// polls this stage (`pollDecoded`) and applies the already-decoded items
/// in input order, so output does not depend on the
/// threading. Ownership changes travel in order with the records: the decode
/// thread waits until the driver has answered an assignment
/// (`startAssigned`) or a revocation (`completeRevoke`) before it polls
/// again, so the source is only ever polled from the decode thread.
/// `qos replay` reads its files through it; `docs/architecture.md`
/// (*Threads*) says why `qos run` decodes in the poll callback instead.
///
/// With `decoders` > 1 (a format that decodes each record alone) the
/// thread that polls only puts records into batches, and `decoders`
/// worker threads decode them: batch *k* goes through lane *k* mod
/// `decoders`, and the driver takes item *k* from that lane, so items
/// still arrive in input order. Ownership changes and idle polls take
/// their turn in the lanes like batches.
final class DecodeStage: RecordSource, @unchecked Sendable {
    enum Item {
        case batch(DecodedBatch)
        case event(SourceEvent)
        /// A poll that returned nothing (the driver's poll returns, so its policy still runs).
        case idle
    }

    enum Reply {
        case start([Int32: Int64?])
        case revoked
    }

    let source: any RecordSource
    let format: any RecordFormat
    let name: String
    let partitionCount: Int
    let batchRecords: Int
    /// A finite source (files): the stage ends when every owned partition
    /// reached the source's end offset.
    let finite: Bool
    /// One decode thread: its items, in order (`decoders == 1`).
    let queue = BoundedQueue<Item>(capacity: 4)
    /// Several: a decode worker per lane (`decoders > 1`).
    private let lanes: [Lane]
    /// Poll thread: the lane of the next item it puts.
    private var putTurn = 0
    /// Engine thread: the lane of the next item it takes.
    private var takeTurn = 0
    let replies = BoundedQueue<Reply>(capacity: 1)
    private let done = DispatchSemaphore(value: 0)
    private var started = false
    private var closed = false
    /// Batches the driver finished with, for the decode thread to fill
    /// again: their buffers keep their capacity, so a batch costs no large
    /// allocation (fresh pages the kernel must zero) and no regrowth copies.
    private let spares = NSLock()
    private var spareBatches: [DecodedBatch] = []
    private static let sparesMax = 8
    /// Engine side: the offset after the last record delivered, per partition.
    private var deliveredNext: [Int32: Int64] = [:]
    /// Engine side: the decode thread finished and its queue is drained.
    private(set) var ended = false
    /// Engine side: bytes of the records delivered so far.
    private(set) var bytesDelivered: Int64 = 0
    /// Engine side: the last batch delivered read its records in place (tests).
    private(set) var lastBatchWasLent = false

    /// `decoders`: threads that decode, used only when the format decodes
    /// each record alone (`RecordFormat.decodesRecordsAlone`); else one.
    init(_ source: any RecordSource, format: any RecordFormat, batchRecords: Int = 4096, finite: Bool,
         decoders: Int = 1) {
        precondition(decoders >= 1, "at least one decoder")
        self.source = source
        self.format = format
        name = source.name
        partitionCount = source.partitionCount
        self.batchRecords = batchRecords
        self.finite = finite
        let n = format.decodesRecordsAlone ? decoders : 1
        lanes = n > 1 ? (0..<n).map { _ in Lane() } : []
    }

    /// How many threads decode.
    var decoders: Int { Swift.max(1, lanes.count) }

    /// Starts the decode thread and the lanes' workers (at the first poll, if not before).
    func start() {
        guard !started else { return }
        started = true
        for lane in lanes {
            Thread { [self] in lane.work(format: format); done.signal() }.start()
        }
        Thread { [self] in decodeLoop(); done.signal() }.start()
    }

    /// A decode worker's queues: staged batches in, decoded batches out;
    /// other items pass through in their turn.
    final class Lane: @unchecked Sendable {
        let input = BoundedQueue<Item>(capacity: 2)
        let output = BoundedQueue<Item>(capacity: 2)

        func work(format: any RecordFormat) {
            do {
                while let item = try input.take() {
                    if case .batch(let b) = item { b.decodeStaged(format: format) }
                    guard output.put(item) else { return input.close() }
                }
                output.close()
            } catch {
                output.close(error)
            }
        }

        func close() {
            input.close()
            output.close()
        }
    }

    // MARK: The poll thread's side of the queues

    /// Hands the next item on, in turn; false once the driver stopped.
    private func put(_ item: Item) -> Bool {
        if lanes.isEmpty { return queue.put(item) }
        defer { putTurn = (putTurn + 1) % lanes.count }
        return lanes[putTurn].input.put(item)
    }

    /// The driver closed the stage.
    private var stopped: Bool { lanes.isEmpty ? queue.isClosed : lanes[putTurn].input.isClosed }

    /// No more items; with an error, the driver's next poll throws it, after the items before it.
    private func finish(_ error: Error? = nil) {
        if lanes.isEmpty { return queue.close(error) }
        for (i, lane) in lanes.enumerated() { lane.input.close(i == putTurn ? error : nil) }
    }

    // MARK: The decode thread

    private func decodeLoop() {
        do {
            var next: [Int32: Int64] = [:]
            var formats = SourceFormats(base: format, stream: name)
            var batch = takeSpare()
            let staging = !lanes.isEmpty
            // A mapped input file's lines are read in place, not copied
            // (`DecodedBatch.lend`); one poll fills one batch from one file.
            let files = source as? FileRecordSource
            while !stopped {
                var events: [SourceEvent] = []
                let n: Int
                if staging, let files {
                    // Lines staged as they are cut: no `RawRecord` per line.
                    // One poll fills one batch: a constant for the closures
                    // (the variable, captured, was retained and released per line).
                    let filling = batch
                    n = try files.pollLines(maxRecords: batchRecords, onEvent: { events.append($0) }, onFile: { name in
                        filling.lend(files.lender)
                        filling.setFile(name)
                    }, onLine: { line, number, offset in filling.stageLine(line, line: number, offset: offset) })
                } else {
                    n = try source.poll(maxRecords: batchRecords, timeoutMs: 100, onRecord: { r in
                        if batch.records.isEmpty { batch.lend(files?.lender) }
                        if staging { batch.stage(r) } else { batch.append(r, format: formats.format(for: r)) }
                    }, onEvent: { events.append($0) })
                }
                if n > 0 {
                    for (p, o) in batch.nextOffsets() { next[p] = o }
                    guard put(.batch(batch)) else { break }
                    batch = takeSpare()
                }
                for e in events {
                    guard put(.event(e)) else { return finish() }
                    switch e {
                    case .assigned(let ps):
                        guard case .start(let start)? = try replies.take() else { return finish() }
                        for p in ps { next[p] = (start[p] ?? nil) ?? 0 }
                        try source.startAssigned(start)
                    case .revoked(let ps, _):
                        guard case .revoked? = try replies.take() else { return finish() }
                        for p in ps { next[p] = nil }
                        try source.completeRevoke()
                    case .error:
                        break
                    }
                }
                if n == 0 && events.isEmpty {
                    if finite, !next.isEmpty, try next.allSatisfy({ try $0.value >= source.endOffset($0.key) }) { break }
                    guard put(.idle) else { break }
                }
            }
            finish()
        } catch {
            finish(error)
        }
    }

    /// A batch from the spares, emptied, or a new one.
    private func takeSpare() -> DecodedBatch {
        let b = spares.withLock { spareBatches.popLast() }
        guard let b else { return DecodedBatch() }
        b.removeAll()
        return b
    }

    /// The driver delivered `b`: it may be filled again.
    private func recycle(_ b: DecodedBatch) {
        spares.withLock { if spareBatches.count < Self.sparesMax { spareBatches.append(b) } }
    }

    // MARK: The engine's side (RecordSource)

    /// As a plain source: the records of the next batch (a caller that
    /// decodes them itself) or the next ownership change.
    func poll(maxRecords: Int, timeoutMs: Int, onRecord: (RawRecord) -> Void,
              onEvent: (SourceEvent) -> Void) throws -> Int {
        try pollDecoded(onRecord: { r, _ in onRecord(r) }, onEvent: onEvent)
    }

    /// Delivers the next decoded batch, each record with its items, or the
    /// next ownership change; blocks until the decode thread has one. The
    /// decode thread polls with `batchRecords` and a 100 ms timeout.
    func pollDecoded(onRecord: (RawRecord, DecodedItems) -> Void,
                     onEvent: (SourceEvent) -> Void) throws -> Int {
        start()
        let taken: Item?
        if lanes.isEmpty {
            taken = try queue.take()
        } else {
            defer { takeTurn = (takeTurn + 1) % lanes.count }
            taken = try lanes[takeTurn].output.take()
        }
        guard let item = taken else {
            ended = true
            return 0
        }
        switch item {
        case .batch(let b):
            // A mapped file that shrank since its lines were lent: no record
            // of the batch is applied, or none after it (`DecodedBatch.lend`).
            try b.checkLent()
            b.deliver(onRecord)
            try b.checkLent()
            for (p, next) in b.nextOffsets() { deliveredNext[p] = next }
            bytesDelivered += Int64(b.recordBytes)
            lastBatchWasLent = b.lender != nil
            let n = b.records.count
            recycle(b)  // the decode thread may refill it now: not read after this
            return n
        case .event(let e):
            if case .revoked(let ps, _) = e { for p in ps { deliveredNext[p] = nil } }
            onEvent(e)
            return 0
        case .idle:
            return 0
        }
    }

    func startAssigned(_ start: [Int32: Int64?]) throws {
        for (p, o) in start { deliveredNext[p] = o ?? 0 }
        _ = replies.put(.start(start))
    }

    func completeRevoke() throws { _ = replies.put(.revoked) }

    /// Offsets are durable: the source is told (librdkafka's commit may be called from any thread).
    func commit(_ next: [Int32: Int64]) { source.commit(next) }

    /// A finite source's end, once the decode thread read all of it and the
    /// driver took every batch; unknown (`.max`) before.
    func endOffset(_ partition: Int32) throws -> Int64 { ended ? deliveredNext[partition] ?? 0 : .max }

    /// The decode thread polls on its own; nothing to ask for.
    func idle(next: [Int32: Int64]) {}

    /// Not known across the thread boundary.
    func lag() -> [Int32: Int64] { [:] }

    func checkStillAssigned() throws { try source.checkStillAssigned() }

    /// Stops the decode thread, waits for it, and closes the source.
    func close() {
        guard !closed else { return }
        closed = true
        queue.close()
        for lane in lanes { lane.close() }
        replies.close()
        if started { for _ in 0 ..< 1 + lanes.count { done.wait() } }
        source.close()
    }
}

/// A bounded, blocking single-producer / single-consumer queue between two
/// of the driver's threads. `nil` from `take()` means the producer finished.
final class BoundedQueue<T>: @unchecked Sendable {
    private let cond = NSCondition()
    private var items: [T] = []
    private var closed = false
    private var failure: Error?
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    var isClosed: Bool { cond.withLock { closed } }

    /// Blocks while full; false (the item dropped) once the queue is closed.
    @discardableResult
    func put(_ x: T) -> Bool {
        cond.lock()
        defer { cond.unlock() }
        while items.count >= capacity && !closed { cond.wait() }
        guard !closed else { return false }
        items.append(x)
        cond.broadcast()
        return true
    }

    func take() throws -> T? {
        cond.lock()
        defer { cond.unlock() }
        while items.isEmpty && !closed { cond.wait() }
        if items.isEmpty {
            if let e = failure { throw e }
            return nil
        }
        cond.broadcast()
        return items.removeFirst()
    }

    /// Ends the stream; with an error, the consumer's next `take` throws it
    /// once the items put before are taken.
    func close(_ error: Error? = nil) {
        cond.lock()
        closed = true
        if failure == nil { failure = error }
        cond.broadcast()
        cond.unlock()
    }
}

/// Records copied out of the source (one buffer per batch, so reject
/// payloads can still be cut from them) with their decoded items, in input
/// order. One thread at a time uses a batch: the decode thread fills it,
/// the driver delivers it and hands it back (`DecodeStage.recycle`).
///
/// Beacons are stored apart from the other items (rejects, CDN records) and
/// lent in place to the engine's thread (`DecodedItems`): a beacon is
/// copied once, into `beacons`, never wrapped in a `DecodedItem` and copied
/// out again. The session-table hash of each lent session id is computed
/// here, on the decode thread, not on the engine's.
final class DecodedBatch: @unchecked Sendable {
    /// Plain data (no references), so the batch copies and empties its
    /// records without a reference count or a per-record destroy
    /// (bench/results/speed.md §14).
    struct Record {
        var range: Range<Int>
        var partition: Int32
        var offset: Int64
        /// Where the record came from: `positions[position]`, or (-1) line
        /// `line` of the batch's file (`fileName`), a position built when
        /// the record is delivered: holding it here cost a reference count
        /// update of the name per record, and the decode thread's time.
        var position: Int32
        var line: Int64
        /// The record's items: `order[first ..< first + count]`.
        var first: Int
        var count: Int
    }

    /// The records' bytes, copied in (`stage`), unless the batch is lent
    /// them (`lend`).
    var bytes: [UInt8] = []
    /// The source that lent the records' bytes in place (a mapped input
    /// file), held so its mapping outlives the batch; nil: copied into `bytes`.
    private(set) var lender: ByteSource?
    /// The lender's mapping, read once (every lent record lies in it).
    private var lentMapping: UnsafeRawBufferPointer?
    /// With a lender: where the first record starts (records' ranges and
    /// `idStarts` count from here), and how far the last one ends.
    private var lentBase: UnsafeRawPointer?
    private var lentEnd = 0
    /// Bytes of the records (lines without their line ends), lent or copied.
    private(set) var recordBytes = 0
    var records: [Record] = []
    /// The positions of the records that are not lines of `fileName`.
    var positions: [SourcePosition] = []
    /// The batch's beacons are `beacons[0..<beaconCount]`; the slots past
    /// it hold beacons of an earlier batch, kept so that a decoded beacon
    /// is swapped into its slot, not copied (a copy and a destroy per line:
    /// ≈ 2.3 % of a replay's instructions; bench/results/speed.md section 42).
    var beacons: [Beacon] = []
    private(set) var beaconCount = 0
    /// `SessionTable.hash` of each beacon's lent session id (0 when not lent).
    var idHashes: [UInt32] = []
    /// Where each beacon's lent session id starts in `bytes` (-1 when not lent).
    var idStarts: [Int32] = []
    var others: [DecodedItem] = []
    /// Every item in input order: `i >= 0` is `beacons[i]`, `i < 0` is `others[~i]`.
    var order: [Int32] = []
    /// The name of the batch's first record's file.
    var fileName = SourceName.empty
    /// The decoder's reader, kept across records.
    var scratch = DecodeScratch()

    /// Items in a batch (Int32 indices; a batch holds a few thousand records).
    static let itemsMax = Int(Int32.max)

    /// Empties the batch, keeping its buffers' capacity.
    func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        lender = nil
        lentMapping = nil
        lentBase = nil
        lentEnd = 0
        recordBytes = 0
        records.removeAll(keepingCapacity: true)
        positions.removeAll(keepingCapacity: true)
        beaconCount = 0
        idHashes.removeAll(keepingCapacity: true)
        idStarts.removeAll(keepingCapacity: true)
        others.removeAll(keepingCapacity: true)
        order.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        run = -1
    }

    /// Before the first record: the records that follow lie in `source`'s
    /// mapping (nil: they are valid only during the poll, and are copied).
    ///
    /// Lent, a line is read where the file's pages are: the thread that
    /// reads the file no longer copies each line into the batch (a write
    /// of every input byte, and a read of it on another core;
    /// bench/results/speed.md §17). The batch holds `source`, so the
    /// mapping outlives it. A file that shrinks while mapped reads as
    /// zeros where its pages went (`MappedInputGuard`); `checkLent` says
    /// so, and the driver checks before and after it applies a batch.
    func lend(_ source: ByteSource?) {
        precondition(records.isEmpty, "a batch is lent its bytes before its first record")
        lender = source
        lentMapping = source?.mapped
        precondition(source == nil || lentMapping != nil, "a lender is mapped")
    }

    /// The records' bytes: lent or copied.
    @inline(__always)
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if let lentBase { return try body(UnsafeRawBufferPointer(start: lentBase, count: lentEnd)) }
        return try bytes.withUnsafeBytes(body)
    }

    /// Throws when the lender's file shrank (its lent bytes may be zeros).
    func checkLent() throws { try lender?.checkMapped() }

    /// Takes `r` in and decodes it with `format`.
    func append(_ r: RawRecord, format: any RecordFormat) {
        stage(r)
        let i = records.count - 1
        withBytes { decodeRecord(i, in: $0, format: format) }
    }

    /// Takes `r` in (lent, or copied), not decoded yet: `decodeStaged`
    /// decodes it (on a decode worker, `DecodeStage.Lane`).
    func stage(_ r: RawRecord) {
        let start = place(r.bytes)
        var position: Int32 = -1
        var line: Int64 = 0
        if case .file(let name, let n) = r.position, name == fileName || records.isEmpty {
            // The batch's file is that of its first record; a line of a
            // later file in the same batch keeps its own position.
            fileName = name
            line = n
        } else {
            precondition(positions.count < Self.itemsMax, "decoded batch too large")
            position = Int32(positions.count)
            positions.append(r.position)
        }
        records.append(Record(range: start..<(start + r.bytes.count), partition: r.partition, offset: r.offset,
                              position: position, line: line, first: order.count, count: 0))
        noteNext(r.partition, r.offset)
    }

    /// Before the first record: the lines staged next (`stageLine`) are
    /// lines of the file `name`.
    func setFile(_ name: SourceName) {
        precondition(records.isEmpty, "a batch's file is set before its first record")
        fileName = name
    }

    /// `stage` for line `line` of the batch's file (`setFile`), the record at
    /// `offset` of partition 0 (`FileRecordSource.pollLines`).
    func stageLine(_ bytes: UnsafeRawBufferPointer, line: Int64, offset: Int64) {
        let start = place(bytes)
        records.append(Record(range: start..<(start + bytes.count), partition: 0, offset: offset,
                              position: -1, line: line, first: order.count, count: 0))
        noteNext(0, offset)
    }

    /// Where a record's bytes start in the batch: lent in place (in the
    /// lender's mapping, counted from the batch's first record), or copied
    /// to the end of `bytes`.
    @inline(__always)
    private func place(_ b: UnsafeRawBufferPointer) -> Int {
        recordBytes += b.count
        if let m = lentMapping, let at = b.baseAddress {
            let base = lentBase ?? at
            lentBase = base
            let start = at - base
            precondition(start >= 0 && at >= m.baseAddress! && at + b.count <= m.baseAddress! + m.count
                         && start + b.count <= Int(Int32.max),
                         "a lent record lies in its lender's mapping, after the batch's first")
            lentEnd = Swift.max(lentEnd, start + b.count)
            return start
        }
        precondition(lender == nil || b.isEmpty, "a lent batch takes only lent records")
        let start = lender == nil ? bytes.count : lentEnd
        bytes.append(contentsOf: b)
        return start
    }

    /// Decodes every staged record, in order, with `format` (one that
    /// decodes each record alone: `RecordFormat.decodesRecordsAlone`).
    func decodeStaged(format: any RecordFormat) {
        precondition(order.isEmpty, "a batch is decoded once")
        // One access to `bytes` for the whole batch: taken per record, it
        // cost a retain and a release of the buffer per line
        // (bench/results/speed.md §14).
        withBytes { all in
            for i in records.indices { decodeRecord(i, in: all, format: format) }
        }
    }

    /// Decodes record `i` from `all`, the batch's `bytes`; its items follow
    /// those of the records before it.
    @inline(__always)
    private func decodeRecord(_ i: Int, in all: UnsafeRawBufferPointer, format: any RecordFormat) {
        let range = records[i].range
        let first = order.count
        let record = UnsafeRawBufferPointer(rebasing: all[range])
        format.decode(record, scratch: &scratch, beacon: { b in
            precondition(beaconCount < Self.itemsMax, "decoded batch too large")
            order.append(Int32(beaconCount))
            // The lent id's span read in place (`sessionIdBytes(in:)`, a call
            // that took a copy of the beacon first).
            if let span = b.sessionIdSpan {
                let id = UnsafeRawBufferPointer(rebasing: record[Int(span.lowerBound)..<Int(span.upperBound)])
                idHashes.append(SessionTable.hash(id))
                idStarts.append(Int32(range.lowerBound) + span.lowerBound)
            } else {
                idHashes.append(0)
                idStarts.append(-1)
            }
            // The decoder's beacon takes the old slot's contents, which its
            // reset before the next object clears.
            if beaconCount < beacons.count { swap(&beacons[beaconCount], &b) } else { beacons.append(b) }
            beaconCount += 1
        }, other: { item in
            precondition(others.count < Self.itemsMax, "decoded batch too large")
            order.append(~Int32(others.count))
            others.append(item)
        })
        records[i].first = first
        records[i].count = order.count - first
    }

    /// The offset after each partition's last record in the batch, in order
    /// of first appearance (kept as records are appended).
    func nextOffsets() -> [(Int32, Int64)] {
        endRun()
        return next
    }

    private var next: [(Int32, Int64)] = []
    /// Index in `next` of the last record's partition (-1: none yet).
    /// Records come in runs of one partition (a file, a fetch): `next` is
    /// searched only where a run starts, and written when it ends
    /// (`endRun`); within a run only `runPartition` / `runNext` change
    /// (an array element's write checked the array's uniqueness per line).
    private var run = -1
    private var runPartition: Int32 = 0
    private var runNext: Int64 = 0

    @inline(__always)
    private func noteNext(_ partition: Int32, _ offset: Int64) {
        if run < 0 || runPartition != partition {
            endRun()
            if let i = next.firstIndex(where: { $0.0 == partition }) { run = i } else {
                next.append((partition, 0))
                run = next.count - 1
            }
            runPartition = partition
        }
        runNext = offset + 1
    }

    /// The current run's next offset, written to `next`.
    private func endRun() {
        if run >= 0 { next[run].1 = runNext }
    }

    /// Each record with its decoded items, both lent for the callback.
    func deliver(_ onRecord: (RawRecord, DecodedItems) -> Void) {
        withBytes { raw in
            beacons.withUnsafeMutableBufferPointer { beacons in
                idHashes.withUnsafeBufferPointer { hashes in
                    idStarts.withUnsafeBufferPointer { starts in
                        others.withUnsafeBufferPointer { others in
                            order.withUnsafeBufferPointer { order in
                                for r in records {
                                    let items = DecodedItems(order: UnsafeBufferPointer(rebasing: order[r.first..<(r.first + r.count)]),
                                                             beacons: beacons, idHashes: hashes, idStarts: starts,
                                                             bytes: raw, others: others)
                                    onRecord(RawRecord(bytes: UnsafeRawBufferPointer(rebasing: raw[r.range]), partition: r.partition,
                                                       offset: r.offset, position: r.position < 0 ? .file(name: fileName, line: r.line)
                                                                 : positions[Int(r.position)]),
                                             items)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One record's decoded items, lent by its `DecodedBatch` for the
/// delivery callback: beacons in place, the other items as they are.
struct DecodedItems {
    let order: UnsafeBufferPointer<Int32>
    let beacons: UnsafeMutableBufferPointer<Beacon>
    let idHashes: UnsafeBufferPointer<UInt32>
    let idStarts: UnsafeBufferPointer<Int32>
    /// The whole batch's record bytes (`idStarts` are offsets into them).
    let bytes: UnsafeRawBufferPointer
    let others: UnsafeBufferPointer<DecodedItem>

    /// How many beacons ahead `forEach` hints a session-table bucket, and a
    /// session (whose bucket was hinted before).
    static let bucketAhead = 16, sessionAhead = 8

    /// The items in input order: each beacon (in place, with its id hash)
    /// or other item. Before each beacon, `ahead` gets the id hashes of the
    /// beacons `bucketAhead` (session: false) and `sessionAhead` (session:
    /// true) places later in the batch (lent ids only), for prefetch hints;
    /// the latter beacon and its id bytes, which the decode thread wrote on
    /// another core, are prefetched here.
    @inline(__always)
    func forEach(beacon: (inout Beacon, UInt32) -> Void, other: (DecodedItem) -> Void,
                 ahead: (_ idHash: UInt32, _ session: Bool) -> Void) {
        for i in order {
            guard i >= 0 else { other(others[Int(~i)]); continue }
            let k = Int(i)
            if k + Self.bucketAhead < idHashes.count, idStarts[k + Self.bucketAhead] >= 0 {
                ahead(idHashes[k + Self.bucketAhead], false)
            }
            if k + Self.sessionAhead < idHashes.count {
                let later = UnsafeRawPointer(beacons.baseAddress! + (k + Self.sessionAhead))
                CacheHint.prefetch(later, bytes: MemoryLayout<Beacon>.stride)
                if case let at = idStarts[k + Self.sessionAhead], at >= 0 {
                    CacheHint.prefetch(bytes.baseAddress! + Int(at))
                    ahead(idHashes[k + Self.sessionAhead], true)
                }
            }
            beacon(&beacons[k], idHashes[k])
        }
    }
}

/// One instance of the input format per input file, or per partition of a
/// stream: a format may keep state across one source's records and read
/// the source's name (`RecordFormat.forSource(named:)`: a CloudFront
/// log's distribution comes from its file name).
struct SourceFormats {
    let base: any RecordFormat
    let stream: String
    private var fileName: SourceName?
    private var fileFormat: (any RecordFormat)?
    private var byPartition: [Int32: any RecordFormat] = [:]

    init(base: any RecordFormat, stream: String) {
        self.base = base
        self.stream = stream
    }

    mutating func format(for r: RawRecord) -> any RecordFormat {
        if case .file(let name, _) = r.position {
            if name != fileName {
                fileName = name
                fileFormat = (fileFormat ?? base).forSource(named: name.string)
            }
            return fileFormat!
        }
        if let f = byPartition[r.partition] { return f }
        let f = base.forSource(named: stream)
        byPartition[r.partition] = f
        return f
    }
}
