import Testing
@testable import QoSCore

/// One test per metric rule of docs/semantics.md §4, with beacons built by hand and the
/// exact expected numbers.
@Suite struct MetricTests {
    @Test func basicViewStartupPlayingAndCompletion() {
        let h = Harness()
        h.beacon("view_start", 1000, "s1", ["viewer_id": "v1", "video_id": "A"])
        h.beacon("play_start", 3000, "s1", ["bitrate_kbps": 1000])
        h.beacon("heartbeat", 13000, "s1", ["played_ms": 10000])
        h.beacon("view_end", 20000, "s1", ["reason": "ended", "played_ms": 7000])
        h.finish()
        let m = h.metrics(0)
        #expect(m.views == 1 && m.uniqueViewers == 1 && m.plays == 1)
        #expect(m.startupMsSum == 2000 && m.startupMsCount == 1 && m.startupSketch.values == [2000])
        #expect(m.playingMs == 17000)
        #expect(m.bitrateMsSum == 17_000_000 && m.bitratePlayedMs == 17000 && m.avgBitrateKbps == 1000)
        #expect(m.sessionsEnded == 1 && m.sessionMsSum == 19000 && m.completed == 1 && m.ebvs == 0)
        #expect(m.watchMs == 2000 + 17000)
        #expect(m.rebufferRatio == 0)
        #expect(h.metrics(0, .video, ["A"]).views == 1)
        #expect(h.sessionRows.count == 1 && h.sessionRows[0].closeReason == .ended)
    }

    @Test func uniqueViewersCountDistinctViewerIdWithSessionFallback() {
        let h = Harness()
        h.beacon("view_start", 1000, "s1", ["viewer_id": "v1"])
        h.beacon("view_start", 2000, "s2", ["viewer_id": "v1"])
        h.beacon("view_start", 3000, "s3")
        h.beacon("view_start", 4000, "s3") // a later view_start in the same session is ignored
        h.finish()
        #expect(h.metrics(0).views == 3)
        #expect(h.metrics(0).viewers.items == ["v1", "s3"])
    }

    /// An empty `viewer_id` is no viewer id: the session id stands in (it
    /// counted as nothing: the sketch skips empty strings, 0 viewers), and a
    /// later beacon's non-empty id is the session's.
    @Test func anEmptyViewerIdFallsBackToTheSessionId() {
        let h = Harness()
        h.beacon("view_start", 1000, "a", ["viewer_id": ""])
        h.beacon("view_start", 1000, "b", ["viewer_id": ""])
        h.beacon("view_start", 2000, "c", ["viewer_id": ""])
        h.beacon("heartbeat", 3000, "c", ["viewer_id": "v", "played_ms": 5])
        h.finish()
        #expect(h.metrics(0).views == 3)
        // c's view counted with the viewer known then (attributes never move a counted event).
        #expect(Set(h.metrics(0).viewers.items) == ["a", "b", "c"])
        #expect(Set(h.sessionRows.map(\.viewerId)) == ["a", "b", "v"])
    }

    /// A window table past the group cap holds an `__other__` row, and
    /// `tablesAtGroupCap` counts it (the summary's and `/metrics`' count).
    @Test func tablesAtTheGroupCapAreCounted() {
        let h = Harness { $0.groupsPerWindowMax = 2 }
        for (i, video) in ["a", "b", "c", "d"].enumerated() { h.beacon("view_start", Int64(1000 + i), "s\(i)", ["video_id": video]) }
        h.finish()
        let first = h.windows(start: 0)
        #expect(first.count == 1 && first[0].tablesAtGroupCap == 1)  // video; the other tables have one group
        #expect(h.metrics(0, .video, ["__other__"]).views == 2)
        let roomy = Harness()
        roomy.beacon("view_start", 1000, "s0", ["video_id": "a"])
        roomy.finish()
        #expect(roomy.windows(start: 0).allSatisfy { $0.tablesAtGroupCap == 0 })
    }

    @Test func missingViewStart() {
        let h = Harness()
        h.beacon("heartbeat", 1000, "s1", ["played_ms": 5000])
        h.beacon("play_start", 1500, "s1")
        h.beacon("view_end", 2000, "s1")
        h.finish()
        let m = h.metrics(0)
        #expect(m.missingStart == 1 && m.views == 0 && m.plays == 1)
        #expect(m.startupMsCount == 0 && m.ebvs == 0 && m.sessionsEnded == 1)
        #expect(h.sessionRows[0].missingStart && h.sessionRows[0].closeReason == .exit)
    }

    @Test func stallInsideSeekIsSeekTimeNotRebuffering() {
        let h = Harness()
        h.beacon("view_start", 0)
        h.beacon("rebuffer_start", 500)   // initial buffering: startup, not rebuffering
        h.beacon("rebuffer_end", 900)
        h.beacon("play_start", 1000)
        h.beacon("seek_start", 5000)
        h.beacon("rebuffer_start", 5100)  // inside the seek
        h.beacon("rebuffer_end", 6000)
        h.beacon("seek_end", 6500)
        h.beacon("rebuffer_start", 10000)
        h.beacon("rebuffer_start", 10200) // a stall is already open
        h.beacon("rebuffer_end", 10500)
        h.beacon("view_end", 20000)
        h.finish()
        let m = h.metrics(0)
        #expect(m.rebufferCount == 1 && m.rebufferMs == 500)
        #expect(m.seekCount == 1 && m.seekMs == 1500)
        #expect(m.startupMsSum == 1000)
        #expect(m.watchMs == 1000 + 0 + 500 + 1500)
    }

    @Test func stallSpanningTwoWindowsCountsInTheEndWindow() {
        let h = Harness()
        h.beacon("view_start", 0)
        h.beacon("play_start", 1000)
        h.beacon("rebuffer_start", 110_000)
        h.beacon("rebuffer_end", 130_000, "s1", ["duration_ms": 19000])
        h.beacon("rebuffer_start", 150_000)
        h.beacon("rebuffer_end", 170_000)
        h.beacon("view_end", 180_000, "s1", ["played_ms": 60000])
        h.finish()
        #expect(h.metrics(0).rebufferCount == 1 && h.metrics(0).rebufferMs == 0)
        let m = h.metrics(min2)
        #expect(m.rebufferCount == 1 && m.rebufferMs == 19000 + 20000)
        #expect(m.rebufferRatio == 39000.0 / (60000 + 39000))
    }

    @Test func stallNeverEndedEndsAtTheCloseInstant() {
        let h = Harness()
        h.beacon("view_start", 0)
        h.beacon("play_start", 1000)
        h.beacon("rebuffer_start", 50000)
        h.finish()
        // Inactivity close at 50 000 + 5 min = 350 000, in window [240 000, 360 000).
        let m = h.metrics(240_000)
        #expect(m.rebufferMs == 300_000 && m.sessionsEnded == 1 && m.sessionMsSum == 50000)
        #expect(h.metrics(0).rebufferCount == 1 && h.metrics(0).sessionsEnded == 0)
        #expect(h.sessionRows[0].closeReason == .timeout && h.sessionRows[0].closeTs == 350_000)
    }

    @Test func openSeekEndsAtClose() {
        let h = Harness()
        h.beacon("view_start", 0)
        h.beacon("play_start", 1000)
        h.beacon("seek_start", 10000)
        h.beacon("seek_start", 11000) // a seek is open: not counted
        h.beacon("view_end", 14000)
        h.finish()
        #expect(h.metrics(0).seekCount == 1 && h.metrics(0).seekMs == 4000)
    }

    @Test func duplicateSeqIsDroppedAndCounted() {
        let h = Harness()
        h.beacon("view_start", 0, "s1", ["seq": 1])
        h.beacon("play_start", 1000, "s1", ["seq": 2])
        h.beacon("heartbeat", 11000, "s1", ["seq": 3, "played_ms": 1000])
        h.beacon("heartbeat", 11000, "s1", ["seq": 3, "played_ms": 1000])
        h.beacon("play_start", 1000, "s1", ["seq": 2])
        h.beacon("heartbeat", 21000, "s1", ["played_ms": 1000]) // no seq: never a duplicate
        h.finish()
        let m = h.metrics(0)
        #expect(m.duplicates == 2 && m.playingMs == 2000 && m.plays == 1)
        #expect(h.engine.counters.duplicates == 2)
    }

    @Test func lateEventAfterItsWindowWasWrittenLandsInTheDelta() {
        let h = Harness()
        h.beacon("view_start", 0, "s1")
        h.beacon("play_start", 1000, "s1")
        h.flushAtWatermark()
        h.beacon("view_start", 200_000, "s2") // watermark 170 000 passes window 0's end
        h.flushAtWatermark()
        #expect(h.windows(start: 0).count == 1)
        h.beacon("heartbeat", 100_000, "s1", ["played_ms": 4000])
        h.flushAtWatermark()
        let delta = h.metrics(0, deltaOnly: true)
        #expect(delta.playingMs == 4000 && delta.lateEvents == 1 && delta.views == 0)
        #expect(h.windows(start: 0).filter(\.isDelta).count == 1)
        #expect(h.metrics(0).views == 1 && h.metrics(0).playingMs == 4000)
        #expect(h.engine.counters.lateEvents == 1)
    }

    /// `late_events` counts beacons for a window its partition's watermark
    /// had passed, whether or not a flush had written that window yet: the
    /// same count for every flush schedule (replay flushes when a window with
    /// data is due, `qos run` at its epochs). Windows that held no data when
    /// the watermark passed them counted their later beacons as on time
    /// until some flush happened.
    @Test func lateEventsDoNotDependOnWhenFlushesRun() {
        func run(flushEvery: Bool) -> (late: Int64, windowLate: Int64, playing: Int64) {
            let h = Harness()
            let beacons: [(String, Int64, String, [String: Any])] = [
                ("view_start", 0, "A", [:]), ("play_start", 1000, "A", [:]),
                ("view_start", 600_000, "B", [:]),                 // watermark 570 000
                ("heartbeat", 200_000, "A", ["played_ms": 1000]),   // window [120 000, 240 000): passed, never had data
                ("heartbeat", 400_000, "A", ["played_ms": 2000]),   // window [360 000, 480 000): passed
                ("heartbeat", 590_000, "B", ["played_ms": 500]),    // its window is open: on time
            ]
            for (event, ts, sid, extra) in beacons {
                h.beacon(event, ts, sid, extra)
                if flushEvery { h.flushAtWatermark() }
            }
            h.finish()
            let late = [0, 120_000, 240_000, 360_000, 480_000, 600_000].reduce(Int64(0)) { $0 + h.metrics($1).lateEvents }
            return (h.engine.counters.lateEvents, late, h.metrics(120_000).playingMs + h.metrics(360_000).playingMs)
        }
        let eager = run(flushEvery: true), lazy = run(flushEvery: false)
        #expect(eager.late == 2 && eager.windowLate == 2, "\(eager)")
        #expect(lazy.late == 2 && lazy.windowLate == 2, "\(lazy)")
        #expect(eager.playing == lazy.playing)
    }

    @Test func ebvsVersusVsfVersusVpf() {
        let h = Harness()
        h.beacon("view_start", 0, "A"); h.beacon("error", 5000, "A", ["fatal": true, "error_code": "E1"])
        h.beacon("view_end", 6000, "A", ["reason": "error"])
        h.beacon("view_start", 0, "B"); h.beacon("view_end", 130_000, "B")
        h.beacon("view_start", 0, "C"); h.beacon("play_start", 1000, "C")
        h.beacon("error", 30000, "C", ["fatal": true]); h.beacon("error", 31000, "C", ["fatal": true])
        h.beacon("view_start", 0, "D"); h.beacon("error", 2000, "D", ["fatal": false])
        h.beacon("view_end", 3000, "D")
        h.beacon("heartbeat", 0, "E"); h.beacon("error", 1000, "E", ["fatal": true])
        h.finish()
        #expect(h.metrics(0).vsf == 1 && h.metrics(0).vpf == 1)
        #expect(h.metrics(0).ebvs == 1)        // D, closed at 3 000
        #expect(h.metrics(min2).ebvs == 1)     // B, closed at 130 000: the close's window
        let rows = Dictionary(uniqueKeysWithValues: h.sessionRows.map { ($0.sessionId, $0) })
        #expect(rows["A"]!.vsf && !rows["A"]!.ebvs && rows["A"]!.closeReason == .error && rows["A"]!.fatalErrorCode == "E1")
        #expect(rows["C"]!.vpf && rows["C"]!.errors == 2 && !rows["E"]!.vsf && !rows["E"]!.vpf)
    }

    @Test func gapLongerThanTimeoutClosesAndReopens() {
        let h = Harness()
        h.beacon("view_start", 0); h.beacon("play_start", 1000); h.beacon("heartbeat", 2000)
        h.beacon("heartbeat", 302_001)
        h.finish()
        #expect(h.metrics(240_000).sessionsEnded == 1)
        #expect(h.metrics(240_000).missingStart == 1 && h.metrics(0).missingStart == 0)
        let rows = h.sessionRows.sorted { $0.closeTs < $1.closeTs }
        #expect(rows.count == 2)
        #expect(rows[0].closeReason == .timeout && rows[0].closeTs == 302_000 && rows[0].durationMs == 2000)
        #expect(rows[1].missingStart && rows[1].closeTs == 602_001)
    }

    @Test func sixHourCap() {
        let h = Harness()
        h.beacon("view_start", 0)
        for k in 1...95 { h.beacon("heartbeat", Int64(k) * 240_000, "s1", ["played_ms": 1000]) }
        h.finish()
        let rows = h.sessionRows.sorted { $0.closeTs < $1.closeTs }
        #expect(rows.count == 2)
        #expect(rows[0].closeReason == .maxLength && rows[0].closeTs == 21_600_000)
        #expect(rows[0].durationMs == 21_600_000 && rows[1].missingStart)
        #expect(h.metrics(21_600_000).sessionsEnded == 1)
    }

    @Test func closeInstantDecidesTheWindowOfCompletion() {
        let h = Harness()
        h.beacon("view_start", 0, "A", ["video_duration_ms": 100_000])
        h.beacon("play_start", 1000, "A")
        h.beacon("heartbeat", 100_000, "A", ["playhead_ms": 95000])
        h.finish() // timeout close at 400 000
        #expect(h.metrics(360_000).completed == 1 && h.metrics(360_000).sessionsEnded == 1)
        #expect(h.metrics(0).completed == 0)
    }

    @Test func completionRules() {
        let h = Harness()
        h.beacon("view_start", 0, "A"); h.beacon("view_end", 1000, "A", ["reason": "ended"])
        h.beacon("view_start", 0, "B", ["video_duration_ms": 100_000])
        h.beacon("view_end", 1000, "B", ["playhead_ms": 90000])
        h.beacon("view_start", 0, "C", ["video_duration_ms": 100_000])
        h.beacon("view_end", 1000, "C", ["playhead_ms": 89999])
        h.beacon("view_start", 0, "D", ["video_duration_ms": 0, "live": true])
        h.beacon("view_end", 1000, "D", ["playhead_ms": 89999])
        h.finish()
        #expect(h.metrics(0).completed == 2)
    }

    @Test func concurrentPlaysArePointSamplesAtWindowEnds() {
        let h = Harness()
        let beacons: [(String, Int64, String)] = [
            ("view_start", 0, "s1"), ("view_start", 0, "s2"), ("view_start", 0, "s3"),
            ("play_start", 10000, "s1"), ("play_start", 50000, "s2"), ("view_end", 100_000, "s2"),
            ("view_start", 130_000, "s4"), ("play_start", 140_000, "s4"),
            ("view_end", 150_000, "s3"), ("view_end", 200_000, "s1"),
        ]
        for (e, t, s) in beacons { h.beacon(e, t, s); h.flushAtWatermark() }
        h.finish()
        #expect(h.metrics(0).concurrentPlays == 1)     // s1 (s2 closed, s3 never played)
        #expect(h.metrics(min2).concurrentPlays == 1)  // s4 (s1 closed at 200 000)
    }

    @Test func timeWeightedBitrateUsesTheBitrateCurrentBeforeTheBeacon() {
        let h = Harness()
        h.beacon("view_start", 0, "A")
        h.beacon("play_start", 1000, "A", ["bitrate_kbps": 1000, "played_ms": 0])
        h.beacon("heartbeat", 11000, "A", ["played_ms": 10000, "bitrate_kbps": 2000])
        h.beacon("bitrate_change", 12000, "A", ["played_ms": 1000, "bitrate_kbps": 3000])
        h.beacon("bitrate_change", 13000, "A", ["played_ms": 1000, "bitrate_kbps": 500])
        h.beacon("heartbeat", 14000, "A", ["played_ms": 1000])
        h.beacon("view_start", 0, "B")
        h.beacon("heartbeat", 5000, "B", ["played_ms": 2000])                      // no bitrate known
        h.beacon("heartbeat", 6000, "B", ["played_ms": 1000, "bitrate_kbps": 800]) // its own
        h.beacon("bitrate_change", 0, "C", ["bitrate_kbps": 900])                  // nothing current: no shift
        h.finish()
        let m = h.metrics(0)
        #expect(m.bitrateMsSum == 10_000_000 + 2_000_000 + 3_000_000 + 500_000 + 800_000)
        #expect(m.bitratePlayedMs == 14000 && m.playingMs == 16000)
        #expect(m.upshifts == 1 && m.downshifts == 1)
    }

    @Test func segmentMetricsGroupByTheBeaconsOwnCdn() {
        let h = Harness()
        h.beacon("view_start", 0, "s1", ["cdn": "akamai", "pop": "fra"])
        h.beacon("segment", 1000, "s1", ["http_status": 200, "download_ms": 100, "ttfb_ms": 20,
                                         "bytes": 1_000_000, "cache": "HIT"])
        h.beacon("segment", 2000, "s1", ["http_status": 404, "download_ms": 300, "bytes": 500,
                                         "cdn": "fastly", "pop": "ams"])
        h.beacon("segment", 3000, "s1", ["http_status": 0])
        h.beacon("segment", 4000, "s1", ["download_ms": 250])
        h.beacon("segment", 5000, "s1", ["http_status": 503, "cache": "MISS"])
        h.finish()
        let s = h.metrics(0).segment
        #expect(s.requests == 5 && s.failedRequests == 3 && s.http4xx == 1 && s.http5xx == 1)
        #expect(s.slowRequests == 2 && s.cacheHits == 1 && s.bytes == 1_000_500 && s.downloadMsSum == 650)
        #expect(s.downloadSketch.values.sorted() == [100, 250, 300] && s.ttfbSketch.values == [20])
        #expect(s.throughputSketch.values.sorted() == [500.0 * 8 / 300, 80000])
        #expect(h.metrics(0, .cdn, ["akamai", "fra"]).segment.requests == 4)
        #expect(h.metrics(0, .cdn, ["fastly", "ams"]).segment.requests == 1)
        #expect(h.metrics(0, .cdn, ["akamai", "fra"]).views == 1)
        #expect(h.metrics(0, .video, ["unknown"]).segment.requests == 0)
    }

    @Test func watermarkClosesIdleSessionsButNotLateBursts() {
        let h = Harness()
        h.beacon("view_start", 0, "s1")
        h.beacon("heartbeat", 1_000_000, "s2")  // watermark 970 000: s1 (close at 300 000) is closed
        h.beacon("heartbeat", 5000, "s1")       // opens a new session under the same id
        h.beacon("view_start", 10000, "s3")     // a late burst: arrival mark 970 000
        h.beacon("heartbeat", 20000, "s3")      // not closed: arrival mark + timeout > watermark
        h.finish()
        let rows = h.sessionRows
        #expect(rows.filter { $0.sessionId == "s1" }.count == 2)
        #expect(rows.filter { $0.sessionId == "s3" }.count == 1)
        #expect(rows.first { $0.sessionId == "s3" }!.closeTs == 320_000)
        #expect(h.metrics(0).missingStart == 1)
    }

    @Test func groupingUsesAttributesKnownWhenApplied() {
        let h = Harness()
        h.beacon("heartbeat", 0, "s1", ["played_ms": 1000])
        h.beacon("heartbeat", 1000, "s1", ["played_ms": 2000, "country": "FR", "video_id": "A"])
        h.beacon("heartbeat", 2000, "s1", ["played_ms": 4000, "country": "DE"]) // first one wins
        h.finish()
        #expect(h.metrics(0, .geo, ["unknown", "unknown"]).playingMs == 1000)
        #expect(h.metrics(0, .geo, ["FR", "unknown"]).playingMs == 6000)
        #expect(h.metrics(0, .video, ["A"]).playingMs == 6000)
        #expect(h.sessionRows[0].country == "FR")
    }

    /// Heartbeats' played time is held in the session and added to its
    /// groups later (docs/architecture.md "Played time held in the
    /// session"): at a window change, a flush, a close, and before a held
    /// sum passes 32 bits. Each total here is what adding every beacon at
    /// once gives.
    @Test func playedTimeHeldInTheSessionReachesItsGroups() {
        let h = Harness()
        let day: Int64 = 86_400_000  // the largest played_ms a beacon may carry
        h.beacon("view_start", 0, "A", ["video_id": "va"])
        h.beacon("view_start", 0, "B", ["video_id": "vb"])
        for k in 1...60 {  // 60 days of played time in window 0: past 2^32 ms held
            h.beacon("heartbeat", Int64(k) * 1000, "A", ["played_ms": day, "bitrate_kbps": 10_000_000])
        }
        h.beacon("heartbeat", 100_000, "B", ["played_ms": 700, "bitrate_kbps": 1000])
        h.beacon("heartbeat", 130_000, "B", ["played_ms": 900])  // window 1: the held 700 goes to window 0
        h.beacon("heartbeat", 131_000, "A", ["played_ms": 5])
        h.flush(120_000)  // window 0 written while both sessions hold window 1's time
        h.beacon("heartbeat", 132_000, "B", ["played_ms": 40, "country": "FR"])  // new groups from here
        h.beacon("view_end", 133_000, "A", ["played_ms": 3, "reason": "exit"])  // closes with time held
        h.finish()
        #expect(h.metrics(0, .video, ["va"]).playingMs == 60 * day)
        #expect(h.metrics(0, .video, ["va"]).bitrateMsSum == 60 * day * 10_000_000)
        #expect(h.metrics(0, .video, ["vb"]).playingMs == 700)
        #expect(h.metrics(0).playingMs == 60 * day + 700 && h.metrics(0).bitratePlayedMs == 60 * day + 700)
        #expect(h.metrics(120_000, .video, ["va"]).playingMs == 8)
        #expect(h.metrics(120_000, .video, ["vb"]).playingMs == 940)
        #expect(h.metrics(120_000, .geo, ["unknown", "unknown"]).playingMs == 8 + 900)
        #expect(h.metrics(120_000, .geo, ["FR", "unknown"]).playingMs == 40)
        #expect(h.metrics(120_000).bitrateMsSum == 8 * 10_000_000 + 940 * 1000)
        #expect(h.sessionRows.map(\.playingMs).sorted() == [1640, 60 * day + 8])
    }

    /// A checkpoint taken while sessions hold played time back carries it
    /// in its windows: the restored engine writes what the first would have.
    @Test func aSnapshotCarriesThePlayedTimeSessionsHoldBack() throws {
        let h = Harness()
        h.beacon("view_start", 0, "A", ["video_id": "va"])
        h.beacon("heartbeat", 1000, "A", ["played_ms": 500, "bitrate_kbps": 800])
        h.beacon("heartbeat", 2000, "A", ["played_ms": 700])
        let restored = QoSEngine<ExactKit>(config: h.config)
        try restored.restore(partition: 0, from: h.engine.snapshot(partition: 0))
        let overall = restored.finish().filter { $0.start == 0 }.map { $0.tables[MetricTable.overall.rawValue].metrics[0] }
        #expect(overall.map(\.playingMs) == [1200] && overall.map(\.bitrateMsSum) == [1200 * 800])
    }

    @Test func rejectsForTimestampsOutOfBounds() {
        let h = Harness()
        h.nowMs = 1_000_000_000
        h.beacon("view_start", 1_000_300_001, "s1")       // > 5 min ahead of the clock
        h.beacon("view_start", 900_000_000, "s2")
        h.beacon("heartbeat", 900_000_000 - 86_400_000 - 30_001, "s3") // > 24 h behind the watermark
        h.beacon("heartbeat", 900_000_000 - 86_400_000 - 30_000, "s4") // exactly at the bound: accepted
        h.finish()
        #expect(h.rejectRows.map(\.reason) == ["ts_in_future", "ts_too_old"])
        // Rejected before the partition's first accepted beacon: stamped with that beacon's ts.
        #expect(h.rejectRows[0].ingestedAt == 900_000_000 && h.rejectRows[1].ingestedAt == 900_000_000)
        #expect(h.rejectRows[1].source == "test:3")
        #expect(h.engine.counters.accepted == 2)
    }

    @Test func groupCapSendsOverflowToOther() {
        let h = Harness { $0.groupsPerWindowMax = 2 }
        for (i, v) in ["A", "B", "C", "D"].enumerated() {
            h.beacon("view_start", Int64(i), "s\(i)", ["video_id": v])
        }
        h.finish()
        #expect(h.metrics(0, .video, ["A"]).views == 1)
        #expect(h.metrics(0, .video, ["__other__"]).views == 2)
        #expect(h.metrics(0, .video, ["B"]).views == 1)
        #expect(h.metrics(0).views == 4)
    }

    @Test func startupOutsideBoundsIsNotCounted() {
        let h = Harness()
        h.beacon("view_start", 0, "A"); h.beacon("play_start", 300_001, "A")
        h.beacon("play_start", 1000, "B"); h.beacon("view_start", 2000, "B") // play before view: negative
        h.beacon("play_start", 5000, "C"); h.beacon("view_start", 1000, "C") // arrives second: completes it
        h.finish()
        #expect(h.metrics(0).startupMsCount == 1 && h.metrics(0).startupMsSum == 4000)
        #expect(h.metrics(0).plays == 2 && h.metrics(min2 * 2).plays == 1)
    }
}

@Suite struct SeqSetTests {
    @Test func detectsDuplicatesInAnyOrder() {
        var s = SeqSet()
        let order: [UInt32] = [5, 6, 7, 1, 3, 2, 4, 100, 99, 0, UInt32.max]
        for x in order { let added = s.insert(x); #expect(added) }
        for x in order { let added = s.insert(x); #expect(!added) }
        #expect(s.ranges == [0...7, 99...100, UInt32.max...UInt32.max])
        let added = s.insert(8)
        #expect(added && s.ranges[0] == 0...8)
    }

    @Test func aLateFirstBeaconAfterManyOthersIsNotADuplicate() {
        var s = SeqSet()
        for x in UInt32(2)...1000 { let added = s.insert(x); #expect(added) }
        let first = s.insert(1)
        #expect(first)
        #expect(s.ranges == [1...1000])
    }

    @Test func rangesStayBounded() {
        var s = SeqSet()
        for x in stride(from: UInt32(0), to: 10_000, by: 3) { _ = s.insert(x) }
        #expect(s.ranges.count <= SeqSet.rangesMax)
    }

    /// The inline-first-range layout behaves exactly like the plain sorted
    /// array of ranges it replaced (the reference below), including the
    /// joins past `rangesMax` and going back to one range.
    @Test func matchesTheArrayReference() {
        var rng = SystemRandomNumberGenerator()
        for round in 0..<300 {
            var s = SeqSet(), ref = ReferenceSeqSet()
            let span = UInt32([4, 40, 400, 100_000][round % 4])
            for _ in 0..<400 {
                let edge = [0, 1, UInt32.max - 1, UInt32.max]
                let x = Int.random(in: 0..<50, using: &rng) == 0 ? edge.randomElement(using: &rng)!
                    : UInt32.random(in: 0...span, using: &rng)
                #expect(s.insert(x) == ref.insert(x))
                #expect(s.ranges == ref.ranges)
            }
            var restored = SeqSet()
            for r in s.ranges { restored.restore(r) }
            #expect(restored == s && restored.ranges == s.ranges)
        }
    }
}

/// The previous SeqSet implementation, kept as the reference.
private struct ReferenceSeqSet {
    var ranges: [ClosedRange<UInt32>] = []
    mutating func insert(_ seq: UInt32) -> Bool {
        if let last = ranges.last {
            if seq == last.upperBound &+ 1 && seq != 0 {
                ranges[ranges.count - 1] = last.lowerBound...seq
                return true
            }
            if last.contains(seq) { return false }
        }
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound < seq { lo = mid + 1 } else { hi = mid }
        }
        if lo < ranges.count && ranges[lo].contains(seq) { return false }
        let joinsLeft = lo > 0 && ranges[lo - 1].upperBound &+ 1 == seq
        let joinsRight = lo < ranges.count && seq &+ 1 == ranges[lo].lowerBound
        switch (joinsLeft, joinsRight) {
        case (true, true):
            ranges[lo - 1] = ranges[lo - 1].lowerBound...ranges[lo].upperBound
            ranges.remove(at: lo)
        case (true, false): ranges[lo - 1] = ranges[lo - 1].lowerBound...seq
        case (false, true): ranges[lo] = seq...ranges[lo].upperBound
        case (false, false):
            ranges.insert(seq...seq, at: lo)
            if ranges.count > SeqSet.rangesMax {
                var best = 0, bestGap = UInt32.max
                for i in 0..<(ranges.count - 1) {
                    let gap = ranges[i + 1].lowerBound - ranges[i].upperBound
                    if gap < bestGap { bestGap = gap; best = i }
                }
                ranges[best] = ranges[best].lowerBound...ranges[best + 1].upperBound
                ranges.remove(at: best + 1)
            }
        }
        return true
    }
}

@Suite struct WatermarkTests {
    @Test func minOverActivePartitionsWithIdlenessAndUnfetchedPartitionsHolding() {
        var t = WatermarkTracker(latenessMs: 30_000, idleTimeoutMs: 30_000)
        #expect(t.value(wallMs: 0) == nil)
        t.observe(partition: 0, ts: 1_000_000, wallMs: 0)
        t.observe(partition: 1, ts: nil, wallMs: 0)           // assigned, nothing fetched yet
        #expect(t.value(wallMs: 1_000) == nil)                 // holds the watermark back
        t.observe(partition: 1, ts: 500_000, wallMs: 1_000)
        #expect(t.value(wallMs: 2_000) == 470_000)             // min over partitions
        #expect(t.value(wallMs: 31_500) == 970_000)            // partition 1 idle: no longer holds back
        #expect(t.value(wallMs: 40_000) == 970_000)            // all idle: the max
        t.observe(partition: 2, ts: nil, wallMs: 40_000)
        #expect(t.value(wallMs: 80_000) == 970_000)            // an empty partition idle for long is ignored
    }
}
