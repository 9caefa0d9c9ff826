// `qos collect`: the HTTP ingest server in front of Kafka (README, "qos collect").

import ArgumentParser
import Engine
import Kafka
#if canImport(Glibc)
import Glibc
#endif

struct Collect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collect",
        abstract: "Take beacons and CMCD reports from players over HTTP and produce them to Kafka.",
        discussion: """
        Endpoints: POST /v1/beacons (one beacon object or an array; any content type, so \
        navigator.sendBeacon's text/plain works), POST or GET /v1/cmcd (CMCD v2 reports: one per line \
        or JSON in the body, or CMCD in the query string and the CMCD-Request/-Object/-Status/-Session \
        headers; docs/cmcd.md), GET or HEAD /healthz and /metrics (another method: 405 with Allow). Answers: 202 {"accepted":n}; 400 with the \
        reject reason of each malformed record (its bytes still go to Kafka, so the daemon's rejects \
        table has it; at most 100 listed, rejected_count has the number); 413 body too large, more \
        records than --max-records, or a record larger than Kafka's message.max.bytes; 408 request not sent within --request-timeout; 429 over \
        the per-client rate; 403 origin not allowed; \
        503 + Retry-After when --buffer records are waiting for Kafka or the bodies in progress \
        hold --max-body-total bytes. Records are keyed by session id; \
        the producer is idempotent and zstd-compressed. SIGTERM/SIGINT: stop accepting, finish \
        requests, wait for Kafka to acknowledge what was accepted, exit 0. The daemon reads both \
        topics with qos run --topic beacons --topic cmcd:cmcd.
        """)

    @Option(help: "Kafka bootstrap servers.") var brokers: String = "localhost:9092"
    @Option(help: "Topic for beacons.") var topic: String = "beacons"
    @Option(help: "Topic for CMCD records (qos run reads them with --topic NAME:cmcd; docs/cmcd.md).") var cmcdTopic: String = "cmcd"
    @Option(help: "Address to listen on.") var host: String = "0.0.0.0"
    @Option(help: "Port to listen on (0 = any free port; the port is printed).") var port: Int = 8080
    @Option(help: "Event-loop threads (default: one per core).") var threads: Int?
    @Option(help: "Origin allowed by CORS, repeatable; * allows any (default *).") var corsOrigin: [String] = []
    @Option(help: "Proxy (address or CIDR) whose X-Forwarded-For is believed, repeatable (default: none, the peer address is the client).")
    var trustedProxy: [String] = []
    @Option(help: "Largest request body, bytes.") var maxBody: Int = 1 << 20
    @Option(help: "Request body bytes held at once across all connections (a declared Content-Length counts from the headers); past it requests get 503 + Retry-After (default 256 MiB).")
    var maxBodyTotal: Int = Collector.bodyBytesTotalDefault
    @Option(help: "Seconds a client has to send a whole request (also closes idle keep-alive connections).")
    var requestTimeout: Double = 10
    @Option(help: "Open connections at most; more are closed at once (default 10 000, lowered with a warning to fit the open-files limit; a value given that does not fit is an error).")
    var maxConnections: Int?
    @Option(help: "Open connections from one peer address at most; more are closed at once (0 = no bound; a --trusted-proxy is not bounded).")
    var maxConnectionsPerClient: Int = 0
    @Option(help: "Requests per second per client address (token bucket; 0 = unlimited).") var rate: Double = 100
    @Option(help: "Burst of requests per client address.") var burst: Double = 200
    @Option(help: "Records waiting for Kafka at most; past it requests get 503 + Retry-After.") var buffer: Int = 100_000
    @Option(help: "Records (beacons, CMCD reports, malformed ones) in one request at most; more get 413.")
    var maxRecords: Int = 10_000
    @Option(help: "librdkafka property key=value; repeatable.") var kafka: [String] = []
    @Option(help: "Stop after this many seconds (for tests and demos).") var duration: Double?

    /// Bounds of the numeric options: each keeps the arithmetic done with it
    /// (timeouts in nanoseconds, librdkafka's `message.max.bytes` ≤ 10⁹ and
    /// `queue.buffering.max.messages`) far from overflow.
    static let maxBodyMax = 512 << 20
    static let maxBodyTotalMax = 1 << 40
    static let requestTimeoutMax = 3600.0
    static let maxConnectionsMax = 1_000_000
    static let rateMin = 0.001, rateMax = 1e6
    static let bufferMax = 10_000_000
    static let threadsMax = 256

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard (1024...Self.maxBodyMax).contains(maxBody) else {
            throw ValidationError("--max-body must be between 1024 and \(Self.maxBodyMax) bytes")
        }
        guard (maxBody...Self.maxBodyTotalMax).contains(maxBodyTotal) else {
            throw ValidationError("--max-body-total must be between --max-body (\(maxBody)) and \(Self.maxBodyTotalMax) bytes")
        }
        guard requestTimeout > 0, requestTimeout <= Self.requestTimeoutMax else {
            throw ValidationError("--request-timeout must be > 0 and at most \(Int(Self.requestTimeoutMax)) seconds")
        }
        guard (0...Self.maxConnectionsMax).contains(maxConnectionsPerClient) else {
            throw ValidationError("--max-connections-per-client must be between 0 (no bound) and \(Self.maxConnectionsMax)")
        }
        if let maxConnections, !(1...Self.maxConnectionsMax).contains(maxConnections) {
            throw ValidationError("--max-connections must be between 1 and \(Self.maxConnectionsMax)")
        }
        guard rate == 0 || (rate >= Self.rateMin && rate <= Self.rateMax) else {
            throw ValidationError("--rate must be 0 (unlimited) or between \(Self.rateMin) and \(Int(Self.rateMax)) requests per second")
        }
        guard burst >= 1, burst <= Self.rateMax else { throw ValidationError("--burst must be between 1 and \(Int(Self.rateMax))") }
        guard (1...Self.bufferMax).contains(buffer) else { throw ValidationError("--buffer must be between 1 and \(Self.bufferMax)") }
        guard (1...Self.bufferMax).contains(maxRecords) else {
            throw ValidationError("--max-records must be between 1 and \(Self.bufferMax)")
        }
        if let threads, !(1...Self.threadsMax).contains(threads) {
            throw ValidationError("--threads must be between 1 and \(Self.threadsMax)")
        }
        if let duration, !(duration >= 0 && duration.isFinite) {
            throw ValidationError("--duration must be a finite number of seconds ≥ 0")
        }
        for p in trustedProxy where IPNetwork(p) == nil {
            throw ValidationError("--trusted-proxy '\(p)' is not an address or CIDR network (e.g. 10.0.0.0/8)")
        }
    }

    /// The collector's options from the flags.
    func options() -> Collector.Options {
        var o = Collector.Options()
        o.host = host; o.port = port
        if let threads { o.threads = threads }
        o.beaconsTopic = topic; o.cmcdTopic = cmcdTopic
        if !corsOrigin.isEmpty { o.corsOrigins = corsOrigin }
        o.trustedProxies = trustedProxy.compactMap(IPNetwork.init)
        o.bodyBytesMax = maxBody
        o.bodyBytesTotalMax = maxBodyTotal
        o.requestTimeoutSeconds = requestTimeout
        o.connectionsMax = maxConnections ?? Self.maxConnectionsDefault
        o.connectionsPerClientMax = maxConnectionsPerClient
        o.ratePerSecond = rate; o.rateBurst = burst
        o.bufferMessages = buffer
        o.recordsPerRequestMax = maxRecords
        return o
    }

    static let maxConnectionsDefault = 10_000
    /// File descriptors the collector needs besides its client connections:
    /// stdio, the listening socket, NIO's epoll/eventfd/timerfd per thread,
    /// librdkafka's broker sockets and pipes.
    static let descriptorsBesidesConnections = 128

    /// Raises the soft open-files limit to the hard one when
    /// `--max-connections` needs more, then checks that it fits: a process
    /// out of descriptors cannot accept, and NIO retries the accept in a
    /// loop. A value given that does not fit is an error naming both
    /// numbers; the default is lowered to fit, with a warning (README,
    /// "qos collect"). Returns the connection bound to use.
    func fitOpenFilesLimit() throws -> Int {
        let wanted = maxConnections ?? Self.maxConnectionsDefault
        let needed = rlim_t(wanted + Self.descriptorsBesidesConnections)
        let infinity = rlim_t.max   // RLIM_INFINITY on Linux
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return wanted }
        if limit.rlim_cur != infinity && limit.rlim_cur < needed {
            var raised = limit
            raised.rlim_cur = limit.rlim_max == infinity ? needed : min(limit.rlim_max, needed)
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        guard limit.rlim_cur != infinity, limit.rlim_cur < needed else { return wanted }
        let fits = Int(limit.rlim_cur) - Self.descriptorsBesidesConnections
        if maxConnections != nil || fits < 1 {
            throw UserError("collect: --max-connections \(wanted) needs \(needed) open files but the limit (ulimit -n, hard \(limit.rlim_max)) "
                            + "is \(limit.rlim_cur) — raise it (ulimit -n, systemd LimitNOFILE=) or lower --max-connections")
        }
        collectPrint("qos collect: --max-connections lowered from \(wanted) to \(fits): the open-files limit is \(limit.rlim_cur) "
                     + "(ulimit -n; raise it, e.g. systemd LimitNOFILE=, to serve more)\n")
        return fits
    }

    func run() throws {
        try QoS.guarded {
            var o = options()
            o.connectionsMax = try fitOpenFilesLimit()
            var extra = collectorKafkaSettings(bufferMessages: buffer, bodyBytesMax: maxBody)
            for kv in kafka {
                guard let eq = kv.firstIndex(of: "="), eq != kv.startIndex else {
                    throw UserError("--kafka '\(kv)' is not key=value")
                }
                extra[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
            }
            signal(SIGTERM) { _ in collectStopRequested = 1 }
            signal(SIGINT) { _ in collectStopRequested = 1 }
            let producer = try KafkaProducer(brokers: brokers, extra: extra)
            do {
                try producer.checkTopic(topic, timeoutMs: 10_000)
                if cmcdTopic != topic { _ = try? producer.checkTopic(cmcdTopic, timeoutMs: 2_000) }
            } catch let e as KafkaError {
                throw UserError("collect: \(e.message)")
            }
            let collector = try Collector(options: o, producer: producer)
            collectPrint("qos collect: listening on http://\(host):\(collector.port) → Kafka \(brokers) (beacons → '\(topic)', CMCD → '\(cmcdTopic)')\n")
            var waited = 0.0
            while collectStopRequested == 0 {
                if let duration, waited >= duration { break }
                usleep(50_000)
                waited += 0.05
            }
            collectPrint("qos collect: draining\n")
            let left = collector.drain()
            producer.close(flushTimeoutMs: 1000)
            if left > 0 { throw UserError("collect: \(left) accepted record(s) not acknowledged by Kafka at \(brokers) — they are lost; check the broker") }
            collectPrint("qos collect: stopped, every accepted record acknowledged by Kafka\n")
        }
    }
}

nonisolated(unsafe) var collectStopRequested: sig_atomic_t = 0

private func collectPrint(_ s: String) {
    var s = s
    s.withUTF8 { b in _ = write(2, b.baseAddress, b.count) }
}
