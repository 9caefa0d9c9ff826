/// Checkpoint encoding of one partition's state (see StateCodec.swift).
extension QoSEngine where K: CheckpointableSketchKit {
    /// Version 4 is laid out as version 3, but its windows' `overall`
    /// groups hold no segment metrics: the flush sums them from `cdn`
    /// (`WindowState.fillOverallSegment`), and a binary that read them as
    /// the window's own must refuse such a snapshot rather than write zeros.
    /// Version 3 adds, after the `cdn_edge` section (now flagged), the
    /// recently closed sessions' `seq`s (`ClosedSessions`). Version 2 holds
    /// the partition's pending reject rows after its sessions and ends with a
    /// CRC32C of the bytes before it; version 1 (reject rows inside windows,
    /// no checksum) is still read, as are versions 2 (no closed sessions)
    /// and 3 (its `overall` segment metrics are replaced at the flush).
    static var snapshotMagic: [UInt8] { Array("QOSPART4".utf8) }
    static var snapshotMagicV3: [UInt8] { Array("QOSPART3".utf8) }
    static var snapshotMagicV2: [UInt8] { Array("QOSPART2".utf8) }
    static var snapshotMagicV1: [UInt8] { Array("QOSPART1".utf8) }

    /// The state of partition `id` (empty state if the engine never saw it).
    public func snapshot(partition id: Int32) -> [UInt8] {
        let p = partition(id)
        drainPendingPlay(p)  // the windows hold every contribution; sessions hold none back
        var w = StateWriter(capacity: p.snapshotSizeHint + p.snapshotSizeHint / 8)
        for b in Self.snapshotMagic { w.uint(UInt64(b)) }
        w.int(Int64(p.id))
        w.int(p.maxTs)
        w.int(p.aggregator.writtenThrough)
        let windows = p.aggregator.allStates
        w.uint(UInt64(windows.count))
        for win in windows { encode(win, &w) }
        // In id order, so equal states give equal bytes.
        let sessions = p.sessions.values.map { ($0.id, $0) }.sorted { $0.0 < $1.0 }
        w.uint(UInt64(sessions.count))
        for (id, s) in sessions { encode(s, id: id, &w) }
        w.uint(UInt64(p.pendingRejects.count))
        for row in p.pendingRejects { encode(row, &w) }
        let hasCdnEdge = windows.contains { !$0.cdnEdge.isEmpty }
        w.bool(hasCdnEdge)
        if hasCdnEdge { encodeCdnEdge(windows, &w) }
        encode(p.closedSessions, &w)
        w.seal()
        p.snapshotSizeHint = w.bytes.count
        return w.bytes
    }

    /// Checks a snapshot's magic and CRC32C without decoding it; returns
    /// where its content ends. Throws `StateError.checksumMismatch` when the
    /// bytes are not the ones written.
    public static func verifySnapshot(_ bytes: [UInt8]) throws -> Int {
        if bytes.starts(with: snapshotMagic) || bytes.starts(with: snapshotMagicV3) || bytes.starts(with: snapshotMagicV2) {
            guard CRC32C.verifySealed(bytes) else { throw StateError.checksumMismatch }
            return bytes.count - 4
        }
        guard bytes.starts(with: snapshotMagicV1) else {
            throw StateError.newerFormat(bytes, family: "QOSPART", known: 4, what: "a partition snapshot")
                ?? StateError(message: "not a partition snapshot")
        }
        return bytes.count
    }

    /// Replaces partition `id`'s state with a snapshot (verified first).
    public func restore(partition id: Int32, from bytes: [UInt8]) throws {
        let v1 = bytes.starts(with: Self.snapshotMagicV1), v2 = bytes.starts(with: Self.snapshotMagicV2)
        var r = StateReader(bytes, end: try Self.verifySnapshot(bytes))
        for _ in Self.snapshotMagic { _ = try r.uint() }
        guard try r.int() == Int64(id) else { throw StateError(message: "snapshot is for another partition") }
        let p = PartitionState<K>(id: id, config: config)
        p.maxTs = try r.int()
        p.aggregator = WindowAggregator(config: config, writtenThrough: try r.int())
        for _ in 0..<(try r.count()) {
            let (win, rejects) = try decodeWindow(&r, withRejects: v1)
            p.aggregator.insert(win)
            for row in rejects { hold(row, in: p) }
        }
        for _ in 0..<(try r.count()) {
            let s = try decodeSession(&r)
            p.sessions.insert(s)
            p.schedule(s, config)
        }
        if !v1 { for _ in 0..<(try r.count()) { hold(try decodeReject(&r), in: p) } }
        if v2 && !r.atEnd { try decodeCdnEdge(&r, into: p.aggregator.allStates) }
        if !v1 && !v2 {
            if try r.bool() { try decodeCdnEdge(&r, into: p.aggregator.allStates) }
            p.closedSessions.restore(try decodeClosedSessions(&r))
        }
        guard r.atEnd else { throw StateError(message: "trailing bytes") }
        partitions[id] = p
    }

    /// Drops a partition (revoked and checkpointed).
    public func forget(partition id: Int32) { partitions[id] = nil }

    private func encode(_ win: WindowState<K>, _ w: inout StateWriter) {
        w.int(win.start)
        w.bool(win.isDelta)
        let noSegment = SegmentMetrics<K>()
        for t in MetricTable.allCases {
            let table = win.tables[t.rawValue]
            w.uint(UInt64(table.keys.count))
            let n = t.dimensions.count
            // Each group read in place: iterating the metrics by value (a
            // `zip`) copied every group, retaining and releasing each of its
            // sketches, through this generic code's runtime type lookups.
            table.metrics.withUnsafeBufferPointer { metrics in
                for (i, k) in table.keys.enumerated() {
                    if n > 0 { w.string(interner.string(k.a)) }
                    if n > 1 { w.string(interner.string(k.b)) }
                    if n > 2 { w.string(interner.string(k.c)) }
                    if n > 3 { w.string(interner.string(k.d)) }
                    metrics[i].encode(&w, noSegment: noSegment)
                }
            }
        }
        w.uint(UInt64(win.sessions.count))
        for row in win.sessions { encodeRow(row, &w) }
    }

    /// Recently closed sessions, in id order: id, expiry, groups (as
    /// strings, like a session's), `seq` ranges.
    private func encode(_ closed: ClosedSessions, _ w: inout StateWriter) {
        let list = closed.sorted
        w.uint(UInt64(list.count))
        for (id, e) in list {
            w.string(id)
            w.int(e.expires)
            let d = e.dims
            for v in [d.video, d.country, d.region, d.deviceType, d.os, d.browser, d.playerName, d.cdn, d.pop] {
                w.string(interner.string(v))
            }
            let ranges = e.seqs.ranges
            w.uint(UInt64(ranges.count))
            for r in ranges { w.uint(UInt64(r.lowerBound)); w.uint(UInt64(r.upperBound)) }
        }
    }

    private func decodeClosedSessions(_ r: inout StateReader) throws -> [(id: String, entry: ClosedSessions.Entry)] {
        var list: [(id: String, entry: ClosedSessions.Entry)] = []
        for _ in 0..<(try r.count()) {
            let id = try r.string()
            let expires = try r.int()
            var ids: [UInt32] = []
            for _ in 0..<9 { ids.append(interner.intern(try r.string())) }
            var d = SessionDims()
            (d.video, d.country, d.region, d.deviceType, d.os) = (ids[0], ids[1], ids[2], ids[3], ids[4])
            (d.browser, d.playerName, d.cdn, d.pop) = (ids[5], ids[6], ids[7], ids[8])
            var seqs = SeqSet()
            var previous: UInt32?
            for _ in 0..<(try r.count(SeqSet.rangesMax + 1)) {
                let lo = UInt32(truncatingIfNeeded: try r.uint()), hi = UInt32(truncatingIfNeeded: try r.uint())
                guard lo <= hi, previous.map({ lo > $0 }) ?? true else { throw StateError(message: "bad seq range") }
                previous = hi
                seqs.restore(lo...hi)
            }
            list.append((id, ClosedSessions.Entry(seqs: seqs, dims: d, expires: expires)))
        }
        return list
    }

    /// The `cdn_edge` groups of the windows, in the order the windows were
    /// written, after the reject rows: a section that only snapshots with
    /// CDN log state have (flagged since version 3; a version-2 snapshot
    /// without it ends before it).
    private func encodeCdnEdge(_ windows: [WindowState<K>], _ w: inout StateWriter) {
        for win in windows {
            w.uint(UInt64(win.cdnEdge.keys.count))
            for (k, m) in zip(win.cdnEdge.keys, win.cdnEdge.metrics) {
                w.string(k.cdn); w.string(k.account); w.string(k.owner); w.string(k.pop)
                m.encode(&w)
            }
        }
    }

    /// `windows`: the restored states, in the order `allStates` gives (the order written).
    private func decodeCdnEdge(_ r: inout StateReader, into windows: [WindowState<K>]) throws {
        for win in windows {
            for _ in 0..<(try r.count()) {
                let key = CdnEdgeKey(cdn: try r.string(), account: try r.string(), owner: try r.string(), pop: try r.string())
                let slot = win.cdnEdge.slot(key, cap: .max)
                win.cdnEdge.metrics[slot] = try CdnEdgeMetrics<K>.decode(&r)
            }
        }
    }

    private func encode(_ row: RejectRow, _ w: inout StateWriter) {
        w.int(row.ingestedAt); w.string(row.reason); w.string(row.source); w.blob(row.payload)
    }

    private func decodeReject(_ r: inout StateReader) throws -> RejectRow {
        RejectRow(ingestedAt: try r.int(), reason: try r.string(), source: try r.string(), payload: try r.blob())
    }

    /// A window; a version-1 window also carries reject rows.
    private func decodeWindow(_ r: inout StateReader, withRejects: Bool) throws -> (WindowState<K>, [RejectRow]) {
        let start = try r.int()
        let win = WindowState<K>(start: start, end: start + config.windowMs, isDelta: try r.bool())
        for t in MetricTable.allCases {
            for _ in 0..<(try r.count()) {
                var ids: [UInt32] = [0, 0, 0, 0]
                for i in 0..<t.dimensions.count { ids[i] = interner.intern(try r.string()) }
                let slot = win.tables[t.rawValue].slot(GroupKey(ids[0], ids[1], ids[2], ids[3]), cap: .max)
                win.tables[t.rawValue].metrics[slot] = try GroupMetrics<K>.decode(&r)
            }
        }
        for _ in 0..<(try r.count()) { win.sessions.append(try decodeRow(&r)) }
        var rejects: [RejectRow] = []
        if withRejects { for _ in 0..<(try r.count()) { rejects.append(try decodeReject(&r)) } }
        return (win, rejects)
    }
}
