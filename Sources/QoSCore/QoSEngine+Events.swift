/// The per-event rules of docs/semantics.md §4 and session closes (window flushes: QoSEngine+Flush.swift).
extension QoSEngine {
    /// Attributes are fixed per field by the first beacon that carries each
    /// (explicit beacon fields before IP / user-agent lookups, which run at
    /// most once per session).
    ///
    /// Most beacons (heartbeats, segments) carry none of the strings, so a
    /// beacon without them (`Beacon.hasRareStrings`) stops after its two
    /// number attributes: the string rules below would only intern `nil`
    /// (bench/results/speed.md section 24).
    @inline(__always)
    func updateAttributes(_ s: SessionState, _ b: Beacon, _ p: PartitionState<K>) {
        if s.live == nil { s.live = b.live }
        if s.videoDurationMs == nil { s.videoDurationMs = b.videoDurationMs }
        if b.hasRareStrings { updateStringAttributes(s, b, p) }
    }

    private func updateStringAttributes(_ s: SessionState, _ b: Beacon, _ p: PartitionState<K>) {
        let before = s.dims
        defer {
            if s.dims != before {
                // Held-back played time belongs to the groups of the old dimensions.
                drainPendingPlay(s, p)
                s.cacheSerial = 0
            }
        }
        if s.dims.video == 0, let v = b.videoId { s.dims.video = interner.intern(v) }
        // An empty viewer id carries none (like an empty dimension, which is
        // `unknown`): the session falls back to its id (docs/semantics.md §4).
        if !s.hasViewerId, let v = b.viewerId, !v.isEmpty { s.viewerId = v }
        if s.playerVersion == 0 { s.playerVersion = values.intern(b.playerVersion) }
        if s.dims.playerName == 0, let v = b.playerName { s.dims.playerName = interner.intern(v) }
        if s.dims.cdn == 0, let v = b.cdn { s.dims.cdn = interner.intern(v) }
        if s.dims.pop == 0, let v = b.pop { s.dims.pop = interner.intern(v) }
        if s.dims.country == 0, let v = b.country { s.dims.country = interner.intern(v) }
        if s.dims.region == 0, let v = b.region { s.dims.region = interner.intern(v) }
        if s.dims.deviceType == 0, let v = b.deviceType { s.dims.deviceType = interner.intern(v) }
        if s.dims.os == 0, let v = b.os { s.dims.os = interner.intern(v) }
        if s.dims.browser == 0, let v = b.browser { s.dims.browser = interner.intern(v) }
        if !s.ipLooked, let ip = b.ip {
            s.ipLooked = true
            if let g = enricher.geo(ip: ip) { applyGeo(s, g) }
        }
        if !s.uaLooked, let ua = b.userAgent {
            s.uaLooked = true
            if let d = enricher.device(userAgent: ua) { applyDevice(s, d) }
        }
    }

    private func applyGeo(_ s: SessionState, _ g: GeoAttributes) {
        if s.dims.country == 0 { s.dims.country = interner.intern(g.country) }
        if s.dims.region == 0 { s.dims.region = interner.intern(g.region) }
        if s.city == 0 { s.city = values.intern(g.city) }
        if s.asn == nil { s.asn = g.asn }
        if s.asOrg == 0 { s.asOrg = values.intern(g.asOrg) }
    }

    private func applyDevice(_ s: SessionState, _ d: DeviceAttributes) {
        if s.dims.deviceType == 0 { s.dims.deviceType = interner.intern(d.deviceType) }
        if s.dims.os == 0 { s.dims.os = interner.intern(d.os) }
        if s.dims.browser == 0 { s.dims.browser = interner.intern(d.browser) }
    }

    /// Applies one accepted beacon's event to its open session.
    func applyEvent(_ b: Beacon, _ s: SessionState, _ p: PartitionState<K>) {
        let t = b.ts
        if let played = b.playedMs { applyPlayed(played, b, s, p) }
        if b.event == .bitrateChange, let new = b.bitrateKbps, let cur = s.currentBitrate {
            if new > cur { s.upshifts += 1; contribute(t, s, p) { $0.upshifts += 1 } }
            if new < cur { s.downshifts += 1; contribute(t, s, p) { $0.downshifts += 1 } }
        }
        if let br = b.bitrateKbps { s.currentBitrate = br }
        if let ph = b.playheadMs, ph > s.maxPlayheadMs { s.maxPlayheadMs = ph }
        switch b.event {
        case .viewStart: applyViewStart(t, s, p)
        case .playStart: applyPlayStart(t, s, p)
        case .rebufferStart:
            guard s.firstPlayTs != nil, s.seekOpenTs == nil, s.stallOpenTs == nil else { break }
            s.stallOpenTs = t
            s.rebufferCount += 1
            contribute(t, s, p) { $0.rebufferCount += 1 }
        case .rebufferEnd:
            guard let start = s.stallOpenTs else { break }
            s.stallOpenTs = nil
            addRebuffer(b.durationMs ?? max(0, t - start), at: t, s, p)
        case .seekStart:
            guard s.seekOpenTs == nil else { break }
            s.seekOpenTs = t
            s.seekCount += 1
            contribute(t, s, p) { $0.seekCount += 1 }
        case .seekEnd:
            guard let start = s.seekOpenTs else { break }
            s.seekOpenTs = nil
            addSeek(max(0, t - start), at: t, s, p)
        case .error: applyError(b, s, p)
        case .segment: contributeSegment(b, s, p)
        case .viewEnd: close(s, in: p, at: t, reason: b.reason ?? .exit)
        case .heartbeat, .pause, .resume, .bitrateChange: break
        }
    }

    /// `played_ms`, and the time-weighted bitrate with the bitrate current
    /// before this beacon (else the beacon's own).
    ///
    /// A heartbeat's share goes to five groups (one per table) of the
    /// window; a session's heartbeats mostly go to the same five in a row,
    /// so while its contribution cache holds them the session keeps the
    /// sums (`SessionState.pendingPlayingMs`) and adds them at once later
    /// (`drainPendingPlay`; docs/architecture.md "Played time held in the
    /// session"; bench/results/speed.md section 24).
    private func applyPlayed(_ played: Int64, _ b: Beacon, _ s: SessionState, _ p: PartitionState<K>) {
        s.playingMs +|= played
        let rate = s.currentBitrate ?? b.bitrateKbps
        let weighted = rate.map { $0 *| played }
        if let weighted {
            s.bitrateMsSum +|= weighted
            s.bitratePlayedMs +|= played
        }
        _ = groups(b.ts, s, p)  // the cache now names this beacon's window state, if it can
        // Held: a value a beacon can carry (the decoder's bounds); one of the
        // engine API's others is added at once, after what is held.
        if s.cacheSerial != 0 && played >= 0 && played <= Int64(UInt32.max) && (weighted ?? 0) >= 0 {
            if !s.pendingPlayFits(played) { drainPendingPlay(s, p) }
            s.pendingPlayingMs &+= UInt32(truncatingIfNeeded: played)
            if let weighted {
                s.pendingBitrateMsSum +|= weighted
                s.pendingBitratePlayedMs &+= UInt32(truncatingIfNeeded: played)
            }
            return
        }
        drainPendingPlay(s, p)
        contribute(b.ts, s, p) { m in
            m.playingMs +|= played
            if let weighted { m.bitrateMsSum +|= weighted; m.bitratePlayedMs +|= played }
        }
    }

    private func applyViewStart(_ t: Int64, _ s: SessionState, _ p: PartitionState<K>) {
        guard s.viewStartTs == nil else { return }
        s.viewStartTs = t
        let viewer = s.viewerId ?? s.id
        contribute(t, s, p) { m in m.views += 1; m.viewers.insert(viewer) }
        if let play = s.firstPlayTs { addStartup(play - t, at: t, s, p) }
    }

    private func applyPlayStart(_ t: Int64, _ s: SessionState, _ p: PartitionState<K>) {
        guard s.firstPlayTs == nil else { return }
        s.firstPlayTs = t
        contribute(t, s, p) { $0.plays += 1 }
        if let view = s.viewStartTs { addStartup(t - view, at: t, s, p) }
    }

    private func addStartup(_ x: Int64, at t: Int64, _ s: SessionState, _ p: PartitionState<K>) {
        guard x >= 0 && x <= config.startupMaxMs else { return }
        s.startupMs = x
        contribute(t, s, p) { m in m.startupMsSum +|= x; m.startupMsCount += 1; m.startupSketch.add(Double(x)) }
    }

    private func addRebuffer(_ d: Int64, at t: Int64, _ s: SessionState, _ p: PartitionState<K>) {
        s.rebufferMs +|= d
        contribute(t, s, p) { $0.rebufferMs +|= d }
    }

    private func addSeek(_ d: Int64, at t: Int64, _ s: SessionState, _ p: PartitionState<K>) {
        s.seekMs +|= d
        contribute(t, s, p) { $0.seekMs +|= d }
    }

    private func applyError(_ b: Beacon, _ s: SessionState, _ p: PartitionState<K>) {
        s.errors += 1
        guard b.fatal == true, !s.fatalSeen else { return }
        s.fatalSeen = true
        s.fatalErrorCode = values.intern(b.errorCode)
        if s.firstPlayTs != nil {
            s.vpf = true
            contribute(b.ts, s, p) { $0.vpf += 1 }
        } else if s.viewStartTs != nil {
            s.vsf = true
            contribute(b.ts, s, p) { $0.vsf += 1 }
        }
    }

    // MARK: Close

    /// Closes every session of `p` whose close condition holds at
    /// `watermark`, each at its own close instant, one after the other.
    @inline(__always)
    func closeDueSessions(_ p: PartitionState<K>, watermark: Int64) {
        if p.closedSessions.nextExpiry <= watermark { p.closedSessions.expire(watermark) }
        while let s = p.nextDueSession(watermark, config) {
            let (instant, reason) = s.pendingClose(config)
            close(s, in: p, at: instant, reason: reason)
            // No session is borrowed here (`apply` finds its own after
            // these closes): let each go before the next.
            retired.removeAll(keepingCapacity: true)
        }
    }

    /// Closes `s` at `instant`: open stalls and seeks end there, and the
    /// close's metrics go to the window of the instant.
    func close(_ s: SessionState, in p: PartitionState<K>, at instant: Int64, reason: CloseReason) {
        defer { drainPendingPlay(s, p) }
        s.closed = true
        // The caller may hold `s` unretained (`apply`): keep the table's
        // reference until the beacon is done.
        if let reference = p.sessions.remove(s) { retired.append(reference) }
        counters.sessionsClosed += 1
        if !finishing {
            p.closedSessions.add(s.id, seqs: s.seqs, dims: s.dims, expires: max(instant, s.latestTs) &+ config.sessionTimeoutMs)
        }
        if let st = s.stallOpenTs { s.stallOpenTs = nil; addRebuffer(max(0, instant - st), at: instant, s, p) }
        if let sk = s.seekOpenTs { s.seekOpenTs = nil; addSeek(max(0, instant - sk), at: instant, s, p) }
        let duration = s.latestTs - s.earliestTs
        let ebvs = s.viewStartTs != nil && s.firstPlayTs == nil && !s.fatalSeen
        let completed = reason == .ended || isComplete(s)
        contribute(instant, s, p) { m in
            m.sessionsEnded += 1
            m.sessionMsSum +|= duration
            m.sessionSketch.add(Double(duration))
            if ebvs { m.ebvs += 1 }
            if completed { m.completed += 1 }
        }
        if let play = s.firstPlayTs { countConcurrentAtClose(s, p, firstPlay: play, instant: instant) }
        p.aggregator.window(for: instant).sessions.append(
            sessionRow(s, instant: instant, reason: reason, ebvs: ebvs, completed: completed))
    }

    private func isComplete(_ s: SessionState) -> Bool {
        guard let d = s.videoDurationMs, d > 0 else { return false }
        return Double(s.maxPlayheadMs) >= config.completionFraction * Double(d)
    }

    /// A session that closes after the end of an unwritten window it was
    /// playing in counts in that window's concurrent plays.
    private func countConcurrentAtClose(_ s: SessionState, _ p: PartitionState<K>, firstPlay: Int64, instant: Int64) {
        for w in p.aggregator.openWindows where firstPlay < w.end && instant > w.end {
            addConcurrent(w, s)
        }
    }

    /// `tables`: a bit per `MetricTable.rawValue`, the tables to count in (all by default).
    @usableFromInline
    func addConcurrent(_ w: WindowState<K>, _ s: SessionState, tables: UInt8 = .max) {
        for t in MetricTable.allCases where tables & (1 << t.rawValue) != 0 {
            let i = w.tables[t.rawValue].slot(s.dims.key(t), cap: config.groupsPerWindowMax)
            w.tables[t.rawValue].metrics[i].concurrentPlays += 1
        }
    }

    /// `addConcurrent` in the groups `w` already has; returns the tables
    /// (a bit per `MetricTable.rawValue`) whose group it lacks, untouched.
    @usableFromInline
    func addConcurrentToExistingGroups(_ w: WindowState<K>, _ s: SessionState) -> UInt8 {
        var lacking: UInt8 = 0
        for t in MetricTable.allCases {
            if let i = w.tables[t.rawValue].existingSlot(s.dims.key(t)) {
                w.tables[t.rawValue].metrics[i].concurrentPlays += 1
            } else {
                lacking |= 1 << t.rawValue
            }
        }
        return lacking
    }

    func sessionRow(_ s: SessionState, instant: Int64, reason: CloseReason,
                    ebvs: Bool, completed: Bool) -> SessionRow {
        let n = interner
        return SessionRow(
            sessionId: s.id, viewerId: s.viewerId ?? s.id, videoId: n.string(s.dims.video),
            country: n.string(s.dims.country), region: n.string(s.dims.region),
            city: values.string(s.city) ?? StringInterner.unknown, asn: s.asn,
            asOrg: values.string(s.asOrg) ?? StringInterner.unknown,
            deviceType: n.string(s.dims.deviceType), os: n.string(s.dims.os), browser: n.string(s.dims.browser),
            playerName: n.string(s.dims.playerName), playerVersion: values.string(s.playerVersion) ?? StringInterner.unknown,
            cdn: n.string(s.dims.cdn), pop: n.string(s.dims.pop), live: s.live, videoDurationMs: s.videoDurationMs,
            startTs: s.earliestTs, endTs: s.latestTs, closeTs: instant, closeReason: reason,
            missingStart: s.missingStart, hadViewStart: s.viewStartTs != nil, played: s.firstPlayTs != nil,
            startupMs: s.startupMs, playingMs: s.playingMs, rebufferCount: s.rebufferCount,
            rebufferMs: s.rebufferMs, seekCount: s.seekCount, seekMs: s.seekMs,
            bitrateMsSum: s.bitrateMsSum, bitratePlayedMs: s.bitratePlayedMs,
            upshifts: s.upshifts, downshifts: s.downshifts, errors: s.errors,
            fatalErrorCode: values.string(s.fatalErrorCode), vsf: s.vsf, vpf: s.vpf, ebvs: ebvs, completed: completed,
            maxPlayheadMs: s.maxPlayheadMs, beacons: s.beacons)
    }
}
