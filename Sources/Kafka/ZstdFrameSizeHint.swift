// One zstd decompression per fetched message set, not three
// (docs/architecture.md "Kafka: zstd message sets"; bench/results/speed.md §44).
//
// librdkafka 2.0.x sizes the buffer for a zstd-compressed message set by the
// frame's declared content size (`ZSTD_getFrameContentSize`). Producers that
// compress as a stream do not declare it: librdkafka itself when linked to a
// shared libzstd (Debian's, and so `qos generate`, `qos collect`, the demo)
// and the Java client. For such a frame 2.0.x guesses twice the compressed
// size and, when the output does not fit, frees it and decompresses the whole
// frame again into a buffer three times larger: a batch of JSON beacons
// (≈ 7:1) is decompressed three times, two of them thrown away.
//
// This file defines `ZSTD_getFrameContentSize` in the program; the Kafka
// target's linker flag exports it, so librdkafka's calls resolve to it
// before libzstd's. It answers what libzstd answers, except when the frame
// declares no size and a librdkafka thread asks: then it answers an upper
// bound of what the frame can hold (`ZSTD_decompressBound`: its blocks × the
// largest block, 128 KiB), but never more than 18 times the compressed size
// (the buffer of librdkafka's own third try: a small frame's one block would
// otherwise cost 128 KiB however little it holds) nor than the smallest
// `receive.message.max.bytes` of the process's Kafka clients. librdkafka
// allocates that and decompresses once; it reads the true size from the
// decompression's result. When a frame holds more than the answer (over
// 18:1), librdkafka's own growth takes over, as before.
// libzstd's own calls (from ZSTD_findDecompressedSize and
// ZSTD_getDecompressedSize, never from decompression) reach this function
// too, and get libzstd's answer on any thread but librdkafka's.

import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin  // two-level namespaces: librdkafka keeps libzstd's function there
#endif

/// The sizing rule above, and what it did (tests, diagnostics).
public enum ZstdFrameSizeHint {
    /// `ZSTD_CONTENTSIZE_UNKNOWN`: the frame declares no size.
    static let unknown = UInt64.max
    /// `ZSTD_CONTENTSIZE_ERROR`.
    static let error = UInt64.max - 1

    /// Size-less frames given a size by this rule so far: their bound, or
    /// the cap below it (librdkafka's calls only; `/metrics`
    /// `qos_kafka_zstd_frames_sized_total`, a sign the rule is in force).
    public static var framesSized: Int { sized.load(ordering: .relaxed) }
    static let sized = Atomic<Int>(0)

    /// The largest answer allowed: the smallest `receive.message.max.bytes`
    /// of any Kafka client made so far (librdkafka refuses a larger buffer).
    static let limit = Atomic<Int>(Int.max)

    /// librdkafka 2.0.x tries 2×, 6× and 18× the compressed size: the
    /// answer is never larger than its third buffer.
    static let thirdTry: UInt64 = 18

    /// Records a client's `receive.message.max.bytes` (`makeConf`).
    static func admit(receiveMessageMaxBytes bytes: Int) {
        precondition(bytes > 0, "receive.message.max.bytes must be positive")
        var current = limit.load(ordering: .relaxed)
        while bytes < current {
            let (exchanged, original) = limit.compareExchange(expected: current, desired: bytes, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
    }

    typealias ContentSize = @convention(c) (UnsafeRawPointer?, Int) -> UInt64

    /// libzstd's own function: the next definition after the program's
    /// (whoever calls this one was linked with libzstd, so it is loaded).
    nonisolated(unsafe) static let libzstd: ContentSize = {
        guard let f = cFunction("ZSTD_getFrameContentSize", as: ContentSize.self, in: .next) else {
            fatalError("libzstd's ZSTD_getFrameContentSize is not loaded")
        }
        return f
    }()

    /// libzstd's `ZSTD_decompressBound` (1.4.0 and later; an "advanced" API
    /// its header shows only to static builds, exported by the shared
    /// library); nil without it, and then no frame is sized by its bound.
    nonisolated(unsafe) static let decompressBound = cFunction("ZSTD_decompressBound", as: ContentSize.self, in: .any)

    /// The answer for `src`: libzstd's, or the frame's bound (see the file's comment).
    static func contentSize(_ src: UnsafeRawPointer?, _ count: Int, onLibrdkafkaThread: Bool,
                            limit: Int = limit.load(ordering: .relaxed)) -> UInt64 {
        let declared = libzstd(src, count)
        guard declared == unknown, onLibrdkafkaThread, let decompressBound else { return declared }
        let bound = decompressBound(src, count)
        guard bound != error, bound != unknown else { return declared }
        let answer = min(bound, UInt64(count) &* thirdTry, UInt64(limit))
        sized.add(1, ordering: .relaxed)
        return answer
    }

    /// librdkafka names its threads `rdk:main`, `rdk:broker<n>`, ….
    static var onLibrdkafkaThread: Bool {
        guard let threadName else { return false }
        var name = (UInt64(0), UInt64(0))  // 16 bytes, the longest thread name with its NUL
        let ok = withUnsafeMutableBytes(of: &name) { b in
            threadName(pthread_self(), b.baseAddress!.assumingMemoryBound(to: CChar.self), b.count) == 0
        }
        return ok && withUnsafeBytes(of: name) { $0.prefix(4).elementsEqual("rdk:".utf8) }
    }

    typealias ThreadName = @convention(c) (pthread_t, UnsafeMutablePointer<CChar>?, Int) -> Int32

    /// glibc's `pthread_getname_np` (a GNU extension the Swift overlay does not show).
    nonisolated(unsafe) static let threadName = cFunction("pthread_getname_np", as: ThreadName.self, in: .any)

    /// Where `cFunction` looks a name up.
    enum Scope {
        /// The first definition in load order (`RTLD_DEFAULT`).
        case any
        /// The first definition after this program's (`RTLD_NEXT`).
        case next

        var handle: UnsafeMutableRawPointer? {
            switch self {
            case .any: UnsafeMutableRawPointer(bitPattern: 0)
            case .next: UnsafeMutableRawPointer(bitPattern: -1)
            }
        }
    }

    /// The loaded C function `name` as `F` (a `@convention(c)` type that
    /// must match its C declaration); nil when no loaded library defines it.
    static func cFunction<F>(_ name: String, as type: F.Type, in scope: Scope) -> F? {
        precondition(MemoryLayout<F>.size == MemoryLayout<UnsafeRawPointer>.size, "\(F.self) is not a C function type")
        return dlsym(scope.handle, name).map { unsafeBitCast($0, to: F.self) }
    }
}

/// The program's `ZSTD_getFrameContentSize` (see the file's comment).
@_cdecl("ZSTD_getFrameContentSize")
public func qosZstdGetFrameContentSize(_ src: UnsafeRawPointer?, _ count: Int) -> UInt64 {
    ZstdFrameSizeHint.contentSize(src, count, onLibrdkafkaThread: ZstdFrameSizeHint.onLibrdkafkaThread)
}
