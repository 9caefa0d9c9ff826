/// Sessions of one partition closed recently, kept by id for their `seq`s and
/// groups (docs/semantics.md §1, "Duplicates after a close"): a beacon
/// repeating the `(session_id, seq)` of a closed session's beacon is a
/// duplicate — dropped and counted — not the first beacon of a new session
/// (which would count a phantom view or `missing_start`, its played time twice).
///
/// An entry lives until the partition's watermark passes its session's close
/// instant (or latest `ts`, if later) + the session timeout: what is kept
/// stays bounded by the sessions that closed within one timeout of event
/// time. Entries are dropped in the order they were added (a FIFO of ids; an
/// id closed again gets a later expiry, and its earlier FIFO slot is
/// skipped), so one may outlive its expiry in memory; the engine ignores an
/// entry past its expiry, so decisions depend on the watermark alone.
/// Sessions that saw no `seq` leave no entry, and the end of input leaves
/// none (nothing follows it).
struct ClosedSessions {
    struct Entry: Equatable {
        var seqs: SeqSet
        var dims: SessionDims
        /// Watermark at which the entry is dropped.
        var expires: Int64
    }

    private(set) var entries: [String: Entry] = [:]
    /// Ids in the order added, with the expiry they were added with.
    private var fifo: [(expires: Int64, id: String)] = []
    private var head = 0
    /// The expiry at the FIFO's head (`.max` when empty): nothing is dropped
    /// before the watermark reaches it. Stored, so the per-beacon check
    /// (`QoSEngine.closeDueSessions`) reads one integer.
    private(set) var nextExpiry: Int64 = .max

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    /// Keeps `id`'s seqs and groups until the watermark reaches `expires`.
    mutating func add(_ id: String, seqs: SeqSet, dims: SessionDims, expires: Int64) {
        guard !seqs.isEmpty else { return }
        entries[id] = Entry(seqs: seqs, dims: dims, expires: expires)
        fifo.append((expires, id))
        if head == fifo.count - 1 { nextExpiry = expires }
    }

    func entry(_ id: String) -> Entry? { entries[id] }

    /// Removes `id`'s entry (a new session of the id takes its seqs over).
    mutating func remove(_ id: String) { entries[id] = nil }

    /// Drops the entries whose expiry the watermark has reached, in FIFO order.
    mutating func expire(_ watermark: Int64) {
        while head < fifo.count, fifo[head].expires <= watermark {
            let (expires, id) = fifo[head]
            head += 1
            if entries[id]?.expires == expires { entries[id] = nil }
        }
        if head > 1024 && head * 2 > fifo.count {  // compact the consumed prefix
            fifo.removeFirst(head)
            head = 0
        }
        nextExpiry = head < fifo.count ? fifo[head].expires : .max
        assert(entries.isEmpty || head < fifo.count, "every entry has a FIFO slot")
    }

    /// Entries in id order (checkpoints: equal states give equal bytes).
    var sorted: [(id: String, entry: Entry)] {
        entries.map { ($0.key, $0.value) }.sorted { $0.id < $1.id }
    }

    /// Renames the interned ids of every entry's groups (`QoSEngine.rebuildInternersIfDue`).
    mutating func remapDims(_ map: [UInt32]) {
        for id in Array(entries.keys) { entries[id]!.dims.remap(map) }
    }

    /// Marks the dimension ids the entries use.
    func markLive(_ live: inout [Bool]) {
        for e in entries.values { e.dims.markLive(&live) }
    }

    /// Puts an entry read from a checkpoint back (ids in id order; the
    /// FIFO is rebuilt in expiry order, which is deterministic).
    mutating func restore(_ list: [(id: String, entry: Entry)]) {
        entries = [:]
        fifo = []
        head = 0
        for (id, e) in list { entries[id] = e }
        fifo = list.map { ($0.entry.expires, $0.id) }.sorted { $0.expires != $1.expires ? $0.expires < $1.expires : $0.id < $1.id }
        nextExpiry = fifo.first?.expires ?? .max
    }
}

extension SessionDims {
    func markLive(_ live: inout [Bool]) {
        live[Int(video)] = true; live[Int(country)] = true; live[Int(region)] = true
        live[Int(deviceType)] = true; live[Int(os)] = true; live[Int(browser)] = true
        live[Int(playerName)] = true; live[Int(cdn)] = true; live[Int(pop)] = true
    }
}
