import CCRC32C

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
/// checkpoint files (README "The daemon": state integrity). The CPU's crc32
/// instruction where it has one (`hardware`), else table-driven, eight
/// bytes per step ("slicing-by-8"); both give the same value.
/// Check value: `crc32c("123456789") == 0xE3069283`.
public enum CRC32C {
    static let polynomial: UInt32 = 0x82F6_3B78

    /// `tables[k][b]`: the CRC of byte `b` followed by `k` zero bytes.
    static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for b in 0..<256 {
            var c = UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ polynomial : c >> 1 }
            t[0][b] = c
        }
        for k in 1..<8 {
            for b in 0..<256 { t[k][b] = (t[k - 1][b] >> 8) ^ t[0][Int(t[k - 1][b] & 0xFF)] }
        }
        return t
    }()

    /// Whether the CPU computes the CRC itself (SSE 4.2's crc32 on x86-64,
    /// `Sources/CCRC32C/shim.h`): ≈ 10× the tables' speed on the snapshots a
    /// checkpoint seals (bench/results/speed.md section 52).
    public static let hardware = qos_crc32c_hardware() != 0

    /// The CRC of `bytes`, continuing from `crc` (the CRC of what came before; 0 to start).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard hardware, let base = bytes.baseAddress else { return checksumByTables(bytes, continuing: crc) }
        return ~qos_crc32c_fold(~crc, base, bytes.count)
    }

    /// `checksum` with the tables, on any CPU (tests and `qos bench` compare the two).
    public static func checksumByTables(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var c = ~crc
        var i = 0
        let n = bytes.count
        tables.withUnsafeBufferPointer { all in
            let t0 = all[0], t1 = all[1], t2 = all[2], t3 = all[3]
            let t4 = all[4], t5 = all[5], t6 = all[6], t7 = all[7]
            while i + 8 <= n {
                let lo = c ^ (UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
                c = t7[Int(lo & 0xFF)] ^ t6[Int((lo >> 8) & 0xFF)] ^ t5[Int((lo >> 16) & 0xFF)] ^ t4[Int(lo >> 24)]
                    ^ t3[Int(bytes[i + 4])] ^ t2[Int(bytes[i + 5])] ^ t1[Int(bytes[i + 6])] ^ t0[Int(bytes[i + 7])]
                i += 8
            }
            while i < n {
                c = (c >> 8) ^ t0[Int((c ^ UInt32(bytes[i])) & 0xFF)]
                i += 1
            }
        }
        return ~c
    }

    public static func checksum(_ bytes: [UInt8], continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }

    public static func checksum(_ bytes: ArraySlice<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }

    /// Appends the CRC of `bytes` to them, 4 bytes little-endian.
    public static func seal(_ bytes: inout [UInt8]) {
        let c = checksum(bytes)
        bytes.append(contentsOf: [UInt8(c & 0xFF), UInt8((c >> 8) & 0xFF), UInt8((c >> 16) & 0xFF), UInt8(c >> 24)])
    }

    /// Whether `bytes` end with the CRC of what precedes it (as `seal` wrote).
    public static func verifySealed(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 4 else { return false }
        let n = bytes.count - 4
        let stored = UInt32(bytes[n]) | UInt32(bytes[n + 1]) << 8 | UInt32(bytes[n + 2]) << 16 | UInt32(bytes[n + 3]) << 24
        return checksum(bytes[..<n]) == stored
    }
}
