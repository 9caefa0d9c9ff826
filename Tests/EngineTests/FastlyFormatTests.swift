import Testing
@testable import Engine
import QoSCore

/// Fastly JSON logs (README "Input: CDN access logs", Fastly): the default
/// field set, and a customer's own keys through a `fastly_fields` mapping.
/// Lines are written as the logging format strings of Fastly's JSON logging
/// examples produce them.
@Suite struct FastlyFormatTests {
    /// A line of our default format string.
    static let line = #"{"timestamp":"2024-05-01T12:34:56+0000","client_ip":"192.0.2.10","geo_country":"united states","geo_city":"san jose","host":"www.example.com","url":"/video/seg-001.ts","request_method":"GET","request_protocol":"HTTP/2","status":200,"resp_body_size":524288,"time_elapsed":183512,"time_to_first_byte":"0.012","cache_status":"HIT-STALE","pop":"SJC","service_id":"7i6HN3TK9wS159v2gPAZ8A","is_ipv6":false}"#

    static func line(_ changes: [String: String?]) -> String {
        AkamaiFormatTests.edit(line, changes)
    }

    let expected = CdnLogRecord(timeMs: 1_714_566_896_000, cdn: "fastly", account: "", owner: "7i6HN3TK9wS159v2gPAZ8A",
                                pop: "SJC", status: 200, serveMs: 183.512, ttfbMs: 12, bytesOut: 524_288, cache: .hit,
                                clientIP: "192.0.2.10", incomplete: nil)

    @Test func defaultFieldSetGivesEveryField() {
        #expect(parseAll(FastlyParser(), [Self.line]) == [.record(expected)])
    }

    @Test func timestampsIPv6StatusZeroAndPlaceholders() {
        func rec(_ changes: [String: String?]) -> CdnLogRecord? {
            guard case .record(let r) = parseAll(FastlyParser(), [Self.line(changes)]).first else { return nil }
            return r
        }
        #expect(rec(["timestamp": "1714566896.75"])?.timeMs == 1_714_566_896_000)
        // Truncated from the digits: as a Double this was the next second.
        #expect(rec(["timestamp": "1714566896.99999999"])?.timeMs == 1_714_566_896_000)
        #expect(rec(["timestamp": "\"1714566896\""])?.timeMs == 1_714_566_896_000)
        #expect(rec(["timestamp": "\"2024-05-01T14:34:56+02:00\""])?.timeMs == 1_714_566_896_000)
        #expect(rec(["timestamp": "\"2024-05-01T12:34:56.999Z\""])?.timeMs == 1_714_566_896_000)
        #expect(rec(["timestamp": "\"2024-05-01T12:34:56UTC\""])?.timeMs == 1_714_566_896_000)
        var v6 = expected
        v6.clientIP = "2001:db8:85a3::8a2e:370:7334"
        v6.status = 0
        #expect(rec(["client_ip": "\"2001:db8:85a3::8a2e:370:7334\"", "status": "\"000\"", "is_ipv6": "true"]) == v6)
        // `%b` writes "-" for no body; missing optional fields are absent.
        var bare = expected
        bare.bytesOut = 0; bare.serveMs = nil; bare.ttfbMs = nil; bare.cache = .other; bare.pop = ""; bare.owner = ""
        #expect(rec(["resp_body_size": "\"-\"", "time_elapsed": nil, "time_to_first_byte": "null",
                     "cache_status": "\"\"", "pop": nil, "service_id": "\"-\""]) == bare)
    }

    @Test func cacheStates() {
        let states: [(String, CdnLogRecord.CacheOutcome)] = [
            ("HIT", .hit), ("HIT-STALE", .hit), ("HIT-SYNTH", .hit), ("HIT-CLUSTER", .hit), ("hit", .hit),
            ("MISS", .miss), ("MISS-CLUSTER", .miss), ("PASS", .miss), ("HITPASS", .miss), ("ERROR", .other),
            ("MISS, HIT", .hit), ("HIT, MISS", .miss), ("", .other),
        ]
        for (s, c) in states { #expect(FastlyParser.cache(s) == c, "\(s)") }
    }

    @Test func rejectsNameTheLogsKey() {
        let cases: [([String: String?], String)] = [
            (["status": nil], "missing_field:status"),
            (["status": "null"], "missing_field:status"),
            (["timestamp": nil], "missing_field:timestamp"),
            (["timestamp": "\"-\""], "missing_field:timestamp"),
            (["timestamp": "\"01/May/2024:12:34:56\""], "invalid_value:timestamp"),
            (["status": "\"OK\""], "invalid_value:status"),
            (["time_elapsed": "-1"], "invalid_value:time_elapsed"),
            (["resp_body_size": "1.5"], "invalid_value:resp_body_size"),
        ]
        for (change, reason) in cases {
            let l = Self.line(change)
            #expect(parseAll(FastlyParser(), [l]) == [.reject(reason, l)], "\(change)")
        }
        let broken = String(Self.line.dropLast())
        #expect(parseAll(FastlyParser(), [broken]) == [.reject("invalid_json", broken)])
    }

    /// A customer's own format (keys of the Sumo Logic / Datazoom style JSON
    /// formats in Fastly's integrations), mapped with `fastly_fields`.
    @Test func yamlMappingMapsACustomersKeys() throws {
        let yaml = """
            fastly_fields:
              timestamp_s: time
              status: event.response_status
              elapsed_ms: event.took
              ttfb_us: event.ttfb_usec
              bytes: event.response_body_size
              cache_status: event.response_state
              pop: event.fastly_pop
              client_ip: event.client_ip
            """
        let map = try FastlyFieldMap(yaml: yaml)
        #expect(map.keys[.serviceId]?.key == "service_id")   // unmapped: the default key
        #expect(map.keys[.elapsed]?.unit == .milliseconds)
        let l = #"{"time":1714566896,"service_id":"SU1Z0isxPaozGVKXdv0eY","event":{"response_status":"404","took":"2.5","ttfb_usec":1500,"response_body_size":"0","response_state":"MISS","fastly_pop":"LCY","client_ip":"::ffff:192.0.2.1","geo":{"city":"london"}}}"#
        let r = CdnLogRecord(timeMs: 1_714_566_896_000, cdn: "fastly", owner: "SU1Z0isxPaozGVKXdv0eY", pop: "LCY",
                             status: 404, serveMs: 2.5, ttfbMs: 1.5, bytesOut: 0, cache: .miss,
                             clientIP: "::ffff:192.0.2.1", incomplete: nil)
        #expect(parseAll(FastlyParser(fields: map), [l]) == [.record(r)])
        // Milliseconds and microseconds of time truncate to the second too.
        for (key, time) in [("timestamp_ms", "1714566896999.99999"), ("timestamp_us", "1714566896999999.9")] {
            let m = try FastlyFieldMap(yaml: "fastly_fields: {\(key): time}")
            let t = #"{"time":\#(time),"status":200}"#
            guard case .record(let rec) = parseAll(FastlyParser(fields: m), [t]).first else {
                Issue.record("\(key): \(parseAll(FastlyParser(fields: m), [t]))"); continue
            }
            #expect(rec.timeMs == 1_714_566_896_000, "\(key)")
        }
        // The reject names the customer's key.
        let noStatus = #"{"time":1714566896,"event":{"took":1}}"#
        #expect(parseAll(FastlyParser(fields: map), [noStatus])
                == [.reject("missing_field:event.response_status", noStatus)])
        // The same mapping as a bare mapping, and through `init(mapping:)`.
        #expect(try FastlyFieldMap(yaml: "status: s\nelapsed_us: e") == (try FastlyFieldMap(mapping: ["status": "s", "elapsed_us": "e"])))
    }

    @Test func badMappingsAreOneLineErrors() {
        for yaml in ["fastly_fields: {elapsed: took}", "fastly_fields: {elapsed_ms: a, elapsed_us: b}",
                     "fastly_fields: {status: ''}", "fastly_fields: [status]", "fastly_fields: {status: [a, b]}", "a: b: c"] {
            do {
                _ = try FastlyFieldMap(yaml: yaml)
                Issue.record("accepted \(yaml)")
            } catch let e as UserError {
                #expect(!e.message.contains("\n") && e.message.contains("fastly_fields"), "\(e.message)")
            } catch { Issue.record("\(error)") }
        }
    }

    @Test func mutationsNeverCrash() {
        fuzzParser({ FastlyParser() }, seeds: [Self.line, Self.line(["timestamp": "1714566896"]), "[\(Self.line)]"],
                   iterations: 20_000, seed: 0xFA57)
    }
}
