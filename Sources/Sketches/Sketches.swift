// Sketches: MurmurHash3, DataSketches-compatible HLL, DDSketch. Pure Swift, no I/O.
//
// Files:
//   MurmurHash3.swift        MurmurHash3_x64_128 (seeded)
//   HLLSketch.swift          HLL_8 sketch: LIST -> SET -> HLL, HIP estimator
//   HLLEstimators.swift      coupon (cubic) and composite estimators
//   HLLTables.swift          constant tables copied from apache/datasketches-cpp
//   HLLSerialization.swift   DataSketches serialization (write HLL_8 compact, read all)
//   HLLUnion.swift           union gadget semantics (merge)
//   DDSketch.swift           DDSketch, log mapping (Python `ceil` keys), collapsing-lowest store
//   DDSketchProtobuf.swift   hand-written ddsketch.proto encoder/decoder

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors thrown when decoding serialized sketches.
public enum SketchError: Error, Equatable, Sendable {
    /// The input ends before a field that the header announces.
    case truncated(String)
    /// A header field has a value we do not understand.
    case invalidFormat(String)
    /// The input is valid but uses a feature this implementation does not support.
    case unsupported(String)
}
