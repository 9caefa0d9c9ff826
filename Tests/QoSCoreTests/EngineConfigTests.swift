import QoSCore
import Testing

@Suite struct EngineConfigTests {
    /// Sessions store times as 32-bit offsets: a config whose session time
    /// span reaches 2^31 ms is refused with one line naming the fix.
    @Test func configRejectsATimeSpanPast2To31Ms() {
        #expect(EngineConfig().problem == nil)
        var c = EngineConfig()
        c.maxLatenessMs = EngineConfig.sessionTimeSpanMaxMs - c.sessionMaxMs - c.sessionTimeoutMs - c.latenessMs
        #expect(c.sessionTimeSpanMs == Int64(Int32.max) && c.problem == nil)
        c.maxLatenessMs += 1
        let message = c.problem ?? ""
        #expect(message.contains("max_lateness") && message.contains("24.8 days") && !message.contains("\n"))
        c.maxLatenessMs = .max
        #expect(c.sessionTimeSpanMs == .max && c.problem != nil)
        var negative = EngineConfig()
        negative.latenessMs = -1
        #expect(negative.problem?.contains("lateness") == true)
    }
}
