import Testing
@testable import Engine
import QoSCore

/// CloudFront standard logs (README "Input: CDN access logs", CloudFront), on
/// the example log file of AWS's "Standard logging reference" (a Hit over
/// HTTP/2, and origin DNS errors from an IPv4 and an IPv6 client).
@Suite struct CloudFrontFormatTests {
    static let version = "#Version: 1.0"
    static let fields = "#Fields: " + CloudFrontParser.defaultFields.joined(separator: " ")
    static let ua = "Mozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)%20AppleWebKit/537.36%20(KHTML,%20like%20Gecko)%20Chrome/78.0.3904.108%20Safari/537.36"
    static let hit = ["2019-12-04", "21:02:31", "LAX1", "392", "192.0.2.100", "GET", "d111111abcdef8.cloudfront.net",
                      "/index.html", "200", "-", ua, "-", "-", "Hit",
                      "SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==", "d111111abcdef8.cloudfront.net",
                      "https", "23", "0.001", "-", "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", "Hit", "HTTP/2.0", "-", "-",
                      "11040", "0.001", "Hit", "text/html", "78", "-", "-"]
    static let dnsError = ["2019-12-13", "22:36:27", "SEA19-C1", "900", "192.0.2.200", "GET",
                           "d111111abcdef8.cloudfront.net", "/favicon.ico", "502", "http://www.example.com/", ua, "-",
                           "-", "Error", "1pkpNfBQ39sYMnjjUQjmH2w1wdJnbHYTbag21o_3OfcQgPzdL2RSSQ==", "www.example.com",
                           "http", "675", "0.102", "-", "-", "-", "Error", "HTTP/1.1", "-", "-", "25260", "0.102",
                           "OriginDnsError", "text/html", "507", "-", "-"]
    static let ipv6 = ["2019-12-13", "22:37:02", "SEA19-C2", "900", "2001:DB8::1:2:3:4", "GET",
                       "d111111abcdef8.cloudfront.net", "/", "502", "-", "curl/7.55.1", "-", "-", "Error",
                       "kBkDzGnceVtWHqSCqBUqtA_cEs2T3tFUBbnBNkB9El_uVRhHgcZfcw==", "www.example.com", "http", "387",
                       "0.103", "-", "-", "-", "Error", "HTTP/1.1", "-", "-", "12644", "0.103", "OriginDnsError",
                       "text/html", "507", "-", "-"]

    static func line(_ f: [String], _ changes: [String: String] = [:]) -> String {
        var f = f
        for (name, v) in changes { f[CloudFrontParser.defaultFields.firstIndex(of: name)!] = v }
        return f.joined(separator: "\t")
    }

    static func seconds(_ iso: String) -> Int64 {
        CdnValues.iso8601Ms(Array(iso.utf8))!
    }

    let hitRecord = CdnLogRecord(timeMs: seconds("2019-12-04T21:02:31Z"), cdn: "cloudfront", account: "",
                                 owner: "d111111abcdef8", pop: "LAX1", status: 200, serveMs: 1, ttfbMs: 1,
                                 bytesOut: 392, cache: .hit, clientIP: "192.0.2.100", incomplete: false)
    let dnsRecord = CdnLogRecord(timeMs: seconds("2019-12-13T22:36:27Z"), cdn: "cloudfront", owner: "d111111abcdef8",
                                 pop: "SEA19-C1", status: 502, serveMs: 102, ttfbMs: 102, bytesOut: 900, cache: .other,
                                 clientIP: "192.0.2.200", incomplete: false)
    let ipv6Record = CdnLogRecord(timeMs: seconds("2019-12-13T22:37:02Z"), cdn: "cloudfront", owner: "d111111abcdef8",
                                  pop: "SEA19-C2", status: 502, serveMs: 103, ttfbMs: 103, bytesOut: 900,
                                  cache: .other, clientIP: "2001:DB8::1:2:3:4", incomplete: false)

    @Test func documentedFileAsOneMessageGivesEveryField() {
        let file = [Self.version, Self.fields, Self.line(Self.hit), Self.line(Self.dnsError), Self.line(Self.ipv6)]
            .joined(separator: "\n") + "\n"
        #expect(hitRecord.timeMs == 1_575_493_351_000)
        #expect(parseAll(CloudFrontParser(), [file]) == [.record(hitRecord), .record(dnsRecord), .record(ipv6Record)])
        // CRLF line ends and a byte order mark change nothing.
        let crlf = "\u{FEFF}" + file.replacingOccurrences(of: "\n", with: "\r\n")
        #expect(parseAll(CloudFrontParser(), [crlf]) == [.record(hitRecord), .record(dnsRecord), .record(ipv6Record)])
    }

    @Test func linesAsMessagesWithoutHeaderUseTheDefaultOrder() {
        #expect(parseAll(CloudFrontParser(), [Self.line(Self.hit), Self.line(Self.ipv6)])
                == [.record(hitRecord), .record(ipv6Record)])
    }

    @Test func fieldsHeaderReordersAndPersistsAcrossMessages() {
        // A distribution logging fewer fields, in another order: the header of an earlier message applies.
        let header = "#Fields: time date sc-status x-edge-location c-ip time-taken sc-bytes x-edge-result-type cs(Host)"
        let l = ["21:02:31", "2019-12-04", "000", "FRA56-P1", "::1", "-", "-", "RefreshHit", "-"].joined(separator: "\t")
        let r = CdnLogRecord(timeMs: hitRecord.timeMs, cdn: "cloudfront", owner: "", pop: "FRA56-P1", status: 0,
                             serveMs: nil, ttfbMs: nil, bytesOut: 0, cache: .hit, clientIP: "::1", incomplete: nil)
        let p = CloudFrontParser()
        #expect(parseAll(p, [Self.version, header, l]) == [.record(r)])
        // Now a 33-field line does not match the header's 9 columns.
        #expect(parseAll(p, [Self.line(Self.hit)]) == [.reject("invalid_line:field_count", Self.line(Self.hit))])
    }

    /// The header in force is part of the partition's checkpoint (`qos run`):
    /// a fresh parser given the state reads the next lines as the old one
    /// would; without it they are read in the documented order (rejected).
    @Test func theFieldsHeaderSurvivesACheckpoint() throws {
        let header = "#Fields: time date sc-status x-edge-location c-ip time-taken sc-bytes x-edge-result-type cs(Host)"
        let l = ["21:02:31", "2019-12-04", "200", "FRA56-P1", "::1", "0.2", "1000", "Hit", "-"].joined(separator: "\t")
        let format = try RecordFormats.named("cloudfront")
        let first = format.forSource(named: "cloudfront")
        #expect(first.checkpointState().isEmpty)  // no header yet
        func items(_ f: any RecordFormat, _ line: String) -> [String] {
            var out: [String] = []
            Array(line.utf8).withUnsafeBytes { f.decode($0) { item in
                switch item {
                case .cdnLog(let r): out.append("\(r.pop) \(r.status) \(r.bytesOut)")
                case .reject(let reason, _): out.append(reason.code)
                case .beacon: out.append("beacon")
                }
            } }
            return out
        }
        #expect(items(first, header).isEmpty)
        #expect(items(first, l) == ["FRA56-P1 200 1000"])
        let restored = format.forSource(named: "cloudfront")
        try restored.restoreState(first.checkpointState())
        #expect(items(restored, l) == ["FRA56-P1 200 1000"])
        #expect(restored.checkpointState() == first.checkpointState())
        #expect(items(format.forSource(named: "cloudfront"), l) == ["invalid_value:date"])  // time read as the date
        #expect(throws: StateError.self) { try format.forSource(named: "cloudfront").restoreState([5, 1]) }
    }

    @Test func distributionFromConfigurationOrFileName() {
        #expect(CloudFrontParser.distributionId(fromFileName: "logs/E2QWRUHAPOMQZL.2019-12-04-21.a103fd12.gz") == "E2QWRUHAPOMQZL")
        #expect(CloudFrontParser.distributionId(fromFileName: "E2QWRUHAPOMQZL.2019-12-04-21.a103fd12") == "E2QWRUHAPOMQZL")
        #expect(CloudFrontParser.distributionId(fromFileName: "access.log") == nil)
        #expect(CloudFrontParser.distributionId(fromFileName: "E2Q.2019-13-04-21.x.gz") == nil)
        let p = CloudFrontParser(distributionId: "E2QWRUHAPOMQZL")
        guard case .record(let r) = parseAll(p, [Self.line(Self.dnsError)]).first else { Issue.record("no record"); return }
        #expect(r.owner == "E2QWRUHAPOMQZL")
        // No cloudfront.net host anywhere: no owner.
        let other = Self.line(Self.dnsError, ["cs(Host)": "cdn.example.com"])
        guard case .record(let o) = parseAll(CloudFrontParser(), [other]).first else { Issue.record("no record"); return }
        #expect(o.owner == "")
        let viaHeader = Self.line(Self.dnsError, ["cs(Host)": "-", "x-host-header": "D2ABC.CloudFront.net"])
        guard case .record(let h) = parseAll(CloudFrontParser(), [viaHeader]).first else { Issue.record("no record"); return }
        #expect(h.owner == "d2abc")
    }

    @Test func cacheResultsAndIncomplete() {
        func cache(_ result: String, _ detailed: String, _ response: String = "Hit") -> (CdnLogRecord.CacheOutcome, Bool?)? {
            let l = Self.line(Self.hit, ["x-edge-result-type": result, "x-edge-detailed-result-type": detailed,
                                         "x-edge-response-result-type": response])
            guard case .record(let r) = parseAll(CloudFrontParser(), [l]).first else { return nil }
            return (r.cache, r.incomplete)
        }
        #expect(cache("Miss", "Miss")! == (.miss, false))
        #expect(cache("Miss", "OriginShieldHit")! == (.hit, false))
        #expect(cache("RefreshHit", "RefreshHit")! == (.hit, false))
        #expect(cache("LimitExceeded", "LimitExceeded")! == (.other, false))
        #expect(cache("Error", "ClientCommError", "Error")! == (.other, true))
        #expect(cache("-", "-", "-")! == (.other, nil))
    }

    @Test func rejectsNameTheField() {
        let cases: [([String: String], String)] = [
            (["sc-status": "-"], "missing_field:sc-status"),
            (["date": "-"], "missing_field:date"),
            (["time": "-"], "missing_field:time"),
            (["sc-status": "2OO"], "invalid_value:sc-status"),
            (["date": "2019-02-30"], "invalid_value:date"),
            (["time": "25:00:00"], "invalid_value:time"),
            (["time-taken": "fast"], "invalid_value:time-taken"),
            (["time-to-first-byte": "-0.5"], "invalid_value:time-to-first-byte"),
            (["sc-bytes": "12k"], "invalid_value:sc-bytes"),
        ]
        for (change, reason) in cases {
            let l = Self.line(Self.hit, change)
            #expect(parseAll(CloudFrontParser(), [l]) == [.reject(reason, l)], "\(change)")
        }
        let short = "2019-12-04\t21:02:31\tLAX1"
        #expect(parseAll(CloudFrontParser(), [short]) == [.reject("invalid_line:field_count", short)])
        // In a file, a bad line is rejected and the next one still parses.
        let file = [Self.fields, "garbage", Self.line(Self.hit)].joined(separator: "\n")
        #expect(parseAll(CloudFrontParser(), [file]) == [.reject("invalid_line:field_count", "garbage"), .record(hitRecord)])
        #expect(parseAll(CloudFrontParser(), ["#Fields:"]) == [.reject("invalid_line:fields_header", "#Fields:")])
    }

    @Test func mutationsNeverCrash() {
        let seeds = [Self.line(Self.hit), Self.line(Self.ipv6),
                     [Self.version, Self.fields, Self.line(Self.dnsError)].joined(separator: "\n")]
        fuzzParser({ CloudFrontParser() }, seeds: seeds, iterations: 20_000, seed: 0xC10D)
    }
}
