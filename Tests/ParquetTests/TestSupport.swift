import Testing
@testable import Parquet

/// The column kinds the engine uses.
enum ColumnKind: CaseIterable {
    case boolean, int32, int64, double, string, blob, timestamp

    func field(_ name: String, optional: Bool) -> ParquetField {
        switch self {
        case .boolean: return .boolean(name, optional: optional)
        case .int32: return .int32(name, optional: optional)
        case .int64: return .int64(name, optional: optional)
        case .double: return .double(name, optional: optional)
        case .string: return .string(name, optional: optional)
        case .blob: return .blob(name, optional: optional)
        case .timestamp: return .timestamp(name, optional: optional)
        }
    }
}

let stringPool = ["", "a", "hello", "héllo wörld", "日本語テキスト", "emoji 🎬📺", "Ünïcödé",
                  "cdn-eu-west-1", "cdn-us-east-2", String(repeating: "x", count: 300), "\u{0}nul"]

func randomString<G: RandomNumberGenerator>(_ rng: inout G, unique: Bool) -> String {
    if !unique { return stringPool.randomElement(using: &rng)! }
    let scalars: [Character] = ["a", "b", "z", "0", "é", "ß", "中", "🎥", " ", "-"]
    let n = Int.random(in: 0...24, using: &rng)
    return String((0..<n).map { _ in scalars.randomElement(using: &rng)! })
}

func randomDouble<G: RandomNumberGenerator>(_ rng: inout G) -> Double {
    switch Int.random(in: 0..<12, using: &rng) {
    case 0: return .nan
    case 1: return -0.0
    case 2: return 0.0
    case 3: return .infinity
    case 4: return -.infinity
    case 5: return Double(Int.random(in: -5...5, using: &rng))
    default: return Double.random(in: -1e6...1e6, using: &rng)
    }
}

/// Random values for `kind`; about `nullRate` of them nil when `optional`.
func randomColumn<G: RandomNumberGenerator>(_ kind: ColumnKind, rows: Int, optional: Bool,
                                            nullRate: Double, uniqueStrings: Bool,
                                            rng: inout G) -> ParquetColumnData {
    func gen<T>(_ make: (inout G) -> T) -> [T?] {
        (0..<rows).map { _ in
            optional && Double.random(in: 0..<1, using: &rng) < nullRate ? nil : make(&rng)
        }
    }
    switch kind {
    case .boolean: return .boolean(gen { Bool.random(using: &$0) })
    case .int32: return .int32(gen { Int32.random(in: .min ... .max, using: &$0) })
    case .int64: return .int64(gen { Int64.random(in: -1000...1000, using: &$0) * Int64.random(in: 1...Int64(1) << 40, using: &$0) })
    case .double: return .double(gen { randomDouble(&$0) })
    case .string: return .strings(gen { randomString(&$0, unique: uniqueStrings) })
    case .blob: return .byteArray(gen { r in (0..<Int.random(in: 0...40, using: &r)).map { _ in UInt8.random(in: 0...255, using: &r) } })
    case .timestamp: return .int64(gen { Int64.random(in: 1_500_000_000_000_000...1_900_000_000_000_000, using: &$0) })
    }
}

/// Equality that treats equal NaN bit patterns as equal.
func sameData(_ a: ParquetColumnData, _ b: ParquetColumnData) -> Bool {
    switch (a, b) {
    case (.double(let x), .double(let y)):
        return x.map { $0?.bitPattern } == y.map { $0?.bitPattern }
    default:
        return a == b
    }
}

/// Reads every column of `bytes`; used by fuzzing (must throw or succeed, never trap).
func readEverything(_ bytes: [UInt8]) throws -> [ParquetColumnData] {
    let r = try ParquetFileReader(bytes: bytes)
    return try (0..<r.schema.count).map { try r.column($0) }
}
