import CMalloc
import Testing

/// The process's allocator is mimalloc (docs/architecture.md "The daemon's
/// heap"). What its trim gives back depends on mimalloc's state: measured
/// in bench/results/speed.md section 66, not asserted here (a test of it
/// passed alone and failed in the full suite, where other threads' heaps
/// and abandoned segments are in play).
@Suite struct HeapTrimTests {
    /// The module map links mimalloc ahead of the C library, so the C
    /// `malloc` (which the Swift runtime calls) is mimalloc's. With the C
    /// library first in the link, this fails: a block from `malloc` would
    /// not be in mimalloc's heap.
    @Test func mallocIsMimalloc() {
        #expect(qos_heap_is_mimalloc(), "malloc is not mimalloc's: readelf -d should list libmimalloc before libc")
        #expect(qos_heap_version() >= 200, "mimalloc \(qos_heap_version()): 2.x expected")
        // A Swift array's storage comes from the same heap.
        let array = [UInt8](repeating: 1, count: 4_096)
        array.withUnsafeBytes { #expect(mi_is_in_heap_region($0.baseAddress)) }
    }
}
