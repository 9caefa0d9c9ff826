#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import QoSCore

/// `/metrics` (Prometheus text format 0.0.4) and `/healthz` on a local port,
/// served by swift-nio on one event-loop thread of its own. The daemon
/// publishes a new snapshot at every checkpoint; `/healthz` is 200 while
/// snapshots keep coming (the poll loop is alive) and 503 after
/// `staleAfterSeconds` without one.
///
/// A client cannot take the endpoints down (README, "The daemon", Operations):
/// connections are served concurrently; one that has not sent a complete
/// request within `Limits.requestTimeoutSeconds` is closed (idle clients and
/// slow senders alike); past `Limits.connectionsMax` open connections a new
/// one is closed as soon as it is accepted; a request larger than
/// `Limits.requestBytesMax` closes its connection. One request per
/// connection (`Connection: close`).
public final class MetricsServer: @unchecked Sendable {
    public struct Limits: Sendable {
        public var requestTimeoutSeconds = 10.0
        public var connectionsMax = 256
        public var requestBytesMax = 8192
        public init() {}
    }

    private let lock = NSLock()
    private var body = "# no checkpoint yet\n"
    private var updatedAt = monotonicSeconds()
    private var stale = 60.0
    private var connections = 0
    private var extraRoute: (@Sendable (String) -> (status: Int, type: String, body: String)?)?
    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel
    public let limits: Limits
    public let host: String
    public let port: Int
    public var staleAfterSeconds: Double {
        get { lock.withLock { stale } }
        set { lock.withLock { stale = newValue } }
    }

    /// Binds `host:port` (port 0: any free port); connections are accepted after `start()`.
    public init(host: String = "127.0.0.1", port: Int, limits: Limits = Limits()) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.group = group
        self.limits = limits
        self.host = host
        let box = WeakBox()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(ChannelOptions.autoRead, value: false)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let server = box.server else { throw ChannelError.ioOnClosedChannel }
                    try channel.pipeline.syncOperations.addHandlers([
                        ConnectionGuard(server: server),
                        ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)),
                        HTTPResponseEncoder(),
                        RequestHandler(server: server),
                    ])
                }
            }
        do {
            channel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            let reason = (error as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(error)"
            throw UserError("metrics: cannot listen on \(host):\(port) (\(reason)) — choose another --metrics-port, or off to disable")
        }
        self.port = channel.localAddress?.port ?? port
        box.server = self
    }

    /// Starts accepting connections.
    public func start() {
        _ = channel.setOption(ChannelOptions.autoRead, value: true)
    }

    /// Closes the listening socket and every connection, and ends the event-loop thread.
    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    public func publish(_ status: RunStatus) {
        let text = MetricsServer.render(status)
        lock.withLock { body = text; updatedAt = monotonicSeconds() }
    }

    /// Counts a new connection in; false (close it) when `connectionsMax` are open.
    fileprivate func admit() -> Bool {
        lock.withLock {
            guard connections < limits.connectionsMax else { return false }
            connections += 1
            return true
        }
    }

    fileprivate func release() { lock.withLock { connections -= 1 } }

    /// Routes asked before `/metrics` and `/healthz` (the live page, `LiveReport.route`); nil = not theirs.
    public func addRoutes(_ route: @escaping @Sendable (String) -> (status: Int, type: String, body: String)?) {
        lock.withLock { extraRoute = route }
    }

    /// Status, content type and body for a request path.
    fileprivate func response(_ path: String) -> (HTTPResponseStatus, String, String) {
        if let route = lock.withLock({ extraRoute }), let r = route(path) { return (HTTPResponseStatus(statusCode: r.status), r.type, r.body) }
        let (snapshot, age, stale) = lock.withLock { (body, monotonicSeconds() - updatedAt, self.stale) }
        switch path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path {
        case "/metrics": return (.ok, "text/plain; version=0.0.4", snapshot)
        case "/healthz":
            return age < stale ? (.ok, "text/plain", "ok\n")
                               : (.serviceUnavailable, "text/plain", "stalled: no checkpoint for \(Int(age)) s\n")
        default: return (.notFound, "text/plain", "not found: try /metrics or /healthz\n")
        }
    }

    /// A label value escaped for the exposition format (`\\`, `\"`, `\n`).
    static func labelValue(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    /// The Prometheus exposition of a status snapshot.
    public static func render(_ s: RunStatus) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, v) in samples { out += "\(name)\(labels) \(v == v.rounded() ? String(Int64(v)) : String(v))\n" }
        }
        let c = s.counters
        metric("qos_beacons_consumed_total", "counter", "Kafka messages consumed.", [("", Double(c.messages))])
        metric("qos_beacons_accepted_total", "counter", "Beacons applied.", [("", Double(c.accepted))])
        metric("qos_beacons_rejected_total", "counter", "Beacons rejected, by reason.",
               c.rejected.sorted { $0.key < $1.key }.map { ("{reason=\"\($0.key)\"}", Double($0.value)) })
        metric("qos_beacons_late_total", "counter", "Beacons applied to an already written window.", [("", Double(c.lateEvents))])
        metric("qos_beacons_duplicate_total", "counter", "Beacons dropped as duplicate seq.", [("", Double(c.duplicates))])
        metric("qos_saturated_values_total", "counter", "Sums that stuck at Int64.max instead of overflowing.", [("", Double(s.saturatedValues))])
        metric("qos_group_cap_reached_total", "counter", "Window tables written with an __other__ row: groups past group_cap folded into it.",
               [("", Double(s.tablesAtGroupCap))])
        metric("qos_open_sessions", "gauge", "Open sessions.", [("", Double(s.openSessions))])
        metric("qos_windows_written_total", "counter", "Windows written (base files).", [("", Double(s.windowsWritten))])
        metric("qos_files_written_total", "counter", "Parquet files published.", [("", Double(s.filesWritten))])
        metric("qos_late_files_written_total", "counter", "Late-delta files published (one per table and hour directory per late flush).",
               [("", Double(s.lateFilesWritten))])
        metric("qos_compactions_total", "counter", "Hour directories compacted by this instance.", [("", Double(s.compactions))])
        metric("qos_compacted_files_total", "counter", "Files replaced by compactions.", [("", Double(s.compactedFiles))])
        metric("qos_hour_dir_files_max", "gauge", "Most Parquet files in one hour directory, per table.",
               s.hourDirFilesMax.sorted { $0.key < $1.key }.map { ("{table=\"\($0.key)\"}", Double($0.value)) })
        metric("qos_checkpoint_epoch", "gauge", "Last committed checkpoint epoch.", [("", Double(s.epoch))])
        metric("qos_flush_latency_ms", "gauge", "Duration of the last flush + checkpoint.", [("", s.lastFlushMs)])
        if let wm = s.watermarkMs { metric("qos_watermark_ms", "gauge", "Instance watermark, epoch ms.", [("", Double(wm))]) }
        metric("qos_interned_strings", "gauge", "Distinct strings held by the engine's interners (bounded).",
               [("{interner=\"dimensions\"}", Double(s.internedDimensions)), ("{interner=\"values\"}", Double(s.internedValues))])
        metric("qos_alerts_fired_total", "counter", "Alert rule firings (rows of the alerts table), by rule.",
               s.alertsFired.sorted { $0.key < $1.key }.map { ("{rule=\"\(labelValue($0.key))\"}", Double($0.value)) })
        metric("qos_kafka_zstd_frames_sized_total", "counter",
               "zstd message sets without a declared size that librdkafka was told a buffer size for (one decompression each).",
               [("", Double(s.kafkaZstdFramesSized))])
        metric("qos_kafka_offsets_skipped_total", "counter",
               "Offsets never read: Kafka no longer had them when the daemon got there (retention).",
               [("", Double(s.kafkaOffsetsSkipped))])
        metric("qos_kafka_log_restarts_total", "counter",
               "Partitions whose log restarted below their next offset (topic recreated or log truncated).",
               [("", Double(s.kafkaLogRestarts))])
        metric("qos_consumer_lag", "gauge", "Messages behind the high watermark, per partition.",
               s.lag.sorted { $0.key < $1.key }.map { ("{partition=\"\($0.key)\"}", Double($0.value)) })
        return out
    }
}

/// The server, for the channel initializer (which is built before the server exists).
private final class WeakBox: @unchecked Sendable {
    weak var server: MetricsServer?
}

/// First handler of a connection: the connection cap, the request deadline
/// and the request-size cap.
private final class ConnectionGuard: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let server: MetricsServer
    var admitted = false
    var bytes = 0
    var deadline: Scheduled<Void>?

    init(server: MetricsServer) { self.server = server }

    func channelActive(context: ChannelHandlerContext) {
        guard server.admit() else { return context.close(promise: nil) }
        admitted = true
        let timeout = timeAmount(seconds: server.limits.requestTimeoutSeconds)
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { context.close(promise: nil) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        if admitted { server.release(); admitted = false }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytes += unwrapInboundIn(data).readableBytes
        guard bytes <= server.limits.requestBytesMax else { return context.close(promise: nil) }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// Answers the first complete request and closes the connection: GET, HEAD
/// (the same headers, no body), or 405 with `Allow` for any other method.
private final class RequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let server: MetricsServer
    var path: String?
    var method = HTTPMethod.GET
    var answered = false

    init(server: MetricsServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): path = head.uri; method = head.method
        case .body: break
        case .end:
            guard !answered, let path else { return }
            answered = true
            let (status, type, text) = method == .GET || method == .HEAD
                ? server.response(path) : (.methodNotAllowed, "text/plain", "method not allowed: GET, HEAD\n")
            var headers = HTTPHeaders()
            if status == .methodNotAllowed { headers.add(name: "Allow", value: "GET, HEAD") }
            headers.add(name: "Content-Type", value: type)
            headers.add(name: "Content-Length", value: String(text.utf8.count))
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
                          promise: nil)
            if method != .HEAD {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: text)))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
