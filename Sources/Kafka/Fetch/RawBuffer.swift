// A byte buffer at a fixed address between growths: records are lent from
// it to the caller across polls (docs/kafka-fetch.md "Handing records over").

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

final class RawBuffer {
    private(set) var base: UnsafeMutableRawPointer?
    private(set) var capacity = 0
    /// Bytes in use.
    var count = 0 {
        didSet { precondition(0 <= count && count <= capacity) }
    }

    deinit { free(base) }

    /// Makes room for `n` bytes (contents are not kept).
    func reserve(_ n: Int) {
        guard n > capacity else { return }
        free(base)
        let cap = max(n, capacity * 2, 4096)
        guard let p = malloc(cap) else { fatalError("out of memory for a \(cap)-byte Kafka buffer") }
        base = p
        capacity = cap
        count = 0
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
    var whole: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: capacity) }
}
