import Testing
@testable import QoSCore

/// `SessionRows` (a window's packed `sessions` rows) gives back exactly the
/// rows appended, and orders session ids as `String`s do.
@Suite struct SessionRowsTests {
    func row(_ id: String, viewer: String, video: String = "v1", _ i: Int64, optionals: Bool) -> SessionRow {
        SessionRow(
            sessionId: id, viewerId: viewer, videoId: video, country: "DE", region: "DE-BE", city: "Berlin",
            asn: optionals ? 3320 + i : nil, asOrg: "unknown", deviceType: "tv", os: "Tizen", browser: "unknown",
            playerName: "shaka-player", playerVersion: "4.7.\(i % 3)", cdn: "fastly", pop: "ams",
            live: optionals ? (i % 2 == 0) : nil, videoDurationMs: optionals ? Int64.max - i : nil,
            startTs: 1_767_225_600_000 + i, endTs: 1_767_225_700_000 + i, closeTs: Int64.min + i,
            closeReason: CloseReason.allCases[Int(i) % CloseReason.allCases.count],
            missingStart: i % 2 == 1, hadViewStart: i % 3 == 0, played: i % 5 == 0,
            startupMs: optionals ? -i : nil, playingMs: i * 1000, rebufferCount: i, rebufferMs: Int64.max,
            seekCount: -1, seekMs: i, bitrateMsSum: i << 40, bitratePlayedMs: i, upshifts: i, downshifts: 2 * i,
            errors: i, fatalErrorCode: optionals ? "E\(i)" : nil, vsf: i % 7 == 0, vpf: i % 4 == 0,
            ebvs: i % 6 == 0, completed: i % 8 == 0, maxPlayheadMs: i, beacons: 70 + i)
    }

    @Test func everyValueReadsBackExactly() {
        var rows: [SessionRow] = []
        for i in Int64(0)..<40 {
            let id = i % 5 == 0 ? "sëssion-\(i)-\(String(repeating: "x", count: Int(i)))" : "s\(i)"
            rows.append(row(id, viewer: i % 4 == 0 ? "" : "viewer-\(i)", video: "video-\(i % 6)", i, optionals: i % 2 == 0))
        }
        var packed = SessionRows()
        for r in rows { packed.append(r) }
        #expect(Array(packed) == rows)
        #expect(packed.count == rows.count)
        #expect(packed.names.count < 40, "attributes are stored once per distinct string")
        var merged = SessionRows(rows.prefix(10))
        merged += SessionRows(rows.dropFirst(10))
        #expect(merged == packed)
    }

    @Test func sessionIdOrderIsStringOrder() {
        let ids = ["b", "a", "ab", "", "é", "e\u{301}x", "Z", "zz", "é1", "\u{10FFFF}", "a\u{0}", "A"]
        let packed = SessionRows(ids.enumerated().map { row($0.element, viewer: "v", Int64($0.offset), optionals: false) })
        for a in ids.indices {
            for b in ids.indices {
                #expect(packed.sessionIdLess(a, b) == (ids[a] < ids[b]), "\(ids[a]) vs \(ids[b])")
            }
        }
    }
}
