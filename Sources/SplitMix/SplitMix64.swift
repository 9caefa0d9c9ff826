/// SplitMix64: a small, fast, well-mixed 64-bit stream, the same sequence on
/// every platform, so a seed always gives the same bytes.
///
/// One home for the generator `qos generate` (a `--seed` reproduces its
/// traffic), the benchmarks and every test suite use. It lives in a module of
/// its own, with no dependencies, because the suites of the leaf libraries
/// (Sketches, Parquet, Enrichment) need it and must not depend on the traffic
/// generator or the engine to get it.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    @inlinable public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
