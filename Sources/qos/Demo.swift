import ArgumentParser
import Engine
import Foundation
import Generator
import Kafka
import Parquet
import QoSCore

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Embedded broker + traffic generator + daemon in one process, with a live view.",
        discussion: """
        Starts the in-memory development broker, produces synthetic traffic (a degraded CDN PoP and a \
        broken player version included) to topic beacons and the CDN's access log of the same traffic \
        (EdgeCast format) to topic cdnlogs (one session in eight is a CMCD player instead, posting its \
        reports over HTTP to an embedded qos collect, which produces them to topic cmcd), in time-lapse — event time runs --speed times faster than the \
        clock, so 2-minute windows close every few seconds — and runs the exactly-once daemon into \
        --sink. At --duration the traffic stops and the daemon reads what is left in the topics (at most --duration or 60 s \
        more, whichever is longer), then stops; Ctrl-C stops at once. The partitions stay in the sink until the next demo, \
        which clears them (--sink must be empty or hold a previous demo's output). \
        --config and QOS_* environment variables (the keys of `qos run`) set the window, lateness, \
        sessions, group cap, slow-request threshold, ZSTD level, sink and enrichment; the demo's own \
        broker, fast checkpoints and idle timeout stay (brokers, topic, group, instance, idle_timeout, \
        checkpoint_* and kafka are checked and ignored). The live QoS page (the page of qos report, refreshed \
        after every flush), /metrics and /healthz are served on metrics_host:metrics_port (127.0.0.1:9309 by \
        default, any free port if that one is taken; off disables them); the URL is printed at the start. \
        Three incidents are injected — the degraded PoP, the broken player version, and startup three times \
        slower from half-way through the run's event time — and the demo's alert rules (README "Alerts"; an alerts: \
        list in --config replaces them) fire once for each; the summary lists the rows of the alerts table.
        """)

    @Option(help: "YAML config file with the keys of qos run (see the discussion above).") var config: String?
    @Option(name: .customLong("sink"), help: ArgumentHelp("Output directory: empty, or a previous demo's output (cleared first) (default \(Defaults.sink)).")) var sinkOption: String?
    @Option(help: "Seconds of traffic; then the daemon reads what is left and stops.") var duration: Double = 60
    @Option(help: "Beacons per second of event time.") var rate: Double = 3000
    @Option(help: "Time-lapse factor: event time runs this many times faster than the clock.") var speed: Double = 10
    @Option(help: ArgumentHelp("Window size \(defaultDuration(Defaults.engine.windowMs)).")) var window: String?
    @Option(name: .customLong("geoip-db"), help: "MaxMind DB file(s) for the geo breakdown (make demo builds them).")
    var geoipDb: [String] = []
    @Option(help: "Partitions of the demo topic.") var partitions: Int = 6

    /// The demo generates `rate × duration × speed / 70` sessions up front;
    /// past this it would take more memory than a demo should.
    static let sessionsMax = 5_000_000

    func validate() throws {
        guard duration > 0, duration <= 86_400 else { throw ValidationError("--duration must be > 0 and at most 86400 seconds") }
        guard rate > 0, rate <= 1_000_000 else { throw ValidationError("--rate must be > 0 and at most 1000000 beacons per second") }
        guard speed > 0, speed <= 10_000 else { throw ValidationError("--speed must be > 0 and at most 10000") }
        guard (1...1024).contains(partitions) else { throw ValidationError("--partitions must be between 1 and 1024") }
        let sessions = rate * duration * speed / 70
        guard sessions <= Double(Demo.sessionsMax) else {
            throw ValidationError("--rate × --duration × --speed would generate \(Int(sessions)) sessions (at most \(Demo.sessionsMax)): lower one of them")
        }
    }

    func run() throws {
        try QoS.guarded {
            let c = try loadConfiguration(file: config) { l in
                l.set(.sink, flag: sinkOption)
                l.set(.window, flag: window)
                l.set(geoipDb: geoipDb)
            }
            let sink = c.sink
            guard !sink.hasPrefix("s3://") else {
                throw UserError("qos demo clears and writes a local directory, not '\(sink)' — give a directory as --sink (qos run and qos replay write s3://)")
            }
            installStopHandlers()
            let broker: MockBroker
            do {
                broker = try MockBroker(brokers: 1, port: 0, topics: ["beacons": partitions, "cdnlogs": max(1, partitions / 2),
                                                                      DemoCollector.topic: max(1, partitions / 2)])
            } catch let e as KafkaError {
                throw UserError(e.message)
            }
            defer { broker.close() }
            try Demo.prepareSink(sink)
            print("embedded broker at \(broker.bootstrapServers) (in memory only), sink \(sink)/")
            let seconds = duration
            var gen = GeneratorOptions()
            gen.sessions = Int(rate * seconds * speed / 70) + 100
            gen.rate = rate
            // Start in the past so time-lapse event times never run ahead of the clock.
            gen.startMs = wallClockMs() - Int64(seconds * speed * 1000) - 60_000
            gen.slowPop = "fastly/ams"
            gen.failingPlayer = "shaka-player@4.7.11"
            gen.slowStartup = 3
            gen.slowStartupFromMs = gen.startMs + Int64(seconds * speed * 500)  // half-way through the event time
            gen.lateFraction = 0.005
            gen.duplicateFraction = 0.002
            gen.malformedFraction = 0.001
            let producer = ProducerThread(brokers: broker.bootstrapServers, options: gen, speed: speed,
                                          topic: "beacons") { AnyIterator(TrafficGenerator($0).lazy.filter { !DemoCollector.viaCollector($0) }.makeIterator()) }
            let cdnProducer = ProducerThread(brokers: broker.bootstrapServers, options: gen, speed: speed,
                                             topic: "cdnlogs") { CdnLogGenerator($0, format: .edgecast) }
            let collector: DemoCollector
            do {
                collector = try DemoCollector(brokers: broker.bootstrapServers, options: gen, speed: speed)
            } catch let e as KafkaError {
                throw UserError(e.message)
            }
            print("collector (qos collect) at \(collector.url): one session in \(DemoCollector.share) posts its reports there as CMCD")
            print("incidents: degraded PoP \(gen.slowPop!) and broken player \(gen.failingPlayer!) from the start, "
                  + "startup ×\(Int(gen.slowStartup)) slower from \(CivilTime(epochMs: gen.slowStartupFromMs).iso) (event time)")
            producer.start()
            cdnProducer.start()
            collector.start()
            var o = c.runOptions()
            o.brokers = broker.bootstrapServers
            o.topics = [TopicSpec(name: "beacons", format: RecordFormats.defaultName), TopicSpec(name: "cdnlogs", format: "edgecast"),
                        TopicSpec(name: DemoCollector.topic, format: "cmcd")]
            o.group = Defaults.group
            o.instance = RunOptions.defaultInstance()
            o.checkpointIntervalMs = 1000
            o.checkpointMinIntervalMs = Defaults.checkpointMinIntervalMs
            o.idleTimeoutMs = 5000
            o.durationSeconds = seconds
            o.enricher = try makeEnricher(geoip: c.geoipDb, uaRegexes: c.uaRegexes, log: { print($0) })
            o.log = .silent
            o.compactOnShutdown = true  // the sink it leaves: one file per table and hour (README "Late data and compaction")
            // The mock broker waits up to session.timeout.ms − 1 s on a rebalance.
            o.kafka = ["session.timeout.ms": "6000"]  // not the config's: the demo's broker is its own
            let alerts = AlertPipeline(rules: c.alerts.isEmpty ? try AlertRules.parse(yaml: AlertRules.demo) : c.alerts, log: .silent)
            o.alerts = alerts
            let view = LiveView(speed: speed)
            view.alerts = alerts
            let live = LiveReport(sink: sink)
            let server = try Demo.liveServer(c, live)
            if let server {
                view.url = "http://\(server.host):\(server.port)/"
                print("live QoS page: \(view.url!) (while the demo runs; qos report --sink \(sink) writes it to a file)")
            }
            o.onCheckpoint = { view.show($0); server?.publish($0); live.update($0) }
            // At --duration the traffic stops and the daemon reads what is
            // left before it stops (RunOptions.afterDuration): a machine
            // slower than the traffic still shows every incident.
            var unacknowledged: Int?
            let stopTraffic = {
                guard unacknowledged == nil else { return }
                producer.stop()
                cdnProducer.stop()
                unacknowledged = collector.stop()
            }
            o.afterDuration = {
                stopTraffic()
                print("--duration reached: traffic stopped; reading the rest of the topics (Ctrl-C stops now)")
            }
            o.drainLimitSeconds = max(60, seconds)
            let status = try RunJob(o).run()
            if status.drainCutShort {
                print("reading the rest of the topics took over \(Int(o.drainLimitSeconds)) s: stopped with beacons "
                      + "still unread (the numbers below leave them out)")
            }
            stopTraffic()
            server?.stop()
            view.finish(status, sink: sink)
            print(collector.summary() + ((unacknowledged ?? 0) > 0 ? " (\(unacknowledged ?? 0) not acknowledged by the broker)" : ""))
        }
    }
}

extension Demo {
    static let marker = "_qos/demo"

    /// The live page, /metrics and /healthz on metrics_host:metrics_port
    /// (default 127.0.0.1:9309), or on any free port when that one is taken
    /// (a `qos run` beside the demo); nil when metrics_port is off.
    static func liveServer(_ c: Configuration, _ live: LiveReport) throws -> MetricsServer? {
        guard let port = c.metricsPort else { return nil }
        let server: MetricsServer
        do { server = try MetricsServer(host: c.metricsHost, port: port) } catch {
            server = try MetricsServer(host: c.metricsHost, port: 0)
        }
        server.addRoutes { live.route($0) }
        server.start()
        return server
    }

    /// The demo's broker lives in memory: the checkpoints of a previous demo
    /// name offsets of a broker that is gone. So a demo starts from a clean
    /// sink: an earlier demo's output (marked by `_qos/demo`) is cleared,
    /// saying so; a sink holding anything else is refused.
    static func prepareSink(_ sink: String) throws {
        let entries = CheckpointStore.listFiles(sink)  // dot files (e.g. .gitkeep) stay
        if !entries.isEmpty {
            guard access("\(sink)/\(Demo.marker)", F_OK) == 0 else {
                throw UserError("sink '\(sink)' holds files qos demo did not write — remove them (make clean clears output/) or pass --sink with an empty directory")
            }
            print("clearing the previous demo's output in \(sink)/ (its in-memory broker is gone)")
            for e in entries { CheckpointStore.removeTree("\(sink)/\(e)") }
        }
        try FileSink(root: sink).publish(Array("written by qos demo; the next demo clears this sink\n".utf8),
                                         dir: "\(sink)/_qos", name: "demo")
    }
}

/// Produces generated messages (beacons, or CDN log records of the same
/// traffic) to one topic from a background thread.
final class ProducerThread: @unchecked Sendable {
    let brokers: String
    let options: GeneratorOptions
    let speed: Double
    let topic: String
    let messages: @Sendable (GeneratorOptions) -> any IteratorProtocol<GeneratedMessage>
    private let lock = NSLock()
    private var stopping = false
    private var thread: Thread?
    /// Signalled when the thread has produced its last message and closed its producer.
    private let done = DispatchSemaphore(value: 0)

    init(brokers: String, options: GeneratorOptions, speed: Double, topic: String,
         messages: @escaping @Sendable (GeneratorOptions) -> any IteratorProtocol<GeneratedMessage>) {
        self.brokers = brokers
        self.options = options
        self.speed = speed
        self.topic = topic
        self.messages = messages
    }

    func start() {
        let t = Thread { [self] in
            do {
                let producer = try KafkaProducer(brokers: brokers, extra: ["compression.codec": "zstd", "linger.ms": "20"])
                let stop = { self.lock.withLock { self.stopping } }
                // Time-lapse paced by event time: never ahead of the clock.
                let paced = RealTimePacer(AnyIterator(messages(options)), eventStartMs: options.startMs, speed: speed,
                                          clock: wallClockMs, wait: { producer.poll(timeoutMs: Int(min($0, 100))) },
                                          shouldStop: stop)
                try produceAll(paced, producer: producer, topic: topic, rate: nil, shouldStop: stop,
                               transform: { OutgoingMessage(key: $0.key, payload: $0.payload, timestampMs: $0.ts) })
                producer.close()
            } catch {
                writeStderr("demo producer: \(error)\n")
            }
            done.signal()
        }
        thread = t
        t.start()
    }

    /// Stops producing and waits until what was produced is flushed to the
    /// broker (its topic's end offsets are final). Call once.
    func stop() {
        lock.withLock { stopping = true }
        if thread != nil { done.wait() }
    }
}

/// The terminal view: one block redrawn at every checkpoint.
final class LiveView: @unchecked Sendable {
    let speed: Double
    /// The live page's address, shown in the view.
    var url: String?
    /// The alert rules' firings, shown in the view.
    var alerts: AlertPipeline?
    var lastMessages: Int64 = 0
    var lastTime = Date()
    let tty = isatty(1) != 0

    init(speed: Double) { self.speed = speed }

    func show(_ s: RunStatus) {
        let now = Date()
        let dt = max(now.timeIntervalSince(lastTime), 0.001)
        let rate = Double(s.counters.messages - lastMessages) / dt
        lastMessages = s.counters.messages
        lastTime = now
        var lines = [
            "VideoQoS demo — time-lapse ×\(Int(speed)); Ctrl-C to stop",
            "beacons/s \(Int(rate))   consumed \(s.counters.messages)   rejected \(s.counters.rejectedTotal)   "
                + "open sessions \(s.openSessions)   windows written \(s.windowsWritten)   files \(s.filesWritten)",
        ]
        lines += LiveView.windowSummary(s)
        if let alerts {
            lines.append("alerts fired: \(alerts.firedTotal)")
            lines += alerts.recent.suffix(3).map { "  ALERT \($0.message)" }
        }
        if let url { lines.append("live QoS page: \(url)") }
        if tty { print("\u{1B}[H\u{1B}[2J" + lines.joined(separator: "\n")) } else if s.epoch % 10 == 0 {
            print(lines[1])
        }
    }

    /// Every beacon counted as rejected must be a row of the `rejects` table
    /// (the shutdown checkpoint wrote the last ones); `ts_in_future` must be 0
    /// (the demo injects none). Prints both counts.
    func checkRejects(_ s: RunStatus, sink: String) {
        var rows = 0, future = 0
        do {
            for f in Inspector.parquetFiles(under: sink + "/rejects") {
                let r = try ParquetFileReader(bytes: Inspector.readFile(f))
                rows += r.numRows
                future += (try r.column(named: "reason")).stringValues?.filter { $0 == "ts_in_future" }.count ?? 0
            }
        } catch {
            print("rejects: cannot read \(sink)/rejects: \(error)")
            return
        }
        let counted = s.counters.rejectedTotal
        print("rejects: \(counted) counted live, \(rows) rows in \(sink)/rejects; ts_in_future: \(future) rows, "
              + "\(s.counters.rejected["ts_in_future", default: 0]) counted")
        if Int64(rows) != counted || future != 0 {
            print("rejects: MISMATCH — expected every counted reject as a row and no ts_in_future "
                  + "(a sink left by an earlier run adds its rows: use an empty --sink)")
        }
    }

    /// The last written window: views, startup p95, rebuffer ratio, top countries.
    static func windowSummary(_ s: RunStatus) -> [String] {
        guard let w = s.lastWindows.last, let interner = s.interner else { return ["(no window written yet)"] }
        let overall = w.tables[MetricTable.overall.rawValue]
        var m = GroupMetrics<DataSketchesKit>()
        for x in overall.metrics { m.merge(x) }
        let p95 = m.startupSketch.quantile(0.95).map { "\(Int($0)) ms" } ?? "n/a"
        let ratio = m.rebufferRatio.map { String(format: "%.2f %%", $0 * 100) } ?? "n/a"
        let geo = w.tables[MetricTable.geo.rawValue]
        var byCountry: [String: Int64] = [:]
        for (k, x) in zip(geo.keys, geo.metrics) { byCountry[interner.string(k.a), default: 0] += x.views }
        let top = byCountry.sorted { $0.value > $1.value }.prefix(5).map { "\($0.key) \($0.value)" }
        return ["last window \(CivilTime(epochMs: w.start).iso): views \(m.views), startup p95 \(p95), "
                + "rebuffer ratio \(ratio), VSF \(m.vsf), VPF \(m.vpf)",
                "top countries: \(top.joined(separator: ", "))"]
    }

    func finish(_ s: RunStatus, sink: String) {
        print("\nstopped: \(s.counters.messages) messages consumed (beacons, CDN log records and CMCD reports), \(s.windowsWritten) windows and \(s.filesWritten) files written to \(sink)/")
        let left = Inspector.parquetFiles(under: sink).count
        print("files left in \(sink)/: \(left) Parquet files (\(s.lateFilesWritten) late-delta files written, "
              + "\(s.compactions) compactions replaced \(s.compactedFiles) files)")
        checkRejects(s, sink: sink)
        printCdnEdge(sink: sink)
        printAlerts(sink: sink)
        print("query them with DuckDB, e.g.:")
        print("  select window_start, sum(views), sum(rebuffer_ms)/sum(playing_ms+rebuffer_ms) as rebuffer_ratio")
        print("  from read_parquet('\(sink)/overall/**/*.parquet', hive_partitioning=true) group by 1 order by 1;")
        print("the CDN's own view of the same requests (cdn_edge, from the cdnlogs topic):")
        print("  select pop, sum(requests), sum(slow_responses)/sum(requests) as slow_share, sum(http_errors)")
        print("  from read_parquet('\(sink)/cdn_edge/**/*.parquet') group by 1 order by 3 desc;")
    }

    /// The rows of the `alerts` table: one line per firing, in window order.
    func printAlerts(sink: String) {
        var rows: [(start: Int64, message: String)] = []
        do {
            for f in Inspector.parquetFiles(under: sink + "/" + TableSchemas.alertsTable) {
                let r = try ParquetFileReader(bytes: Inspector.readFile(f))
                guard case .int64(let starts) = try r.column(named: "window_start"),
                      let messages = try r.column(named: "message").stringValues else { continue }
                for i in messages.indices { rows.append((starts[i] ?? 0, messages[i] ?? "")) }
            }
        } catch {
            print("alerts: cannot read \(sink)/alerts: \(error)")
            return
        }
        print("alerts: \(rows.count) fired (rows of \(sink)/\(TableSchemas.alertsTable))")
        for r in rows.sorted(by: { ($0.start, $0.message) < ($1.start, $1.message) }) { print("  ALERT \(r.message)") }
    }

    /// The PoPs by share of slow responses in `cdn_edge` (the CDN's access
    /// log): the degraded PoP the beacons show must lead here too.
    func printCdnEdge(sink: String) {
        var byPop: [String: (requests: Int64, slow: Int64, errors: Int64)] = [:]
        do {
            for f in Inspector.parquetFiles(under: sink + "/cdn_edge") {
                let r = try ParquetFileReader(bytes: Inspector.readFile(f))
                guard let pops = try r.column(named: "pop").stringValues,
                      case .int64(let requests) = try r.column(named: "requests"),
                      case .int64(let slow) = try r.column(named: "slow_responses"),
                      case .int64(let errors) = try r.column(named: "http_errors") else { continue }
                for i in pops.indices {
                    let pop = pops[i] ?? "unknown"
                    byPop[pop, default: (0, 0, 0)].requests += requests[i] ?? 0
                    byPop[pop, default: (0, 0, 0)].slow += slow[i] ?? 0
                    byPop[pop, default: (0, 0, 0)].errors += errors[i] ?? 0
                }
            }
        } catch {
            print("cdn_edge: cannot read \(sink)/cdn_edge: \(error)")
            return
        }
        let ranked = byPop.filter { $0.value.requests > 0 }
            .sorted { Double($0.value.slow) / Double($0.value.requests) > Double($1.value.slow) / Double($1.value.requests) }
        guard !ranked.isEmpty else { print("cdn_edge: no rows yet"); return }
        let shown = ranked.prefix(3).map { p in
            String(format: "%@ %.1f %% slow of %lld (%lld errors)", p.key, 100 * Double(p.value.slow) / Double(p.value.requests),
                   p.value.requests, p.value.errors)
        }
        print("cdn_edge (CDN access log), PoPs by slow-response share: \(shown.joined(separator: "; "))")
    }
}
