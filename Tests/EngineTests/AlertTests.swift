import Foundation
import Testing
@testable import Engine
import Generator
import Parquet
import QoSCore
#if canImport(Glibc)
import Glibc
#endif

/// Alert rules (README "Alerts", docs/semantics.md §7): parsing, each rule
/// kind (fire, not fire, minimum volume, filter, trailing-hour warm-up),
/// the `alerts` table in the epoch commit, the webhook against a loopback
/// server, and the demo's incidents.
@Suite struct AlertTests {
    static let t0: Int64 = 1_767_225_600_000
    static let w: Int64 = 120_000

    static func rules(_ yaml: String) throws -> [AlertRule] { try AlertRules.parse(yaml: yaml) }

    /// A `cdn` row with `failed` of `requests` failed, and `views` views of which `vsf` failed to start.
    static func cdnRow(_ cdn: String, _ pop: String, requests: Int64 = 0, failed: Int64 = 0, views: Int64 = 0,
                       vsf: Int64 = 0) -> (dims: [String], sums: AlertSums) {
        var s = AlertSums()
        s.requests = requests; s.failedRequests = failed; s.views = views; s.vsf = vsf
        return ([cdn, pop], s)
    }

    static func overall(startups: [Double]) -> (dims: [String], sums: AlertSums) {
        var s = AlertSums()
        for x in startups { s.startup.add(x) }
        s.views = Int64(startups.count)
        return ([], s)
    }

    // MARK: Threshold

    @Test func thresholdFiresOnceForAGroupAboveItAndNotForOthers() throws {
        let e = AlertEvaluator(rules: try Self.rules("[{name: pop, table: cdn, metric: failed_request_rate, above: 0.05}]"))
        var fired: [AlertFiring] = []
        for i in 0..<4 {
            fired += e.evaluate(start: Self.t0 + Int64(i) * Self.w, end: Self.t0 + Int64(i + 1) * Self.w, tables: ["cdn": [
                Self.cdnRow("fastly", "ams", requests: 1000, failed: 80),   // 8 %: above
                Self.cdnRow("fastly", "lhr", requests: 1000, failed: 50),   // exactly 5 %: not above
                Self.cdnRow("akamai", "fra", requests: 1000, failed: 10),
            ]])
        }
        #expect(fired.count == 1, "an incident that lasts fires once, not once per window")
        let f = try #require(fired.first)
        #expect(f.rule == "pop" && f.kind == "threshold" && f.windowStart == Self.t0 && f.windowEnd == Self.t0 + Self.w)
        #expect(f.dimensionsJSON == #"{"cdn":"fastly","pop":"ams"}"#)
        #expect(f.value == 0.08 && f.limit == 0.05 && f.baseline == nil && f.volume == 1000)
        #expect(f.message.contains("failed_request_rate 0.08 above 0.05 for cdn=fastly pop=ams (requests 1000)"))
        // A dimension value from a beacon cannot break the log line; the JSON keeps it exactly.
        let odd = AlertEvaluator(rules: e.rules).evaluate(start: Self.t0, end: Self.t0 + Self.w,
                                                          tables: ["cdn": [Self.cdnRow("x\ny", "a\"b", requests: 10, failed: 9)]])
        #expect(odd.first?.message.contains("cdn=x?y pop=a\"b") == true && odd.first?.message.contains("\n") == false)
        #expect(odd.first?.dimensionsJSON == #"{"cdn":"x\ny","pop":"a\"b"}"#)
    }

    @Test func belowThresholdAndResolveThenFireAgain() throws {
        let e = AlertEvaluator(rules: try Self.rules("[{table: overall, metric: views, below: 100, resolve_after: 4m}]"))
        func views(_ n: Int64, _ i: Int64) -> [AlertFiring] {
            var s = AlertSums(); s.views = n
            return e.evaluate(start: Self.t0 + i * Self.w, end: Self.t0 + (i + 1) * Self.w, tables: ["overall": [([], s)]])
        }
        #expect(views(500, 0).isEmpty)
        #expect(views(50, 1).count == 1)
        #expect(views(40, 2).isEmpty, "still active")
        #expect(views(500, 3).isEmpty)       // 2 min without the condition: still active
        #expect(views(500, 4).isEmpty)       // 4 min: resolved
        let again = views(30, 5)
        #expect(again.count == 1, "a new incident after the alert resolved fires again")
        #expect(again.first?.rule == "overall.views below 100" && again.first?.value == 30)
    }

    @Test func minimumVolumeKeepsSmallGroupsOut() throws {
        let e = AlertEvaluator(rules: try Self.rules("[{table: cdn, metric: failed_request_rate, above: 0.05, min_volume: 500}]"))
        let small = e.evaluate(start: Self.t0, end: Self.t0 + Self.w, tables: ["cdn": [Self.cdnRow("fastly", "ams", requests: 499, failed: 400)]])
        #expect(small.isEmpty, "499 requests < min_volume 500")
        let big = e.evaluate(start: Self.t0 + Self.w, end: Self.t0 + 2 * Self.w, tables: ["cdn": [Self.cdnRow("fastly", "ams", requests: 500, failed: 400)]])
        #expect(big.count == 1 && big[0].volume == 500)
    }

    @Test func filterAndByChooseTheRowsAndTheGroups() throws {
        // Only fastly's PoPs, summed per CDN: ams alone is above 5 %, fastly as a whole is not.
        let e = AlertEvaluator(rules: try Self.rules("""
            - {name: fastly, table: cdn, metric: failed_request_rate, above: 0.05, by: [cdn], where: {cdn: fastly}}
            - {name: ams-only, table: cdn, metric: failed_request_rate, above: 0.05, where: {pop: [ams, fra]}}
            """))
        let rows = ["cdn": [Self.cdnRow("fastly", "ams", requests: 100, failed: 10), Self.cdnRow("fastly", "lhr", requests: 900, failed: 10),
                            Self.cdnRow("akamai", "ams", requests: 100, failed: 50)]]
        let fired = e.evaluate(start: Self.t0, end: Self.t0 + Self.w, tables: rows)
        #expect(!fired.contains { $0.rule == "fastly" }, "fastly's 20 of 1000 is 2 %")
        #expect(fired.filter { $0.rule == "ams-only" }.map(\.dimensionsJSON).sorted()
                == [#"{"cdn":"akamai","pop":"ams"}"#, #"{"cdn":"fastly","pop":"ams"}"#])
        // With akamai's failures moved to fastly, the per-CDN sum crosses.
        let e2 = AlertEvaluator(rules: e.rules)
        let fired2 = e2.evaluate(start: Self.t0, end: Self.t0 + Self.w, tables: ["cdn": [
            Self.cdnRow("fastly", "ams", requests: 100, failed: 60), Self.cdnRow("fastly", "lhr", requests: 900, failed: 10)]])
        #expect(fired2.filter { $0.rule == "fastly" }.map(\.dimensionsJSON) == [#"{"cdn":"fastly"}"#])
        #expect(fired2.first { $0.rule == "fastly" }?.volume == 1000)
    }

    /// `where_not` leaves rows out before grouping: the demo's per-version
    /// rule keeps CMCD players (no player name: `unknown`) out.
    @Test func whereNotLeavesRowsOutBeforeGrouping() throws {
        let rows = ["cdn": [Self.cdnRow("fastly", "ams", requests: 100, failed: 50), Self.cdnRow("fastly", "lhr", requests: 900, failed: 10)]]
        let all = AlertEvaluator(rules: try Self.rules("[{name: r, table: cdn, metric: failed_request_rate, above: 0.05, by: [cdn]}]"))
        #expect(all.evaluate(start: Self.t0, end: Self.t0 + Self.w, tables: rows).map(\.rule) == ["r"], "60 of 1000 is 6 %")
        let some = AlertEvaluator(rules: try Self.rules(
            "[{name: r, table: cdn, metric: failed_request_rate, above: 0.05, by: [cdn], where_not: {pop: [ams, fra]}}]"))
        #expect(some.evaluate(start: Self.t0, end: Self.t0 + Self.w, tables: rows).isEmpty, "lhr alone: 10 of 900")
        #expect(try AlertRules.parse(yaml: AlertRules.demo).first { $0.name == "broken-player-version" }?.exclude
                == ["player_name": ["unknown"]])
    }

    // MARK: Relative (x times the trailing hour)

    @Test func relativeWaitsForItsWarmupThenFiresOnASpike() throws {
        let e = AlertEvaluator(rules: try Self.rules("[{name: slow, table: overall, metric: startup_ms_p50, above_trailing_hour: 2, warmup: 10m}]"))
        let normal = Array(repeating: 1000.0, count: 50), slow = Array(repeating: 3000.0, count: 50)
        func window(_ i: Int64, _ startups: [Double]) -> [AlertFiring] {
            e.evaluate(start: Self.t0 + i * Self.w, end: Self.t0 + (i + 1) * Self.w, tables: ["overall": [Self.overall(startups: startups)]])
        }
        // Warm-up: a spike in the 3rd window has only 4 min of history (< 10 min): no alert.
        #expect(window(0, normal).isEmpty)
        #expect(window(1, normal).isEmpty)
        #expect(window(2, slow).isEmpty, "during the warm-up nothing fires")
        for i: Int64 in 3...5 { #expect(window(i, normal).isEmpty, "window \(i)") }
        // 12 min of history now (0, 2, …, 10 min): the next spike fires, once.
        let fired = window(6, slow)
        #expect(fired.count == 1)
        let f = try #require(fired.first)
        #expect(f.kind == "relative" && f.dimensionsJSON == "{}")
        // The baseline is the volume-weighted mean of windows 0…5 (five at ~1000, one at ~3000).
        let b = try #require(f.baseline)
        #expect(abs(b - (5 * 1000 + 3000) / 6.0) < 40, "baseline \(b)")
        #expect(abs(f.limit - 2 * b) < 1e-9 && f.value > f.limit)
        #expect(window(7, slow).isEmpty, "still the same incident")
    }

    @Test func relativeDoesNotFireWithinTheFactorAndForgetsOldHistory() throws {
        let e = AlertEvaluator(rules: try Self.rules("[{table: overall, metric: startup_ms_p50, above_trailing_hour: 2, warmup: 4m}]"))
        func window(_ i: Int64, _ ms: Double) -> [AlertFiring] {
            e.evaluate(start: Self.t0 + i * Self.w, end: Self.t0 + (i + 1) * Self.w,
                       tables: ["overall": [Self.overall(startups: Array(repeating: ms, count: 20))]])
        }
        for i: Int64 in 0..<3 { #expect(window(i, 1000).isEmpty) }
        #expect(window(3, 1900).isEmpty, "1.9 × is not above 2 ×")
        // Two hours later: the old windows left the trailing hour, so this is a new warm-up.
        #expect(window(63, 1000).isEmpty)
        #expect(window(64, 5000).isEmpty, "2 min of history < 4 min warm-up")
        #expect(window(65, 1000).isEmpty)
        #expect(window(66, 9000).count == 1)
    }

    @Test func belowTheTrailingHourCatchesATrafficDrop() throws {
        let e = AlertEvaluator(rules: try Self.rules("[{table: overall, metric: views, below_trailing_hour: 0.5, warmup: 4m, min_volume: 0}]"))
        func views(_ i: Int64, _ n: Int64) -> [AlertFiring] {
            var s = AlertSums(); s.views = n
            return e.evaluate(start: Self.t0 + i * Self.w, end: Self.t0 + (i + 1) * Self.w, tables: ["overall": [([], s)]])
        }
        for i: Int64 in 0..<3 { #expect(views(i, 1000).isEmpty) }
        #expect(views(3, 600).isEmpty)
        let fired = views(4, 100)
        #expect(fired.count == 1 && fired[0].message.contains("below 0.5 × the trailing hour's"))
    }

    /// Memory stays bounded: a relative rule remembers at most
    /// `groupsPerRuleMax` groups (and says so once); a threshold rule only
    /// its active ones.
    @Test func stateIsBoundedPerRule() throws {
        let e = AlertEvaluator(rules: try Self.rules("""
            - {name: rel, table: cdn, metric: requests, above_trailing_hour: 2}
            - {name: thr, table: cdn, metric: failed_request_rate, above: 0.5}
            """))
        var warnings: [String] = []
        e.onWarning = { warnings.append($0) }
        let n = AlertEvaluator.groupsPerRuleMax + 5
        let rows = (0..<n).map { Self.cdnRow("c", "p\($0)", requests: 10, failed: $0 == 7 ? 9 : 0) }
        let fired = e.evaluate(start: Self.t0, end: Self.t0 + Self.w, tables: ["cdn": rows])
        #expect(fired.map(\.dimensionsJSON) == [#"{"cdn":"c","pop":"p7"}"#])
        #expect(e.state[0].count == AlertEvaluator.groupsPerRuleMax && e.groupsDropped == 5)
        #expect(e.state[1].count == 1, "only the active group")
        #expect(warnings.count == 1 && warnings[0].contains("rule 'rel' holds state for 10000 groups"))
    }

    // MARK: Parsing

    @Test func rulesParseWithDefaults() throws {
        let r = try Self.rules("""
            - table: sessions
              by: [player_name, player_version]
              metric: vsf_rate
              above: 0.2
              min_volume: 50
              webhook: http://127.0.0.1:9/hook
            - {table: cdn, metric: rebuffer_ratio, above_trailing_hour: 3}
            """)
        #expect(r.count == 2)
        #expect(r[0].name == "sessions.vsf_rate above 0.2" && r[0].by == ["player_name", "player_version"] && r[0].minVolume == 50)
        #expect(r[0].webhook == "http://127.0.0.1:9/hook" && r[0].condition == .above(0.2))
        #expect(r[1].by == ["cdn", "pop"] && r[1].warmupMs == AlertRule.defaultWarmupMs && r[1].condition == .aboveTrailingHour(3))
        #expect(try Self.rules("").isEmpty)
        #expect(try Self.rules(AlertRules.demo).count == 3)
    }

    @Test(arguments: [
        ("{table: cdn}", "alerts: must be a list of rules"),
        ("[{metric: views, above: 1}]", "alerts[0].table: missing"),
        ("[{table: nope, metric: views, above: 1}]", "alerts[0].table: 'nope' is not a table alerts can read"),
        ("[{table: cdn, metric: views, above: 1}, {table: geo, metric: serve_ms_p95, above: 1}]",
         "alerts[1].metric: 'serve_ms_p95' is not a metric of table geo"),
        ("[{table: cdn, metric: views}]", "alerts[0].above: missing — give one of above, below"),
        ("[{table: cdn, metric: views, above: 1, below: 2}]", "alerts[0].below: a rule has one condition"),
        ("[{table: cdn, metric: views, above: lots}]", "alerts[0].above: 'lots' is not a number"),
        ("[{table: cdn, metric: views, above_trailing_hour: 0}]", "alerts[0].above_trailing_hour: '0.0' is not a factor > 0"),
        ("[{table: cdn, metric: views, above: 1, by: [country]}]", "alerts[0].by: 'country' is not a dimension of table cdn"),
        ("[{table: cdn, metric: views, above: 1, where: {cuntry: x}}]", "alerts[0].where: 'cuntry' is not a dimension"),
        ("[{table: cdn, metric: views, above: 1, where_not: {cuntry: x}}]", "alerts[0].where_not: 'cuntry' is not a dimension"),
        ("[{table: cdn, metric: views, above: 1, where_not: [ams]}]", "alerts[0].where_not: '- ams' is not a mapping"),
        ("[{table: cdn, metric: views, above: 1, min_volume: -1}]", "alerts[0].min_volume: '-1' is not an integer ≥ 0"),
        ("[{table: cdn, metric: views, above: 1, warmup: 5m}]", "alerts[0].warmup: only a rule with above_trailing_hour"),
        ("[{table: cdn, metric: views, above_trailing_hour: 2, warmup: 2h}]", "alerts[0].warmup: '2h' is not a duration from 1s to 1h"),
        ("[{table: cdn, metric: views, above: 1, webhook: 'https://x/'}]", "alerts[0].webhook: 'https://x/' is not an http:// URL"),
        ("[{table: cdn, metric: views, above: 1, treshold: 2}]", "alerts[0].treshold: unknown field"),
        ("[{table: cdn, metric: views, above: 1}, {table: cdn, metric: views, above: 1}]", "alerts[1].name: 'cdn.views above 1' is the name of an earlier rule"),
        ("[a, b]", "alerts[0]: is not a mapping"),
        ("[{name: \"a\\nb\", table: cdn, metric: views, above: 1}]", "alerts[0].name: contains a control character"),
        ("[{table: cdn", "alerts: not valid YAML"),
    ])
    func badRulesAreOneLineErrorsNamingRuleAndField(yaml: String, expected: String) {
        do {
            _ = try AlertRules.parse(yaml: yaml)
            Issue.record("no error for \(yaml)")
        } catch let e as AlertRuleError {
            #expect(e.description.hasPrefix(expected), "\(e.description)")
            #expect(!e.description.contains("\n"))
        } catch { Issue.record("not an AlertRuleError: \(error)") }
    }

    @Test func rulesComeFromEveryConfigurationLayer() throws {
        var file = ConfigurationLayers()
        try file.load(yaml: "alerts:\n  - table: cdn\n    metric: failed_request_rate\n    above: 0.05\n", path: "c.yaml")
        let fromFile = try file.resolve().alerts
        #expect(fromFile.count == 1 && fromFile[0].condition == .above(0.05))
        var env = ConfigurationLayers()
        try env.load(environment: [(name: "QOS_ALERTS", value: "[{table: cdn, metric: failed_request_rate, above: 0.05}]")])
        #expect(try env.resolve().alerts == fromFile)
        var flag = ConfigurationLayers()
        flag.set(.alerts, flag: "[{table: cdn, metric: failed_request_rate, above: 0.05}]")
        #expect(try flag.resolve().alerts == fromFile)
        // The error names the rule, the field and where the rules came from.
        var bad = ConfigurationLayers()
        try bad.load(yaml: "alerts:\n  - table: cdn\n    metric: rebuf\n    above: 1\n", path: "c.yaml")
        #expect(throws: ConfigurationError.self) { try bad.resolve() }
        do { _ = try bad.resolve() } catch let e as ConfigurationError {
            #expect(e.description.hasPrefix("alerts[0].metric: 'rebuf' is not a metric of table cdn"))
            #expect(e.description.hasSuffix("(in config file 'c.yaml')"))
        }
        #expect(try ConfigurationLayers().resolve().runOptions().alerts == nil)
        #expect(try file.resolve().runOptions().alerts?.evaluator.rules == fromFile)
    }

    // MARK: In the pipeline

    /// Traffic like the demo's: a degraded PoP and a broken player version from
    /// the start, startup three times slower from half-way through the event time.
    static func demoTraffic(minutes: Int64, rate: Double, partitions: Int) -> MemoryRecordSource {
        var o = GeneratorOptions()
        o.seed = 7
        o.rate = rate
        o.sessions = Int(rate * Double(minutes) * 60 / 70)
        o.startMs = t0
        o.slowPop = "fastly/ams"
        o.failingPlayer = "shaka-player@4.7.11"
        o.slowStartup = 3
        o.slowStartupFromMs = t0 + minutes * 60_000 / 2
        o.lateFraction = 0.005
        o.duplicateFraction = 0.002
        o.malformedFraction = 0.001
        let src = MemoryRecordSource(name: "beacons", partitions: partitions)
        for m in TrafficGenerator(o) {
            var h: UInt32 = 2_166_136_261
            for b in m.key.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
            src.append(m.payload, partition: Int32(h % UInt32(partitions)))
        }
        return src
    }

    static func alertRows(_ sink: String) throws -> [(rule: String, dims: String, start: Int64)] {
        try alertRows(LocalStorage(root: sink))
    }

    /// The rows of `alerts` on a local or an S3 sink.
    static func alertRows(_ storage: any SinkStorage) throws -> [(rule: String, dims: String, start: Int64)] {
        var out: [(String, String, Int64)] = []
        var files: [String] = []
        for day in try storage.list("alerts") {
            for hour in try storage.list("alerts/\(day)") {
                files += try storage.list("alerts/\(day)/\(hour)").filter { $0.hasSuffix(".parquet") }.map { "alerts/\(day)/\(hour)/\($0)" }
            }
        }
        for f in files {
            let r = try ParquetFileReader(bytes: try #require(try storage.read(f)))
            guard let rules = try r.column(named: "rule").stringValues, let dims = try r.column(named: "dimensions").stringValues,
                  case .int64(let starts) = try r.column(named: "window_start") else { continue }
            for i in rules.indices { out.append((rules[i]!, dims[i]!, starts[i]! / 1000)) }  // µs → ms
        }
        return out.sorted { ($0.2, $0.0) < ($1.2, $1.0) }
    }

    /// The demo's rules on the demo's incidents, through the real driver
    /// and epoch commit: each incident is exactly one row of `alerts`, the
    /// slow startup in the window where it begins or the next.
    /// Runs `src` with the demo's rules, an epoch per window as in the
    /// daemon; with `stopAfterPolls`, the process stops there (after a
    /// checkpoint) and a new one with fresh rules' state reads on.
    static func runDemoRules(_ src: MemoryRecordSource, sink: String, environment: [String: String] = [:], stopAfterPolls: Int? = nil)
        throws -> (h: DriverTests.Harness, d: StreamDriver, polls: Int) {
        func harness() throws -> DriverTests.Harness {
            let h = try DriverTests.Harness(sink: sink)
            if !environment.isEmpty { h.options.environment = environment }  // an s3:// sink's store
            h.options.alerts = AlertPipeline(rules: try AlertRules.parse(yaml: AlertRules.demo), log: h.options.log)
            h.options.checkpointMinIntervalMs = 0
            return h
        }
        var h = try harness()
        var d = try h.start(src)
        var source = src
        source.assign(source.ids)
        var polls = 0
        repeat {
            try d.step()
            polls += 1
            if polls % 20 == 0 { h.clock.advance(ms: 1000) }
            if polls == stopAfterPolls {
                try d.checkpoint(reason: "test")
                source = src.reopened()
                let lines = h.logBox.lines
                h = try harness()
                h.logBox.lines = lines
                d = try h.start(source)
                source.assign(source.ids)
            }
        } while source.lag().values.contains { $0 > 0 } || !source.pending.isEmpty
        try d.finish()
        return (h, d, polls)
    }

    @Test func theDemosIncidentsEachFireExactlyOnce() throws {
        let dir = DriverTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = Self.demoTraffic(minutes: 24, rate: 250, partitions: 3)
        let (h, d, _) = try Self.runDemoRules(src, sink: dir)

        let rows = try Self.alertRows(dir)
        #expect(rows.map(\.rule).sorted() == ["broken-player-version", "degraded-pop", "slow-startup"], "\(rows)")
        #expect(rows.first { $0.rule == "degraded-pop" }?.dims == #"{"cdn":"fastly","pop":"ams"}"#)
        #expect(rows.first { $0.rule == "broken-player-version" }?.dims == #"{"player_name":"shaka-player","player_version":"4.7.11"}"#)
        let incident = Self.t0 + 12 * 60_000
        let slow = try #require(rows.first { $0.rule == "slow-startup" })
        #expect(slow.start >= incident - Self.w && slow.start <= incident + Self.w, "slow-startup fired at \((slow.start - Self.t0) / 60_000) min")
        // Each firing is one log line, after its epoch committed.
        #expect(h.logBox.lines.filter { $0.hasPrefix("qos run: ALERT ") }.count == 3)
        #expect(h.options.alerts!.firedTotal == 3)
        #expect(d.status.alertsFired == ["degraded-pop": 1, "broken-player-version": 1, "slow-startup": 1])
    }

    /// A process that stops in the middle of the incidents and one that
    /// reads on from its checkpoint write the same `alerts` rows as one
    /// uninterrupted process: the new process rebuilds the rules' state from
    /// the windows in the sink, so ongoing incidents do not fire again. The
    /// restarted process on a local directory and on s3:// (moto).
    @Test(arguments: StorageUnderTest.all)
    func aRestartDoesNotFireAnOngoingIncidentAgain(_ storage: StorageUnderTest) throws {
        let dir = DriverTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = Self.demoTraffic(minutes: 24, rate: 250, partitions: 2)
        let whole = try Self.runDemoRules(src, sink: dir + "/whole")
        let expected = try Self.alertRows(dir + "/whole")
        #expect(expected.count == 3)
        // Stop after the slow-startup alert (half-way) while every incident goes on.
        let t = try storage.make()
        let restarted = try Self.runDemoRules(src.reopened(), sink: t.root, environment: t.environment,
                                              stopAfterPolls: whole.polls * 7 / 10)
        let rows = try Self.alertRows(t.storage)
        #expect(rows.map { "\($0.rule) \($0.dims) \($0.start)" } == expected.map { "\($0.rule) \($0.dims) \($0.start)" })
        #expect(restarted.h.logBox.lines.filter { $0.hasPrefix("qos run: ALERT ") }.count == 3)
    }

    /// A rule on `cdn_edge` (CDN access logs) fires for the degraded PoP,
    /// once; a new process's evaluator rebuilt from those files knows the
    /// alert is active.
    @Test func cdnEdgeRulesFireAndRebuildFromTheSink() throws {
        let dir = DriverTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = GeneratorOptions()
        o.seed = 11; o.rate = 200; o.sessions = 1500; o.startMs = Self.t0; o.slowPop = "fastly/ams"
        let src = MemoryRecordSource(name: "cdnlogs", partitions: 1)
        for m in CdnLogGenerator(o, format: .edgecast) { src.append(m.payload, partition: 0) }
        let yaml = "[{name: slow-pop, table: cdn_edge, metric: slow_response_rate, by: [pop], above: 0.5, min_volume: 100}]"
        let h = try DriverTests.Harness(sink: dir)
        h.options.topics = [TopicSpec(name: "cdnlogs", format: "edgecast")]
        h.options.alerts = AlertPipeline(rules: try Self.rules(yaml), log: h.options.log)
        h.options.checkpointMinIntervalMs = 0
        let d = try h.start(src)
        src.assign(src.ids)
        try h.drain(src)
        try d.finish()
        let rows = try Self.alertRows(dir)
        #expect(rows.map(\.rule) == ["slow-pop"] && rows.first?.dims == #"{"pop":"ams"}"#, "\(rows)")
        // Rebuilt from the sink: ams is active, so the same numbers again do not fire.
        let fresh = AlertEvaluator(rules: try Self.rules(yaml))
        let windows = try AlertEvaluator.files(sink: dir, table: "cdn_edge", fromMs: .min, toMs: .max)
            .flatMap { try AlertEvaluator.read($0, table: "cdn_edge") }
        let (start, end, lastRows) = try #require(windows.first { $0.0 == rows.first?.start })
        fresh.warmStart(sink: dir, before: start + Self.w)
        #expect(fresh.evaluate(start: start + Self.w, end: end + Self.w, tables: ["cdn_edge": lastRows]).isEmpty)
        let cold = AlertEvaluator(rules: try Self.rules(yaml))
        #expect(cold.evaluate(start: start + Self.w, end: end + Self.w, tables: ["cdn_edge": lastRows]).map(\.dimensionsJSON) == [#"{"pop":"ams"}"#])
    }

    /// The daemon's compactor folds an `alerts` hour directory into one file
    /// like the other row tables: every row, ordered by window and rule.
    @Test func alertsHourDirectoriesCompactLikeTheOtherTables() throws {
        let dir = DriverTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = WindowFileWriter(sink: FileSink(root: dir), windowMs: Self.w, inputTag: "t")
        let e = AlertEvaluator(rules: try Self.rules("[{name: b, table: cdn, metric: failed_request_rate, above: 0.05, resolve_after: 1s}, {name: a, table: cdn, metric: requests, above: 5, resolve_after: 1s}]"))
        var paths: [String] = []
        for i: Int64 in [2, 0] {  // published out of order
            let fired = e.evaluate(start: Self.t0 + i * Self.w, end: Self.t0 + (i + 1) * Self.w,
                                   tables: ["cdn": [Self.cdnRow("fastly", "ams", requests: 100, failed: 9)]])
            #expect(fired.count == 2)
            for f in try writer.planAlerts(fired, sourceRange: "s", tag: "t\(i)") {
                try writer.publish([f]); paths.append(f.path)
            }
            _ = e.evaluate(start: Self.t0 + (i + 1) * Self.w, end: Self.t0 + (i + 2) * Self.w, tables: ["cdn": []])
        }
        let merged = try Compactor.merge(table: "alerts", paths: paths, options: writer.parquet)
        #expect(merged.rows == 4)
        let r = try ParquetFileReader(bytes: merged.bytes)
        guard case .int64(let starts) = try r.column(named: "window_start") else { Issue.record("window_start"); return }
        let rules = try r.column(named: "rule").stringValues ?? []
        #expect(starts.map { ($0! / 1000 - Self.t0) / Self.w } == [0, 0, 2, 2] && rules == ["a", "b", "a", "b"])
    }

    /// /metrics counts firings per rule, the rule's name escaped as a label value.
    @Test func metricsCountFiringsByRule() {
        var s = RunStatus()
        s.alertsFired = ["pop \"ams\"": 2, "slow": 1]
        let text = MetricsServer.render(s)
        #expect(text.contains("# TYPE qos_alerts_fired_total counter\n"))
        #expect(text.contains("qos_alerts_fired_total{rule=\"pop \\\"ams\\\"\"} 2\n"), "\(text)")
        #expect(text.contains("qos_alerts_fired_total{rule=\"slow\"} 1\n"))
    }

    /// Without rules nothing changes: no `alerts` directory.
    @Test func noRulesNoAlertsTable() throws {
        let dir = DriverTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try DriverTests.uninterrupted(DriverTests.source(partitions: 2), sink: dir)
        #expect(!FileManager.default.fileExists(atPath: dir + "/alerts"))
        #expect(FileManager.default.fileExists(atPath: dir + "/overall"))
    }

    // MARK: Webhook

    /// A loopback HTTP server that answers every request with `status` and
    /// keeps what it received (or never answers, with `status` nil).
    final class LoopbackServer: @unchecked Sendable {
        let fd: Int32
        let port: UInt16
        let lock = NSLock()
        var requests: [String] = []
        /// `trickle`: answer one byte of the status line every 0.1 s instead.
        init(status: Int?, trickle: Bool = false) throws {
            let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            fd = sock
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = 0
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, len) } }
            listen(sock, 8)
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sock, $0, &len) } }
            port = UInt16(bigEndian: addr.sin_port)
            let listener = fd
            Thread { [self] in
                while true {
                    let c = accept(listener, nil, nil)
                    // Stopped (`stop` shut the socket down): only now is the
                    // descriptor closed, so this thread can never accept on a
                    // number another test's socket has reused meanwhile.
                    if c < 0 {
                        if lock.withLock({ stopped }) { close(listener); return }
                        Thread.sleep(forTimeInterval: 0.01)   // EINTR, EMFILE, …: the socket is still ours
                        continue
                    }
                    var data: [UInt8] = []
                    var buf = [UInt8](repeating: 0, count: 4096)
                    // Read the head, then Content-Length bytes of body.
                    while true {
                        let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                        if n <= 0 { break }
                        data += buf[0..<n]
                        let text = String(decoding: data, as: UTF8.self)
                        if let r = text.range(of: "\r\n\r\n"),
                           let cl = text.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("content-length:") }),
                           let n = Int(cl.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)),
                           text[r.upperBound...].utf8.count >= n { break }
                    }
                    lock.withLock { requests.append(String(decoding: data, as: UTF8.self)) }
                    if trickle {
                        for byte in Array("HTTP/1.1 200 OK".utf8) {
                            guard [byte].withUnsafeBytes({ Glibc.send(c, $0.baseAddress, 1, Int32(MSG_NOSIGNAL)) }) == 1 else { break }
                            Thread.sleep(forTimeInterval: 0.1)
                        }
                        close(c)
                    } else if let status {
                        let answer = Array("HTTP/1.1 \(status) X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
                        _ = answer.withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                        close(c)
                    }  // else: hold the connection open and never answer
                }
            }.start()
        }
        private var stopped = false
        func stop() {
            lock.withLock { stopped = true }
            shutdown(fd, Int32(SHUT_RDWR))
        }
        var received: [String] { lock.withLock { requests } }
    }

    @Test func webhookPostsEachFiringAsJSONToALoopbackServer() throws {
        let server = try LoopbackServer(status: 200)
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/hooks/qos"
        let box = DriverTests.LogBox()
        let pipeline = AlertPipeline(rules: try Self.rules("[{name: pop, table: cdn, metric: failed_request_rate, above: 0.05, webhook: '\(url)'}]"),
                                     log: Logger { _, m in box.lines.append(m) })
        let fired = pipeline.evaluator.evaluate(start: Self.t0, end: Self.t0 + Self.w,
                                                tables: ["cdn": [Self.cdnRow("fastly", "ams", requests: 100, failed: 9)]])
        pipeline.committed(fired)
        pipeline.webhooks.drain(seconds: 10)
        #expect(pipeline.webhooks.delivered == 1 && pipeline.webhooks.failed == 0)
        let request = try #require(server.received.first)
        #expect(request.hasPrefix("POST /hooks/qos HTTP/1.1\r\n"))
        #expect(request.contains("Content-Type: application/json"))
        let body = try #require(request.range(of: "\r\n\r\n").map { String(request[$0.upperBound...]) })
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        #expect(json["rule"] as? String == "pop" && json["metric"] as? String == "failed_request_rate")
        #expect(json["window_start"] as? String == "2026-01-01T00:00:00Z" && json["kind"] as? String == "threshold")
        #expect((json["dimensions"] as? [String: String]) == ["cdn": "fastly", "pop": "ams"])
        #expect(json["value"] as? Double == 0.09 && json["volume"] as? Int == 100)
        #expect(box.lines.count == 1 && box.lines[0].hasPrefix("qos run: ALERT pop: failed_request_rate 0.09 above 0.05"))
    }

    @Test func aWebhookThatNeverAnswersIsLoggedAndDoesNotBlockTheCaller() throws {
        let silent = try LoopbackServer(status: nil)
        defer { silent.stop() }
        let box = DriverTests.LogBox()
        let sender = WebhookSender(timeoutSeconds: 0.3, log: Logger { _, m in box.lines.append(m) })
        sender.send("{}", to: "http://127.0.0.1:\(silent.port)/")  // returns at once: the POST runs on the sender's thread
        sender.drain(seconds: 10)
        #expect(sender.failed == 1 && sender.delivered == 0)
        #expect(box.lines.count == 1 && box.lines[0].contains("no answer within 0.3 s"), "\(box.lines)")
        // A receiver trickling its answer a byte at a time (each byte well
        // within the timeout) fails once the timeout has passed in all.
        let slow = try LoopbackServer(status: nil, trickle: true)
        defer { slow.stop() }
        let started = Date()
        guard case .failure(let e) = WebhookSender.post("{}", to: "http://127.0.0.1:\(slow.port)/", timeoutSeconds: 0.3) else {
            Issue.record("a trickled answer is not a delivery"); return
        }
        #expect(e.message.contains("no answer within 0.3 s"))
        #expect(Date().timeIntervalSince(started) < 1.2, "the whole answer is bounded by the timeout (1.5 s trickled)")
        // A receiver answering 500 is a failure too.
        let failing = try LoopbackServer(status: 500)
        defer { failing.stop() }
        if case .success = WebhookSender.post("{}", to: "http://127.0.0.1:\(failing.port)/", timeoutSeconds: 2) {
            Issue.record("a 500 is not a delivery")
        }
        #expect(WebhookURL("http://:80/") == nil && WebhookURL("http://h:0/") == nil && WebhookURL("http://h:8080/x")?.port == 8080)
    }
}
