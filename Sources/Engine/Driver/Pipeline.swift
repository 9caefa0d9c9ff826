import Foundation
import QoSCore

/// A bounded, blocking single-producer / single-consumer queue between the
/// stages of `qos replay`. `nil` from `take()` means the producer finished.
final class BoundedQueue<T>: @unchecked Sendable {
    private let cond = NSCondition()
    private var items: [T] = []
    private var closed = false
    private var failure: Error?
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func put(_ x: T) {
        cond.lock()
        while items.count >= capacity && !closed { cond.wait() }
        if !closed { items.append(x) }
        cond.broadcast()
        cond.unlock()
    }

    func take() throws -> T? {
        cond.lock()
        defer { cond.unlock() }
        while items.isEmpty && !closed { cond.wait() }
        if let e = failure { throw e }
        if items.isEmpty { return nil }
        cond.broadcast()
        return items.removeFirst()
    }

    /// Ends the stream; with an error, the consumer's next `take` throws it.
    func close(_ error: Error? = nil) {
        cond.lock()
        closed = true
        if failure == nil { failure = error }
        cond.broadcast()
        cond.unlock()
    }
}

/// Lines read and decoded off the engine's thread: their bytes (one copy per
/// batch, so reject payloads can still be cut from them), line numbers and
/// decoded items, in input order.
struct DecodedBatch: @unchecked Sendable {
    var bytes: [UInt8] = []
    var lines: [(range: Range<Int>, number: Int64, first: Int, count: Int)] = []
    var items: [DecodedItem] = []
    var file: String = ""
    var bytesRead: Int64 = 0
}
