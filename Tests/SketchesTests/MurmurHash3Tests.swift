import Testing
@testable import Sketches

@Suite struct MurmurHash3Tests {
    /// Published vector (seed 0): "The quick brown fox jumps over the lazy dog" ->
    /// 6c1b07bc7bbc4be3 47939ac4a93c437a (bytes of h1, h2 little-endian).
    @Test func publishedVectorSeed0() {
        let h = MurmurHash3.hash128(Array("The quick brown fox jumps over the lazy dog".utf8), seed: 0)
        #expect(h.h1 == 0xe34b_bc7b_bc07_1b6c)
        #expect(h.h2 == 0x7a43_3ca9_c49a_9347)
    }

    @Test func emptyInputSeed0IsZero() {
        let h = MurmurHash3.hash128([UInt8](), seed: 0)
        #expect(h.h1 == 0 && h.h2 == 0)
    }

    /// Vectors with the DataSketches seed 9001 (checked against Python datasketches).
    @Test func dataSketchesSeedVectors() {
        let zero = MurmurHash3.hash128(Array("0".utf8))
        #expect(zero.h1 == 0xec84_1554_109e_84c7 && zero.h2 == 0x0e36_a769_127a_d52b)
        #expect(HLLSketch.coupon(h1: zero.h1, h2: zero.h2) == 0x149e_84c7)
        let apple = MurmurHash3.hash128(Array("apple".utf8))
        #expect(HLLSketch.coupon(h1: apple.h1, h2: apple.h2) == 0x08b6_1484)
        let one = MurmurHash3.hash128(int64: 1)
        #expect(HLLSketch.coupon(h1: one.h1, h2: one.h2) == 0x06fb_f22b)
        let empty = MurmurHash3.hash128([UInt8]())
        #expect(empty.h1 == 0x1e70_a322_6649_1bb9 && empty.h2 == 0x6097_36b2_5240_6b94)
        let b17 = MurmurHash3.hash128((0 ... 16).map { UInt8($0) })
        #expect(b17.h1 == 0xa4b0_d83e_e82f_2b12 && b17.h2 == 0xb0d7_3aa7_7d22_ae45)
    }

    /// The int64 fast path equals hashing the 8 little-endian bytes, for all tail lengths.
    @Test func int64FastPathMatchesBytes() {
        for v: Int64 in [0, 1, -1, 42, .max, .min, 0x0123_4567_89ab_cdef] {
            let bytes = withUnsafeBytes(of: v.littleEndian) { Array($0) }
            let a = MurmurHash3.hash128(bytes), b = MurmurHash3.hash128(int64: v)
            #expect(a.h1 == b.h1 && a.h2 == b.h2)
        }
    }
}
