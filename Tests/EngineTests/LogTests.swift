import Testing
@testable import Engine

/// Log levels come from the call, never from the message text.
@Suite struct LogTests {
    @Test func levelIsTheCallersNotGuessedFromText() {
        // Before: a message mentioning "DATA LOSS" or "kafka:" was upgraded
        // to error/warn whatever the caller meant.
        #expect(logfmt("retention is fine: no DATA LOSS here").contains(" level=info "))
        #expect(logfmt("qos run: kafka: connected").contains(" level=info "))
        #expect(logfmt(level: .error, message: "x").contains(" level=error "))
        #expect(logfmt(level: .warn, message: "x").contains(" level=warn "))
    }

    @Test func lineShapeAndEscaping() {
        let line = logfmt(level: .warn, message: #"a "quoted" \ back"#, nowMs: 0)
        #expect(line == #"ts=1970-01-01T00:00:00Z level=warn msg="a \"quoted\" \\ back""# + "\n")
    }

    @Test func loggerRoutesEachLevel() {
        var seen: [(LogLevel, String)] = []
        let log = Logger { seen.append(($0, $1)) }
        log("i"); log.warn("w"); log.error("e")
        #expect(seen.map(\.0) == [.info, .warn, .error])
        #expect(seen.map(\.1) == ["i", "w", "e"])
    }
}
