/// A hash of bytes for the tables keyed by what anyone can send: session
/// ids (`SessionTable`) and user agents (the classifier's cache). Both are
/// open-addressing tables with linear probing; under a hash anyone can
/// compute, keys can be chosen offline to share a bucket, and every lookup
/// then walks all of them (docs/architecture.md "Keys from anyone").
///
/// Each 8-byte word is folded into the state by a 64 × 64 → 128-bit
/// multiply with a secret factor (the two halves xored, so every bit of
/// both reaches the low bits a bucket index is taken from), from a secret
/// start; the secrets are drawn from the system's random source once per
/// process (`process`). Which keys share a bucket cannot be planned without
/// them. So a table's bucket order differs from process to process: what a
/// program writes must never follow it.
public struct SecretHash: Sendable {
    public let start: UInt64, factor: UInt64, final: UInt64

    /// This process's secrets, drawn at the first hash.
    public static let process: SecretHash = {
        var g = SystemRandomNumberGenerator()
        return SecretHash(using: &g)
    }()

    public init<G: RandomNumberGenerator>(using g: inout G) {
        start = g.next()
        // Odd, so no factor is zero (a zero factor would send every key to one bucket).
        factor = g.next() | 1
        final = g.next() | 1
    }

    /// The hash of `bytes`.
    @inlinable @inline(__always)
    public func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h = start ^ UInt64(bytes.count)
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            h = Self.fold(h ^ UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)), factor)
            i += 8
        }
        if i < n {
            var w: UInt64 = 0
            var shift: UInt64 = 0
            while i < n { w |= UInt64(bytes[i]) << shift; shift += 8; i += 1 }
            h = Self.fold(h ^ w, factor)
        }
        return Self.fold(h, final)
    }

    /// The two halves of `a × b` (128 bits) xored.
    @inlinable @inline(__always)
    static func fold(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let p = a.multipliedFullWidth(by: b)
        return p.high ^ p.low
    }
}
