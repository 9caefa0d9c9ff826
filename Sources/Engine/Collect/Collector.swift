#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Kafka
import NIOCore
import NIOHTTP1
import NIOPosix
import QoSCore

/// `qos collect`: the HTTP front door for players (README, "qos collect").
/// Beacons (`POST /v1/beacons`) and CMCD reports (`/v1/cmcd`) are checked
/// with the same decoders the engine uses and produced to Kafka, keyed by
/// session id, through librdkafka (batched, zstd, idempotent).
///
/// A malformed record gets a 400 naming the reject reason, and its raw bytes
/// are produced to the same topic anyway: the daemon's decoder refuses them
/// with the same reason, so they land in the `rejects` table like any other
/// bad input, with no second topic or format to run.
///
/// Bounded everywhere: request bodies (`bodyBytesMax`), connections
/// (`connectionsMax`), time to send a request (`requestTimeoutSeconds`, which
/// also closes idle keep-alive connections), requests per client (a token
/// bucket per address), and records waiting for Kafka (`bufferMessages`):
/// past it a request gets 503 with `Retry-After` instead of queueing.
public final class Collector: @unchecked Sendable {
    public struct Options: Sendable {
        public var host = "0.0.0.0"
        public var port = 8080
        public var threads = max(1, System.coreCount)
        public var beaconsTopic = "beacons"
        public var cmcdTopic = "cmcd"
        /// Origins allowed by CORS; `*` allows any.
        public var corsOrigins: [String] = ["*"]
        /// Peers whose `X-Forwarded-For` is believed.
        public var trustedProxies: [IPNetwork] = []
        public var bodyBytesMax = BeaconLimits.messageBytesMax
        /// Request body bytes held at once across all connections (a
        /// declared `Content-Length` counts from the headers on); a request
        /// that would pass it gets 503 + `Retry-After` before its body is read.
        public var bodyBytesTotalMax = Collector.bodyBytesTotalDefault
        public var requestTimeoutSeconds = 10.0
        public var connectionsMax = 10_000
        /// Open connections from one peer address at most (0 = no bound);
        /// a trusted proxy's connections are not bounded by it.
        public var connectionsPerClientMax = 0
        /// Requests per second per client address (0 = unlimited), and the burst.
        public var ratePerSecond = 100.0
        public var rateBurst = 200.0
        public var rateClientsMax = 100_000
        /// Records accepted but not yet acknowledged by Kafka, at most.
        public var bufferMessages = 100_000
        /// Records (beacons, CMCD reports, rejects) in one request, at most;
        /// more are answered 413 before anything is produced.
        public var recordsPerRequestMax = 10_000
        /// Answers written but not yet taken by the socket, per connection:
        /// a client pipelining requests without reading the answers is cut
        /// off past it (README, "qos collect").
        public var unsentResponsesMax = 32
        /// Rejects listed in a 400 answer by index; `rejected_count` has them all.
        public var rejectsListedMax = 100
        public var retryAfterSeconds = 5
        public init() {}
    }

    /// The largest `Retry-After` sent: a day.
    public static let retryAfterSecondsMax = 86_400

    /// Seconds for a `Retry-After` header: `seconds` rounded up, at least 1,
    /// at most `retryAfterSecondsMax` (an infinite or NaN wait included).
    public static func retryAfterSeconds(_ seconds: Double) -> Int {
        guard seconds < Double(retryAfterSecondsMax) else { return retryAfterSecondsMax }
        return max(1, Int(seconds.rounded(.up)))
    }

    /// The default of `--max-body-total`: 256 MiB.
    public static let bodyBytesTotalDefault = 256 << 20

    public let options: Options
    public let producer: KafkaProducer
    public let port: Int
    let limiter: RateLimiter
    let stats = CollectStats()
    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel
    private let lock = NSLock()
    private var open = 0
    /// Open connections by peer address (only when `connectionsPerClientMax` > 0).
    private var openByPeer: [String: Int] = [:]
    private var inFlight = 0
    private var draining = false
    private var produced = 0
    private var producedBytes = 0
    private var bodyBytes = 0
    /// The most body bytes held at once since the poll thread last looked (`BodyMemoryTrim`).
    private var bodyBytesPeak = 0
    private var pollThread: Thread?
    private let pollStop = ManagedAtomicFlag()
    private let pollDone = DispatchSemaphore(value: 0)

    /// Binds `host:port` (port 0: any free port) and starts serving.
    public init(options: Options, producer: KafkaProducer) throws {
        self.options = options
        self.producer = producer
        limiter = RateLimiter(ratePerSecond: options.ratePerSecond, burst: options.rateBurst,
                              clientsMax: options.rateClientsMax)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, options.threads))
        self.group = group
        let box = CollectorBox()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let collector = box.collector else { throw ChannelError.ioOnClosedChannel }
                    // Back-pressure first: no bytes are read from a client while its
                    // answers cannot be written (it does not read them).
                    try channel.pipeline.syncOperations.addHandler(BackPressureHandler())
                    let seen = RequestBytesSeen()
                    try channel.pipeline.syncOperations.addHandler(seen)
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(CollectHandler(collector, seen: seen))
                }
            }
        do {
            channel = try bootstrap.bind(host: options.host, port: options.port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            let reason = (error as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(error)"
            throw UserError("collect: cannot listen on \(options.host):\(options.port) (\(reason)) — choose another --port or --host")
        }
        port = channel.localAddress?.port ?? options.port
        box.collector = self
        let producer = self.producer, stop = pollStop, done = pollDone
        let thread = Thread { [weak self] in
            var trim = BodyMemoryTrim(nowSeconds: monotonicSeconds()) { [weak self] in
                HeapTrim.releaseFreePages()
                self?.releaseEventLoopsFreePages()
            }
            while !stop.isSet {
                producer.poll(timeoutMs: 100)   // delivery reports
                if let bodies = self?.takeBodyBytes() {
                    trim.observe(heldBytes: bodies.peak)
                    trim.check(heldBytes: bodies.held, nowSeconds: monotonicSeconds())
                }
            }
            done.signal()
        }
        thread.name = "qos-collect-kafka"
        thread.start()
        pollThread = thread
    }

    /// Has every event loop give its thread's free pages back: the bodies
    /// were read and freed there, and mimalloc keeps a thread's emptied pages
    /// until that thread allocates again (docs/architecture.md "The daemon's
    /// heap"). Not once draining: the loops may be shut down, and `drain`
    /// marks it under the same lock before it shuts them.
    private func releaseEventLoopsFreePages() {
        lock.withLock {
            guard !draining else { return }
            for loop in group.makeIterator() { loop.execute { HeapTrim.releaseFreePages() } }
        }
    }

    /// Graceful drain (SIGTERM); call it before closing the producer: stop accepting connections, let requests in
    /// progress finish (up to `graceSeconds`), then wait for Kafka to
    /// acknowledge every accepted record (up to `flushSeconds`). Returns the
    /// records still unacknowledged (0 = nothing lost).
    @discardableResult
    public func drain(graceSeconds: Double = 5, flushSeconds: Double = 30) -> Int {
        lock.withLock { draining = true }
        try? channel.close().wait()
        let until = monotonicSeconds() + graceSeconds
        while lock.withLock({ inFlight }) > 0 && monotonicSeconds() < until { usleep(10_000) }
        try? group.syncShutdownGracefully()
        try? producer.flush(timeoutMs: Int(flushSeconds * 1000))
        if !pollStop.isSet {
            pollStop.set()
            pollDone.wait()   // the producer may be closed only once nobody polls it
        }
        return buffered
    }

    // MARK: Connection accounting (called on event loops)

    /// Counts a connection from `peer` in; false (close it) when draining,
    /// at `connectionsMax`, or when `peer` holds `connectionsPerClientMax`.
    /// Returns the key its release must name (nil: not counted per peer).
    func admit(peer: String) -> (ok: Bool, key: String?) {
        let perPeer = options.connectionsPerClientMax > 0 && !options.trustedProxies.contains { $0.contains(peer) }
        let ok: Bool = lock.withLock {
            guard !draining, open < options.connectionsMax else { return false }
            if perPeer {
                guard openByPeer[peer, default: 0] < options.connectionsPerClientMax else { return false }
                openByPeer[peer, default: 0] += 1
            }
            open += 1
            return true
        }
        if !ok && perPeer && !lock.withLock({ draining }) && openConnections < options.connectionsMax {
            stats.refused("client_connections")
        }
        return (ok, ok && perPeer ? peer : nil)
    }
    func release(peer: String?) {
        lock.withLock {
            open -= 1
            if let peer, let n = openByPeer[peer] { openByPeer[peer] = n > 1 ? n - 1 : nil }
        }
    }
    func requestStarted() { lock.withLock { inFlight += 1 } }
    func requestEnded() { lock.withLock { inFlight -= 1 } }
    var openConnections: Int { lock.withLock { open } }

    /// Counts `n` more body bytes in if the total stays within `bodyBytesTotalMax`.
    func reserveBody(_ n: Int) -> Bool {
        lock.withLock {
            guard bodyBytes + n <= options.bodyBytesTotalMax else { return false }
            bodyBytes += n
            if bodyBytes > bodyBytesPeak { bodyBytesPeak = bodyBytes }
            return true
        }
    }
    func releaseBody(_ n: Int) { lock.withLock { bodyBytes -= n } }
    /// Body bytes held (or promised by a `Content-Length`) across connections.
    var bodyBytesReserved: Int { lock.withLock { bodyBytes } }
    /// Body bytes held now and the most held since the last call.
    func takeBodyBytes() -> (held: Int, peak: Int) {
        lock.withLock {
            defer { bodyBytesPeak = bodyBytes }
            return (bodyBytes, bodyBytesPeak)
        }
    }

    // MARK: Requests

    /// One complete request, after the connection's limits were checked.
    func respond(_ r: CollectRequest) -> CollectResponse {
        var res = route(r)
        addCORS(&res, origin: r.header("origin"), path: r.path)
        stats.response(res.status.code)
        return res
    }

    /// The CORS answer headers for an allowed origin, on every response a
    /// browser must be able to read (refusals such as 413 and 408 too).
    /// The origin is echoed, never `*`. On the ingest paths credentials are
    /// allowed too: `navigator.sendBeacon` sends its request (and, for a
    /// JSON Blob, its preflight) in credentials mode "include", and a browser
    /// drops it unless the answer says `Access-Control-Allow-Credentials:
    /// true` (README, "qos collect"). Nothing here reads cookies.
    func addCORS(_ res: inout CollectResponse, origin: String?, path: String) {
        guard let origin, corsAllows(origin) else { return }
        res.headers.append(("Access-Control-Allow-Origin", origin))
        if Collector.ingestPaths.contains(path) { res.headers.append(("Access-Control-Allow-Credentials", "true")) }
        res.headers.append(("Vary", "Origin"))
    }

    static let ingestPaths: Set<String> = ["/v1/beacons", "/v1/cmcd"]

    /// The path of a request head, without its query.
    static func path(_ head: HTTPRequestHead?) -> String { splitURI(head?.uri ?? "").0 }

    /// The origin a browser sent the request from: its `Origin` header; for
    /// a request without one (a no-cors `GET`, an `<img>`) that the browser
    /// marks as from another site (`Sec-Fetch-Site`), the origin of its
    /// `Referer`, or `null` when it has none. Nil for a request that is not
    /// a browser's cross-site one (curl, a server, a same-origin page).
    static func browserOrigin(_ r: CollectRequest) -> String? {
        if let origin = r.header("origin") { return origin }
        guard let site = r.header("sec-fetch-site")?.lowercased(), site == "cross-site" || site == "same-site" else { return nil }
        guard let referer = r.header("referer"), let u = URLComponents(string: referer),
              let scheme = u.scheme?.lowercased(), let host = u.host?.lowercased(), !host.isEmpty else { return "null" }
        return scheme + "://" + (host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host) + (u.port.map { ":\($0)" } ?? "")
    }

    func corsAllows(_ origin: String) -> Bool {
        options.corsOrigins.contains("*") || options.corsOrigins.contains(origin)
    }

    private func route(_ r: CollectRequest) -> CollectResponse {
        switch (r.method, r.path) {
        case (.GET, "/healthz"), (.HEAD, "/healthz"):
            return .text(.ok, lock.withLock { draining } ? "draining\n" : "ok\n")
        case (.GET, "/metrics"), (.HEAD, "/metrics"):
            var res = CollectResponse.text(.ok, renderMetrics())
            res.contentType = "text/plain; version=0.0.4"
            return res
        case (.OPTIONS, _):
            return preflight(r)
        case (_, "/healthz"), (_, "/metrics"):
            return methodNotAllowed("GET, HEAD")
        case (.POST, "/v1/beacons"):
            if let refused = refuse(r) { return refused }
            return ingestBeacons(r)
        case (.POST, "/v1/cmcd"), (.GET, "/v1/cmcd"):
            if let refused = refuse(r) { return refused }
            return ingestCMCD(r)
        case (_, "/v1/beacons"):
            return methodNotAllowed("POST, OPTIONS")
        case (_, "/v1/cmcd"):
            return methodNotAllowed("GET, POST, OPTIONS")
        default:
            return .text(.notFound, "not found: POST /v1/beacons, POST or GET /v1/cmcd, GET /healthz, GET /metrics\n")
        }
    }

    /// 405 with the `Allow` header RFC 9110 §15.5.6 asks for.
    private func methodNotAllowed(_ allow: String) -> CollectResponse {
        var res = CollectResponse.text(.methodNotAllowed, "method not allowed: \(allow)\n")
        res.headers.append(("Allow", allow))
        return res
    }

    /// CORS preflight: allowed when the origin is (README, "qos collect").
    private func preflight(_ r: CollectRequest) -> CollectResponse {
        guard r.path == "/v1/beacons" || r.path == "/v1/cmcd" else { return .text(.notFound, "not found\n") }
        guard let origin = r.header("origin"), corsAllows(origin) else {
            return .text(.forbidden, "origin not allowed: add it with --cors-origin\n")
        }
        var res = CollectResponse(status: .noContent, body: [])
        res.headers = [("Access-Control-Allow-Methods", "POST, GET, OPTIONS"),
                       ("Access-Control-Allow-Headers",
                        "Content-Type, CMCD-Request, CMCD-Object, CMCD-Status, CMCD-Session"),
                       ("Access-Control-Max-Age", "86400")]
        return res
    }

    /// A disallowed origin or a client over its rate: the answer; else nil.
    private func refuse(_ r: CollectRequest) -> CollectResponse? {
        if let origin = Collector.browserOrigin(r), !corsAllows(origin) {
            stats.refused("origin")
            return .text(.forbidden, "origin not allowed: add it with --cors-origin\n")
        }
        guard limiter.allow(r.client, now: monotonicSeconds()) else {
            stats.refused("rate")
            var res = CollectResponse.text(.tooManyRequests, "too many requests from \(r.client): slow down\n")
            res.headers.append(("Retry-After", String(Collector.retryAfterSeconds(1 / options.ratePerSecond))))
            return res
        }
        return nil
    }

    /// `POST /v1/beacons`: one beacon object or an array (README "Beacons"),
    /// any content type (`navigator.sendBeacon` sends `text/plain`).
    private func ingestBeacons(_ r: CollectRequest) -> CollectResponse {
        if let refused = tooManyRecords(RecordCount.jsonElements(r.body)) { return refused }
        var out: [Outgoing] = []
        var rejects: [(Int, RejectReason)] = []
        var index = 0
        r.body.withUnsafeBytes { raw in
            let agent = r.header("user-agent").flatMap { $0.isEmpty ? nil : CMCDFormat.clip($0, BeaconLimits.userAgentBytesMax) }
            BeaconDecoder.decode(raw) { item in
                switch item {
                case .beacon(var b):
                    if b.ip == nil { b.ip = r.client }
                    // The player's browser, as for CMCD (a beacon's own user_agent wins).
                    if b.userAgent == nil { b.userAgent = agent }
                    if let reason = Collector.staticReject(b) { rejects.append((index, reason)) }
                    out.append(Outgoing(key: Array(b.sessionId.utf8), payload: BeaconEncoder.encode(b)))
                case .reject(let reason, let range):
                    rejects.append((index, reason))
                    out.append(Outgoing(key: nil, payload: Array(raw[range])))
                case .cdnLog:
                    break   // the beacon decoder yields beacons and rejects only
                }
                index += 1
            }
        }
        return produce(out, topic: options.beaconsTopic, accepted: out.count - rejects.count, rejects: rejects)
    }

    /// What the daemon refuses in a decoded beacon whatever its clock says
    /// (QoSEngine's time admission, docs/semantics.md §1): a `ts` before
    /// 2000-01-01 (`BeaconLimits.tsMinMs`, the daemon's default) is
    /// `invalid_value:ts`. The collector answers 400 for it, as `/v1/cmcd`
    /// does (`CMCDFormat.validate`), and still produces it for the rejects
    /// table. The future and lateness rules depend on the daemon's clock and
    /// watermark and stay the daemon's.
    static func staticReject(_ b: Beacon) -> RejectReason? {
        b.ts < BeaconLimits.tsMinMs ? .invalidValue("ts") : nil
    }

    /// `/v1/cmcd`: CMCD reports (docs/cmcd.md), produced as CMCD records to
    /// the CMCD topic; the `cmcd` format turns them into sessions.
    private func ingestCMCD(_ r: CollectRequest) -> CollectResponse {
        if r.method == .POST, let first = r.body.first(where: { !RecordCount.isSpace($0) }) {
            let json = first == UInt8(ascii: "{") || first == UInt8(ascii: "[")
            if let refused = tooManyRecords(json ? RecordCount.jsonElements(r.body) : RecordCount.lines(r.body)) { return refused }
        }
        let records = CMCDHTTP.records(method: r.method == .GET ? "GET" : "POST", query: r.query,
                                       header: { r.header($0) }, body: r.body, ip: r.client,
                                       userAgent: r.header("user-agent"), nowMs: wallClockMs())
        var out: [Outgoing] = []
        var rejects: [(Int, RejectReason)] = []
        for (i, rec) in records.enumerated() {
            switch rec {
            case .record(let text, let sid):
                out.append(Outgoing(key: sid.map { Array($0.utf8) }, payload: Array(text.utf8)))
            case .reject(let reason, let raw):
                rejects.append((i, reason))
                out.append(Outgoing(key: nil, payload: raw))
            }
        }
        if records.isEmpty {
            return .text(.badRequest, "no CMCD data: send it in the body, the CMCD query parameter or the CMCD-* headers\n")
        }
        return produce(out, topic: options.cmcdTopic, accepted: out.count - rejects.count, rejects: rejects)
    }

    struct Outgoing { var key: [UInt8]?; var payload: [UInt8] }

    /// Records handed to the producer whose delivery report has not come
    /// back yet (librdkafka's own queue length also counts its requests).
    public var buffered: Int {
        let d = producer.stats
        return lock.withLock { produced } - d.delivered - d.failed
    }

    /// What librdkafka may hold per record besides its key and value (its
    /// message struct), counted with every record so that the byte budget
    /// stays below librdkafka's own whatever it counts.
    static let recordBytesOverhead = 256

    /// Bytes the collector lets wait for Kafka: nine tenths of librdkafka's
    /// effective `queue.buffering.max.kbytes`, so that librdkafka does not
    /// refuse a record of a request the collector has taken (README,
    /// "qos collect": a request is taken whole or not at all).
    public var bufferBytesMax: Int { producer.queueBytesMax / 10 * 9 }

    /// Bytes (key, value and `recordBytesOverhead` per record) handed to the
    /// producer and not acknowledged yet.
    public var bufferedBytes: Int {
        let d = producer.stats
        let (n, bytes) = lock.withLock { (produced, producedBytes) }
        return bytes - d.deliveredBytes - d.failedBytes + (n - d.delivered - d.failed) * Self.recordBytesOverhead
    }

    /// Counts `n` records of `bytes` key and value bytes in if the buffer has
    /// room for all of them, by count and by bytes.
    private func reserve(_ n: Int, bytes: Int) -> Bool {
        let d = producer.stats
        return lock.withLock {
            let waiting = produced - d.delivered - d.failed
            let waitingBytes = producedBytes - d.deliveredBytes - d.failedBytes + waiting * Self.recordBytesOverhead
            guard waiting + n <= options.bufferMessages,
                  waitingBytes + bytes + n * Self.recordBytesOverhead <= bufferBytesMax else { return false }
            produced += n
            producedBytes += bytes
            return true
        }
    }

    /// Hands the records to Kafka, all or none: 503 when the buffer cannot
    /// take them all now (the client retries the whole request); 413 when no
    /// retry could succeed — more records than one request may hold, or a
    /// record larger than the producer takes — with nothing produced.
    private func produce(_ out: [Outgoing], topic: String, accepted: Int, rejects: [(Int, RejectReason)]) -> CollectResponse {
        if let refused = tooManyRecords(out.count) { return refused }
        if let i = out.firstIndex(where: { ($0.key?.count ?? 0) + $0.payload.count > producer.recordBytesMax }) {
            stats.refused("too_large")
            return .text(.payloadTooLarge, "record \(i) is \((out[i].key?.count ?? 0) + out[i].payload.count) bytes, more than "
                         + "Kafka's message.max.bytes lets the producer send (\(producer.recordBytesMax)): raise it with "
                         + "--kafka message.max.bytes=N (and the topic's max.message.bytes), or lower --max-body\n")
        }
        let bytes = out.reduce(0) { $0 + ($1.key?.count ?? 0) + $1.payload.count }
        guard reserve(out.count, bytes: bytes) else { return unavailable("buffer full") }
        for (i, m) in out.enumerated() {
            do {
                try producer.produce(topic: topic, key: m.key, payload: m.payload, blockTimeoutMs: 0)
            } catch {
                let left = out[i...].reduce(0) { $0 + ($1.key?.count ?? 0) + $1.payload.count }
                lock.withLock { produced -= out.count - i; producedBytes -= left }
                // librdkafka's own queue refused although the collector's
                // bounds (records and bytes) are below it: only a race with
                // its accounting or a fatal producer error; the records
                // before i are in (README, "qos collect").
                stats.count(accepted: 0, rejects: [], lost: out.count - i)
                return unavailable("\(error)")
            }
        }
        stats.count(accepted: accepted, rejects: rejects.map(\.1), lost: 0)
        var body = "{\"accepted\":\(accepted)"
        if !rejects.isEmpty {
            // The first rejects by index: an answer stays small whatever the request holds.
            body += ",\"rejected_count\":\(rejects.count),\"rejected\":["
            body += rejects.prefix(options.rejectsListedMax)
                .map { "{\"index\":\($0.0),\"reason\":\"\($0.1.code)\"}" }.joined(separator: ",")
            body += "]"
        }
        body += "}\n"
        var res = CollectResponse(status: rejects.isEmpty ? .accepted : .badRequest, body: Array(body.utf8))
        res.contentType = "application/json"
        return res
    }

    /// 413 when `count` records are more than one request may hold: counted
    /// before decoding (`RecordCount`), and again once decoded.
    private func tooManyRecords(_ count: Int) -> CollectResponse? {
        let most = min(options.recordsPerRequestMax, options.bufferMessages)
        guard count > most else { return nil }
        stats.refused("too_large")
        return .text(.payloadTooLarge, "\(count) records in one request; at most \(most) are taken at once "
                     + "(--max-records \(options.recordsPerRequestMax), --buffer \(options.bufferMessages)): send smaller batches\n")
    }

    private func unavailable(_ why: String) -> CollectResponse {
        stats.refused("unavailable")
        var res = CollectResponse.text(.serviceUnavailable,
                                       "Kafka is not keeping up (\(why)): retry after \(options.retryAfterSeconds) s\n")
        res.headers.append(("Retry-After", String(options.retryAfterSeconds)))
        return res
    }
}

/// The librdkafka settings of the collector's producer: zstd, idempotent,
/// batched, and a local queue a little larger than the collector's own bound
/// (which answers 503 first). Records wait for Kafka as long as the process
/// lives (`message.timeout.ms=0`): an outage fills the buffer, then 503s.
/// `message.max.bytes` lets a record as large as the largest body through
/// (librdkafka's default, 1 000 000 bytes, is below the 1 MiB default body:
/// a malformed body near it could not be produced for the rejects table).
public func collectorKafkaSettings(bufferMessages: Int, bodyBytesMax: Int = BeaconLimits.messageBytesMax) -> [String: String] {
    [
        "message.max.bytes": String(max(1_000_000, bodyBytesMax.addingReportingOverflow(65_536).overflow ? .max : bodyBytesMax + 65_536)),
        "enable.idempotence": "true",
        "compression.type": "zstd",
        "linger.ms": "5",
        "batch.num.messages": "10000",
        "queue.buffering.max.messages": String(bufferMessages.addingReportingOverflow(100_000).overflow ? .max : bufferMessages + 100_000),
        "queue.buffering.max.kbytes": "1048576",
        "message.timeout.ms": "0",
    ]
}
