import Generator
@testable import QoSCore
import Testing
import SplitMix

/// CRC-32C against the published check values (RFC 3720 appendix B.4 and
/// the catalogue's check value), a bitwise reference at every length and
/// alignment, and the snapshots it seals.
@Suite struct CRC32CTests {
    @Test func standardVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
    }

    /// One bit at a time, straight from the definition.
    static func reference(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        }
        return ~c
    }

    @Test func equalsTheBitwiseDefinitionAtEveryLengthAndSplit() {
        var rng = SplitMix64(seed: 7)
        let data = (0..<300).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for n in 0...data.count {
            let prefix = Array(data[..<n])
            #expect(CRC32C.checksum(prefix) == Self.reference(prefix))
            let cut = n / 3
            #expect(CRC32C.checksum(data[cut..<n], continuing: CRC32C.checksum(data[..<cut])) == Self.reference(prefix))
            // The tables, whichever way `checksum` goes on this CPU.
            prefix.withUnsafeBytes { #expect(CRC32C.checksumByTables($0) == Self.reference(prefix)) }
        }
    }

    /// Every x86-64 CPU this runs on since 2008 has SSE 4.2: a build that
    /// stopped using the instruction would pass the vectors above unnoticed.
    @Test func theCPUsInstructionIsUsedWhereThereIsOne() {
        #if arch(x86_64)
        #expect(CRC32C.hardware)
        #endif
        // At every alignment of the start, which the instruction reads 8 bytes at a time.
        var rng = SplitMix64(seed: 11)
        let data = (0..<1000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for start in 0..<16 {
            let part = Array(data[start...])
            #expect(CRC32C.checksum(data[start...]) == Self.reference(part))
        }
    }

    @Test func sealedBytesVerifyAndAnyFlipIsCaught() {
        var bytes = Array("a checkpoint".utf8)
        CRC32C.seal(&bytes)
        #expect(CRC32C.verifySealed(bytes))
        for i in bytes.indices {
            for bit in 0..<8 {
                var bad = bytes
                bad[i] ^= UInt8(1 << bit)
                #expect(!CRC32C.verifySealed(bad))
            }
        }
        #expect(!CRC32C.verifySealed([1, 2, 3]))
    }

    /// A partition snapshot with open sessions and windows: it restores, and
    /// a flipped byte anywhere is refused as a checksum mismatch (or, in the
    /// magic, as not a snapshot), never restored.
    @Test func snapshotVerifiesOnRestore() throws {
        var o = GeneratorOptions()
        o.seed = 5
        o.sessions = 40
        let engine = QoSEngine<ExactKit>()
        for (i, m) in TrafficGenerator(o).enumerated() {
            m.payload.withUnsafeBytes {
                engine.ingest(message: $0, partition: 0, source: .file(name: "gen", line: Int64(i + 1)), nowMs: 4_000_000_000_000)
            }
        }
        let snap = engine.snapshot(partition: 0)
        #expect(snap.starts(with: Array("QOSPART4".utf8)) && CRC32C.verifySealed(snap))
        try QoSEngine<ExactKit>().restore(partition: 0, from: snap)
        var rng = SplitMix64(seed: 11)
        for _ in 0..<200 {
            var bad = snap
            let i = Int(rng.next() % UInt64(bad.count))
            bad[i] ^= UInt8(1 << (rng.next() % 8))
            #expect(throws: (i < 8 ? StateError(message: "not a partition snapshot") : StateError.checksumMismatch)) {
                try QoSEngine<ExactKit>().restore(partition: 0, from: bad)
            }
        }
    }
}
