import Testing
@testable import Engine
import QoSCore

/// Akamai DataStream 2 JSON (README "Input: CDN access logs", Akamai), on
/// records written from the sample JSON log line of Akamai's "Log format"
/// documentation (numbers as strings, the default data set).
@Suite struct AkamaiFormatTests {
    /// Akamai's documented JSON sample, one line.
    static let documented = #"{"version":1,"cp":"123456","reqId":"1239f220","reqTimeSec":"1573840000","bytes":"4995","cliIP":"128.147.28.68","statusCode":"206","proto":"HTTPS","reqHost":"test.hostname.net","reqMethod":"GET","reqPath":"/path1/path2/file.ext","reqPort":"443","rspContentLen":"5000","rspContentType":"text/html","UA":"Mozilla%2F5.0+%28Macintosh%3B+Intel+Mac+OS+X+10_14_3%29","tlsOverheadTimeMSec":"0","tlsVersion":"TLSv1","objSize":"484","uncompressedSize":"484","overheadBytes":"232","totalBytes":"0","queryStr":"param=value","breadcrumbs":"//BC/%5Ba=23.33.41.20,c=g,k=0,l=1%5D","accLang":"en-US","cookie":"cookie-content","range":"37334-42356","referer":"https%3A%2F%2Ftest.referrer.net%2Fen-US%2Fdocs%2FWeb%2Ftest","xForwardedFor":"8.47.28.38","maxAgeSec":"3600","reqEndTimeMSec":"3","errorCode":"ERR_ACCESS_DENIED|fwd_acl","turnAroundTimeMSec":"11","transferTimeMSec":"125","dnsLookupTimeMSec":"50","lastByte":"1","edgeIP":"23.50.51.173","country":"IN","state":"Virginia","city":"HERNDON","serverCountry":"SG","billingRegion":"8","cacheStatus":"1","securityRules":"ULnR_28976|3900000:3900001:3900005:3900006:BOT-ANOMALY-HEADER|","ewUsageInfo":"//4380/4.4/1/-/0/4/#1,2\\//4380/4.4/4/-/0/4/#0,0\\","customField":"any-custom-value"}"#

    /// The documented line with `changes` applied: a value replaces the
    /// field's, nil removes it.
    static func line(_ changes: [String: String?]) -> String { edit(documented, changes) }

    /// `json` (a flat object on one line) with `changes` applied.
    static func edit(_ json: String, _ changes: [String: String?]) -> String {
        var s = json
        for (key, value) in changes {
            let pattern = "\"\(key)\":"
            guard let r = s.range(of: pattern) else {
                if let v = value { s.removeLast(); s += ",\"\(key)\":\(v)}" }
                continue
            }
            var end = r.upperBound
            if s[end] == "\"" {
                end = s.index(after: end)
                while s[end] != "\"" { end = s.index(after: end) }
                end = s.index(after: end)
            } else {
                while s[end] != "," && s[end] != "}" { end = s.index(after: end) }
            }
            if let v = value {
                s.replaceSubrange(r.lowerBound..<end, with: "\"\(key)\":\(v)")
            } else {
                var from = r.lowerBound, to = end
                if s[to] == "," { to = s.index(after: to) } else { from = s.index(before: from) }
                s.removeSubrange(from..<to)
            }
        }
        return s
    }

    func parse(_ messages: [String]) -> [CdnOut] { parseAll(AkamaiParser(), messages) }

    @Test func documentedLineGivesEveryField() {
        let expected = CdnLogRecord(timeMs: 1_573_840_000_000, cdn: "akamai", account: "", owner: "123456",
                                    pop: "23.50.51.173", status: 206, serveMs: 136, ttfbMs: nil, bytesOut: 4995,
                                    cache: .hit, clientIP: "128.147.28.68", incomplete: false)
        #expect(parse([Self.documented]) == [.record(expected)])
    }

    @Test func plainNumbersFractionsIPv6AndStatusZero() {
        let l = Self.line(["reqTimeSec": "1573840059.999", "statusCode": "0", "cliIP": "\"2001:db8::8a2e:370:7334\"",
                           "turnAroundTimeMSec": "0.5", "transferTimeMSec": "200", "bytes": "1234",
                           "cacheStatus": "0", "lastByte": "\"0\"", "timeToFirstByte": "\"42\"", "cp": "654321"])
        let r = CdnLogRecord(timeMs: 1_573_840_059_000, cdn: "akamai", owner: "654321", pop: "23.50.51.173",
                             status: 0, serveMs: 200.5, ttfbMs: 42, bytesOut: 1234, cache: .miss,
                             clientIP: "2001:db8::8a2e:370:7334", incomplete: true)
        #expect(parse([l]) == [.record(r)])
        // Truncated from the digits: as a Double this was the next second.
        #expect(parse([Self.line(["reqTimeSec": "\"1573840059.99999999\""])]).first.map {
            if case .record(let r) = $0 { r.timeMs == 1_573_840_059_000 } else { false } } == true)
        #expect(parse([Self.line(["statusCode": "\"000\""])]).first.map { if case .record(let r) = $0 { r.status == 0 } else { false } } == true)
    }

    @Test func absentAndPlaceholderFieldsAreAbsent() {
        // DataStream omits `-` and null fields; a `-` or "" that does appear is absent too.
        let l = Self.line(["turnAroundTimeMSec": nil, "transferTimeMSec": "\"-\"", "bytes": nil, "totalBytes": "\"777\"",
                           "cacheStatus": nil, "lastByte": nil, "edgeIP": "\"\"", "cliIP": "\"-\"", "cp": nil])
        let r = CdnLogRecord(timeMs: 1_573_840_000_000, cdn: "akamai", owner: "", pop: "", status: 206,
                             serveMs: nil, ttfbMs: nil, bytesOut: 777, cache: .other, clientIP: "", incomplete: nil)
        #expect(parse([l]) == [.record(r)])
        // One of the two serve-time parts is enough.
        let partial = Self.line(["turnAroundTimeMSec": nil])
        guard case .record(let p) = parse([partial]).first else { Issue.record("no record"); return }
        #expect(p.serveMs == 125)
    }

    @Test func missingOrNullTimeOrStatusIsRejectedWithTheVendorsName() {
        let noStatus = Self.line(["statusCode": nil])
        let nullTime = Self.line(["reqTimeSec": "null"])
        let dashStatus = Self.line(["statusCode": "\"-\""])
        #expect(parse([noStatus, nullTime, dashStatus]) == [
            .reject("missing_field:statusCode", noStatus),
            .reject("missing_field:reqTimeSec", nullTime),
            .reject("missing_field:statusCode", dashStatus),
        ])
    }

    @Test func badValuesAreRejectedNamingTheField() {
        let cases: [(String, String?, String)] = [
            ("statusCode", "\"2O6\"", "invalid_value:statusCode"),
            ("statusCode", "1000", "invalid_value:statusCode"),
            ("reqTimeSec", "\"yesterday\"", "invalid_value:reqTimeSec"),
            ("reqTimeSec", "-5", "invalid_value:reqTimeSec"),
            ("reqTimeSec", "1e300", "invalid_value:reqTimeSec"),
            ("turnAroundTimeMSec", "\"-3\"", "invalid_value:turnAroundTimeMSec"),
            ("bytes", "\"4.5k\"", "invalid_value:bytes"),
        ]
        for (key, value, reason) in cases {
            let l = Self.line([key: value])
            #expect(parse([l]) == [.reject(reason, l)], "\(key)=\(value ?? "nil")")
        }
    }

    @Test func arraysNdjsonAndMalformedJSON() {
        let a = Self.line(["cp": "\"1\""]), b = Self.line(["cp": "\"2\"", "statusCode": nil])
        let array = "[\(a),\n \(b), 7]"
        let out = parse([array])
        #expect(out.count == 3)
        if case .record(let r) = out[0] { #expect(r.owner == "1") } else { Issue.record("\(out[0])") }
        #expect(out[1] == .reject("missing_field:statusCode", b))
        #expect(out[2] == .reject("not_an_object", "7"))
        // Newline-delimited objects in one message; a broken line is one reject and the next line still parses.
        let broken = #"{"cp":"9","statusCode":"200" "reqTimeSec":"1"}"#
        let ndjson = "\(a)\n\(broken)\n\(Self.line(["cp": "\"3\""]))\n"
        let nd = parse([ndjson])
        #expect(nd.count == 3)
        #expect(nd[1] == .reject("invalid_json", broken))
        if case .record(let r) = nd[2] { #expect(r.owner == "3") } else { Issue.record("\(nd[2])") }
        #expect(parse(["[]", "   ", "\"x\""]) == [.reject("empty_batch", "[]"), .reject("invalid_json", "   "),
                                                  .reject("not_an_object", "\"x\"")])
    }

    @Test func mutationsNeverCrash() {
        fuzzParser({ AkamaiParser() }, seeds: [Self.documented, Self.line(["statusCode": "0", "cliIP": "\"::1\""]),
                                               "[\(Self.documented),\(Self.documented)]"],
                   iterations: 20_000, seed: 0xA4A4)
    }
}
