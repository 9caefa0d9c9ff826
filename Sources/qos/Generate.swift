import ArgumentParser
import Foundation
import Engine
import Generator
import Kafka
import QoSCore
#if canImport(Glibc)
import Glibc
#endif

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write realistic synthetic beacon traffic (deterministic for a --seed).",
        discussion: """
        Sessions start by a Poisson process; each plays a scripted view (startup, \
        segments, stalls, seeks, pauses, ladder shifts, errors). Problem knobs: \
        --slow-startup, --rebuffer-rate, --slow-pop, --failing-player, and delivery \
        faults --late-fraction, --duplicate-fraction, --malformed-fraction, --future-fraction. \
        With --kafka in real time, a message leaves when the clock reaches its event time, so no \
        beacon is ahead of the clock (the rate builds up while the first sessions start).
        """)

    @Option(help: "Random seed: the same seed and options give the same bytes.") var seed: UInt64 = 1
    @Option(help: "Number of playback sessions.") var sessions: Int = 1000
    @Option(help: "Beacons per second of event time (how densely sessions start); with --kafka, messages leave when the clock reaches their event time; `max` sends to Kafka as fast as possible.")
    var rate: String = "2000"
    @Option(help: "Event time of the first session, epoch ms (default: 2026-01-01T00:00:00Z for files; now for --kafka in real time; far enough in the past for --kafka --rate max).")
    var startMs: Int64?
    @Option(help: "Produce to Kafka at HOST:PORT instead of writing a file (keyed by session_id).") var kafka: String?
    @Option(help: "Topic for --kafka (default: beacons; cdnlogs with --cdn-logs).") var topic: String?
    @Option(help: "Write the CDN access logs of the same traffic instead of its beacons: one record per segment request, in this format (\(CdnLogGenerator.Format.allCases.map(\.rawValue).joined(separator: ", "))). The same --seed and options give the requests of the same sessions.")
    var cdnLogs: String?
    @Option(help: "Beacon format: beacon-json, or cmcd (the same traffic as CMCD v2 event/response-mode reports, one per line; docs/cmcd.md; duplicates are not generated, CMCD has no key to drop them by).")
    var format: String = "beacon-json"
    @Option(help: "With --kafka: produce the lines of this NDJSON file instead of generated traffic, each keyed by its session_id.")
    var input: String?
    @Option(name: .customLong("kafka-property"), help: "librdkafka producer property key=value for --kafka; repeatable (e.g. compression.codec=lz4, linger.ms=5).")
    var kafkaProperty: [String] = []
    @Option(name: .shortAndLong, help: "Output file (.ndjson, or .ndjson.zst for zstd), - for stdout.")
    var out: String = "-"
    @Option(help: "Startup-time multiplier (2 = twice as slow).") var slowStartup: Double = 1
    @Option(help: "Stall-probability multiplier.") var rebufferRate: Double = 1
    @Option(help: "Degrade one CDN PoP, as cdn/pop (e.g. fastly/ams).") var slowPop: String?
    @Option(help: "Break one player version, as name@version (e.g. shaka-player@4.7.11).") var failingPlayer: String?
    @Option(help: "Share of beacons delivered 1–10 min late.") var lateFraction: Double = 0
    @Option(help: "Share of beacons delivered twice.") var duplicateFraction: Double = 0
    @Option(help: "Share of extra malformed messages.") var malformedFraction: Double = 0
    @Option(help: "Share of extra beacons 10–60 min in the future (rejected as ts_in_future in real time).")
    var futureFraction: Double = 0
    @Option(help: "Start as if traffic had flowed this many ms already: sessions in progress, their earlier beacons not sent (steady-state rate at once; count their sessions in --sessions).")
    var warmStartMs: Int64 = 0
    @Option(help: "Players batch their beacons: each session's beacons of up to this many seconds leave as one message, a JSON array (also at view_end, or at \(PlayerBatching.maxBeacons) beacons); 0 sends one beacon per message. Keep it within the daemon's --lateness.")
    var batchSeconds: Double = 0
    @Flag(help: "Put country/region explicitly into view_start beacons.") var explicitGeo = false
    @Flag(help: "Print the generator's IP-range table as CSV (input of tools/build_mmdb.py) and exit.")
    var geoTable = false

    /// 2100-01-01T00:00:00Z.
    static let startMsMax: Int64 = 4_102_444_800_000

    /// A player holds beacons back for at most an hour.
    static let batchSecondsMax: Double = 3600

    /// 100 million sessions: about 7 billion beacons.
    static let sessionsMax = 100_000_000

    func validate() throws {
        // The generator's viewer and video tables grow with --sessions (a
        // Zipf table of sessions / 3 entries): bounded so that a typo is an
        // error, not an allocation of terabytes.
        guard (0...Generate.sessionsMax).contains(sessions) else {
            throw ValidationError("--sessions must be between 0 and \(Generate.sessionsMax)")
        }
        guard input == nil || kafka != nil else { throw ValidationError("--input is for --kafka: it produces a file's lines to Kafka") }
        if let cdnLogs, CdnLogGenerator.Format(rawValue: cdnLogs) == nil {
            throw ValidationError("--cdn-logs '\(cdnLogs)': use one of \(CdnLogGenerator.Format.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard format == "beacon-json" || format == "cmcd" else { throw ValidationError("--format '\(format)': use beacon-json or cmcd") }
        guard format == "beacon-json" || cdnLogs == nil else { throw ValidationError("--format cmcd is for beacons; it does not combine with --cdn-logs") }
        guard cdnLogs == nil || input == nil else { throw ValidationError("--cdn-logs generates traffic; it does not combine with --input") }
        guard batchSeconds == 0 || (0.001...Generate.batchSecondsMax).contains(batchSeconds) else {
            throw ValidationError("--batch-seconds must be 0 (no batching) or between 0.001 and \(Int(Generate.batchSecondsMax))")
        }
        guard batchSeconds == 0 || (format == "beacon-json" && cdnLogs == nil && input == nil) else {
            throw ValidationError("--batch-seconds batches generated beacon-json traffic; it does not combine with --format cmcd, --cdn-logs or --input")
        }
        guard warmStartMs >= 0 else { throw ValidationError("--warm-start-ms must be ≥ 0") }
        // Event times are start + offsets of up to days: keep them far from Int64's end (2262).
        if let startMs, !(0...Generate.startMsMax).contains(startMs) {
            throw ValidationError("--start-ms must be between 0 and \(Generate.startMsMax) (2100-01-01)")
        }
        guard rate == "max" || (Double(rate).map { $0 > 0 && $0.isFinite } ?? false) else {
            throw ValidationError("--rate must be a finite number > 0 or max")
        }
        for (n, v) in [("--slow-startup", slowStartup), ("--rebuffer-rate", rebufferRate)] where !(v >= 0 && v.isFinite) {
            throw ValidationError("\(n) must be a finite number ≥ 0")
        }
        for (n, v) in [("--late-fraction", lateFraction), ("--duplicate-fraction", duplicateFraction),
                       ("--malformed-fraction", malformedFraction), ("--future-fraction", futureFraction)] where !(0...1).contains(v) {
            throw ValidationError("\(n) must be between 0 and 1")
        }
    }

    var options: GeneratorOptions {
        var o = GeneratorOptions()
        o.seed = seed; o.sessions = sessions; o.rate = Double(rate) ?? 2000
        o.startMs = startMs ?? defaultStart(o)
        o.slowStartup = slowStartup; o.rebufferRate = rebufferRate
        o.slowPop = slowPop; o.failingPlayer = failingPlayer
        o.lateFraction = lateFraction; o.duplicateFraction = duplicateFraction
        o.malformedFraction = malformedFraction; o.futureFraction = futureFraction
        o.explicitGeo = explicitGeo; o.warmStartMs = warmStartMs
        return o
    }

    /// Files: a fixed date (reproducible). Kafka in real time: now. Kafka as
    /// fast as possible: far enough in the past that no event time lies ahead
    /// of the clock (sessions start over sessions × 70 / rate s and play for
    /// up to about 2 h).
    func defaultStart(_ o: GeneratorOptions) -> Int64 {
        guard kafka != nil else { return o.startMs }
        guard rate == "max" else { return wallClockMs() }
        return wallClockMs() - Int64(Double(sessions) * 70 / o.rate * 1000) - 7_200_000
    }

    func run() throws {
        if geoTable { print(Catalog.geoCSV(), terminator: ""); return }
        try QoS.guarded {
            if let kafka { return try produce(to: kafka) }
            let sink = try LineSink(path: out)
            var n = 0
            for m in messages {
                try sink.writeLine(m.payload)
                n += 1
            }
            try sink.close()
            if out != "-" { writeStderr("wrote \(n) messages to \(out)\n") }
        }
    }

    /// The generated messages: beacons, or with --cdn-logs the CDN's access-log records.
    var messages: AnySequence<GeneratedMessage> {
        if let cdnLogs, let format = CdnLogGenerator.Format(rawValue: cdnLogs) {
            return AnySequence(CdnLogGenerator(options, format: format))
        }
        if format == "cmcd" {
            let encoder = CMCDEncoder()
            return AnySequence(TrafficGenerator(options).lazy.compactMap { m -> GeneratedMessage? in
                guard let b = m.beacon else { return m }   // malformed and future messages: as they are
                if m.isDuplicate { return nil }
                guard let payload = encoder.encode(b) else { return nil }
                var out = m
                out.payload = payload
                return out
            })
        }
        let periodMs = Int64((batchSeconds * 1000).rounded())
        if periodMs > 0 { return AnySequence(PlayerBatcher(TrafficGenerator(options), periodMs: periodMs)) }
        return AnySequence(TrafficGenerator(options))
    }

    func produce(to brokers: String) throws {
        let topic = self.topic ?? (cdnLogs == nil ? "beacons" : "cdnlogs")
        installStopHandlers()
        do {
            // zstd message sets: smaller on the wire and in the broker (the embedded broker keeps
            // only 5 MiB per partition). As fast as possible, batches fill up to 10 000 messages
            // (like a collector under load); in real time they leave every 20 ms.
            var extra = ["compression.codec": "zstd", "linger.ms": rate == "max" ? "500" : "20",
                         "batch.num.messages": "10000"]
            for kv in kafkaProperty {
                guard let eq = kv.firstIndex(of: "=") else {
                    throw UserError("--kafka-property '\(kv)': expected key=value, e.g. --kafka-property linger.ms=5")
                }
                extra[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
            }
            let producer = try KafkaProducer(brokers: brokers, extra: extra)
            _ = try producer.checkTopic(topic)
            let progress = { (p: ProduceProgress) in if isatty(2) != 0 { writeStderr("\r\u{1B}[K\(p.sent) sent, \(p.delivered) delivered") } }
            let done: ProduceProgress
            if let input {
                // A file's lines carry their own times: paced by count (--rate), sent as they are.
                done = try produceAll(try Generate.messages(ofFile: input), producer: producer, topic: topic,
                                      rate: rate == "max" ? nil : Double(rate), progress: progress,
                                      shouldStop: { runStopRequested != 0 })
            } else {
                let gen = options
                let messages: AnySequence<GeneratedMessage> = rate == "max" ? self.messages
                    : AnySequence(RealTimePacer(self.messages.makeIterator(), eventStartMs: gen.startMs, clock: wallClockMs,
                                                wait: { producer.poll(timeoutMs: Int(min($0, 100))) },
                                                shouldStop: { runStopRequested != 0 }))
                done = try produceAll(messages, producer: producer, topic: topic, rate: nil, progress: progress,
                                      shouldStop: { runStopRequested != 0 },
                                      transform: { OutgoingMessage(key: $0.key, payload: $0.payload, timestampMs: $0.ts) })
            }
            producer.close()
            writeStderr("\rproduced \(done.delivered) messages to \(topic) at \(brokers)\u{1B}[K\n")
        } catch let e as KafkaError {
            throw UserError(e.message)
        }
    }

    /// The non-empty lines of an NDJSON file as messages keyed by the
    /// first `"session_id":"…"` in each (unkeyed when there is none).
    static func messages(ofFile path: String) throws -> [OutgoingMessage] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UserError("cannot read --input '\(path)' — give a readable NDJSON file")
        }
        let marker = Array(#""session_id":""#.utf8)
        return data.split(separator: UInt8(ascii: "\n")).map { line in
            let bytes = Array(line)
            var key: [UInt8]?
            if let r = bytes.firstRange(of: marker), let end = bytes[r.upperBound...].firstIndex(of: UInt8(ascii: "\"")) {
                key = Array(bytes[r.upperBound..<end])
            }
            return OutgoingMessage(key: key, payload: bytes)
        }
    }
}
