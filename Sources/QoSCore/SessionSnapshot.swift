/// Checkpoint encoding of open sessions and `sessions` rows.
extension QoSEngine where K: CheckpointableSketchKit {
    /// `id`: `s.id`, when the caller has it already.
    func encode(_ s: SessionState, id: String? = nil, _ w: inout StateWriter) {
        // Field by field, no temporary arrays (every open session, every checkpoint).
        w.string(id ?? s.id)
        w.int(s.earliestTs); w.int(s.latestTs); w.int(s.arrivalMark); w.int(s.beacons); w.int(s.errors)
        w.int(s.maxPlayheadMs); w.int(s.playingMs); w.int(s.rebufferCount); w.int(s.rebufferMs)
        w.int(s.seekCount); w.int(s.seekMs); w.int(s.bitrateMsSum); w.int(s.bitratePlayedMs)
        w.int(s.upshifts); w.int(s.downshifts)
        w.optInt(s.viewStartTs); w.optInt(s.firstPlayTs); w.optInt(s.stallOpenTs); w.optInt(s.seekOpenTs)
        w.optInt(s.currentBitrate); w.optInt(s.asn); w.optInt(s.videoDurationMs); w.optInt(s.startupMs)
        w.bool(s.missingStart); w.bool(s.fatalSeen); w.bool(s.vsf); w.bool(s.vpf); w.bool(s.ipLooked)
        w.bool(s.uaLooked)
        w.optString(values.string(s.fatalErrorCode)); w.optString(s.viewerId)
        w.optString(values.string(s.playerVersion)); w.optString(values.string(s.city))
        w.optString(values.string(s.asOrg))
        w.optBool(s.live)
        let d = s.dims
        w.string(interner.string(d.video)); w.string(interner.string(d.country))
        w.string(interner.string(d.region)); w.string(interner.string(d.deviceType))
        w.string(interner.string(d.os)); w.string(interner.string(d.browser))
        w.string(interner.string(d.playerName)); w.string(interner.string(d.cdn))
        w.string(interner.string(d.pop))
        let ranges = s.seqs.ranges
        w.uint(UInt64(ranges.count))
        for r in ranges { w.uint(UInt64(r.lowerBound)); w.uint(UInt64(r.upperBound)) }
    }

    func decodeSession(_ r: inout StateReader) throws -> SessionState {
        let id = try r.string()
        let s = SessionState(id: id, ts: 0)
        var ints: [Int64] = []
        for _ in 0..<15 { ints.append(try r.int()) }
        var opts: [Int64?] = []
        for _ in 0..<8 { opts.append(try r.optInt()) }
        // A session keeps its times as 32-bit offsets from the earliest ts
        // (EngineConfig.sessionTimeSpanMs < 2^31 ms), its close-queue due
        // time (≤ a time + session_timeout) too: a checkpoint written under
        // a config with a wider span is refused here, not trapped on.
        let times = [ints[1], ints[2] == .min ? nil : ints[2]] + opts[0..<4]
        let bound = Int64(Int32.max) - config.sessionTimeoutMs
        for case let t? in times {
            let (d, o) = t.subtractingReportingOverflow(ints[0])
            guard !o, d >= -bound, d <= bound else {
                throw StateError(message: "session \(id): its times span 2^31 ms or more (written with a larger "
                                 + "session_max / lateness / max_lateness than this version accepts)")
            }
        }
        (s.earliestTs, s.latestTs, s.arrivalMark, s.beacons, s.errors) = (ints[0], ints[1], ints[2], ints[3], ints[4])
        (s.maxPlayheadMs, s.playingMs, s.rebufferCount, s.rebufferMs) = (ints[5], ints[6], ints[7], ints[8])
        (s.seekCount, s.seekMs, s.bitrateMsSum, s.bitratePlayedMs) = (ints[9], ints[10], ints[11], ints[12])
        (s.upshifts, s.downshifts) = (ints[13], ints[14])
        (s.viewStartTs, s.firstPlayTs, s.stallOpenTs, s.seekOpenTs) = (opts[0], opts[1], opts[2], opts[3])
        (s.currentBitrate, s.asn, s.videoDurationMs, s.startupMs) = (opts[4], opts[5], opts[6], opts[7])
        var flags: [Bool] = []
        for _ in 0..<6 { flags.append(try r.bool()) }
        (s.missingStart, s.fatalSeen, s.vsf, s.vpf, s.ipLooked, s.uaLooked) =
            (flags[0], flags[1], flags[2], flags[3], flags[4], flags[5])
        var strs: [String?] = []
        for _ in 0..<5 { strs.append(try r.optString()) }
        s.viewerId = strs[1]
        (s.fatalErrorCode, s.playerVersion) = (values.intern(strs[0]), values.intern(strs[2]))
        (s.city, s.asOrg) = (values.intern(strs[3]), values.intern(strs[4]))
        s.live = try r.optBool()
        var ids: [UInt32] = []
        for _ in 0..<9 { ids.append(interner.intern(try r.string())) }
        var d = SessionDims()
        (d.video, d.country, d.region, d.deviceType, d.os) = (ids[0], ids[1], ids[2], ids[3], ids[4])
        (d.browser, d.playerName, d.cdn, d.pop) = (ids[5], ids[6], ids[7], ids[8])
        s.dims = d
        for _ in 0..<(try r.count(SeqSet.rangesMax + 1)) {
            let lo = UInt32(truncatingIfNeeded: try r.uint()), hi = UInt32(truncatingIfNeeded: try r.uint())
            guard lo <= hi else { throw StateError(message: "bad seq range") }
            s.seqs.restore(lo...hi)
        }
        return s
    }

    func encodeRow(_ row: SessionRow, _ w: inout StateWriter) {
        for v in [row.sessionId, row.viewerId, row.videoId, row.country, row.region, row.city, row.asOrg,
                  row.deviceType, row.os, row.browser, row.playerName, row.playerVersion, row.cdn, row.pop] {
            w.string(v)
        }
        for v in [row.asn, row.videoDurationMs, row.startupMs] { w.optInt(v) }
        w.optBool(row.live)
        w.optString(row.fatalErrorCode)
        for v in [row.startTs, row.endTs, row.closeTs, row.playingMs, row.rebufferCount, row.rebufferMs,
                  row.seekCount, row.seekMs, row.bitrateMsSum, row.bitratePlayedMs, row.upshifts,
                  row.downshifts, row.errors, row.maxPlayheadMs, row.beacons] { w.int(v) }
        w.uint(UInt64(row.closeReason.rawValue))
        for v in [row.missingStart, row.hadViewStart, row.played, row.vsf, row.vpf, row.ebvs, row.completed] {
            w.bool(v)
        }
    }

    func decodeRow(_ r: inout StateReader) throws -> SessionRow {
        var s: [String] = []
        for _ in 0..<14 { s.append(try r.string()) }
        let asn = try r.optInt(), dur = try r.optInt(), startup = try r.optInt()
        let live = try r.optBool(), code = try r.optString()
        var n: [Int64] = []
        for _ in 0..<15 { n.append(try r.int()) }
        guard let reason = CloseReason(rawValue: UInt8(truncatingIfNeeded: try r.uint())) else {
            throw StateError(message: "bad close reason")
        }
        var f: [Bool] = []
        for _ in 0..<7 { f.append(try r.bool()) }
        return SessionRow(
            sessionId: s[0], viewerId: s[1], videoId: s[2], country: s[3], region: s[4], city: s[5], asn: asn,
            asOrg: s[6], deviceType: s[7], os: s[8], browser: s[9], playerName: s[10], playerVersion: s[11],
            cdn: s[12], pop: s[13], live: live, videoDurationMs: dur, startTs: n[0], endTs: n[1], closeTs: n[2],
            closeReason: reason, missingStart: f[0], hadViewStart: f[1], played: f[2], startupMs: startup,
            playingMs: n[3], rebufferCount: n[4], rebufferMs: n[5], seekCount: n[6], seekMs: n[7],
            bitrateMsSum: n[8], bitratePlayedMs: n[9], upshifts: n[10], downshifts: n[11], errors: n[12],
            fatalErrorCode: code, vsf: f[3], vpf: f[4], ebvs: f[5], completed: f[6], maxPlayheadMs: n[13],
            beacons: n[14])
    }
}
