// The program's ZSTD_getFrameContentSize (Sources/Kafka/ZstdFrameSizeHint.swift):
// librdkafka reaches it, only librdkafka's threads get a frame's bound, and
// the bound holds the frame.

import CZstd
import Foundation
import Testing
@testable import Kafka

/// `count` bytes of beacon-like JSON lines (they compress ≈ 10:1, like beacons).
private func beaconLikeBytes(_ count: Int) -> [UInt8] {
    var out: [UInt8] = []
    var i = 0
    while out.count < count {
        out += Array(#"{"session_id":"s-\#(i % 977)","seq":\#(i),"event":"heartbeat","ts":\#(1_767_225_600_000 + i * 250)}"#.utf8)
        out.append(10)
        i += 1
    }
    return Array(out.prefix(count))
}

/// One zstd frame of `input` compressed as a stream, which declares no content size.
private func streamedFrame(_ input: [UInt8]) -> [UInt8] {
    let stream = ZSTD_createCStream()!
    defer { ZSTD_freeCStream(stream) }
    _ = ZSTD_initCStream(stream, 3)
    var out = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count))
    let written = input.withUnsafeBytes { src in
        out.withUnsafeMutableBytes { dst in
            var o = ZSTD_outBuffer(dst: dst.baseAddress, size: dst.count, pos: 0)
            var i = ZSTD_inBuffer(src: src.baseAddress, size: src.count, pos: 0)
            #expect(ZSTD_isError(ZSTD_compressStream(stream, &o, &i)) == 0)
            #expect(ZSTD_endStream(stream, &o) == 0)
            return o.pos
        }
    }
    return Array(out.prefix(written))
}

/// One zstd frame of `input` compressed at once, which declares its content size.
private func oneShotFrame(_ input: [UInt8]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count))
    let written = input.withUnsafeBytes { src in
        out.withUnsafeMutableBytes { dst in ZSTD_compress(dst.baseAddress, dst.count, src.baseAddress, src.count, 3) }
    }
    #expect(ZSTD_isError(written) == 0)
    return Array(out.prefix(written))
}

/// glibc's `pthread_setname_np` (a GNU extension the Swift overlay does not show).
private let setThreadName = ZstdFrameSizeHint.cFunction(
    "pthread_setname_np", as: (@convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32).self, in: .any)!

/// What the process's `ZSTD_getFrameContentSize` (the one librdkafka calls) answers for `frame` on a thread named `name`.
private func contentSize(of frame: [UInt8], onThreadNamed name: String) -> UInt64 {
    let answer = Locked<UInt64>(0)
    let done = DispatchSemaphore(value: 0)
    let t = Thread {
        name.withCString { _ = setThreadName(pthread_self(), $0) }
        let f = ZstdFrameSizeHint.cFunction("ZSTD_getFrameContentSize", as: ZstdFrameSizeHint.ContentSize.self, in: .any)!
        let r = frame.withUnsafeBytes { f($0.baseAddress, $0.count) }
        answer.with { $0 = r }
        done.signal()
    }
    t.start()
    done.wait()
    return answer.get
}

@Suite struct ZstdFrameSizeHintTests {
    static let blockMax: UInt64 = 128 << 10

    /// Test binaries export every symbol; the `qos` binary exports this one
    /// by the Kafka target's linker flag, checked by the interop test
    /// `test_librdkafka_sizes_zstd_message_sets_with_the_programs_function`.
    @Test func theProcessSymbolIsTheProgramsOwn() {
        let found = dlsym(nil, "ZSTD_getFrameContentSize")
        let libzstd = unsafeBitCast(ZstdFrameSizeHint.libzstd, to: UnsafeMutableRawPointer.self)
        #expect(found != nil)
        #expect(found != libzstd, "the process's ZSTD_getFrameContentSize is libzstd's, not the Kafka module's")
    }

    @Test(arguments: [1, 1000, 131_072, 131_073, 1_500_000])
    func onlyLibrdkafkaThreadsGetABoundThatHoldsTheFrame(size: Int) {
        let input = beaconLikeBytes(size)
        let streamed = streamedFrame(input), oneShot = oneShotFrame(input)
        // A frame that declares its size: the size, whoever asks.
        #expect(contentSize(of: oneShot, onThreadNamed: "rdk:broker1") == UInt64(size))
        #expect(contentSize(of: oneShot, onThreadNamed: "qos-test") == UInt64(size))
        // A frame that does not: unknown, except for librdkafka's threads.
        #expect(contentSize(of: streamed, onThreadNamed: "qos-test") == ZstdFrameSizeHint.unknown)
        let bound = contentSize(of: streamed, onThreadNamed: "rdk:broker1")
        // librdkafka's frames: full blocks, the last one partial or an empty
        // end block; never over librdkafka's own third buffer.
        let third = UInt64(streamed.count) * ZstdFrameSizeHint.thirdTry
        #expect(bound == min(third, ((UInt64(size) / Self.blockMax) + 1) * Self.blockMax), "bound \(bound) for \(size) bytes")
        if UInt64(size) <= third {
            #expect(bound >= UInt64(size), "bound \(bound) for \(size) bytes")
        }
        // A damaged frame stays an error.
        var damaged = streamed
        damaged[0] ^= 0xFF
        #expect(contentSize(of: damaged, onThreadNamed: "rdk:broker1") == ZstdFrameSizeHint.error)
    }

    @Test func theBoundNeverExceedsTheReceiveLimit() {
        let streamed = streamedFrame(beaconLikeBytes(1_000_000))
        let capped = streamed.withUnsafeBytes {
            ZstdFrameSizeHint.contentSize($0.baseAddress, $0.count, onLibrdkafkaThread: true, limit: 300_000)
        }
        #expect(capped == 300_000)
    }

    /// End to end: zstd batches produced by librdkafka (which declare no
    /// size: Debian's librdkafka streams into a shared libzstd), consumed
    /// by librdkafka, are sized by their bound and arrive intact. The limit
    /// is a hang guard above the test's own deadlines (20 s of flush, 40 s of
    /// consuming), which a loaded CI machine can spend in full.
    @Test(.timeLimit(.minutes(3))) func librdkafkaSizesFetchedZstdBatchesByTheirBound() throws {
        let broker = try MockBroker(topics: ["z": 2], logHandler: testLog)
        defer { broker.close() }
        let n = 20_000
        let p = try KafkaProducer(brokers: broker.bootstrapServers,
                                  extra: ["compression.codec": "zstd", "linger.ms": "200"], logHandler: testLog)
        for i in 0..<n {
            try p.produce(topic: "z", key: Array("s-\(i % 50)".utf8),
                          payload: Array(#"{"session_id":"s-\#(i % 50)","seq":\#(i),"event":"heartbeat"}"#.utf8))
        }
        try p.flush(timeoutMs: 20_000)
        p.close()
        let before = ZstdFrameSizeHint.framesSized
        let c = try KafkaConsumer(brokers: broker.bootstrapServers, groupId: uniqueGroup("zstd"), topics: ["z"],
                                  extra: fastGroup, logHandler: testLog)
        defer { c.close() }
        var seqs = Set<Int>()
        let deadline = now() + 40
        while seqs.count < n && now() < deadline {
            for ev in try c.poll(maxMessages: 5000, timeoutMs: 200) {
                switch ev {
                case .message(let m):
                    let text = String(decoding: m.payload, as: UTF8.self)
                    let seq = text.split(separator: ",")[1].split(separator: ":")[1]
                    seqs.insert(Int(seq)!)
                case .assigned: try c.completeAssign()
                case .revoked: try c.completeRevoke()
                case .error(let e): Issue.record("unexpected error event: \(e)")
                }
            }
        }
        #expect(seqs == Set(0..<n))
        #expect(ZstdFrameSizeHint.framesSized > before, "librdkafka did not ask the program's ZSTD_getFrameContentSize")
    }
}
