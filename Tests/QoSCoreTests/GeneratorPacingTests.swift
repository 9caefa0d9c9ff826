import Generator
import QoSCore
import Testing

/// Real-time generation against an injected clock: a beacon is never
/// handed out before the wall clock has reached its `ts` (README, `qos generate`).
@Suite struct GeneratorPacingTests {
    /// A clock that only moves when the pacer waits.
    final class FakeClock: @unchecked Sendable {
        var nowMs: Int64
        init(_ t: Int64) { nowMs = t }
    }

    static let startMs: Int64 = 1_780_000_000_000

    func options(rate: Double) -> GeneratorOptions {
        var o = GeneratorOptions()
        o.seed = 5
        o.sessions = 3000
        o.rate = rate
        o.startMs = GeneratorPacingTests.startMs
        o.lateFraction = 0.01
        o.duplicateFraction = 0.01
        o.malformedFraction = 0.05
        return o
    }

    @Test func realTimeEventTimesNeverRunAheadOfTheClock() {
        let clock = FakeClock(GeneratorPacingTests.startMs)
        let o = options(rate: 2000)
        let pacer = RealTimePacer(TrafficGenerator(o), eventStartMs: o.startMs,
                                  clock: { clock.nowMs }, wait: { clock.nowMs += $0 })
        var n = 0, ahead = 0, maxLeadMs: Int64 = 0
        for m in pacer.prefix(20_000) {
            n += 1
            if m.ts > clock.nowMs { ahead += 1; maxLeadMs = max(maxLeadMs, m.ts - clock.nowMs) }
        }
        #expect(n == 20_000)
        #expect(ahead == 0, "\(ahead) of \(n) beacons ahead of the clock, by up to \(maxLeadMs) ms")
    }

    @Test func timeLapseNeverRunsAheadOfTheClockEither() {
        // `qos demo`: event time from 20 min in the past at ×10.
        let clock = FakeClock(GeneratorPacingTests.startMs + 1_200_000)
        let o = options(rate: 3000)
        let pacer = RealTimePacer(TrafficGenerator(o), eventStartMs: o.startMs, speed: 10,
                                  clock: { clock.nowMs }, wait: { clock.nowMs += $0 })
        var ahead = 0
        for m in pacer.prefix(15_000) where m.ts > clock.nowMs { ahead += 1 }
        #expect(ahead == 0)
        #expect(clock.nowMs > GeneratorPacingTests.startMs + 1_200_000)
    }

    @Test func futureFractionInjectsBeaconsTenToSixtyMinutesAheadDeterministically() {
        var o = options(rate: 2000)
        o.sessions = 300
        o.lateFraction = 0
        o.duplicateFraction = 0
        o.futureFraction = 0.02
        let a = Array(TrafficGenerator(o)), b = Array(TrafficGenerator(o))
        let same = a.map(\.payload) == b.map(\.payload)
        #expect(same)
        let future = a.filter { $0.expectedReject == "ts_in_future" }
        let share = Double(future.count) / Double(a.count)
        #expect(share > 0.01 && share < 0.03)
        // Each is 10–60 min ahead of the beacon it follows (without late copies, the newest).
        var maxTs = Int64.min, outOfRange = 0
        for m in a {
            if m.expectedReject == "ts_in_future" {
                if !(600_000...3_600_000).contains(m.ts - maxTs) { outOfRange += 1 }
            } else if m.expectedReject == nil {
                maxTs = max(maxTs, m.ts)
            }
        }
        #expect(outOfRange == 0)
        // In real time they leave at once, without holding the others back.
        let clock = FakeClock(o.startMs)
        var ahead = 0, wrong = 0
        for m in RealTimePacer(TrafficGenerator(o), eventStartMs: o.startMs, clock: { clock.nowMs },
                               wait: { clock.nowMs += $0 }) where m.ts > clock.nowMs {
            if m.expectedReject != "ts_in_future" { wrong += 1 }
            ahead += 1
        }
        #expect(ahead == future.count && wrong == 0)
        o.futureFraction = 0
        #expect(!TrafficGenerator(o).contains { $0.expectedReject == "ts_in_future" })
    }

    @Test func warmStartSendsSteadyStateTrafficFromTheFirstMinute() {
        // Beacons per 5 min of event time, cold and after a 40 min warm start.
        func density(warmMs: Int64) -> [Int] {
            var o = GeneratorOptions()
            o.rate = 40
            o.startMs = GeneratorPacingTests.startMs
            o.warmStartMs = warmMs
            o.sessions = Int(40 * Double(warmMs + 1_500_000) / 70_000)
            var bins = [Int](repeating: 0, count: 5)
            for m in TrafficGenerator(o) {
                #expect(m.ts >= o.startMs)
                let i = Int((m.ts - o.startMs) / 300_000)
                if i < bins.count { bins[i] += 1 }
            }
            return bins
        }
        let cold = density(warmMs: 0), warm = density(warmMs: 2_400_000)
        // Cold traffic builds up (sessions last long); warm traffic starts near its level.
        #expect(Double(cold[0]) < 0.6 * Double(warm[0]))
        #expect(Double(warm[0]) > 0.85 * Double(warm[4]))
    }
}
