import Foundation
import NIOCore
import NIOHTTP1
import QoSCore

/// The HTTP side of `qos collect` (Collector.swift): one handler per
/// connection that reads a request within its deadline and body caps,
/// hands it to the collector and writes the answer.

/// The collector as the server's channel initializer sees it: weakly, so
/// the server does not keep a stopped collector alive.
final class CollectorBox: @unchecked Sendable {
    weak var collector: Collector?
}

/// One parsed request.
struct CollectRequest {
    var method: HTTPMethod
    var path: String
    var query: String
    var headers: HTTPHeaders
    var body: [UInt8]
    var client: String
    func header(_ name: String) -> String? { headers.first(name: name) }
}

struct CollectResponse {
    var status: HTTPResponseStatus
    var headers: [(String, String)] = []
    var contentType = "text/plain; charset=utf-8"
    var body: [UInt8]
    init(status: HTTPResponseStatus, body: [UInt8]) { self.status = status; self.body = body }
    static func text(_ status: HTTPResponseStatus, _ s: String) -> CollectResponse {
        CollectResponse(status: status, body: Array(s.utf8))
    }
}

/// The per-connection state machine: deadline, body cap, keep-alive.
final class CollectHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let collector: Collector
    var admitted = false
    /// The peer address counted per client at admission, if it was.
    var peerKey: String?
    var head: HTTPRequestHead?
    var body: [UInt8] = []
    var discarding = false
    var deadline: Scheduled<Void>?
    var started = false
    /// Answers written whose bytes the socket has not taken yet.
    var unsent = 0
    /// Body bytes of the current request counted in the collector's total.
    var reserved = 0

    /// Whether bytes of a request whose headers are not complete arrived.
    let seen: RequestBytesSeen

    init(_ collector: Collector, seen: RequestBytesSeen) { self.collector = collector; self.seen = seen }

    func channelActive(context: ChannelHandlerContext) {
        let (ok, key) = collector.admit(peer: context.channel.remoteAddress?.ipAddress ?? "unknown")
        guard ok else { return context.close(promise: nil) }
        admitted = true
        peerKey = key
        arm(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        releaseBody()
        if started { collector.requestEnded(); started = false }
        if admitted { collector.release(peer: peerKey); admitted = false }
        context.fireChannelInactive()
    }

    /// A request must arrive completely within the timeout of the moment the
    /// connection became idle (opened, or its previous response sent).
    func arm(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let timeout = timeAmount(seconds: collector.options.requestTimeoutSeconds)
        let loop = context.eventLoop.assumeIsolated()
        deadline = loop.scheduleTask(in: timeout) { [weak self] in
            guard let self else { return }
            // Mid-request (headers or body incomplete): 408, as README says.
            if self.head == nil && self.seen.partial && context.channel.isWritable {
                // Headers not complete: NIO's HTTP handlers have no request
                // to answer, so the 408 goes out below them.
                self.collector.stats.refused("timeout")
                self.seen.answerAndClose(Array(("HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    + "Content-Length: 30\r\nConnection: close\r\n\r\nrequest not completed in time\n").utf8))
                self.armClose(context)
            } else if self.head != nil && context.channel.isWritable {
                self.collector.stats.refused("timeout")
                var res = CollectResponse.text(.requestTimeout, "request not completed in time\n")
                self.collector.addCORS(&res, origin: self.head?.headers.first(name: "origin"), path: Collector.path(self.head))
                self.send(context, res, close: true)
            } else {
                context.close(promise: nil)
            }
        }
    }

    /// Closes the connection at the timeout whatever it is doing: after a
    /// last answer that the client may never read.
    func armClose(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let timeout = timeAmount(seconds: collector.options.requestTimeoutSeconds)
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
            discarding = false
            if !started { started = true; collector.requestStarted() }
            if let len = h.headers.first(name: "content-length").flatMap(Int.init) {
                if len > collector.options.bodyBytesMax { return tooLarge(context) }
                // The declared body counts from now: a client that stalls
                // after the headers holds its share of the budget.
                if !reserve(len) { return overBudget(context) }
                body.reserveCapacity(len)   // held as counted: no growth past the declared length
            }
            if let expect = h.headers.first(name: "expect") {
                // RFC 9110 §10.1.1: the only expectation is 100-continue,
                // answered once the declared body is known to be welcome.
                guard expect.lowercased() == "100-continue" else { return expectationFailed(context) }
                if h.version.major == 1 && h.version.minor >= 1 {
                    context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: .continue))),
                                          promise: nil)
                }
            }
        case .body(var buf):
            guard !discarding else { return }
            if body.count + buf.readableBytes > collector.options.bodyBytesMax { return tooLarge(context) }
            if !reserve(body.count + buf.readableBytes) { return overBudget(context) }
            body.append(contentsOf: buf.readBytes(length: buf.readableBytes) ?? [])
        case .end:
            seen.partial = false
            guard let h = head, !discarding else { return }
            // Pipelined requests whose answers the client does not read:
            // answering more would only queue them in memory.
            guard unsent < collector.options.unsentResponsesMax else {
                collector.stats.refused("unread_responses")
                return context.close(promise: nil)
            }
            let (path, query) = splitURI(h.uri)
            let peer = context.channel.remoteAddress?.ipAddress ?? "unknown"
            let client = clientAddress(peer: peer, forwardedFor: h.headers["x-forwarded-for"],
                                       trusted: collector.options.trustedProxies)
            let request = CollectRequest(method: h.method, path: path, query: query, headers: h.headers,
                                         body: body, client: client)
            body = []
            let res = collector.respond(request)
            releaseBody()
            send(context, res, close: !h.isKeepAlive)
        }
    }

    /// Grows this request's share of the body budget to `total` bytes; false when the budget has no room.
    private func reserve(_ total: Int) -> Bool {
        guard total > reserved else { return true }
        guard collector.reserveBody(total - reserved) else { return false }
        reserved = total
        return true
    }

    private func releaseBody() {
        if reserved > 0 { collector.releaseBody(reserved); reserved = 0 }
    }

    /// The bodies in progress across connections hold `--max-body-total`:
    /// 503, nothing more of this one is read.
    private func overBudget(_ context: ChannelHandlerContext) {
        discarding = true
        body = []
        releaseBody()
        collector.stats.refused("body_budget")
        let retry = collector.options.retryAfterSeconds
        var res = CollectResponse.text(.serviceUnavailable, "too many request bodies in progress (--max-body-total "
                                       + "\(collector.options.bodyBytesTotalMax) bytes): retry after \(retry) s\n")
        res.headers.append(("Retry-After", String(retry)))
        collector.addCORS(&res, origin: head?.headers.first(name: "origin"), path: Collector.path(head))
        send(context, res, close: true)
    }

    private func expectationFailed(_ context: ChannelHandlerContext) {
        discarding = true
        releaseBody()
        send(context, .text(.expectationFailed, "only Expect: 100-continue is supported\n"), close: true)
    }

    private func tooLarge(_ context: ChannelHandlerContext) {
        discarding = true
        body = []
        releaseBody()
        collector.stats.refused("too_large")
        var res = CollectResponse.text(.payloadTooLarge, "body larger than \(collector.options.bodyBytesMax) bytes: send smaller batches\n")
        collector.addCORS(&res, origin: head?.headers.first(name: "origin"), path: Collector.path(head))
        send(context, res, close: true)
    }

    func send(_ context: ChannelHandlerContext, _ res: CollectResponse, close: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: res.contentType)
        headers.add(name: "Content-Length", value: String(res.body.count))
        for (k, v) in res.headers { headers.add(name: k, value: v) }
        if close { headers.add(name: "Connection", value: "close") }
        let version = head?.version ?? .http1_1
        let bodyless = head?.method == .HEAD   // HEAD: the headers a GET would get, no body
        head = nil
        if started { started = false; collector.requestEnded() }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: res.status, headers: headers))), promise: nil)
        if !res.body.isEmpty && !bodyless {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: res.body)))), promise: nil)
        }
        unsent += 1
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated()
        done.whenComplete { [weak self] _ in self?.unsent -= 1 }
        if close {
            // Closed once written, or at the timeout if the client never reads it.
            done.whenComplete { _ in context.close(promise: nil) }
            armClose(context)
        } else {
            arm(context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// `seconds` as a NIO time amount, saturating: at most 10⁹ s (an
/// infinite or absurd timeout is a very long one, not a crash); NaN is 0.
func timeAmount(seconds: Double) -> TimeAmount {
    guard seconds > 0 else { return .zero }
    return .nanoseconds(Int64(min(seconds, 1e9) * 1e9))
}

/// Notes that bytes of a request arrived; the collector's handler clears
/// it when the request is complete. At the timeout, a connection with a
/// partial request gets 408, an idle one is just closed.
final class RequestBytesSeen: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    var partial = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partial = true
        context.fireChannelRead(data)
    }

    /// Writes a whole HTTP response as bytes, below the HTTP handlers, and
    /// closes the connection once it is written.
    func answerAndClose(_ bytes: [UInt8]) {
        guard let context else { return }
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: bytes))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

func splitURI(_ uri: String) -> (String, String) {
    guard let q = uri.firstIndex(of: "?") else { return (uri, "") }
    return (String(uri[..<q]), String(uri[uri.index(after: q)...]))
}
