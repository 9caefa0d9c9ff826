import Testing
@testable import Engine
import QoSCore
import SplitMix

/// What a CDN log parser emitted for one message, as comparable values.
enum CdnOut: Equatable, CustomStringConvertible {
    case record(CdnLogRecord)
    case reject(String, String)

    var description: String {
        switch self {
        case .record(let r): return "record(\(r))"
        case .reject(let reason, let payload): return "reject(\(reason), \(payload))"
        }
    }
}

/// Runs `parser` over `messages` (one call each, in order, on the same
/// instance) and returns every item, rejects with their payload text.
func parseAll(_ parser: some CdnLogParser, _ messages: [String]) -> [CdnOut] {
    var out: [CdnOut] = []
    for m in messages {
        let bytes = Array(m.utf8)
        bytes.withUnsafeBytes { raw in
            parser.parse(raw) { item in
                switch item {
                case .record(let r): out.append(.record(r))
                case .reject(let reason, let range):
                    #expect(range.lowerBound >= 0 && range.upperBound <= bytes.count && !range.isEmpty,
                            "payload \(range) outside the message of \(bytes.count) bytes")
                    let clamped = max(0, min(range.lowerBound, bytes.count))..<max(0, min(range.upperBound, bytes.count))
                    out.append(.reject(reason.code, String(decoding: bytes[clamped], as: UTF8.self)))
                }
            }
        }
    }
    return out
}

/// Fuzz-ish robustness: random byte mutations, truncations and splices of
/// `seeds` never trap, and every non-blank message yields at least one
/// record or reject, with payload ranges inside the message.
func fuzzParser(_ make: () -> some CdnLogParser, seeds: [String], iterations: Int, seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    let alphabet = Array("{}[]\":,-0123456789.eE\\u\t\n #nulltruefalse".utf8) + [0x00, 0xFF, 0xC3, 0x80]
    let parser = make()
    var total = 0
    for _ in 0..<iterations {
        var b = Array(seeds[Int(rng.next() % UInt64(seeds.count))].utf8)
        for _ in 0..<Int(1 + rng.next() % 4) {
            guard !b.isEmpty else { break }
            let at = Int(rng.next() % UInt64(b.count))
            switch rng.next() % 6 {
            case 0: b[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
            case 1: b.remove(at: at)
            case 2: b.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
            case 3: b.removeSubrange(at...)
            case 4: b[at] = UInt8(truncatingIfNeeded: rng.next())
            default:
                let other = Array(seeds[Int(rng.next() % UInt64(seeds.count))].utf8)
                let from = Int(rng.next() % UInt64(max(1, other.count)))
                b.insert(contentsOf: other[min(from, other.count)...], at: at)
            }
        }
        var items = 0
        b.withUnsafeBytes { raw in
            parser.parse(raw) { item in
                items += 1
                if case .reject(_, let range) = item {
                    #expect(range.lowerBound >= 0 && range.upperBound <= b.count)
                }
            }
        }
        let blank = b.allSatisfy { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        let headerOnly = b.split(separator: 0x0A)
            .allSatisfy { $0.first == UInt8(ascii: "#") || $0.allSatisfy { $0 == 0x20 || $0 == 0x0D || $0 == 0x09 } }
        if !blank && !(headerOnly && type(of: parser).formatName == "cloudfront") {
            #expect(items > 0, "no record and no reject for \(b)")
        }
        total += items
    }
    #expect(total >= iterations / 2)
}
