import Foundation
import QoSCore

/// CMCD (CTA-5004 Common Media Client Data, v2 = CTA-5004-B) as an input
/// format: one record = one CMCD report in its string form
/// (`sid="…",ts=…,e=ps,sta=p,…`), as players send it in event and response
/// mode and as `qos collect` produces it. docs/cmcd.md maps every key.
///
/// CMCD reports *states* (`sta`), the session model counts *events*, so the
/// format remembers per `sid` the last state, its time and whether the view
/// and the first frame were already reported, and turns each report into
/// the beacons of the transition (playing after rebuffering is a
/// `rebuffer_end`, …), with `played_ms` = the time spent playing since the
/// previous report. That memory is per stream and bounded (`CMCDSessions`);
/// `qos run` saves it with each partition's checkpoint and restores it with
/// the partition, so a restart goes on exactly where the checkpoint was.
public struct CMCDFormat: RecordFormat {
    public let name = "cmcd"
    let sessions: CMCDSessions
    /// This instance is one stream's (from `forSource`), not a prototype.
    let ownsStream: Bool

    public init(sessionsMax: Int = 1_000_000) { self.init(sessions: CMCDSessions(max: sessionsMax), ownsStream: false) }

    init(sessions: CMCDSessions, ownsStream: Bool) {
        self.sessions = sessions
        self.ownsStream = ownsStream
    }

    /// A new stream (a Kafka partition, the files of one `qos replay`) gets
    /// session state of its own, so two partitions never share a session's
    /// last state; the next file of the same replay continues its stream's
    /// state (a session may go on in the next file).
    public func forSource(named source: String) -> any RecordFormat {
        ownsStream ? self : CMCDFormat(sessions: CMCDSessions(max: sessions.max), ownsStream: true)
    }

    public func checkpointState() -> [UInt8] { ownsStream ? sessions.encoded() : [] }

    public func restoreState(_ bytes: [UInt8]) throws {
        precondition(ownsStream, "CMCDFormat.restoreState on the registry's prototype: restore a stream's instance")
        try sessions.restore(bytes)
    }

    public func decode(_ record: UnsafeRawBufferPointer, _ sink: (DecodedItem) -> Void) {
        // Past the message limit is `too_large`, as for beacons (a file line that long comes cut: `LineReader`).
        guard record.count <= BeaconLimits.messageBytesMax else { return sink(.reject(.tooLarge, payload: 0..<record.count)) }
        var end = record.count
        while end > 0, record[end - 1] == 0x0a || record[end - 1] == 0x0d { end -= 1 }
        let whole = 0..<record.count
        let first = record.first { $0 != 0x20 && $0 != 0x09 && $0 != 0x0a && $0 != 0x0d }
        guard first != UInt8(ascii: "{") && first != UInt8(ascii: "[") else {
            // The JSON form (CMCDJSON): each report in turn, a bad one a reject.
            switch CMCDJSON.reports(Array(record)) {
            case .failure(let r): sink(.reject(r.reason, payload: whole))
            case .success(let reports):
                // A refused report's `rejects` payload is its own element.
                for report in reports {
                    let own = report.span ?? whole
                    switch report.result {
                    case .failure(let bad): sink(.reject(bad.reason.reason, payload: own))
                    case .success(let text): text.withUnsafeBytes { decodeText($0, payload: own, sink) }
                    }
                }
            }
            return
        }
        decodeText(UnsafeRawBufferPointer(rebasing: record[0..<end]), payload: whole, sink)
    }

    /// One report in the text form; a reject's payload is `payload` (of the record).
    private func decodeText(_ text: UnsafeRawBufferPointer, payload whole: Range<Int>, _ sink: (DecodedItem) -> Void) {
        let rec: CMCDRecord
        switch CMCDParser.parse(text, limit: CMCDParser.annotatedRecordBytesMax) {
        case .failure(let e): return sink(.reject(e.reason, payload: whole))
        case .success(let r): rec = r
        }
        switch CMCDFormat.beacons(rec, sessions) {
        case .failure(let r): sink(.reject(r.reason, payload: whole))
        case .success(let beacons): for b in beacons { sink(.beacon(b)) }
        }
    }

    /// Checks what makes a record unusable (syntax, `sid`, `ts`, types)
    /// without touching session state: the collector's 400.
    public static func validate(_ rec: CMCDRecord) -> RejectReason? {
        if case .failure(let r) = header(rec) { return r.reason }
        return nil
    }

    struct Header { var sid: String; var ts: Int64 }

    static func header(_ rec: CMCDRecord) -> Result<Header, CMCDReject> {
        guard let sidValue = rec["sid"] else { return .failure(CMCDReject(.missingField("sid"))) }
        guard case .string(let sid) = sidValue else { return .failure(CMCDReject(.wrongType("sid"))) }
        guard !sid.isEmpty else { return .failure(CMCDReject(.missingField("sid"))) }
        guard sid.utf8.count <= BeaconLimits.sessionIdBytesMax else { return .failure(CMCDReject(.fieldTooLong("sid"))) }
        guard let tsValue = rec["ts"] else { return .failure(CMCDReject(.missingField("ts"))) }
        guard case .integer(let ts) = tsValue else { return .failure(CMCDReject(.wrongType("ts"))) }
        guard ts >= BeaconLimits.tsMinMs else { return .failure(CMCDReject(.invalidValue("ts"))) }
        for key in ["cid", "cdn", "url", "h"] {
            if let v = rec[key] { guard case .string = v else { return .failure(CMCDReject(.wrongType(key))) } }
        }
        if let v = rec["pt"] {
            guard case .integer(let i) = v else { return .failure(CMCDReject(.wrongType("pt"))) }
            guard i >= 0 && i <= BeaconLimits.positionMsMax else { return .failure(CMCDReject(.invalidValue("pt"))) }
        }
        for key in ["msd", "rc", "ttfb", "ttlb", "d", "ttfbb"] {
            if let v = rec[key] {
                guard case .integer(let i) = v else { return .failure(CMCDReject(.wrongType(key))) }
                guard i >= 0 && i <= BeaconLimits.durationMsMax else { return .failure(CMCDReject(.invalidValue(key))) }
            }
        }
        if let v = rec["sta"] {
            guard case .token(let s) = v else { return .failure(CMCDReject(.wrongType("sta"))) }
            guard CMCDSessions.states.contains(s) else { return .failure(CMCDReject(.invalidValue("sta"))) }
        }
        if let v = rec["e"] { guard case .token = v else { return .failure(CMCDReject(.wrongType("e"))) } }
        return .success(Header(sid: sid, ts: ts))
    }

    /// The beacons of one report (docs/cmcd.md, "From reports to events").
    static func beacons(_ rec: CMCDRecord, _ sessions: CMCDSessions) -> Result<[Beacon], CMCDReject> {
        let h: Header
        switch header(rec) {
        case .failure(let r): return .failure(r)
        case .success(let v): h = v
        }
        var base = Beacon(event: .heartbeat, ts: h.ts, sessionId: h.sid)
        base.videoId = rec.string("cid").map { clip($0, BeaconLimits.videoIdBytesMax) }
        if let st = rec.string("st") { base.live = st == "l" || st == "ll" }
        base.cdn = rec.string("cdn").map { clip($0) }
        base.bitrateKbps = rec.firstInteger("br").flatMap { (0...BeaconLimits.bitrateKbpsMax).contains($0) ? $0 : nil }
        base.playheadMs = rec.integer("pt")
        base.ip = rec.string(CMCDHTTP.ipKey).flatMap { IPNetwork.isAddress($0) ? $0 : nil }
        base.userAgent = rec.string(CMCDHTTP.userAgentKey).map { clip($0, BeaconLimits.userAgentBytesMax) }
        let event = rec.string("e")
        let newState = rec.string("sta")

        return .success(sessions.update(h.sid) { s in
            var out: [Beacon] = []
            func emit(_ e: EventType, _ edit: (inout Beacon) -> Void = { _ in }) {
                var b = base
                b.event = e
                edit(&b)
                out.append(b)
            }
            // Played time: the session was playing since its previous report.
            var played: Int64? = nil
            if s.state == "p", let prev = s.ts, h.ts > prev, h.ts - prev <= BeaconLimits.durationMsMax { played = h.ts - prev }

            if let st = newState, st != s.state {
                let from = s.state
                /// Leaving a stall or a seek ends it.
                func endStallOrSeek() {
                    if from == "r" { emit(.rebufferEnd) }
                    if from == "k" { emit(.seekEnd) }
                }
                switch st {
                case "s":
                    emit(.viewStart); s.viewStarted = true
                case "p":
                    endStallOrSeek()
                    if from == "a" { emit(.resume) }
                    if !s.playStarted {
                        if !s.viewStarted, let msd = rec.integer("msd") {
                            emit(.viewStart) { $0.ts = h.ts - msd }
                            s.viewStarted = true
                        }
                        emit(.playStart); s.playStarted = true
                    }
                case "k":
                    if from == "r" { emit(.rebufferEnd) }
                    emit(.seekStart)
                case "r":
                    if from == "k" { emit(.seekEnd) }
                    emit(.rebufferStart)
                case "a":
                    endStallOrSeek()
                    emit(.pause)
                case "w":   // waiting, not for data: a stall or a seek is over
                    endStallOrSeek()
                case "e":
                    emit(.viewEnd) { $0.reason = .ended }
                case "q":
                    emit(.viewEnd) { $0.reason = .exit }
                case "f":
                    emit(.error) { $0.fatal = true; $0.errorCode = rec.firstString("ec").map { clip($0) } }
                    emit(.viewEnd) { $0.reason = .error }
                default:   // "d" preloading: not a view yet
                    break
                }
                s.state = st
            }
            switch event {
            case "e"?:
                if newState != "f" { emit(.error) { $0.fatal = false; $0.errorCode = rec.firstString("ec").map { clip($0) } } }
            case "bc"?:
                emit(.bitrateChange)
            case "rr"?:
                if rec.string("ot") != "k" {
                    emit(.segment) { b in
                        b.httpStatus = rec.integer("rc")
                        b.ttfbMs = rec.integer("ttfb")
                        b.downloadMs = rec.integer("ttlb")
                    }
                }
            default:
                break
            }
            // A report that changed nothing still carries time (and `e=t` is
            // the periodic one): a heartbeat, once the view is known.
            if out.isEmpty, s.viewStarted || s.playStarted || event == "t" { emit(.heartbeat) }
            if let played, !out.isEmpty { out[0].playedMs = played }
            // The latest report time, never back: a response report (`e=rr`)
            // carries its request's start, earlier than the report before it;
            // going back would credit that stretch of playing twice.
            if s.ts.map({ h.ts > $0 }) ?? true { s.ts = h.ts }
            if newState == "e" || newState == "q" || newState == "f" { s.ended = true }
            return out
        })
    }

    /// `s` cut to at most `max` UTF-8 bytes, on a character boundary.
    static func clip(_ s: String, _ max: Int = BeaconLimits.otherStringBytesMax) -> String {
        if s.utf8.count <= max { return s }
        var out = "", used = 0
        for ch in s {
            let n = ch.utf8.count
            if used + n > max { break }
            out.append(ch); used += n
        }
        return out
    }
}

/// Per-session CMCD state, bounded: sessions that ended are forgotten at
/// once; past `max` sessions, those silent for longer than the session
/// timeout (5 minutes of event time behind the newest report) are dropped,
/// and if that is not enough, all are (each then restarts as unknown).
final class CMCDSessions: @unchecked Sendable {
    static let states: Set<String> = ["s", "p", "k", "r", "a", "w", "e", "f", "q", "d"]
    struct State { var state: String?; var ts: Int64?; var viewStarted = false; var playStarted = false; var ended = false }
    private var map: [String: State] = [:]
    private var newest: Int64 = 0
    private let lock = NSLock()
    let max: Int

    init(max: Int) { self.max = Swift.max(1, max) }

    func update<R>(_ sid: String, _ body: (inout State) -> R) -> R {
        lock.withLock {
            var s = map[sid] ?? State()
            let r = body(&s)
            if let ts = s.ts, ts > newest { newest = ts }
            if s.ended {
                map[sid] = nil
            } else {
                map[sid] = s
                if map.count > max {
                    let cutoff = newest - 5 * 60_000
                    map = map.filter { ($0.value.ts ?? 0) >= cutoff }
                    if map.count > max { map.removeAll() }
                }
            }
            return r
        }
    }

    var count: Int { lock.withLock { map.count } }

    /// The sessions as bytes for a checkpoint (version, newest report time,
    /// then per session: sid, state or "", time or Int64.min, flags). The
    /// manifest that holds them is checksummed as a whole.
    func encoded() -> [UInt8] {
        lock.withLock {
            var w = StateWriter(capacity: 16 + map.count * 48)
            w.uint(Self.encodingVersion)
            w.int(newest)
            w.uint(UInt64(map.count))
            for (sid, s) in map {
                w.string(sid)
                w.string(s.state ?? "")
                w.int(s.ts ?? .min)
                w.uint((s.viewStarted ? 1 : 0) | (s.playStarted ? 2 : 0))
            }
            return w.bytes
        }
    }

    /// Replaces the sessions with `encoded()` bytes ([] = none).
    func restore(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { lock.withLock { map = [:]; newest = 0 }; return }
        var r = StateReader(bytes)
        guard try r.uint() == Self.encodingVersion else { throw StateError(message: "CMCD state: unknown version") }
        let newestTs = try r.int()
        var restored: [String: State] = [:]
        for _ in 0..<(try r.count(max)) {
            let sid = try r.string(), state = try r.string(), ts = try r.int(), flags = try r.uint()
            guard !sid.isEmpty, state.isEmpty || Self.states.contains(state), flags < 4 else {
                throw StateError(message: "CMCD state: bad session entry")
            }
            restored[sid] = State(state: state.isEmpty ? nil : state, ts: ts == .min ? nil : ts,
                                  viewStarted: flags & 1 != 0, playStarted: flags & 2 != 0)
        }
        guard r.atEnd else { throw StateError(message: "CMCD state: trailing bytes") }
        lock.withLock { map = restored; newest = newestTs }
    }

    static let encodingVersion: UInt64 = 1
}
