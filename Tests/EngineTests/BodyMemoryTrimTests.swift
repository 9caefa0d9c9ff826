import Testing
@testable import Engine

/// When the collector gives request-body memory back (`BodyMemoryTrim`):
/// after a burst, once no body is held, at most once per interval.
@Suite struct BodyMemoryTrimTests {
    func check(_ t: inout BodyMemoryTrim, heldBytes: Int, nowSeconds: Double) -> Bool {
        t.check(heldBytes: heldBytes, nowSeconds: nowSeconds)
    }

    @Test func trimsOnceAfterABurstEndsAndNeverWhileBodiesAreHeld() {
        var released = 0
        var t = BodyMemoryTrim(nowSeconds: 0) { released += 1 }
        let burst = BodyMemoryTrim.burstBytes, later = BodyMemoryTrim.intervalSeconds
        // Small traffic: nothing to give back.
        #expect(check(&t, heldBytes: 1 << 20, nowSeconds: later) == false)
        #expect(check(&t, heldBytes: 0, nowSeconds: later + 1) == false)
        // A burst: nothing while bodies are held, then once when none is.
        t.observe(heldBytes: burst)
        #expect(check(&t, heldBytes: burst / 2, nowSeconds: later + 2) == false)
        #expect(check(&t, heldBytes: 0, nowSeconds: later + 3) == true)
        #expect(check(&t, heldBytes: 0, nowSeconds: 3 * later) == false)      // no burst since
        // Another burst soon after: waits for the interval.
        t.observe(heldBytes: 2 * burst)
        #expect(check(&t, heldBytes: 0, nowSeconds: later + 4) == false)
        #expect(check(&t, heldBytes: 0, nowSeconds: 2 * later + 4) == true)
        #expect(released == 2 && t.trims == 2)
    }
}
