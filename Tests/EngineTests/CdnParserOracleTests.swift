import Foundation
import Testing
@testable import Engine
import QoSCore

/// Every `CdnLogRecord` field of each CDN format, against DuckDB reading the
/// same records with its own JSON / CSV readers (the project's venv, as
/// `make deps` installs it): an independent second reading of the vendors'
/// field rules.
@Suite struct CdnParserOracleTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Runs `sql` in DuckDB with `$FILE` bound to a file holding `text`;
    /// returns its rows as JSON objects.
    func duckdb(_ text: String, _ sql: String) throws -> [[String: Any]] {
        let python = Self.root.appendingPathComponent(".venv/bin/python").path
        try #require(FileManager.default.isExecutableFile(atPath: python), "\(python) not found: run make deps")
        let path = NSTemporaryDirectory() + "qos-cdn-oracle-\(UUID().uuidString).log"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let script = """
            import duckdb, json, sys
            con = duckdb.connect()
            cur = con.execute(sys.argv[1].replace('$FILE', sys.argv[2]))
            names = [d[0] for d in cur.description]
            print(json.dumps([dict(zip(names, r)) for r in cur.fetchall()]))
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", script, sql, path]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "duckdb: \(errText)")
        return try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
    }

    /// The oracle's row in the parser's field names and types.
    func record(_ row: [String: Any], cdn: String) -> CdnLogRecord {
        func d(_ k: String) -> Double? { (row[k] as? NSNumber)?.doubleValue }
        let cache: CdnLogRecord.CacheOutcome = switch row["cache"] as? String {
        case "hit": .hit
        case "miss": .miss
        default: .other
        }
        return CdnLogRecord(timeMs: (row["time_ms"] as? NSNumber)?.int64Value ?? -1000, cdn: cdn,
                            owner: row["owner"] as? String ?? "?", pop: row["pop"] as? String ?? "?",
                            status: (row["status"] as? NSNumber)?.int32Value ?? -1, serveMs: d("serve_ms"),
                            ttfbMs: d("ttfb_ms"), bytesOut: (row["bytes_out"] as? NSNumber)?.int64Value ?? -1,
                            cache: cache, clientIP: row["client_ip"] as? String ?? "?",
                            incomplete: (row["incomplete"] as? NSNumber)?.boolValue)
    }

    func parsed(_ parser: some CdnLogParser, _ text: String) -> [CdnLogRecord] {
        parseAll(parser, [text]).compactMap { if case .record(let r) = $0 { r } else { nil } }
    }

    @Test func akamai() throws {
        let lines = [AkamaiFormatTests.documented,
                     AkamaiFormatTests.line(["reqTimeSec": "1573840059.999", "statusCode": "0", "cacheStatus": "0",
                                             "cliIP": "\"2001:db8::8a2e:370:7334\"", "lastByte": "\"0\"",
                                             "timeToFirstByte": "\"42\"", "turnAroundTimeMSec": "0.5"]),
                     AkamaiFormatTests.line(["turnAroundTimeMSec": nil, "transferTimeMSec": nil, "bytes": nil,
                                             "totalBytes": "\"777\"", "cacheStatus": nil, "lastByte": nil, "edgeIP": nil,
                                             "cp": nil, "statusCode": "\"000\""])]
        let text = lines.joined(separator: "\n")
        let columns = ["reqTimeSec", "statusCode", "cacheStatus", "turnAroundTimeMSec", "transferTimeMSec",
                       "timeToFirstByte", "cp", "edgeIP", "bytes", "totalBytes", "cliIP", "lastByte"]
        let spec = columns.map { "'\($0)': 'VARCHAR'" }.joined(separator: ", ")
        let rows = try duckdb(text, """
            SELECT CAST(floor(CAST(reqTimeSec AS DOUBLE)) AS BIGINT) * 1000 AS time_ms,
                   coalesce(cp, '') AS owner, coalesce(edgeIP, '') AS pop, CAST(statusCode AS INTEGER) AS status,
                   CASE WHEN turnAroundTimeMSec IS NULL AND transferTimeMSec IS NULL THEN NULL
                        ELSE coalesce(CAST(turnAroundTimeMSec AS DOUBLE), 0) + coalesce(CAST(transferTimeMSec AS DOUBLE), 0) END AS serve_ms,
                   CAST(timeToFirstByte AS DOUBLE) AS ttfb_ms,
                   coalesce(CAST(bytes AS BIGINT), CAST(totalBytes AS BIGINT), 0) AS bytes_out,
                   CASE cacheStatus WHEN '1' THEN 'hit' WHEN '0' THEN 'miss' ELSE 'other' END AS cache,
                   coalesce(cliIP, '') AS client_ip,
                   CASE lastByte WHEN '1' THEN false WHEN '0' THEN true END AS incomplete
            FROM read_json('$FILE', format = 'newline_delimited', columns = {\(spec)})
            """)
        #expect(parsed(AkamaiParser(), text) == rows.map { record($0, cdn: "akamai") })
        #expect(rows.count == 3)
    }

    @Test func cloudFront() throws {
        let t = CloudFrontFormatTests.self
        let text = [t.version, t.fields, t.line(t.hit), t.line(t.dnsError), t.line(t.ipv6),
                    t.line(t.hit, ["sc-status": "000", "x-edge-result-type": "Miss", "x-edge-detailed-result-type": "OriginShieldHit",
                                   "time-to-first-byte": "-", "sc-bytes": "-", "c-ip": "-", "x-edge-location": "-",
                                   "cs(Host)": "cdn.example.com"]),
                    t.line(t.ipv6, ["cs(Host)": "-", "x-host-header": "-"])].joined(separator: "\n") + "\n"
        let spec = CloudFrontParser.defaultFields.map { "'\($0)': 'VARCHAR'" }.joined(separator: ", ")
        let rows = try duckdb(text, """
            SELECT CAST(epoch(CAST("date" || ' ' || "time" AS TIMESTAMP)) AS BIGINT) * 1000 AS time_ms,
                   coalesce(nullif(regexp_extract(lower("cs(Host)"), '^([^.]+)\\.cloudfront\\.net$', 1), ''),
                            nullif(regexp_extract(lower("x-host-header"), '^([^.]+)\\.cloudfront\\.net$', 1), ''), '') AS owner,
                   coalesce("x-edge-location", '') AS pop, CAST("sc-status" AS INTEGER) AS status,
                   CAST("time-taken" AS DOUBLE) * 1000 AS serve_ms, CAST("time-to-first-byte" AS DOUBLE) * 1000 AS ttfb_ms,
                   coalesce(CAST("sc-bytes" AS BIGINT), 0) AS bytes_out,
                   CASE WHEN "x-edge-detailed-result-type" = 'OriginShieldHit' OR "x-edge-result-type" IN ('Hit', 'RefreshHit') THEN 'hit'
                        WHEN "x-edge-result-type" = 'Miss' THEN 'miss' ELSE 'other' END AS cache,
                   coalesce("c-ip", '') AS client_ip,
                   CASE WHEN "x-edge-response-result-type" IS NULL AND "x-edge-detailed-result-type" IS NULL THEN NULL
                        ELSE coalesce("x-edge-response-result-type" = 'ClientCommError' OR "x-edge-detailed-result-type" = 'ClientCommError', false) END AS incomplete
            FROM read_csv('$FILE', delim = '\\t', skip = 2, header = false, quote = '', escape = '',
                          nullstr = '-', columns = {\(spec)})
            """)
        #expect(parsed(CloudFrontParser(), text) == rows.map { record($0, cdn: "cloudfront") })
        #expect(rows.count == 5)
    }

    @Test func fastly() throws {
        let lines = [FastlyFormatTests.line,
                     FastlyFormatTests.line(["timestamp": "\"2024-05-01T23:59:59Z\"", "status": "\"000\"",
                                             "client_ip": "\"2001:db8:85a3::8a2e:370:7334\"", "cache_status": "\"PASS\"",
                                             "time_elapsed": "\"999\""]),
                     FastlyFormatTests.line(["time_elapsed": nil, "time_to_first_byte": nil, "resp_body_size": "\"-\"",
                                             "cache_status": "\"ERROR\"", "pop": nil, "service_id": nil])]
        let text = lines.joined(separator: "\n")
        let columns = ["timestamp", "status", "time_elapsed", "time_to_first_byte", "resp_body_size", "cache_status",
                       "pop", "client_ip", "service_id"]
        let spec = columns.map { "'\($0)': 'VARCHAR'" }.joined(separator: ", ")
        let rows = try duckdb(text, """
            SELECT CAST(epoch(CAST("timestamp" AS TIMESTAMPTZ)) AS BIGINT) * 1000 AS time_ms,
                   coalesce(service_id, '') AS owner, coalesce(pop, '') AS pop, CAST(status AS INTEGER) AS status,
                   CAST(time_elapsed AS DOUBLE) / 1000 AS serve_ms, CAST(time_to_first_byte AS DOUBLE) * 1000 AS ttfb_ms,
                   coalesce(TRY_CAST(resp_body_size AS BIGINT), 0) AS bytes_out,
                   CASE WHEN upper(cache_status) LIKE 'HITPASS%' THEN 'miss' WHEN upper(cache_status) LIKE 'HIT%' THEN 'hit'
                        WHEN upper(cache_status) LIKE 'MISS%' OR upper(cache_status) LIKE 'PASS%' THEN 'miss' ELSE 'other' END AS cache,
                   coalesce(client_ip, '') AS client_ip, NULL AS incomplete
            FROM read_json('$FILE', format = 'newline_delimited', columns = {\(spec)})
            """)
        #expect(parsed(FastlyParser(), text) == rows.map { record($0, cdn: "fastly") })
        #expect(rows.count == 3)
    }
}
