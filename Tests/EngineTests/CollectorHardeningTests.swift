#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Kafka
import Testing
import TestSupport
@testable import Engine
import QoSCore

/// `qos collect` against hostile or unusual clients: memory stays bounded
/// (pipelining without reading, many stalled bodies), nothing is produced
/// for a request that is refused, and the protocol corners (100-continue,
/// HEAD, 405, 408) answer as the README says.
@Suite(.serialized) struct CollectorHardeningTests {
    typealias Client = MetricsServerTests.Client
    let base = CollectorTests()

    /// A client socket whose receive buffer is tiny and whose sends give up
    /// after `sendTimeout` seconds: a client that sends and never reads.
    final class Pipeliner {
        private(set) var fd: Int32
        init(port: Int, sendTimeout: Int = 1) throws {
            fd = try connectLoopback(port: port, receiveBuffer: 4096, sendTimeout: sendTimeout)
        }
        deinit { hangUp() }
        /// Closes the connection now, once (as `Client.hangUp`).
        func hangUp() {
            if fd >= 0 { close(fd) }
            fd = -1
        }
        /// Sends `bytes` repeatedly until `limit` bytes went out, a send
        /// blocked for the timeout, or the server closed; the bytes sent.
        func flood(_ bytes: [UInt8], limit: Int) -> Int {
            var sent = 0
            while sent < limit {
                let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { break }
                sent += n
            }
            return sent
        }
    }

    func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let until = monotonicSeconds() + seconds
        while monotonicSeconds() < until { if condition() { return true }; usleep(20_000) }
        return condition()
    }

    // MARK: 1. Pipelining without reading

    /// Requests pipelined by a client that never reads its answers: the
    /// collector stops reading once its answers cannot be written, and closes
    /// the connection; it does not answer (and queue) every request sent.
    @Test func pipeliningWithoutReadingIsBounded() throws {
        let s = try base.start { $0.requestTimeoutSeconds = 1 }
        defer { s.stop() }
        let p = try Pipeliner(port: s.collector.port)
        let burst = Array(String(repeating: "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", count: 1000).utf8)
        #expect(waitUntil(5) { s.collector.openConnections == 1 })
        let sent = p.flood(burst, limit: 3_000_000)
        #expect(waitUntil(10) { s.collector.openConnections == 0 }, "the connection is closed")
        // ≈ 85 000 requests in 3 MB; the kernel's socket buffers hold a few
        // thousand /metrics answers at most, and the collector queues at most
        // `unsentResponsesMax` more.
        let answered = s.collector.stats.snapshot().responses[200] ?? 0
        #expect(answered < 20_000, "answered \(answered) of the \(sent / 35) requests sent")
    }

    // MARK: 2. Body bytes across connections

    /// Declared bodies are counted against one budget across connections: a
    /// request that would pass it is refused (503 + Retry-After) without
    /// being read, and the budget comes back when a request ends.
    @Test func bodyBytesAcrossConnectionsAreBounded() throws {
        let s = try base.start { $0.bodyBytesMax = 65_536; $0.bodyBytesTotalMax = 200_000 }
        defer { s.stop() }
        let head = "POST /v1/beacons HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n" + String(repeating: "a", count: 1000)
        let stalled = try (0..<3).map { _ in try Client(port: s.collector.port, timeout: 2) }
        for c in stalled { c.send(head) }
        #expect(waitUntil(5) { s.collector.bodyBytesReserved == 3 * 65_536 })
        let fourth = try Client(port: s.collector.port, timeout: 5)
        fourth.send(head)
        let refused = fourth.readAll().text
        #expect(refused.hasPrefix("HTTP/1.1 503"))
        #expect(refused.contains("Retry-After: "))
        #expect(s.collector.renderMetrics().contains(#"qos_collect_requests_refused_total{why="body_budget"} 1"#))
        // Chunked bodies count as they arrive.
        let chunked = try Client(port: s.collector.port, timeout: 5)
        chunked.send("POST /v1/beacons HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + "c350\r\n" + String(repeating: "a", count: 50_000) + "\r\n")
        #expect(chunked.readAll().text.hasPrefix("HTTP/1.1 503"))
        for c in stalled { c.hangUp() }
        #expect(waitUntil(5) { s.collector.bodyBytesReserved == 0 })
        let ok = try base.post(s.collector.port, "/v1/beacons", #"{"event":"view_start","ts":1764560000000,"session_id":"b"}"#)
        #expect(ok.hasPrefix("HTTP/1.1 202"))
    }

    /// One peer address cannot take every connection: past
    /// `connectionsPerClientMax` its new ones are closed at accept, and a
    /// trusted proxy (many clients behind one address) is not bounded.
    @Test func connectionsPerClientAreBounded() throws {
        let s = try base.start { $0.connectionsPerClientMax = 2 }
        defer { s.stop() }
        let held = try (0..<2).map { _ in try Client(port: s.collector.port) }
        #expect(waitUntil(5) { s.collector.openConnections == 2 })
        let third = try Client(port: s.collector.port, timeout: 5)
        third.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = third.readAll()
        #expect(r.closed && r.text.isEmpty)
        #expect(s.collector.renderMetrics().contains(#"qos_collect_requests_refused_total{why="client_connections"} 1"#))
        held[0].hangUp()
        #expect(waitUntil(5) { s.collector.openConnections == 1 })
        #expect(try MetricsServerTests().get(s.collector.port, "/healthz").hasPrefix("HTTP/1.1 200"))
        let proxied = try base.start { $0.connectionsPerClientMax = 2; $0.trustedProxies = [IPNetwork("127.0.0.1")!] }
        defer { proxied.stop() }
        let behind = try (0..<3).map { _ in try Client(port: proxied.collector.port) }
        #expect(waitUntil(5) { proxied.collector.openConnections == 3 })
        _ = behind
    }

    // MARK: 3. Records counted before decoding

    @Test func recordsAreCountedBeforeDecoding() throws {
        #expect(RecordCount.jsonElements(Array(#"[{"a":"x,y"},{"b":[1,2,{"c":3}]}, 3 ]"#.utf8)) == 3)
        #expect(RecordCount.jsonElements(Array(#"  {"a":[1,2,3]}"#.utf8)) == 1)
        #expect(RecordCount.jsonElements(Array("[]".utf8)) == 0)
        #expect(RecordCount.jsonElements(Array(#"["\"],[", 1]"#.utf8)) == 2)
        #expect(RecordCount.lines(Array("a\n\n  \r\nb\r\nc".utf8)) == 3)
        let s = try base.start { $0.recordsPerRequestMax = 5 }
        defer { s.stop() }
        // Six elements of a truncated array: refused by their count, not decoded.
        let truncated = "[" + Array(repeating: #"{"event":"heartbeat"}"#, count: 6).joined(separator: ",")
        let r = try base.post(s.collector.port, "/v1/beacons", truncated)
        #expect(r.hasPrefix("HTTP/1.1 413"), "\(r)")
        let lines = try base.post(s.collector.port, "/v1/cmcd", String(repeating: "a\n", count: 100_000))
        #expect(lines.hasPrefix("HTTP/1.1 413") && lines.contains("--max-records 5"))
        #expect(s.collector.buffered == 0)
    }

    // MARK: 4. Bytes waiting for Kafka

    /// librdkafka's queue is bounded in bytes too (queue.buffering.max.kbytes):
    /// the collector checks a request's bytes before producing any of it, so
    /// a 503 never follows a partly produced request.
    @Test func aRequestOverTheKafkaByteBudgetIsRefusedWhole() throws {
        let s = try base.start({ $0.bufferMessages = 1000 }, kafka: { $0["queue.buffering.max.kbytes"] = "100" })
        defer { s.stop() }
        let (broker, producer, collector) = (s.broker, s.producer, s.collector)
        #expect(collector.bufferBytesMax > 0 && collector.bufferBytesMax < 100 * 1024)
        #expect(try base.post(collector.port, "/v1/beacons", #"{"event":"view_start","ts":1764560000000,"session_id":"w"}"#).hasPrefix("HTTP/1.1 202"))
        try producer.flush(timeoutMs: 10_000)
        try broker.setBrokerDown(1)
        let video = String(repeating: "v", count: 250), agent = String(repeating: "u", count: 1000)
        func batch(_ tag: String) -> String {
            "[" + (0..<40).map { #"{"event":"heartbeat","ts":1764560000000,"session_id":"\#(tag)\#($0)","video_id":"\#(video)","user_agent":"\#(agent)"}"# }
                .joined(separator: ",") + "]"
        }
        #expect(try base.post(collector.port, "/v1/beacons", batch("a")).hasPrefix("HTTP/1.1 202"))   // ≈ 60 KB
        let second = try base.post(collector.port, "/v1/beacons", batch("b"))                        // ≈ 60 KB more
        #expect(second.hasPrefix("HTTP/1.1 503"))
        #expect(collector.buffered == 40)
        try broker.setBrokerUp(1)
        try producer.flush(timeoutMs: 20_000)
        let msgs = try base.consume(broker, "beacons", count: 41)
        #expect(msgs.count == 41)
        #expect(!msgs.contains { $0.0.hasPrefix("b") }, "nothing of the refused request reached Kafka")
    }

    // MARK: 5. CMCD's JSON form

    func cmcd(_ json: String) -> [CMCDIncoming] {
        CMCDHTTP.records(method: "POST", query: "", header: { _ in nil }, body: Array(json.utf8), ip: "192.0.2.1",
                         userAgent: nil, nowMs: 1764560000000)
    }
    func reason(_ r: [CMCDIncoming]) -> String? {
        guard r.count == 1, case .reject(let why, _) = r[0] else { return nil }
        return why.code
    }

    @Test func cmcdJSONValuesAndKeysAreCheckedAndQuoted() throws {
        let ts = "1764560000000"
        #expect(reason(cmcd(#"{"sid":"c5","ts":\#(ts),"sta":"p,sid=\"evil\""}"#)) == "invalid_cmcd:value:sta")
        #expect(reason(cmcd(#"{"a=1,sid":"c6","ts":\#(ts)}"#)) == "invalid_cmcd:key")
        #expect(reason(cmcd(#"{"Sid":"c6","ts":\#(ts)}"#)) == "invalid_cmcd:key")
        #expect(reason(cmcd(#"{"sid":"é","ts":\#(ts)}"#)) == "invalid_cmcd:value:sid")
        #expect(reason(cmcd(#"{"sid":"c7","ts":\#(ts),"pt":1e300}"#)) == "invalid_cmcd:value:pt")
        #expect(reason(cmcd(#"{"sid":"c7","ts":\#(ts),"br":[1e300]}"#)) == "invalid_cmcd:value:br")
        // The text form refuses the same.
        #expect(reason(cmcd("sid=\"é\",ts=\(ts)\n")) == "invalid_cmcd:value:sid")
        // Quotes and backslashes in strings are escaped, not copied.
        let ok = cmcd(#"{"sid":"a\"b\\c,sid=\"x","ts":\#(ts),"cid":"m"}"#)
        guard ok.count == 1, case .record(let text, let sid) = ok[0] else { Issue.record("\(ok)"); return }
        #expect(sid == #"a"b\c,sid="x"#)
        #expect(text.hasPrefix(#"cid="m",sid="a\"b\\c,sid=\"x","#))
    }

    /// Each object of a JSON array is a report of its own: the valid ones are
    /// taken; a bad one is produced as a one-element array of its JSON, which
    /// the daemon's `cmcd` format refuses with the collector's reason.
    @Test func aBadObjectOfACMCDJSONArrayIsOneRejectWithTheDaemonsReason() throws {
        let ts = 1_764_560_000_000
        let got = cmcd(#"[{"sid":"j1","ts":\#(ts),"e":"ps","sta":"s"},{"sid":"j2","ts":\#(ts),"br":[1e300]},7,"#
                       + #"{"sid":"j3","ts":\#(ts),"e":"ps","sta":"s"}]"#)
        var records: [String] = [], refused: [(String, [UInt8])] = []
        for g in got {
            switch g {
            case .record(let text, _): records.append(text)
            case .reject(let why, let bytes): refused.append((why.code, bytes))
            }
        }
        #expect(records.count == 2 && records.allSatisfy { $0.contains("sta=s") })
        #expect(refused.map(\.0) == ["invalid_cmcd:value:br", "not_an_object"])
        for (why, bytes) in refused {
            var daemon: [String] = []
            bytes.withUnsafeBytes { CMCDFormat().decode($0) { if case .reject(let r, _) = $0 { daemon.append(r.code) } } }
            #expect(daemon == [why], "\(String(decoding: bytes, as: UTF8.self))")
        }
        // The daemon reads a JSON array of reports as the collector does.
        var beacons: [String] = []
        Array(#"[{"sid":"j4","ts":\#(ts),"e":"ps","sta":"s"},{"sid":"j4","ts":\#(ts + 1000),"e":"ps","sta":"p"}]"#.utf8)
            .withUnsafeBytes { CMCDFormat().decode($0) { if case .beacon(let b) = $0 { beacons.append(b.event.name) } } }
        #expect(beacons == ["view_start", "play_start"])
    }

    /// A report under the 64 KiB limit stays valid with what the collector
    /// appends (a long User-Agent is clipped to 1 KiB), and the daemon reads it.
    @Test func aReportNearTheLimitWithALongUserAgentIsTaken() throws {
        let pad = String(repeating: "a", count: CMCDParser.recordBytesMax - 60)
        let report = "sid=\"n1\",ts=1764560000000,e=ps,sta=s,cid=\"\(pad)\""
        #expect(report.utf8.count < CMCDParser.recordBytesMax)
        let got = CMCDHTTP.records(method: "POST", query: "", header: { _ in nil }, body: Array(report.utf8),
                                   ip: "2001:db8::1", userAgent: String(repeating: "\"ua\\", count: 20_000), nowMs: 0)
        guard got.count == 1, case .record(let text, _) = got[0] else { Issue.record("\(got.map { "\($0)".prefix(200) })"); return }
        var events: [String] = []
        Array(text.utf8).withUnsafeBytes { CMCDFormat().decode($0) { if case .beacon(let b) = $0 { events.append(b.event.name) } } }
        #expect(events == ["view_start"])
        // A report over the limit is refused as before.
        let over = "sid=\"n2\",ts=1764560000000,cid=\"\(pad)\(pad.prefix(100))\""
        #expect(reason(CMCDHTTP.records(method: "POST", query: "", header: { _ in nil }, body: Array(over.utf8),
                                        ip: "192.0.2.1", userAgent: nil, nowMs: 0)) == "invalid_cmcd:too_large")
    }

    // MARK: 6. Numbers that do not fit

    @Test func extremeTimeoutsAndRatesSaturate() throws {
        #expect(Collector.retryAfterSeconds(1 / 1e-20) == Collector.retryAfterSecondsMax)
        #expect(Collector.retryAfterSeconds(.infinity) == Collector.retryAfterSecondsMax)
        #expect(Collector.retryAfterSeconds(0.2) == 1)
        #expect(Collector.retryAfterSeconds(2.1) == 3)
        let s = try base.start { $0.ratePerSecond = 1e-20; $0.rateBurst = 1; $0.requestTimeoutSeconds = 1e300 }
        defer { s.stop() }
        let beacon = #"{"event":"view_start","ts":1764560000000,"session_id":"r"}"#
        #expect(try base.post(s.collector.port, "/v1/beacons", beacon).hasPrefix("HTTP/1.1 202"))
        let limited = try base.post(s.collector.port, "/v1/beacons", beacon)
        #expect(limited.hasPrefix("HTTP/1.1 429"))
        #expect(limited.contains("Retry-After: \(Collector.retryAfterSecondsMax)\r\n"))
    }

    // MARK: 9. X-Forwarded-For forms

    @Test func forwardedForWithPortsBracketsAndZones() {
        let proxies = [IPNetwork("10.0.0.0/8")!]
        #expect(clientAddress(peer: "10.1.2.3", forwardedFor: ["1.2.3.4:443"], trusted: proxies) == "1.2.3.4")
        #expect(clientAddress(peer: "10.1.2.3", forwardedFor: ["[2001:db8::1]"], trusted: proxies) == "2001:db8::1")
        #expect(clientAddress(peer: "10.1.2.3", forwardedFor: ["[2001:db8::1]:443"], trusted: proxies) == "2001:db8::1")
        #expect(clientAddress(peer: "10.1.2.3", forwardedFor: ["fe80::1%eth0"], trusted: proxies) == "fe80::1")
        #expect(clientAddress(peer: "10.1.2.3", forwardedFor: ["5.6.7.8, 10.0.0.9:8080"], trusted: proxies) == "5.6.7.8")
        #expect(clientAddress(peer: "10.1.2.3", forwardedFor: ["1.2.3.4:99999"], trusted: proxies) == "10.1.2.3")
        #expect(clientAddress(peer: "10.1.2.3", forwardedFor: ["[2001:db8::1"], trusted: proxies) == "10.1.2.3")
        #expect(clientAddress(peer: "10.1.2.3", forwardedFor: ["2001:db8::1"], trusted: proxies) == "2001:db8::1")
    }

    // MARK: 10. Protocol corners

    @Test func expectContinueHeadAndMethodAnswers() throws {
        let s = try base.start { $0.bodyBytesMax = 2048; $0.requestTimeoutSeconds = 1 }
        defer { s.stop() }
        let beacon = #"{"event":"view_start","ts":1764560000000,"session_id":"e"}"#
        let c = try Client(port: s.collector.port, timeout: 1)
        c.send("POST /v1/beacons HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: \(beacon.utf8.count)\r\n\r\n")
        var buf = [UInt8](repeating: 0, count: 256)
        let n = buf.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
        #expect(n > 0 && String(decoding: buf[0..<max(0, n)], as: UTF8.self).hasPrefix("HTTP/1.1 100 Continue\r\n"))
        c.send(beacon)
        #expect(c.readAll().text.contains("HTTP/1.1 202"))
        let big = try Client(port: s.collector.port)
        big.send("POST /v1/beacons HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
        let refused = big.readAll().text
        #expect(refused.hasPrefix("HTTP/1.1 413") && !refused.contains("100 Continue"))
        let put = try Client(port: s.collector.port)
        put.send("PUT /v1/beacons HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        let m = put.readAll().text
        #expect(m.hasPrefix("HTTP/1.1 405") && m.contains("Allow: POST, OPTIONS\r\n"))
        let postMetrics = try base.post(s.collector.port, "/metrics", "")
        #expect(postMetrics.hasPrefix("HTTP/1.1 405") && postMetrics.contains("Allow: GET, HEAD\r\n"))
        let head = try Client(port: s.collector.port)
        head.send("HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let h = head.readAll().text
        #expect(h.hasPrefix("HTTP/1.1 200") && h.hasSuffix("\r\n\r\n") && !h.contains("qos_collect"))
        // Headers never finished: 408 at the timeout, as for a body.
        let partial = try Client(port: s.collector.port, timeout: 5)
        partial.send("POST /v1/beacons HTTP/1.1\r\nHost: x\r\n")
        #expect(partial.readAll().text.hasPrefix("HTTP/1.1 408"))
        // An idle connection is just closed.
        let idle = try Client(port: s.collector.port, timeout: 5)
        let i = idle.readAll()
        #expect(i.closed && i.text.isEmpty)
    }

    // MARK: 11. Credentialed CORS

    /// `navigator.sendBeacon` with a JSON Blob sends a credentialed
    /// preflight: the answer echoes the origin and allows credentials.
    @Test func ingestAnswersAllowCredentialsForAllowedOrigins() throws {
        let s = try base.start { $0.corsOrigins = ["*"] }
        defer { s.stop() }
        let c = try Client(port: s.collector.port)
        c.send("OPTIONS /v1/beacons HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: https://player.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n")
        let pre = c.readAll().text
        #expect(pre.hasPrefix("HTTP/1.1 204"))
        #expect(pre.contains("Access-Control-Allow-Origin: https://player.example\r\n"))
        #expect(pre.contains("Access-Control-Allow-Credentials: true\r\n"))
        #expect(pre.contains("Vary: Origin\r\n"))
        let post = try base.post(s.collector.port, "/v1/beacons", #"{"event":"view_start","ts":1764560000000,"session_id":"c"}"#,
                                 headers: ["Origin: https://player.example"])
        #expect(post.hasPrefix("HTTP/1.1 202") && post.contains("Access-Control-Allow-Credentials: true\r\n"))
        #expect(!post.contains("Access-Control-Allow-Origin: *"))
    }

    // MARK: 12. Static beacon checks

    @Test func beaconsTheDaemonWouldRejectStaticallyGet400() throws {
        let s = try base.start()
        defer { s.stop() }
        let res = try base.post(s.collector.port, "/v1/beacons",
                                #"[{"event":"view_start","ts":1764560000000,"session_id":"ok"},{"event":"heartbeat","ts":1000,"session_id":"old"}]"#)
        #expect(res.hasPrefix("HTTP/1.1 400"))
        #expect(res.contains(#"{"accepted":1,"rejected_count":1,"rejected":[{"index":1,"reason":"invalid_value:ts"}]}"#))
        let msgs = try base.consume(s.broker, "beacons", count: 2)
        #expect(msgs.count == 2)
        #expect(msgs.contains { $0.1.contains(#""session_id":"old""#) }, "still produced for the rejects table")
        #expect(s.collector.renderMetrics().contains(#"qos_collect_records_rejected_total{reason="invalid_value:ts"} 1"#))
    }

    // MARK: 7, 10. The ops server and the live view

    @Test func opsServerHeadAnd405() throws {
        let s = try MetricsServerTests().server()
        defer { s.stop() }
        let head = try Client(port: s.port)
        head.send("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let h = head.readAll().text
        #expect(h.hasPrefix("HTTP/1.1 200") && h.hasSuffix("\r\n\r\n") && !h.contains("qos_checkpoint_epoch"))
        let post = try Client(port: s.port)
        post.send("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        let p = post.readAll().text
        #expect(p.hasPrefix("HTTP/1.1 405") && p.contains("Allow: GET, HEAD\r\n"))
    }

    @Test func liveViewErrorsAreJSON() throws {
        let live = LiveReport(sink: NSTemporaryDirectory() + "qos-live-\(UUID().uuidString)")
        for table in ["a%5C", "a%0Ab", "%22%3C%3E", "x%01y"] {
            let r = try #require(live.route("/api/windows?table=" + table))
            #expect(r.status == 400)
            let parsed = try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any]
            let error = try #require(parsed?["error"] as? String)
            #expect(error.contains("unknown table '\(LiveReport.decode(table))'"))
        }
    }
}
