#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import TestSupport
@testable import Engine
@testable import Kafka

/// `/healthz` and `/metrics` over real loopback sockets, with clients that
/// misbehave: idle connections, many of them, a request sent in pieces.
/// No timing is asserted beyond "answers at all within a generous bound".
@Suite(.serialized) struct MetricsServerTests {
    /// A TCP connection to 127.0.0.1:port whose reads give up after `timeout` s.
    final class Client {
        private(set) var fd: Int32
        init(port: Int, timeout: Int = 5) throws {
            fd = try connectLoopback(port: port, receiveTimeout: timeout)
        }
        deinit { hangUp() }

        /// Closes the connection now, once: closing its number again later
        /// (in `deinit`) could close a descriptor another test has since
        /// been given — in the test process, an event loop's epoll fd.
        func hangUp() {
            if fd >= 0 { close(fd) }
            fd = -1
        }

        func send(_ s: String) {
            _ = Array(s.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }

        /// Everything until the server closes, or what came before the read timeout.
        /// `closed`: the server closed the connection (as opposed to a timeout).
        func readAll() -> (text: String, closed: Bool) {
            var out: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0 { out += buf[0..<n]; continue }
                let closed = n == 0 || errno == ECONNRESET
                return (String(decoding: out, as: UTF8.self), closed)
            }
        }
    }

    func get(_ port: Int, _ path: String) throws -> String {
        let c = try Client(port: port)
        c.send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return c.readAll().text
    }

    func server(_ limits: MetricsServer.Limits = .init()) throws -> MetricsServer {
        let s = try MetricsServer(port: 0, limits: limits)
        s.start()
        var status = RunStatus()
        status.epoch = 7
        status.internedDimensions = 1234
        s.publish(status)
        return s
    }

    @Test func healthzAndMetricsAnswer() throws {
        let s = try server()
        #expect(try get(s.port, "/healthz").hasPrefix("HTTP/1.1 200"))
        let metrics = try get(s.port, "/metrics")
        #expect(metrics.hasPrefix("HTTP/1.1 200"))
        #expect(metrics.contains("\nqos_checkpoint_epoch 7\n"))
        #expect(metrics.contains("\nqos_interned_strings{interner=\"dimensions\"} 1234\n"))
        #expect(try get(s.port, "/nope").hasPrefix("HTTP/1.1 404"))
        s.staleAfterSeconds = 0
        #expect(try get(s.port, "/healthz").hasPrefix("HTTP/1.1 503"))
        s.stop()
    }

    /// The daemon's status as published carries the Kafka client's count of
    /// zstd message sets sized by `ZstdFrameSizeHint`, and `/metrics` shows it.
    @Test func publishedStatusCarriesTheZstdFramesSized() throws {
        ZstdFrameSizeHint.sized.add(2, ordering: .relaxed)  // as if librdkafka had asked for two frames
        final class Box { var status: RunStatus? }
        let published = Box()
        var o = RunOptions()
        o.sink = NSTemporaryDirectory() + "qos-metrics-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: o.sink) }
        o.onCheckpoint = { published.status = $0 }
        let job = try RunJob(o)
        job.o.onCheckpoint?(RunStatus())  // what the driver does after each epoch
        let sized = try #require(published.status).kafkaZstdFramesSized
        #expect(sized >= 2 && sized <= ZstdFrameSizeHint.framesSized)
        let text = MetricsServer.render(try #require(published.status))
        #expect(text.contains("\nqos_kafka_zstd_frames_sized_total \(sized)\n"))
    }

    @Test func healthzAnswersWhileAConnectionIsIdle() throws {
        let s = try server()
        let idle = try Client(port: s.port)
        #expect(try get(s.port, "/healthz").hasPrefix("HTTP/1.1 200"))
        _ = idle
        s.stop()
    }

    @Test func healthzAnswersBeside200IdleConnectionsAndASlowloris() throws {
        let s = try server()
        let idle = try (0..<200).map { _ in try Client(port: s.port) }
        let slow = try Client(port: s.port)
        slow.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        for _ in 0..<3 {
            #expect(try get(s.port, "/healthz").hasPrefix("HTTP/1.1 200"))
            slow.send("a")
        }
        #expect(try get(s.port, "/metrics").contains("qos_checkpoint_epoch 7"))
        _ = idle
        s.stop()
    }

    @Test func anIdleConnectionAndASlowSenderAreClosedAfterTheTimeout() throws {
        var limits = MetricsServer.Limits()
        limits.requestTimeoutSeconds = 1
        let s = try server(limits)
        let idle = try Client(port: s.port)
        let slow = try Client(port: s.port)
        slow.send("GET /healthz HTTP/1.1\r\n")
        // The read gives up after 5 s: `closed` means the server hung up first.
        let a = idle.readAll(), b = slow.readAll()
        #expect(a.closed && a.text.isEmpty)
        #expect(b.closed && b.text.isEmpty)
        #expect(try get(s.port, "/healthz").hasPrefix("HTTP/1.1 200"))
        s.stop()
    }

    @Test func connectionsPastTheCapAreClosedAtOnce() throws {
        var limits = MetricsServer.Limits()
        limits.connectionsMax = 3
        let s = try server(limits)
        let held = try (0..<3).map { _ in try Client(port: s.port) }
        let extra = try Client(port: s.port)
        extra.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        let r = extra.readAll()
        #expect(r.closed && r.text.isEmpty)
        // The held connections are still served.
        held[0].send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(held[0].readAll().text.hasPrefix("HTTP/1.1 200"))
        s.stop()
    }

    @Test func anOversizedRequestClosesItsConnection() throws {
        let s = try server()
        let c = try Client(port: s.port)
        c.send("GET /healthz HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 20_000) + "\r\n\r\n")
        let r = c.readAll()
        #expect(r.closed && !r.text.hasPrefix("HTTP/1.1 200"))
        #expect(try get(s.port, "/healthz").hasPrefix("HTTP/1.1 200"))
        s.stop()
    }

    @Test func aTakenPortIsOneLineNamingTheFix() throws {
        let s = try server()
        do {
            _ = try MetricsServer(port: s.port)
            Issue.record("bound a port that is taken")
        } catch let e as UserError {
            #expect(e.message.contains("cannot listen on 127.0.0.1:\(s.port)"))
            #expect(e.message.contains("--metrics-port") && !e.message.contains("\n"))
        }
        s.stop()
    }
}
