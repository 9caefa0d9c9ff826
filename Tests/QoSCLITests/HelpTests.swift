import Engine
import Testing
@testable import qos

/// `--help` cannot drift from the settings: every key of `Configuration.Key`
/// has its flag, and the discussion lists the keys.
@Suite struct HelpTests {
    @Test func runHasAFlagForEveryKey() {
        let help = Run.helpMessage(columns: 10_000)
        for k in Configuration.Key.allCases {
            if Configuration.Key.replayOnly.contains(k) {
                #expect(!help.contains(k.flag + " "), "qos run has no use for \(k.flag)")
            } else {
                #expect(help.contains(k.flag + " "), "qos run --help lacks \(k.flag)")
            }
            #expect(help.contains(k.rawValue), "qos run --help does not list key \(k.rawValue)")
        }
    }

    @Test func replayAndDemoHaveTheFlagsOfTheKeysTheyUse() {
        let replay = Replay.helpMessage(columns: 10_000)
        let used: [Configuration.Key] = [.sink, .window, .lateness, .max_lateness, .session_timeout, .session_max,
                                         .group_cap, .slow_request_ms, .zstd_level, .geoip_db, .ua_regexes, .workers]
        for k in used { #expect(replay.contains(k.flag + " "), "qos replay --help lacks \(k.flag)") }
        #expect(replay.contains("--config "))
        let demo = Demo.helpMessage(columns: 10_000)
        for k: Configuration.Key in [.sink, .window, .geoip_db] { #expect(demo.contains(k.flag + " ")) }
        #expect(demo.contains("--config "))
    }

    /// The demo's numbers are checked before anything starts: `--speed 0`
    /// trapped in the pacer, `--rate 1e12` asked for 380 GB of sessions.
    @Test func demoRefusesNumbersItCannotRun() throws {
        for args in [["--speed", "0"], ["--speed", "inf"], ["--rate", "1e12"], ["--rate", "nan"], ["--duration", "0"],
                     ["--partitions", "0"], ["--rate", "100000", "--duration", "3600", "--speed", "100"]] {
            #expect(throws: (any Error).self, "\(args)") { try Demo.parse(args) }
        }
        _ = try Demo.parse([])  // the defaults
        _ = try Demo.parse(["--duration", "120", "--rate", "300", "--speed", "10", "--partitions", "2"])
    }

    /// `qos generate --start-ms 9223372036854775000` trapped on an overflow
    /// adding the sessions' offsets; the start is checked first now.
    @Test func generateRefusesAStartItCannotAddTo() throws {
        #expect(throws: (any Error).self) { try Generate.parse(["--start-ms", "9223372036854775000"]) }
        _ = try Generate.parse(["--start-ms", "\(Generate.startMsMax)"])
    }

    /// `--sessions 99999999999999` aborted allocating its viewer table,
    /// `--rate inf` started every session at one instant and a NaN or negative
    /// multiplier was accepted; all are refused.
    @Test func generateRefusesSessionsAndRatesItCannotMake() throws {
        for bad in [["--sessions", "\(Generate.sessionsMax + 1)"], ["--sessions", "-1"], ["--rate", "inf"], ["--rate", "1e400"],
                    ["--rate", "nan"], ["--rate", "0"], ["--slow-startup=-3"], ["--slow-startup", "nan"], ["--rebuffer-rate", "inf"]] {
            #expect(throws: (any Error).self, "\(bad)") { try Generate.parse(bad) }
        }
        _ = try Generate.parse(["--sessions", "\(Generate.sessionsMax)", "--rate", "1e300"])
        _ = try Generate.parse(["--rate", "max"])
    }

    /// `--batch-seconds` is 0 (no batching) or a period from 1 ms to an hour,
    /// for generated beacon-json traffic only.
    @Test func generateBatchSecondsIsAPeriodForGeneratedBeacons() throws {
        for bad in [["--batch-seconds", "nan"], ["--batch-seconds", "-1"], ["--batch-seconds", "0.0001"], ["--batch-seconds", "3601"],
                    ["--batch-seconds", "5", "--format", "cmcd"], ["--batch-seconds", "5", "--cdn-logs", "edgecast"],
                    ["--batch-seconds", "5", "--kafka", "h:1", "--input", "f"]] {
            #expect(throws: (any Error).self, "\(bad)") { try Generate.parse(bad) }
        }
        for good in ["0", "0.001", "10", "3600"] { _ = try Generate.parse(["--batch-seconds", good]) }
    }

    /// `qos broker --partitions 100000000` listened and then grew towards
    /// 23 GB; the broker now stops where `qos run` stops reading.
    @Test func brokerPartitionsAreBoundedByWhatRunReads() throws {
        #expect(throws: (any Error).self) { try Broker.parse(["--partitions", "\(StreamPartition.partitionsMax + 1)"]) }
        #expect(throws: (any Error).self) { try Broker.parse(["--partitions", "0"]) }
        _ = try Broker.parse(["--partitions", "\(StreamPartition.partitionsMax)"])
    }

    @Test func helpDefaultsAreTheConfigurationDefaults() {
        let help = Run.helpMessage(columns: 10_000)
        #expect(help.contains("(default \(DurationText.format(Defaults.engine.windowMs)))"))
        #expect(help.contains("(default \(Defaults.brokers))"))
        #expect(help.contains("(default \(Defaults.zstdLevel))"))
    }

    /// Flags reach the configuration (the environment of the test run holds no QOS_ settings).
    @Test func flagsParseIntoTheConfiguration() throws {
        let run = try Run.parse(["--window", "10m", "--zstd-level", "7", "--kafka", "acks=all", "--metrics-port", "off",
                                 "--geoip-db", "a.mmdb", "--geoip-db", "b.mmdb", "--group-cap", "5"])
        let c = try run.configuration()
        #expect(c.engine.windowMs == 600_000 && c.zstdLevel == 7 && c.kafka == ["acks": "all"] && c.metricsPort == nil)
        #expect(c.geoipDb == ["a.mmdb", "b.mmdb"] && c.engine.groupsPerWindowMax == 5)
        #expect(throws: ConfigurationError.badValue(.zstd_level, "x", origin: .flag("--zstd-level"))) {
            try Run.parse(["--zstd-level", "x"]).configuration()
        }
    }
}
