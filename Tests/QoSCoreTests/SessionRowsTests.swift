import Testing
import SplitMix
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

    /// Appending another `SessionRows` moves its stored rows (names
    /// renumbered, id bytes copied) and reads back as appending its rows
    /// one by one does: into rows that already hold some of its names in
    /// another order, across id-byte chunks, with wide numbers, nil and
    /// non-nil optionals, empty and non-ASCII ids, several times over.
    @Test func appendingRowsMovesThemAsTheyRead() {
        var rng = SplitMix64(seed: 61)
        func share(_ n: Int, _ tag: String) -> [SessionRow] {
            (0..<n).map { k in
                let i = Int64(rng.next() % 1_000)
                let id = k % 9 == 0 ? "sëss-\(tag)-\(k)-" + String(repeating: "y", count: Int(i % 200)) : "\(tag)-\(k)"
                return row(id, viewer: k % 5 == 0 ? "" : "viewer-\(i)", video: "video-\(rng.next() % 40)", i,
                           optionals: k % 3 != 0)
            }
        }
        let shares = (0..<6).map { share(700, "p\($0)") }
        var moved = SessionRows(shares[0].reversed())
        var oneByOne = moved
        for s in shares.dropFirst() {
            let rows = SessionRows(s)
            moved += rows
            oneByOne += Array(rows)
        }
        moved += SessionRows()
        #expect(moved.count == 6 * 700)
        #expect(Array(moved) == Array(oneByOne))
        #expect(Set(moved.names) == Set(oneByOne.names) && moved.names.count == Set(moved.names).count)
        #expect(moved.nameBytes == moved.names.map { Array($0.utf8) })
        for i in stride(from: 0, to: moved.count, by: 97) {
            #expect(moved.sessionId(i) == oneByOne.sessionId(i) && moved.viewerId(i) == oneByOne.viewerId(i))
        }
    }

    /// Each distinct string gets one id however many rows carry it (the
    /// index grows through several sizes), strings that differ in one
    /// byte, in length only, or in normalisation only stay apart (the
    /// engine's interners hand the rows one form of each), and every row
    /// reads back its own.
    @Test func stringsAreStoredOncePerDistinctValue() {
        let videos = (0..<3_000).map { "video-\($0)" } + ["", "video", "video-1 ", "vidéo-1", "vide\u{301}o-1",
                                                          String(repeating: "v", count: 300)]
        var rng = SplitMix64(seed: 37)
        var rows: [SessionRow] = []
        for i in Int64(0)..<12_000 {
            let video = i < Int64(videos.count) ? videos[Int(i)] : videos[Int(rng.next() % UInt64(videos.count))]
            rows.append(row("s\(i)", viewer: "w", video: video, i, optionals: i % 2 == 0))
        }
        let packed = SessionRows(rows)
        #expect(Array(packed) == rows)
        #expect(zip(packed, rows).allSatisfy { Array($0.videoId.utf8) == Array($1.videoId.utf8) }, "bytes as given")
        let byBytes = Set(packed.names.map { Array($0.utf8) })
        #expect(byBytes.count == packed.names.count, "one id per distinct string")
        #expect(Set(videos.map { Array($0.utf8) }).isSubset(of: byBytes))
        #expect(packed.nameBytes == packed.names.map { Array($0.utf8) })
    }

    /// Rows and id bytes live in chunks (`Chunked`, `IdBytes`): many rows
    /// cross chunk boundaries, ids land at a chunk's very end, and an id
    /// pair larger than a whole chunk gets a chunk of its own; every row and
    /// id reads back exactly, in order.
    @Test func rowsAcrossChunksAndOversizedIdsReadBack() {
        var rows: [SessionRow] = []
        var width = 1
        for i in Int64(0)..<(Int64(Chunked<SessionRows.Packed>.chunkSize) * 5 + 3) {
            // Id lengths sweep 1…200 bytes, so pairs end at every position of
            // a 4 KB chunk; every 50th pair is larger than a chunk.
            width = width % 200 + 1
            let big = i % 50 == 7 ? String(repeating: "z", count: IdBytes.chunkSize + Int(i)) : ""
            rows.append(row("s\(i)-" + String(repeating: "a", count: width) + big,
                            viewer: big.isEmpty ? "v\(i)" : big + "v", i, optionals: i % 3 == 0))
        }
        let packed = SessionRows(rows)
        #expect(packed.count == rows.count)
        #expect(Array(packed) == rows)
        for i in packed.indices {
            #expect(packed.sessionId(i) == rows[i].sessionId)
            #expect(packed.viewerId(i) == rows[i].viewerId)
        }
        let j = rows.count - 1
        #expect(packed.sessionIdLess(0, j) == (rows[0].sessionId < rows[j].sessionId))
        #expect(packed.sessionIdLess(j, 0) == (rows[j].sessionId < rows[0].sessionId))
    }

    /// An engine-like row keeps its numbers in the compact fields (152-byte
    /// rows); a value outside them (a huge count, a time far from the start,
    /// a negative duration) moves the row's numbers to the box, and every
    /// value still reads back exactly, at both edges of every width.
    @Test func compactRowsAndWideRowsReadBackExactly() {
        #expect(MemoryLayout<SessionRows.Packed>.stride == 152)
        let t0: Int64 = 1_767_225_600_000
        func typical(_ i: Int64) -> SessionRow {
            SessionRow(
                sessionId: "6f1c2a9e-\(i)", viewerId: "viewer-\(i % 7)", videoId: "v\(i % 3)", country: "DE",
                region: "DE-BE", city: "Berlin", asn: i % 2 == 0 ? Int64(UInt32.max) : nil, asOrg: "AS",
                deviceType: "tv", os: "Tizen", browser: "unknown", playerName: "shaka-player",
                playerVersion: "4.7.1", cdn: "fastly", pop: "ams", live: false,
                videoDurationMs: i % 3 == 0 ? nil : Int64(UInt32.max), startTs: t0 + i,
                endTs: t0 + i + Int64(Int32.max), closeTs: t0 + i + Int64(Int32.min),
                closeReason: .timeout, missingStart: false, hadViewStart: true, played: true,
                startupMs: i % 2 == 0 ? Int64(Int32.min) : Int64(Int32.max), playingMs: Int64(UInt32.max),
                rebufferCount: Int64(UInt16.max), rebufferMs: 0, seekCount: 0, seekMs: 12,
                bitrateMsSum: Int64.max, bitratePlayedMs: 5, upshifts: 1, downshifts: 2, errors: 0,
                fatalErrorCode: nil, vsf: false, vpf: false, ebvs: false, completed: true,
                maxPlayheadMs: 600_000, beacons: Int64(UInt32.max))
        }
        var rows = (Int64(0)..<20).map(typical)
        let compact = SessionRows(rows)
        #expect(compact.packed.allSatisfy { !$0.isWide })
        #expect(Array(compact) == rows)
        // One value past its width each: that row only goes wide.
        let edits: [(inout SessionRow) -> Void] = [
            { $0.asn = Int64(UInt32.max) + 1 }, { $0.asn = -1 }, { $0.videoDurationMs = -1 },
            { $0.startupMs = Int64(Int32.max) + 1 }, { $0.endTs = $0.startTs + Int64(Int32.max) + 1 },
            { $0.closeTs = $0.startTs + Int64(Int32.min) - 1 }, { $0.closeTs = Int64.min },
            { $0.playingMs = -1 }, { $0.rebufferCount = Int64(UInt16.max) + 1 }, { $0.rebufferMs = Int64(UInt32.max) + 1 },
            { $0.seekCount = -1 }, { $0.seekMs = Int64.max }, { $0.bitratePlayedMs = -5 },
            { $0.upshifts = 70_000 }, { $0.downshifts = -2 }, { $0.errors = 1 << 40 },
            { $0.maxPlayheadMs = Int64.min }, { $0.beacons = Int64(UInt32.max) + 1 },
        ]
        for (k, edit) in edits.enumerated() { edit(&rows[k]) }
        let mixed = SessionRows(rows)
        #expect(Array(mixed) == rows)
        #expect(mixed.packed.map(\.isWide) == rows.indices.map { $0 < edits.count })
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
