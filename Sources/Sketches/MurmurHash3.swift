// MurmurHash3_x64_128 (Austin Appleby's public-domain algorithm), as used by
// Apache DataSketches (common/include/MurmurHash3.h): 64-bit seed for both
// halves, little-endian 64-bit blocks, `h ^= len` with the 64-bit length,
// fmix64 finalizer. All arithmetic wraps.

public enum MurmurHash3 {
    /// The seed DataSketches uses for HLL (`DEFAULT_SEED` in common_defs.hpp).
    public static let defaultSeed: UInt64 = 9001

    @usableFromInline static let c1: UInt64 = 0x87c3_7b91_1142_53d5
    @usableFromInline static let c2: UInt64 = 0x4cf5_ad43_2745_937f

    @inlinable @inline(__always)
    static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 &- r)) }

    @inlinable @inline(__always)
    static func fmix(_ k0: UInt64) -> UInt64 {
        var k = k0
        k ^= k >> 33
        k = k &* 0xff51_afd7_ed55_8ccd
        k ^= k >> 33
        k = k &* 0xc4ce_b9fe_1a85_ec53
        k ^= k >> 33
        return k
    }

    @inlinable @inline(__always)
    static func mixK1(_ k: UInt64) -> UInt64 { rotl(k &* c1, 31) &* c2 }

    @inlinable @inline(__always)
    static func mixK2(_ k: UInt64) -> UInt64 { rotl(k &* c2, 33) &* c1 }

    @inlinable @inline(__always)
    static func finish(_ a: UInt64, _ b: UInt64, length: Int) -> (h1: UInt64, h2: UInt64) {
        var h1 = a ^ UInt64(length), h2 = b ^ UInt64(length)
        h1 = h1 &+ h2
        h2 = h2 &+ h1
        h1 = fmix(h1)
        h2 = fmix(h2)
        h1 = h1 &+ h2
        h2 = h2 &+ h1
        return (h1, h2)
    }

    /// Hashes `bytes` and returns the two 64-bit halves (h1 is the first 8 output bytes).
    @inlinable
    public static func hash128(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = defaultSeed) -> (h1: UInt64, h2: UInt64) {
        let len = bytes.count
        var h1 = seed, h2 = seed
        let nblocks = len / 16
        var i = 0
        while i < nblocks {
            let k1 = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 16, as: UInt64.self))
            let k2 = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 16 + 8, as: UInt64.self))
            h1 ^= mixK1(k1)
            h1 = rotl(h1, 27) &+ h2
            h1 = h1 &* 5 &+ 0x52dc_e729
            h2 ^= mixK2(k2)
            h2 = rotl(h2, 31) &+ h1
            h2 = h2 &* 5 &+ 0x3849_5ab5
            i += 1
        }
        let tail = nblocks * 16
        let rem = len & 15
        if rem > 8 {
            var k2: UInt64 = 0
            for j in stride(from: rem - 1, through: 8, by: -1) {
                k2 ^= UInt64(bytes[tail + j]) << UInt64((j - 8) * 8)
            }
            h2 ^= mixK2(k2)
        }
        if rem > 0 {
            var k1: UInt64 = 0
            for j in stride(from: min(rem, 8) - 1, through: 0, by: -1) {
                k1 ^= UInt64(bytes[tail + j]) << UInt64(j * 8)
            }
            h1 ^= mixK1(k1)
        }
        return finish(h1, h2, length: len)
    }

    /// Hash of the 8 little-endian bytes of `value` (the DataSketches `update(int64)` input),
    /// without going through a buffer.
    @inlinable
    public static func hash128(int64 value: Int64, seed: UInt64 = defaultSeed) -> (h1: UInt64, h2: UInt64) {
        let h1 = seed ^ mixK1(UInt64(bitPattern: value))
        return finish(h1, seed, length: 8)
    }

    /// Convenience: hash of a byte array.
    @inlinable
    public static func hash128(_ bytes: [UInt8], seed: UInt64 = defaultSeed) -> (h1: UInt64, h2: UInt64) {
        bytes.withUnsafeBytes { hash128($0, seed: seed) }
    }
}
