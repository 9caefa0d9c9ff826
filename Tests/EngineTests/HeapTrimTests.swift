#if canImport(Glibc)
import Glibc
#endif
import CMalloc
import Foundation
import Testing
@testable import Engine

/// The process's allocator is mimalloc, and the daemon's trim gives freed
/// memory back (docs/architecture.md "The daemon's heap").
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

    #if canImport(Glibc)
    /// How many of the pages in `[start, start + length)` are resident
    /// (mincore, page by page: a page mimalloc unmapped counts as not resident).
    static func residentPages(_ start: UnsafeMutableRawPointer, _ length: Int) -> (resident: Int, pages: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = (Int(bitPattern: start) + page - 1) / page * page
        let hi = (Int(bitPattern: start) + length) / page * page
        var resident = 0, pages = 0
        var bit: UInt8 = 0
        for address in stride(from: lo, to: hi, by: page) {
            pages += 1
            if mincore(UnsafeMutableRawPointer(bitPattern: address), page, &bit) == 0 {
                resident += Int(bit & 1)
            } else {
                #expect(errno == ENOMEM, "mincore: errno \(errno)")  // not mapped
            }
        }
        return (resident, pages)
    }

    /// Memory freed and left alone stays with mimalloc until something
    /// collects it; the daemon's trim (`mi_collect(true)`) gives it back
    /// once its pages are past mimalloc's decommit delay. Run on a thread
    /// of its own, whose heap holds nothing else, and counted on the freed
    /// blocks' own pages, so the tests running alongside do not count.
    @Test func freedMemoryGoesBackToTheKernelAtATrim() throws {
        /// Written by the thread, read after its signal.
        final class Shares: @unchecked Sendable { var written = 0.0, trimmed = 0.0 }
        let shares = Shares()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            // 96 MiB in 1 MiB blocks, written so they are resident, then
            // all freed but every 64th.
            let block = 1 << 20, count = 96
            var blocks: [UnsafeMutableRawPointer] = []
            blocks.reserveCapacity(count)
            for _ in 0..<count {
                let p = malloc(block)!
                memset(p, 1, block)
                blocks.append(p)
            }
            let freed = blocks.enumerated().filter { $0.offset % 64 != 63 }.map(\.element)
            func residentShare() -> Double {
                let counts = freed.map { Self.residentPages($0, block) }
                return Double(counts.reduce(0) { $0 + $1.resident }) / Double(counts.reduce(0) { $0 + $1.pages })
            }
            shares.written = residentShare()
            for p in freed { free(p) }
            usleep(200_000)  // older than mimalloc's decommit delay (25 ms by default)
            _ = qos_heap_trim()
            shares.trimmed = residentShare()
            for (i, p) in blocks.enumerated() where i % 64 == 63 { free(p) }
            done.signal()
        }
        thread.start()
        done.wait()
        #expect(shares.written == 1, "the blocks were written: every page resident")
        #expect(shares.trimmed <= 0.5, "\(Int(shares.trimmed * 100)) % of the freed blocks' pages still resident after the trim")
    }
    #endif
}
