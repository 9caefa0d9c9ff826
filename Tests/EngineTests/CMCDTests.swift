import Foundation
import Generator
import QoSCore
import SplitMix
import Testing
@testable import Engine

/// CMCD (CTA-5004 / CTA-5004-B) as an input format: the syntax on the
/// specification's own examples, the mapping of reports to events, and a
/// session sent as CMCD equal to the same session sent as beacon JSON.
@Suite struct CMCDTests {
    func parse(_ s: String) throws -> CMCDRecord { try CMCDParser.parse(s).get() }

    /// CTA-5004's example of all keys on one video object request (its
    /// query-string form, decoded), and the same data split into the four
    /// headers.
    @Test func theSpecificationsAllKeysExample() throws {
        let query = "bl=21300,br=3200,bs,cid=\"faec5fc2-ac30-11eabb37-0242ac130002\",d=4004,dl=18500,mtp=48100,"
            + "nor=\"..%2F300kbps%2Ftrack.m4v\",nrr=\"12323-48763\",ot=v,pr=1.08,rtp=12000,sf=d,"
            + "sid=\"6e2fb550-c457-11e9-bb97-0800200c9a66\",st=v,su,tb=6141"
        let r = try parse(query)
        #expect(r["bl"] == .integer(21300))                                  // integer
        #expect(r["pr"] == .decimal(1.08))                                   // decimal
        #expect(r["cid"] == .string("faec5fc2-ac30-11eabb37-0242ac130002"))  // string
        #expect(r["ot"] == .token("v"))                                      // token
        #expect(r["bs"] == .boolean(true))                                   // boolean: key without value
        #expect(r["su"] == .boolean(true))
        #expect(r["nor"] == .string("..%2F300kbps%2Ftrack.m4v"))
        #expect(r.keys.count == 17)
        // The header form: four shards of one record.
        let headers = ["br=3200,d=4004,ot=v,tb=6141",
                       "bl=21300,dl=18500,mtp=48100,nor=\"..%2F300kbps%2Ftrack.m4v\",nrr=\"12323-48763\",su",
                       "cid=\"faec5fc2-ac30-11eabb37-0242ac130002\",pr=1.08,sf=d,sid=\"6e2fb550-c457-11e9-bb97-0800200c9a66\",st=v",
                       "bs,rtp=12000"]
        let h = try parse(headers.joined(separator: ","))
        #expect(Set(h.keys) == Set(r.keys))
        for k in r.keys { #expect(h[k] == r[k]) }
    }

    /// v2 inner lists with object-type parameters, booleans `?0`, negative numbers.
    @Test func version2InnerListsAndBooleans() throws {
        let r = try parse("v=2,br=(3200;v 128;a),bl=(21300;v 21000;a),ec=(\"E1\" \"E2\"),nor=(\"seg2.m4v\";r=\"0-99\"),bg=?0,bs=?1,x-custom=-5")
        #expect(r.integer("v") == 2)
        #expect(r.firstInteger("br") == 3200)
        #expect(r["br"] == .list([CMCDItem(.integer(3200), params: ["v": .boolean(true)]),
                                  CMCDItem(.integer(128), params: ["a": .boolean(true)])]))
        #expect(r.firstString("ec") == "E1")
        #expect(r["nor"] == .list([CMCDItem(.string("seg2.m4v"), params: ["r": .string("0-99")])]))
        #expect(r["bg"] == .boolean(false) && r["bs"] == .boolean(true))
        #expect(r["x-custom"] == .integer(-5))
        // The audio one first: the video-tagged value is still the bitrate.
        #expect(try parse("br=(128;a 3200;v)").firstInteger("br") == 3200)
        // Round trip of what the collector writes.
        #expect(try parse("br=" + CMCDParser.serialize(r["br"]!))["br"] == r["br"])
    }

    /// JSON-mode reports (`qos collect`): a key CMCD does not define is not
    /// named in the reason either, whatever its length.
    @Test func jsonReportsNameOnlyDefinedKeysInReasons() {
        for (json, reason) in [(#"[{"sid":"a","ts":1767225600000,"made-up-key-123":{"x":1}}]"#, "invalid_cmcd:value:other"),
                               (#"[{"sid":"a","ts":1767225600000,"br":{"x":1}}]"#, "invalid_cmcd:value:br")] {
            guard case .success(let reports) = CMCDJSON.reports(Array(json.utf8)), reports.count == 1,
                  case .failure(let r) = reports[0].result else { Issue.record("accepted: \(json)"); continue }
            #expect(r.reason.reason.code == reason)
        }
    }

    /// A Kafka message in the JSON form with several reports (a direct
    /// producer's; the collector splits them): each refused report is a
    /// `rejects` row whose payload is its own element, not the message.
    @Test func aRefusedReportOfAJSONArrayKeepsItsOwnBytes() {
        let good = #"{"sid":"s1","ts":1767225600000,"e":"ps","sta":"p"}"#
        let noSid = #"{"ts":1767225600000,"note":"a,]\"[{"}"#
        let notObject = #"[1, {"x": 2}]"#
        let message = " [ \(good) ,\n\(noSid),\(notObject) ]\n"
        var payloads: [String] = [], beacons = 0
        Array(message.utf8).withUnsafeBytes { raw in
            CMCDFormat().forSource(named: "t").decode(raw) { item in
                switch item {
                case .beacon: beacons += 1
                case .reject(_, let range): payloads.append(String(decoding: raw[range], as: UTF8.self))
                case .cdnLog: Issue.record("a CDN record from CMCD")
                }
            }
        }
        #expect(beacons >= 1)
        #expect(payloads == [noSid, notObject])
        // Not an array: the object itself, without the whitespace around it.
        let one = "  \(noSid)\n"
        let spans = Array(one.utf8).withUnsafeBytes { CMCDJSON.scan($0).elements }
        #expect(spans.map { String(decoding: Array(one.utf8)[$0], as: UTF8.self) } == [noSid])
        // The collector produces a refused report as its own bytes in a
        // one-element array — refused while converting (not an object) or
        // after (no sid): what the daemon then keeps is the same element.
        let records = CMCDHTTP.records(method: "POST", query: "", header: { _ in nil }, body: Array(message.utf8),
                                       ip: "192.0.2.1", userAgent: nil, nowMs: 1_767_225_600_000)
        // In request order: the answer's `index` of a refused report is its position.
        #expect(records.map { if case .record = $0 { "ok" } else { "refused" } } == ["ok", "refused", "refused"])
        let swapped = CMCDHTTP.records(method: "POST", query: "", header: { _ in nil }, body: Array("[\(notObject), \(good)]".utf8),
                                       ip: "192.0.2.1", userAgent: nil, nowMs: 1_767_225_600_000)
        #expect(swapped.map { if case .record = $0 { "ok" } else { "refused" } } == ["refused", "ok"])
        var produced: [(String, String)] = []
        for case .reject(let reason, let bytes) in records { produced.append((reason.code, String(decoding: bytes, as: UTF8.self))) }
        #expect(produced.map(\.1) == ["[\(noSid)]", "[\(notObject)]"])
        var again: [(String, String)] = []
        for (_, json) in produced {
            Array(json.utf8).withUnsafeBytes { raw in
                CMCDFormat().forSource(named: "t").decode(raw) { item in
                    if case .reject(let r, let range) = item { again.append((r.code, String(decoding: raw[range], as: UTF8.self))) }
                }
            }
        }
        #expect(again.map(\.0) == produced.map(\.0) && again.map(\.1) == [noSid, notObject])
    }

    /// `CMCDJSON.scan` against generated JSON: its depth is the deepest
    /// nesting and its ranges are exactly the array's elements, whatever the
    /// strings hold (brackets, commas, escaped quotes and backslashes) and
    /// however much whitespace lies between tokens.
    @Test func scanFindsTheElementsAndDepthOfAnyJSONArray() throws {
        var rng = SplitMix64(seed: 36)
        func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        func space() -> String { ["", " ", "\n", "\t ", "\r\n  "][pick(5)] }
        let pieces = ["a", ",", "]", "[", "{", "}", "\\\"", "\\\\", ":", "é", "\\u005d", " "]
        /// A value and its depth (1 for an array or object, 0 for a scalar).
        func value(_ budget: Int) -> (String, Int) {
            switch budget <= 0 ? pick(3) : pick(5) {
            case 0: return (["0", "-12.5e3", "true", "null", "7"][pick(5)], 0)
            case 1, 2:
                var t = "\""
                for _ in 0..<pick(6) { t += pieces[pick(pieces.count)] }
                return (t + "\"", 0)
            case 3:
                var parts: [String] = [], deepest = 0
                for _ in 0..<pick(4) { let (v, d) = value(budget - 1); parts.append(space() + v + space()); deepest = max(deepest, d) }
                return ("[" + parts.joined(separator: ",") + "]", deepest + 1)
            default:
                var parts: [String] = [], deepest = 0
                for i in 0..<pick(4) {
                    let (v, d) = value(budget - 1)
                    parts.append(space() + "\"k\(i)\"" + space() + ":" + space() + v + space())
                    deepest = max(deepest, d)
                }
                return ("{" + parts.joined(separator: ",") + "}", deepest + 1)
            }
        }
        for _ in 0..<2_000 {
            var elements: [String] = [], deepest = 0
            for _ in 0..<(1 + pick(5)) { let (v, d) = value(4); elements.append(v); deepest = max(deepest, d) }
            let body = Array((space() + "[" + elements.map { space() + $0 + space() }.joined(separator: ",") + "]" + space()).utf8)
            let (depth, spans) = body.withUnsafeBytes { CMCDJSON.scan($0) }
            #expect(depth == deepest + 1)
            #expect(spans.map { String(decoding: body[$0], as: UTF8.self) } == elements)
            let parsed = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) as? [Any]
            #expect(parsed?.count == elements.count)
        }
    }

    @Test func malformedStringsAreRejectedWithAReason() {
        let bad: [(String, String)] = [
            ("", "invalid_cmcd:empty"),
            ("Sid=\"x\"", "invalid_cmcd:key"),                 // keys are lower case
            ("sid=\"x", "invalid_cmcd:value:sid"),             // unterminated string
            ("sid=\"x\",,ts=1", "invalid_cmcd:key"),
            ("sid=\"x\",", "invalid_cmcd:trailing_comma"),
            ("pr=1.0004", "invalid_cmcd:value:pr"),            // at most 3 fraction digits
            ("bl=1234567890123456", "invalid_cmcd:value:bl"),  // at most 15 digits
            ("br=(1 2", "invalid_cmcd:value:br"),
            ("sid=\"caf\u{e9}\"", "invalid_cmcd:value:sid"),   // sf-string is ASCII
            ("sid=\"x\" ts=1", "invalid_cmcd:separator"),
            // A key CMCD does not define is not named: senders choose those names,
            // and one reason per name would grow the reject counters without bound.
            ("k1000x=\"x", "invalid_cmcd:value:other"), ("com.example-x=\"open", "invalid_cmcd:value:other"),
            ("org.videoqos-ua=(1", "invalid_cmcd:value:org.videoqos-ua"),
        ]
        for (text, reason) in bad {
            guard case .failure(let e) = CMCDParser.parse(text) else { Issue.record("accepted: \(text)"); continue }
            #expect(e.reason.code == reason, "\(text)")
        }
        // Through the format: one reject with the whole record as payload.
        var items: [DecodedItem] = []
        Array("sid=\"x\",ts=\"open".utf8).withUnsafeBytes { CMCDFormat().decode($0) { items.append($0) } }
        guard case .reject(let r, let payload)? = items.first else { Issue.record("no reject"); return }
        #expect(r.code == "invalid_cmcd:value:ts" && payload == 0..<16)
        // Well formed, but not a report we can use.
        for (text, reason) in [("ts=1764560000000", "missing_field:sid"), ("sid=\"x\"", "missing_field:ts"),
                               ("sid=x,ts=1764560000000", "wrong_type:sid"), ("sid=\"x\",ts=1764560000000,sta=z", "invalid_value:sta"),
                               ("sid=\"x\",ts=1764560000000,ttfb=-1", "invalid_value:ttfb")] {
            var got: [DecodedItem] = []
            Array(text.utf8).withUnsafeBytes { CMCDFormat().decode($0) { got.append($0) } }
            guard case .reject(let r, _)? = got.first else { Issue.record("accepted: \(text)"); continue }
            #expect(r.code == reason, "\(text)")
        }
    }

    func events(_ format: CMCDFormat, _ lines: [String]) -> [[String]] {
        lines.map { line in
            var out: [String] = []
            Array(line.utf8).withUnsafeBytes { format.decode($0) { item in
                if case .beacon(let b) = item { out.append(b.event.name + (b.playedMs.map { "+\($0)" } ?? "")) }
                if case .reject(let r, _) = item { out.append("reject:\(r.code)") }
            } }
            return out
        }
    }

    @Test func stateTransitionsBecomeEvents() {
        let f = CMCDFormat()
        let t = 1_764_560_000_000
        let got = events(f, [
            "sid=\"a\",ts=\(t),e=ps,sta=s",
            "sid=\"a\",ts=\(t + 1000),e=ps,sta=p",
            "sid=\"a\",ts=\(t + 5000),e=ps,sta=k",
            "sid=\"a\",ts=\(t + 5400),e=ps,sta=p",
            "sid=\"a\",ts=\(t + 9000),e=ps,sta=r",
            "sid=\"a\",ts=\(t + 9500),e=ps,sta=a",
            "sid=\"a\",ts=\(t + 12000),e=ps,sta=p",
            "sid=\"a\",ts=\(t + 15000),e=t",
            "sid=\"a\",ts=\(t + 16000),e=e,ec=(\"NET\")",
            "sid=\"a\",ts=\(t + 17000),e=ps,sta=f,ec=(\"DECODE\")",
            "sid=\"b\",ts=\(t),e=ps,sta=d",
            "sid=\"b\",ts=\(t + 100),e=ps,sta=p,msd=700",
            "sid=\"b\",ts=\(t + 200),e=ps,sta=q",
        ])
        #expect(got == [
            ["view_start"], ["play_start"], ["seek_start+4000"], ["seek_end"],
            ["rebuffer_start+3600"], ["rebuffer_end", "pause"], ["resume"], ["heartbeat+3000"],
            ["error+1000"], ["error+1000", "view_end"],
            [], ["view_start", "play_start"], ["view_end+100"],
        ])
        #expect(f.sessions.count == 0)   // ended sessions are forgotten
    }

    /// A response report carries its request's start, earlier than the
    /// report before it (docs/cmcd.md "Played time"): it adds no played time
    /// and the next report counts from the latest time, not from it.
    @Test func aReportStampedEarlierDoesNotCountPlayingTwice() {
        let t = 1_764_560_000_000
        let got = events(CMCDFormat(), [
            "sid=\"a\",ts=\(t),e=ps,sta=s",
            "sid=\"a\",ts=\(t + 1000),e=ps,sta=p",
            "sid=\"a\",ts=\(t + 10000),e=t,sta=p",
            "sid=\"a\",ts=\(t + 8000),e=rr,sta=p,ot=v,rc=200",
            "sid=\"a\",ts=\(t + 20000),e=t,sta=p",
            "sid=\"a\",ts=\(t + 21000),e=ps,sta=e",
        ])
        #expect(got == [["view_start"], ["play_start"], ["heartbeat+9000"], ["segment"], ["heartbeat+10000"], ["view_end+1000"]])
        let played = got.joined().compactMap { $0.split(separator: "+").last.flatMap { Int($0) } }.reduce(0, +)
        #expect(played == 20_000)   // from the play state to the end, once
    }

    /// `w` (waiting, not for data) ends a stall or a seek and plays no time.
    @Test func waitingEndsAStallAndPlaysNothing() {
        let t = 1_764_560_000_000
        let got = events(CMCDFormat(), [
            "sid=\"w\",ts=\(t),e=ps,sta=s",
            "sid=\"w\",ts=\(t + 1000),e=ps,sta=p",
            "sid=\"w\",ts=\(t + 3000),e=ps,sta=r",
            "sid=\"w\",ts=\(t + 4000),e=ps,sta=w",
            "sid=\"w\",ts=\(t + 9000),e=ps,sta=p",
            "sid=\"w\",ts=\(t + 10000),e=ps,sta=k",
            "sid=\"w\",ts=\(t + 11000),e=ps,sta=w",
        ])
        #expect(got == [["view_start"], ["play_start"], ["rebuffer_start+2000"], ["rebuffer_end"], ["heartbeat"],
                        ["seek_start+1000"], ["seek_end"]])
    }

    /// The collector's client address replaces one the client wrote itself
    /// (only a trusted proxy may say where a request came from).
    @Test func theCollectorsAddressWinsOverTheClients() throws {
        let body = Array(#"sid="a",ts=1764560000000,e=ps,sta=s,org.videoqos-ip="203.0.113.9""#.utf8)
        let got = CMCDHTTP.records(method: "POST", query: "", header: { _ in nil }, body: body,
                                   ip: "198.51.100.7", userAgent: nil, nowMs: 0)
        guard case .record(let text, _)? = got.first, got.count == 1 else { Issue.record("\(got)"); return }
        var ips: [String?] = []
        Array(text.utf8).withUnsafeBytes { CMCDFormat().decode($0) { if case .beacon(let b) = $0 { ips.append(b.ip) } } }
        #expect(ips == ["198.51.100.7"])
    }

    @Test func theFormatIsRegistered() throws {
        #expect(try RecordFormats.named("cmcd").name == "cmcd")
    }

    /// The per-session state belongs to one stream: two Kafka partitions
    /// (two `forSource` calls on the registry's format) never share it, and
    /// the next file of one replay continues it.
    @Test func eachSourceHasItsOwnSessionState() throws {
        let registry = try RecordFormats.named("cmcd")
        func events(_ f: any RecordFormat, _ line: String) -> [String] {
            var out: [String] = []
            Array(line.utf8).withUnsafeBytes { f.decode($0) { if case .beacon(let b) = $0 { out.append(b.event.name) } } }
            return out
        }
        let t: Int64 = 1_764_560_000_000
        let p0 = registry.forSource(named: "cmcd"), p1 = registry.forSource(named: "cmcd")
        #expect(events(p0, "sid=\"s\",ts=\(t),e=ps,sta=s") == ["view_start"])
        #expect(events(p0, "sid=\"s\",ts=\(t + 1000),e=ps,sta=p") == ["play_start"])
        // Partition 1 has not seen the session: its first report starts it.
        #expect(events(p1, "sid=\"s\",ts=\(t + 2000),e=ps,sta=p,msd=500") == ["view_start", "play_start"])
        // Partition 0 still has it playing: a rebuffer, nothing started twice.
        #expect(events(p0, "sid=\"s\",ts=\(t + 3000),e=ps,sta=r") == ["rebuffer_start"])
        let nextFile = p0.forSource(named: "second.txt")
        #expect(events(nextFile, "sid=\"s\",ts=\(t + 4000),e=ps,sta=p") == ["rebuffer_end"])
    }

    /// A stream's session state saved (`checkpointState`) and given to a
    /// fresh instance (`restoreState`), as `qos run` does with a partition's
    /// checkpoint: the reports after the cut give exactly the events, times
    /// and played time an uninterrupted stream gives. A fresh instance
    /// without the state does not (that is what a restart lost before).
    @Test func sessionStateSurvivesACheckpoint() throws {
        var g = GeneratorOptions()
        g.seed = 8
        g.sessions = 120
        let encoder = CMCDEncoder()
        let lines = TrafficGenerator(g).compactMap { m in m.beacon.flatMap { encoder.encode($0) } }
        func run(_ f: any RecordFormat, _ part: ArraySlice<[UInt8]>) -> [String] {
            var out: [String] = []
            for line in part {
                line.withUnsafeBytes { f.decode($0) { item in
                    if case .beacon(let b) = item { out.append("\(b.sessionId) \(b.event.name) \(b.ts) \(b.playedMs ?? -1)") }
                } }
            }
            return out
        }
        let registry = try RecordFormats.named("cmcd")
        let whole = run(registry.forSource(named: "p0"), lines[...])
        for cut in [lines.count / 3, lines.count / 2, lines.count - 5] {
            let first = registry.forSource(named: "p0")
            let before = run(first, lines[..<cut])
            let state = first.checkpointState()
            #expect(!state.isEmpty)
            let restored = registry.forSource(named: "p0")
            try restored.restoreState(state)
            #expect(before + run(restored, lines[cut...]) == whole, "cut at \(cut)")
            #expect(before + run(registry.forSource(named: "p0"), lines[cut...]) != whole, "cut at \(cut): state made no difference")
        }
        // Bytes it cannot read are a typed error, not a crash or a silent reset.
        let state = registry.forSource(named: "p0").checkpointState()
        for bad in [[7], state + [0], Array(state.dropLast())] where bad != state {
            #expect(throws: StateError.self) { try registry.forSource(named: "p0").restoreState(bad) }
        }
        #expect(registry.forSource(named: "p0").checkpointState() == state)  // an empty stream's state
    }

    /// One session as CMCD v2 event/response-mode reports and as the beacon
    /// JSON that means the same (written by hand from docs/cmcd.md), through
    /// `qos replay`'s job: the overall, video and cdn rows are equal.
    @Test func aSessionAsCMCDEqualsTheSameSessionAsBeacons() throws {
        let t: Int64 = 1_764_560_000_000
        let c = "sid=\"s1\",cid=\"movie\",st=v,cdn=\"cdnA\""
        let cmcd = [
            "\(c),ts=\(t),e=ps,sta=s",
            "\(c),br=(3000;v 128;a),ts=\(t + 1200),e=ps,sta=p,msd=1200",
            "\(c),br=(3000;v),ts=\(t + 1500),e=rr,rc=200,ttfb=40,ttlb=180,ot=v,d=4000,url=\"https://cdn.example/seg1.m4s\"",
            "\(c),br=(3000;v),ts=\(t + 31200),e=t,pt=30000",
            "\(c),br=(3000;v),ts=\(t + 40000),e=ps,sta=r",
            "\(c),br=(3000;v),ts=\(t + 42000),e=ps,sta=p",
            "\(c),br=(3000;v),ts=\(t + 43000),e=rr,rc=503,ttfb=900,ttlb=950,ot=v",
            "\(c),br=(1500;v),ts=\(t + 50000),e=bc",
            "\(c),br=(1500;v),ts=\(t + 60000),e=e,ec=(\"MEDIA_ERR_NETWORK\")",
            "\(c),br=(1500;v),ts=\(t + 70000),e=ps,sta=e",
            "sid=\"s2\",cid=\"clip\",st=l,ts=\(t + 5000),e=ps,sta=p,msd=900",
            "sid=\"s2\",cid=\"clip\",st=l,ts=\(t + 65000),e=ps,sta=q",
        ]
        let j = #""session_id":"s1","video_id":"movie","live":false,"cdn":"cdnA""#
        let json = [
            #"{"event":"view_start","ts":\#(t),\#(j)}"#,
            #"{"event":"play_start","ts":\#(t + 1200),\#(j),"bitrate_kbps":3000}"#,
            #"{"event":"segment","ts":\#(t + 1500),\#(j),"bitrate_kbps":3000,"played_ms":300,"http_status":200,"ttfb_ms":40,"download_ms":180}"#,
            #"{"event":"heartbeat","ts":\#(t + 31200),\#(j),"bitrate_kbps":3000,"played_ms":29700,"playhead_ms":30000}"#,
            #"{"event":"rebuffer_start","ts":\#(t + 40000),\#(j),"bitrate_kbps":3000,"played_ms":8800}"#,
            #"{"event":"rebuffer_end","ts":\#(t + 42000),\#(j),"bitrate_kbps":3000}"#,
            #"{"event":"segment","ts":\#(t + 43000),\#(j),"bitrate_kbps":3000,"played_ms":1000,"http_status":503,"ttfb_ms":900,"download_ms":950}"#,
            #"{"event":"bitrate_change","ts":\#(t + 50000),\#(j),"bitrate_kbps":1500,"played_ms":7000}"#,
            #"{"event":"error","ts":\#(t + 60000),\#(j),"bitrate_kbps":1500,"played_ms":10000,"error_code":"MEDIA_ERR_NETWORK","fatal":false}"#,
            #"{"event":"view_end","ts":\#(t + 70000),\#(j),"bitrate_kbps":1500,"played_ms":10000,"reason":"ended"}"#,
            #"{"event":"view_start","ts":\#(t + 4100),"session_id":"s2","video_id":"clip","live":true}"#,
            #"{"event":"play_start","ts":\#(t + 5000),"session_id":"s2","video_id":"clip","live":true}"#,
            #"{"event":"view_end","ts":\#(t + 65000),"session_id":"s2","video_id":"clip","live":true,"played_ms":60000,"reason":"exit"}"#,
        ]
        func rows(_ lines: [String], _ format: any RecordFormat) throws -> [String: [String]] {
            let dir = NSTemporaryDirectory() + "cmcd-\(UUID())"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
            var o = ReplayOptions()
            o.inputs = [dir + "/in.txt"]
            o.sink = dir + "/out"
            o.format = format
            o.jsonDump = dir + "/dump.ndjson"
            o.nowMs = { t + 3_600_000 }
            let summary = try ReplayJob(o).run()
            #expect(summary.counters.rejectedTotal == 0)
            var out: [String: [String]] = [:]
            for line in try String(contentsOfFile: dir + "/dump.ndjson", encoding: .utf8).split(separator: "\n") {
                let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                let table = obj["table"] as! String
                let cols = try JSONSerialization.data(withJSONObject: obj["columns"]!, options: [.sortedKeys])
                out[table, default: []].append(String(decoding: cols, as: UTF8.self))
            }
            return out.mapValues { $0.sorted() }
        }
        let fromCMCD = try rows(cmcd, CMCDFormat())
        let fromJSON = try rows(json, BeaconJSONFormat())
        for table in ["overall", "video", "cdn", "sessions"] {
            #expect(fromCMCD[table] != nil && fromCMCD[table] == fromJSON[table], "\(table)")
        }
        // And the numbers are the session's, not only equal: sums over the windows.
        func total(_ column: String) throws -> Int {
            try (fromCMCD["overall"] ?? []).reduce(0) { sum, row in
                let obj = try JSONSerialization.jsonObject(with: Data(row.utf8)) as! [String: Any]
                return sum + ((obj[column] as? [Any])?.first as? Int ?? 0)
            }
        }
        #expect(try total("views") == 2 && total("plays") == 2 && total("requests") == 2 && total("failed_requests") == 1)
        #expect(try total("rebuffer_count") == 1 && total("rebuffer_ms") == 2000 && total("downshifts") == 1)
        #expect(try total("playing_ms") == 66800 + 60000 && total("sessions_ended") == 2 && total("startup_ms_sum") == 1200 + 900)
    }
    /// `qos generate --format cmcd`: the generator's traffic as CMCD reports
    /// gives the same counts as the same traffic as beacons; played time,
    /// which CMCD does not carry, is derived from the states and comes close.
    @Test func generatedTrafficAsCMCDCountsTheSame() throws {
        var g = GeneratorOptions()
        g.seed = 5
        g.sessions = 300
        let messages = Array(TrafficGenerator(g))
        let encoder = CMCDEncoder()
        let cmcd = messages.compactMap { m in m.beacon.flatMap { encoder.encode($0) }.map { String(decoding: $0, as: UTF8.self) } }
        let json = messages.map { String(decoding: $0.payload, as: UTF8.self) }
        func totals(_ lines: [String], _ format: any RecordFormat) throws -> [String: Int] {
            let dir = NSTemporaryDirectory() + "cmcd-gen-\(UUID())"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
            var o = ReplayOptions()
            o.inputs = [dir + "/in.txt"]
            o.sink = dir + "/out"
            o.format = format
            o.jsonDump = dir + "/dump.ndjson"
            o.nowMs = { g.startMs + 86_400_000 }
            let summary = try ReplayJob(o).run()
            #expect(summary.counters.rejectedTotal == 0)
            var out: [String: Int] = [:]
            for line in try String(contentsOfFile: dir + "/dump.ndjson", encoding: .utf8).split(separator: "\n") {
                let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                guard obj["table"] as? String == "overall", let cols = obj["columns"] as? [String: Any] else { continue }
                for (k, v) in cols { if let n = (v as? [Any])?.first as? Int { out[k, default: 0] += n } }
            }
            return out
        }
        let a = try totals(cmcd, CMCDFormat()), b = try totals(json, BeaconJSONFormat())
        for k in ["views", "plays", "vsf", "vpf", "ebvs", "requests", "failed_requests", "http_5xx", "rebuffer_count",
                  "seek_count", "sessions_ended", "startup_ms_count", "startup_ms_sum", "upshifts", "downshifts"] {
            #expect(a[k] == b[k], "\(k): cmcd \(a[k] ?? -1), json \(b[k] ?? -1)")
        }
        #expect(b["views"]! > 250 && b["requests"]! > 1000 && b["rebuffer_count"]! > 50)
        // Completion by playhead needs the content's duration, which CMCD does not carry: only `sta=e` completes.
        #expect(a["completed"]! <= b["completed"]! && a["completed"]! > 0)
        let played = Double(a["playing_ms"]!), expected = Double(b["playing_ms"]!)
        #expect(abs(played - expected) <= 0.05 * expected, "playing_ms: cmcd \(played), json \(expected)")
    }
}
