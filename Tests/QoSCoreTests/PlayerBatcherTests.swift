import Generator
import QoSCore
import Testing

/// `qos generate --batch-seconds`: players that send their beacons as JSON
/// arrays. Every beacon of the unbatched traffic leaves exactly once, in its
/// session's order, with its own session's beacons only, no later than the
/// batch period after it was due.
@Suite struct PlayerBatcherTests {
    static func options(late: Double = 0.01, duplicate: Double = 0.01, malformed: Double = 0.02) -> GeneratorOptions {
        var o = GeneratorOptions()
        o.seed = 11
        o.sessions = 400
        o.rate = 200
        o.lateFraction = late
        o.duplicateFraction = duplicate
        o.malformedFraction = malformed
        return o
    }

    /// The top-level elements of a batch, as bytes, split by the decoder's own element finder.
    static func elements(_ payload: [UInt8]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var offset = 1  // past '['
        payload.withUnsafeBytes { raw in
            while offset < raw.count - 1 {
                let e = BeaconDecoder.element(of: raw, containing: offset)
                let start = e.baseAddress! - raw.baseAddress!
                out.append(Array(e))
                offset = start + e.count + 1  // past the ','
            }
        }
        return out
    }

    static func beacon(_ bytes: [UInt8]) -> Beacon? {
        guard case .beacon(let b)? = BeaconDecoder.decode(bytes).first else { return nil }
        return b
    }

    @Test func everyBeaconLeavesOnceInItsSessionsOrder() {
        let o = Self.options()
        let plain = Array(TrafficGenerator(o))
        let batched = Array(PlayerBatcher(TrafficGenerator(o), periodMs: 10_000))
        #expect(batched.count < plain.count / 2, "batches hold several beacons: \(batched.count) of \(plain.count)")

        var expected: [String: [[UInt8]]] = [:]    // per session, in delivery order
        var passedThrough: [[UInt8]] = []
        for m in plain {
            if m.beacon != nil && m.expectedReject == nil { expected[m.key, default: []].append(m.payload) }
            else { passedThrough.append(m.payload) }
        }
        var got: [String: [[UInt8]]] = [:]
        var unbatched: [[UInt8]] = []
        for m in batched {
            guard m.payload.first == UInt8(ascii: "["), m.beacon == nil, m.expectedReject == nil,
                  !m.key.hasPrefix("bad-") else {
                unbatched.append(m.payload)
                continue
            }
            let items = Self.elements(m.payload)
            #expect(!items.isEmpty && items.count <= PlayerBatching.maxBeacons)
            #expect(m.payload.count <= PlayerBatching.maxBytes)
            for (i, item) in items.enumerated() {
                let b = Self.beacon(item)
                #expect(b?.sessionId == m.key, "a batch holds its own session's beacons only")
                if b?.event == .viewEnd { #expect(i == items.count - 1, "a view_end ends its batch") }
            }
            got[m.key, default: []].append(contentsOf: items)
        }
        #expect(got == expected)
        // Malformed payloads (including the one that is itself an array) pass through as they are.
        #expect(unbatched.sorted { $0.lexicographicallyPrecedes($1) } == passedThrough.sorted { $0.lexicographicallyPrecedes($1) })
    }

    @Test func aBeaconLeavesWithinThePeriodAndBatchesLeaveInTimeOrder() {
        let o = Self.options(late: 0, duplicate: 0, malformed: 0)
        let period: Int64 = 7_000
        var last: Int64 = .min
        var n = 0
        for m in PlayerBatcher(TrafficGenerator(o), periodMs: period) {
            #expect(m.ts >= last, "batches leave in time order")
            last = m.ts
            for item in Self.elements(m.payload) {
                let b = Self.beacon(item)!
                #expect(b.ts <= m.ts && m.ts - b.ts <= period, "beacon \(b.ts) left at \(m.ts)")
                n += 1
            }
        }
        #expect(n == Array(TrafficGenerator(o)).count)
    }

    @Test func aFullBatchLeavesEarly() {
        let o = Self.options(late: 0, duplicate: 0, malformed: 0)
        // An hour's batches, at most 5 beacons or 2 KiB each.
        let batched = Array(PlayerBatcher(TrafficGenerator(o), periodMs: 3_600_000, maxBeacons: 5, maxBytes: 2048))
        var sizes: [Int: Int] = [:]
        for m in batched {
            let count = Self.elements(m.payload).count
            #expect(count <= 5 && m.payload.count <= 2048)
            sizes[count, default: 0] += 1
        }
        #expect(sizes[5, default: 0] > sizes.values.reduce(0, +) / 2, "most batches are full: \(sizes)")
        #expect(sizes.values.reduce(0, +) == batched.count)
    }
}
