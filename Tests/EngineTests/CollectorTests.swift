#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Kafka
import Testing
@testable import Engine
import QoSCore

/// `qos collect` over real loopback HTTP into the embedded broker: what is
/// accepted, rejected, refused, and what reaches Kafka.
@Suite(.serialized) struct CollectorTests {
    typealias Client = MetricsServerTests.Client

    struct Setup {
        let broker: MockBroker
        let producer: KafkaProducer
        let collector: Collector
        func stop() { collector.drain(graceSeconds: 1, flushSeconds: 5); producer.close(flushTimeoutMs: 0); broker.close() }
    }

    /// A collector on a free loopback port producing to a fresh mock
    /// broker; `kafka` edits the producer's settings (as `--kafka` would).
    func start(_ edit: (inout Collector.Options) -> Void = { _ in },
               kafka: (inout [String: String]) -> Void = { _ in }) throws -> Setup {
        let broker = try MockBroker(brokers: 1, topics: ["beacons": 1, "cmcd": 1])
        var o = Collector.Options()
        o.host = "127.0.0.1"; o.port = 0; o.threads = 1
        edit(&o)
        var settings = collectorKafkaSettings(bufferMessages: o.bufferMessages)
        kafka(&settings)
        let producer = try KafkaProducer(brokers: broker.bootstrapServers, extra: settings, logHandler: nil)
        let collector = try Collector(options: o, producer: producer)
        return Setup(broker: broker, producer: producer, collector: collector)
    }

    func post(_ port: Int, _ path: String, _ body: String, headers: [String] = []) throws -> String {
        let c = try Client(port: port)
        var req = "POST \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n"
        for h in headers { req += h + "\r\n" }
        c.send(req + "\r\n" + body)
        return c.readAll().text
    }

    /// Every message of `topic`, as (key, payload) strings.
    func consume(_ broker: MockBroker, _ topic: String, count: Int) throws -> [(String, String)] {
        let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: "t-\(UUID())", topics: [topic],
                                  extra: ["auto.offset.reset": "earliest"], logHandler: nil)
        defer { c.close() }
        var out: [(String, String)] = []
        let deadline = Date().addingTimeInterval(30)
        while out.count < count && Date() < deadline {
            for ev in try c.poll(maxMessages: 100, timeoutMs: 200) {
                switch ev {
                case .message(let m):
                    out.append((String(decoding: m.key ?? [], as: UTF8.self), String(decoding: m.payload, as: UTF8.self)))
                case .assigned: try c.completeAssign()
                case .revoked: try c.completeRevoke()
                default: break
                }
            }
        }
        return out
    }

    @Test func beaconsAreAcceptedKeyedBySessionWithTheClientAddress() throws {
        let s = try start()
        defer { s.stop() }
        let body = """
            [{"event":"view_start","ts":1764560000000,"session_id":"s1","video_id":"v"},
             {"event":"play_start","ts":1764560001000,"session_id":"s2","ip":"203.0.113.9","user_agent":"Own/1"}]
            """
        let res = try post(s.collector.port, "/v1/beacons", body, headers: ["Content-Type: text/plain;charset=UTF-8",
                                                                         "User-Agent: Mozilla/5.0 (SMART-TV; Tizen 6.5)"])
        #expect(res.hasPrefix("HTTP/1.1 202"))
        #expect(res.hasSuffix("{\"accepted\":2}\n"))
        let msgs = try consume(s.broker, "beacons", count: 2).sorted { $0.0 < $1.0 }
        #expect(msgs.map(\.0) == ["s1", "s2"])
        #expect(msgs[0].1.contains("\"ip\":\"127.0.0.1\""))      // added: the peer
        #expect(msgs[1].1.contains("\"ip\":\"203.0.113.9\""))    // kept: the player's own
        #expect(msgs[0].1.contains("\"video_id\":\"v\""))
        #expect(msgs[0].1.contains("\"user_agent\":\"Mozilla/5.0 (SMART-TV; Tizen 6.5)\""))  // added: the request's
        #expect(msgs[1].1.contains("\"user_agent\":\"Own/1\""))                                 // kept: the beacon's own
    }

    @Test func malformedRecordsGet400AndStillReachKafkaForTheRejectsTable() throws {
        let s = try start()
        defer { s.stop() }
        let res = try post(s.collector.port, "/v1/beacons",
                           #"[{"event":"view_start","ts":1764560000000,"session_id":"ok"},{"event":"nope","ts":1,"session_id":"x"}]"#)
        #expect(res.hasPrefix("HTTP/1.1 400"))
        #expect(res.contains(#"{"accepted":1,"rejected_count":1,"rejected":[{"index":1,"reason":"unknown_event"}]}"#))
        let bad = try post(s.collector.port, "/v1/beacons", "{not json")
        #expect(bad.contains(#""reason":"invalid_json""#))
        let msgs = try consume(s.broker, "beacons", count: 3)
        #expect(msgs.count == 3)
        #expect(msgs.contains { $0.1 == #"{"event":"nope","ts":1,"session_id":"x"}"# })
        #expect(msgs.contains { $0.1 == "{not json" })
        let metrics = s.collector.renderMetrics()
        #expect(metrics.contains("qos_collect_records_rejected_total{reason=\"invalid_json\"} 1"))
        #expect(metrics.contains("qos_collect_records_accepted_total 1"))
    }

    /// A malformed body near the largest allowed still reaches Kafka (the
    /// producer's message.max.bytes is raised above librdkafka's 1 000 000
    /// default), and a 400 names only the first rejects however many there are.
    @Test func largeMalformedBodiesReachKafkaAndAnswersStaySmall() throws {
        let s = try start()
        defer { s.stop() }
        #expect(s.producer.recordBytesMax >= BeaconLimits.messageBytesMax)
        let junk = "[" + String(repeating: "[", count: BeaconLimits.messageBytesMax - 100)
        let res = try post(s.collector.port, "/v1/beacons", junk)
        #expect(res.hasPrefix("HTTP/1.1 400"))
        #expect(res.contains(#"{"accepted":0,"rejected_count":1,"rejected":[{"index":0,"reason":"invalid_json"}]}"#))
        let many = "[" + Array(repeating: "{}", count: 250).joined(separator: ",") + "]"
        let listed = try post(s.collector.port, "/v1/beacons", many)
        #expect(listed.hasPrefix("HTTP/1.1 400"))
        #expect(listed.contains(#""rejected_count":250,"#))
        #expect(listed.components(separatedBy: #""index":"#).count - 1 == s.collector.options.rejectsListedMax)
        let msgs = try consume(s.broker, "beacons", count: 251)
        #expect(msgs.count == 251)
        #expect(msgs.contains { $0.1.utf8.count == junk.utf8.count })
    }

    /// What no retry could get through is a 413, not a 503 with Retry-After,
    /// and nothing of the request is produced: more records than a request
    /// may hold, or a record larger than the producer's message.max.bytes.
    @Test func requestsThatCanNeverFitGet413AndProduceNothing() throws {
        let s = try start { $0.recordsPerRequestMax = 5; $0.bufferMessages = 100 }
        defer { s.stop() }
        let six = "[" + (0..<6).map { #"{"event":"heartbeat","ts":1764560000000,"session_id":"m\#($0)"}"# }
            .joined(separator: ",") + "]"
        let tooMany = try post(s.collector.port, "/v1/beacons", six)
        #expect(tooMany.hasPrefix("HTTP/1.1 413"))
        #expect(!tooMany.contains("Retry-After"))
        #expect(tooMany.contains("--max-records 5"))
        #expect(s.collector.buffered == 0)
        // More records than --buffer can ever hold: the same, whatever --max-records says.
        let small = try start { $0.recordsPerRequestMax = 10; $0.bufferMessages = 2 }
        defer { small.stop() }
        let three = "[" + (0..<3).map { #"{"event":"heartbeat","ts":1764560000000,"session_id":"b\#($0)"}"# }
            .joined(separator: ",") + "]"
        #expect(try post(small.collector.port, "/v1/beacons", three).hasPrefix("HTTP/1.1 413"))
        // A producer whose message.max.bytes (set with --kafka) is below the body limit.
        let capped = try start(kafka: { $0["message.max.bytes"] = "20000" })
        defer { capped.stop() }
        let collector = capped.collector
        let ok = #"{"event":"heartbeat","ts":1764560000000,"session_id":"k"}"#
        let big = "[" + ok + "," + String(repeating: "x", count: 30_000) + "]"
        let refused = try post(collector.port, "/v1/beacons", big)
        #expect(refused.hasPrefix("HTTP/1.1 413"))
        #expect(refused.contains("message.max.bytes"))
        #expect(collector.buffered == 0)
        #expect(try post(collector.port, "/v1/beacons", ok).hasPrefix("HTTP/1.1 202"))
        let metrics = collector.renderMetrics()
        #expect(metrics.contains(#"qos_collect_requests_refused_total{why="too_large"} 1"#))
    }

    @Test func corsPreflightAndOrigins() throws {
        let s = try start { $0.corsOrigins = ["https://player.example"] }
        defer { s.stop() }
        let c = try Client(port: s.collector.port)
        c.send("OPTIONS /v1/beacons HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: https://player.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n")
        let pre = c.readAll().text
        #expect(pre.hasPrefix("HTTP/1.1 204"))
        #expect(pre.contains("Access-Control-Allow-Origin: https://player.example"))
        #expect(pre.contains("Access-Control-Allow-Headers: Content-Type"))
        let other = try Client(port: s.collector.port)
        other.send("OPTIONS /v1/beacons HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: https://evil.example\r\n\r\n")
        #expect(other.readAll().text.hasPrefix("HTTP/1.1 403"))
        // A no-cors GET (an <img>, a fetch in no-cors mode) carries no Origin: the
        // browser's Sec-Fetch-Site and the Referer say where it came from.
        func get(_ headers: String) throws -> String {
            let c = try Client(port: s.collector.port)
            c.send("GET /v1/cmcd?CMCD=sid%3D%22g%22%2Cts%3D1764560000000%2Ce%3Dps%2Csta%3Ds HTTP/1.1\r\nHost: x\r\n"
                   + "Connection: close\r\n" + headers + "\r\n")
            return c.readAll().text
        }
        #expect(try get("Sec-Fetch-Site: cross-site\r\nReferer: https://evil.example/watch\r\n").hasPrefix("HTTP/1.1 403"))
        #expect(try get("Sec-Fetch-Site: cross-site\r\n").hasPrefix("HTTP/1.1 403"), "no Referer: origin null")
        #expect(try get("Sec-Fetch-Site: cross-site\r\nReferer: https://player.example/watch?v=1\r\n").hasPrefix("HTTP/1.1 202"))
        #expect(try get("").hasPrefix("HTTP/1.1 202"), "not a browser's cross-site request")
        #expect(try get("Sec-Fetch-Site: same-origin\r\n").hasPrefix("HTTP/1.1 202"))
        let ok = try post(s.collector.port, "/v1/beacons", #"{"event":"view_start","ts":1764560000000,"session_id":"a"}"#,
                          headers: ["Origin: https://player.example"])
        #expect(ok.hasPrefix("HTTP/1.1 202"))
        #expect(ok.contains("Access-Control-Allow-Origin: https://player.example"))
        let refused = try post(s.collector.port, "/v1/beacons", #"{"event":"view_start","ts":1764560000000,"session_id":"a"}"#,
                               headers: ["Origin: https://evil.example"])
        #expect(refused.hasPrefix("HTTP/1.1 403"))
    }

    @Test func oversizeBodiesAndRateLimits() throws {
        let s = try start { $0.bodyBytesMax = 2048; $0.ratePerSecond = 0.001; $0.rateBurst = 3 }
        defer { s.stop() }
        let big = try post(s.collector.port, "/v1/beacons", String(repeating: "x", count: 5000))
        #expect(big.hasPrefix("HTTP/1.1 413"))
        // The 413 was refused before the rate limiter: three more pass, the fourth is over the burst.
        let beacon = #"{"event":"view_start","ts":1764560000000,"session_id":"r"}"#
        for _ in 0..<3 { #expect(try post(s.collector.port, "/v1/beacons", beacon).hasPrefix("HTTP/1.1 202")) }
        let limited = try post(s.collector.port, "/v1/beacons", beacon)
        #expect(limited.hasPrefix("HTTP/1.1 429"))
        #expect(limited.contains("Retry-After: "))
    }

    /// A browser reads a refusal only when it carries the CORS headers: the
    /// 413 of an oversize body and the 408 of a slow one included.
    @Test func refusalsCarryCORSHeaders() throws {
        let s = try start { $0.corsOrigins = ["https://player.example"]; $0.bodyBytesMax = 2048; $0.requestTimeoutSeconds = 0.5 }
        defer { s.stop() }
        let big = try post(s.collector.port, "/v1/beacons", String(repeating: "x", count: 5000),
                           headers: ["Origin: https://player.example"])
        #expect(big.hasPrefix("HTTP/1.1 413"))
        #expect(big.contains("Access-Control-Allow-Origin: https://player.example"))
        let slow = try Client(port: s.collector.port, timeout: 10)
        slow.send("POST /v1/beacons HTTP/1.1\r\nHost: x\r\nOrigin: https://player.example\r\nContent-Length: 100\r\n\r\n{")
        let timedOut = slow.readAll().text
        #expect(timedOut.hasPrefix("HTTP/1.1 408"))
        #expect(timedOut.contains("Access-Control-Allow-Origin: https://player.example"))
        // Not for an origin that is not allowed.
        let other = try post(s.collector.port, "/v1/beacons", String(repeating: "x", count: 5000),
                             headers: ["Origin: https://evil.example"])
        #expect(other.hasPrefix("HTTP/1.1 413") && !other.contains("Access-Control-Allow-Origin"))
    }

    @Test func kafkaDownFillsTheBoundedBufferThen503() throws {
        let s = try start { $0.bufferMessages = 3 }
        defer { s.stop() }
        // Let the producer connect (and get its producer id) first.
        #expect(try post(s.collector.port, "/v1/beacons", #"{"event":"view_start","ts":1764560000000,"session_id":"w"}"#).hasPrefix("HTTP/1.1 202"))
        try s.producer.flush(timeoutMs: 10_000)
        try s.broker.setBrokerDown(1)
        let three = (0..<3).map { #"{"event":"heartbeat","ts":1764560000000,"session_id":"d\#($0)"}"# }
        #expect(try post(s.collector.port, "/v1/beacons", "[" + three.joined(separator: ",") + "]").hasPrefix("HTTP/1.1 202"))
        let full = try post(s.collector.port, "/v1/beacons", #"{"event":"heartbeat","ts":1764560000000,"session_id":"e"}"#)
        #expect(full.hasPrefix("HTTP/1.1 503"))
        #expect(full.contains("Retry-After: 5"))
        #expect(try post(s.collector.port, "/v1/beacons", "{").hasPrefix("HTTP/1.1 503"))  // a reject needs room too
        try s.broker.setBrokerUp(1)
        try s.producer.flush(timeoutMs: 20_000)
        #expect(s.collector.buffered == 0)
        #expect(try post(s.collector.port, "/v1/beacons", #"{"event":"heartbeat","ts":1764560000000,"session_id":"e"}"#).hasPrefix("HTTP/1.1 202"))
    }

    @Test func forwardedForOnlyFromTrustedProxies() {
        let proxies = [IPNetwork("10.0.0.0/8")!, IPNetwork("::1")!]
        #expect(clientAddress(peer: "198.51.100.7", forwardedFor: ["1.2.3.4"], trusted: proxies) == "198.51.100.7")
        #expect(clientAddress(peer: "10.1.2.3", forwardedFor: ["1.2.3.4"], trusted: proxies) == "1.2.3.4")
        // A forged left-most entry is skipped: the right-most untrusted hop wins.
        #expect(clientAddress(peer: "10.1.2.3", forwardedFor: ["6.6.6.6, 1.2.3.4", "10.9.9.9"], trusted: proxies) == "1.2.3.4")
        #expect(clientAddress(peer: "::1", forwardedFor: ["2001:db8::5"], trusted: proxies) == "2001:db8::5")
        #expect(clientAddress(peer: "10.1.2.3", forwardedFor: ["garbage"], trusted: proxies) == "10.1.2.3")
        #expect(clientAddress(peer: "::ffff:10.0.0.1", forwardedFor: ["1.2.3.4"], trusted: proxies) == "1.2.3.4")
        #expect(IPNetwork("10.0.0.0/33") == nil)
        #expect(IPNetwork("nope") == nil)
    }

    @Test func tokenBucketRefillsAndStaysBounded() {
        let l = RateLimiter(ratePerSecond: 2, burst: 2, clientsMax: 2)
        #expect(l.allow("a", now: 0) && l.allow("a", now: 0))
        #expect(!l.allow("a", now: 0))
        #expect(l.allow("a", now: 0.5))          // one token back after 0.5 s
        #expect(l.allow("b", now: 0.5))
        #expect(l.allow("c", now: 0.5))          // over clientsMax: the shared overflow bucket
        #expect(l.clients <= 2)
    }

    @Test func cmcdInQueryHeadersAndBody() throws {
        let s = try start()
        defer { s.stop() }
        let q = try Client(port: s.collector.port)
        q.send("GET /v1/cmcd?CMCD=sid%3D%22q1%22%2Ccid%3D%22movie%22%2Cbr%3D3000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nUser-Agent: TestPlayer/1\r\n\r\n")
        #expect(q.readAll().text.hasPrefix("HTTP/1.1 202"))
        let h = try post(s.collector.port, "/v1/cmcd", "", headers: ["CMCD-Session: sid=\"h1\",cid=\"movie\"", "CMCD-Request: sta=p", "CMCD-Object: br=(3000;v)"])
        #expect(h.hasPrefix("HTTP/1.1 202"))
        let body = "sid=\"b1\",ts=1764560000000,e=ps,sta=s\nsid=\"b1\",ts=1764560001000,e=ps,sta=p,msd=1000\n"
        #expect(try post(s.collector.port, "/v1/cmcd", body, headers: ["Content-Type: application/cmcd"]).contains(#"{"accepted":2}"#))
        let json = #"[{"sid":"j1","ts":1764560000000,"e":"ps","sta":"p","br":[3000],"su":true}]"#
        #expect(try post(s.collector.port, "/v1/cmcd", json, headers: ["Content-Type: application/json"]).contains(#"{"accepted":1}"#))
        let deep = try post(s.collector.port, "/v1/cmcd", String(repeating: "[", count: 200_000))
        #expect(deep.hasPrefix("HTTP/1.1 400") && deep.contains("invalid_json"))
        let bad = try post(s.collector.port, "/v1/cmcd", "sid=\"x\",ts=1764560000000,Bad=1\n")
        #expect(bad.hasPrefix("HTTP/1.1 400") && bad.contains("invalid_cmcd:"))
        let msgs = try consume(s.broker, "cmcd", count: 7)
        #expect(msgs.count == 7)
        let q1 = try #require(msgs.first { $0.0 == "q1" })
        #expect(q1.1.contains(",ts="))                       // request mode: the collector's time
        #expect(q1.1.contains("org.videoqos-ip=\"127.0.0.1\""))
        #expect(q1.1.contains("org.videoqos-ua=\"TestPlayer/1\""))
        let h1 = try #require(msgs.first { $0.0 == "h1" })
        #expect(h1.1.hasPrefix(#"sta=p,br=(3000;v),sid="h1",cid="movie",ts="#))
        #expect(msgs.contains { $0.0 == "j1" && $0.1.contains("br=(3000)") && $0.1.contains("sta=p") })
    }
}
