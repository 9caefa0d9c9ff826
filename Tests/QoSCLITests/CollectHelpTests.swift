import Engine
import Testing
@testable import qos

/// `qos collect`'s flags and their defaults are the collector's.
@Suite struct CollectHelpTests {
    @Test func defaultsAreTheCollectorsDefaults() throws {
        let o = try Collect.parse([]).options()
        let d = Collector.Options()
        #expect(o.port == d.port && o.host == d.host && o.bodyBytesMax == d.bodyBytesMax)
        #expect(o.requestTimeoutSeconds == d.requestTimeoutSeconds && o.connectionsMax == d.connectionsMax)
        #expect(o.ratePerSecond == d.ratePerSecond && o.rateBurst == d.rateBurst && o.bufferMessages == d.bufferMessages)
        #expect(o.recordsPerRequestMax == d.recordsPerRequestMax)
        #expect(o.corsOrigins == ["*"] && o.trustedProxies.isEmpty && o.beaconsTopic == "beacons" && o.cmcdTopic == "cmcd")
    }

    @Test func flagsReachTheOptions() throws {
        let o = try Collect.parse(["--cors-origin", "https://a.example", "--trusted-proxy", "10.0.0.0/8",
                                   "--max-body", "4096", "--rate", "5", "--buffer", "10", "--max-records", "7"]).options()
        #expect(o.corsOrigins == ["https://a.example"] && o.trustedProxies.map(\.description) == ["10.0.0.0/8"])
        #expect(o.bodyBytesMax == 4096 && o.ratePerSecond == 5 && o.bufferMessages == 10 && o.recordsPerRequestMax == 7)
        #expect(throws: (any Error).self) { try Collect.parse(["--max-records", "0"]) }
        #expect(throws: (any Error).self) { try Collect.parse(["--trusted-proxy", "nope"]) }
        let help = Collect.helpMessage(columns: 10_000)
        for endpoint in ["/v1/beacons", "/v1/cmcd", "/healthz", "/metrics", "Retry-After"] { #expect(help.contains(endpoint)) }
    }
}
