#if canImport(Glibc)
import Glibc
#endif
import CMalloc
import Foundation
import Testing
@testable import Engine

/// The heap shim reaches glibc (docs/architecture.md "The daemon's heap"):
/// memory freed between live chunks, which glibc keeps, goes back to the
/// kernel when the daemon trims.
@Suite struct HeapTrimTests {
    /// Resident bytes of this process (`/proc/self/statm`, second field, in pages).
    static func residentBytes() -> Int {
        let statm = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
        let pages = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    #if canImport(Glibc)
    @Test func freedChunksBetweenLiveOnesGoBackToTheKernel() {
        HeapTrim.keepCheckpointBuffers()  // as `qos run` does: freed heap is kept
        // 96 MiB in 16 KiB chunks, written so they are resident, then all
        // freed but every 64th: nothing at the heap's top to give back by itself.
        let chunk = 16 << 10, count = 6_144
        var chunks: [UnsafeMutableRawPointer] = []
        chunks.reserveCapacity(count)
        for _ in 0..<count {
            let p = malloc(chunk)!
            memset(p, 1, chunk)
            chunks.append(p)
        }
        for (i, p) in chunks.enumerated() where i % 64 != 63 { free(p) }
        let before = Self.residentBytes()
        #expect(qos_heap_trim() == 1, "glibc released nothing")
        let after = Self.residentBytes()
        #expect(before - after >= 48 << 20, "resident \(before >> 20) MiB → \(after >> 20) MiB after the trim")
        for (i, p) in chunks.enumerated() where i % 64 == 63 { free(p) }
    }
    #endif
}
