import Foundation
import Generator
import QoSCore
import Testing

/// `qos generate --cdn-logs`: the CDN's access log of the same traffic the
/// beacons describe (README, `qos generate --cdn-logs`).
@Suite struct CdnLogGeneratorTests {
    func options() -> GeneratorOptions {
        var o = GeneratorOptions()
        o.seed = 11
        o.sessions = 400
        o.slowPop = "fastly/ams"
        o.lateFraction = 0.02
        o.duplicateFraction = 0.05
        o.malformedFraction = 0.01
        return o
    }

    struct Request: Hashable { var session: String; var seq: UInt32 }

    @Test func oneRecordPerSegmentRequestWithTheBeaconsFacts() throws {
        // The segment requests as the beacons report them (duplicates once).
        var beacons: [Request: Beacon] = [:]
        for m in TrafficGenerator(options()) {
            guard let b = m.beacon, b.event == .segment else { continue }
            beacons[Request(session: b.sessionId, seq: b.seq!)] = b
        }
        #expect(beacons.count > 1000)

        var logged: [Request: [String: Any]] = [:]
        var popOfSession: [String: String] = [:]
        for m in TrafficGenerator(options()) {
            if let b = m.beacon, b.event == .viewStart { popOfSession[b.sessionId] = b.pop }
        }
        for m in CdnLogGenerator(options(), format: .edgecast) {
            let r = try #require(try JSONSerialization.jsonObject(with: Data(m.payload)) as? [String: Any])
            let seq = UInt32(((r["path"] as! String).split(separator: "/").last!.dropFirst(3).dropLast(3)))!
            let req = Request(session: m.key, seq: seq)
            #expect(logged[req] == nil, "a request is logged once, even when its beacon was delivered twice")
            logged[req] = r
        }
        #expect(Set(logged.keys) == Set(beacons.keys))
        var warmStartSessions = 0
        for (req, r) in logged {
            let b = beacons[req]!
            if let pop = popOfSession[req.session] { #expect(r["pop"] as? String == pop) } else { warmStartSessions += 1 }
            #expect((r["timestamp"] as! Double) * 1000 >= Double(b.ts))
            #expect(abs((r["write_time"] as! Double) * 1000 - Double(b.downloadMs!)) < 0.001)
            #expect(r["cache_status"] as? String == (b.cache == "HIT" ? "TCP_HIT" : "TCP_MISS"))
            let status = r["status_code"] as! Int
            if b.httpStatus == 0 {
                #expect(status == 200 && r["last_byte_served"] as? Int == 0)
            } else {
                #expect(Int64(status) == b.httpStatus! && r["last_byte_served"] as? Int == 1)
            }
            let path = r["rewritten_path"] as! String
            #expect(path.hasPrefix("/\(CdnLogGenerator.account)/"))
            #expect(CdnLogGenerator.owners.contains { path.contains("/slices/\($0.prefix(3))/\($0)/") })
        }
        #expect(warmStartSessions == 0)
    }

    @Test func theDegradedPopIsSlowInTheLogsToo() throws {
        var slow: [String: (all: Int, slow: Int)] = [:]
        for m in CdnLogGenerator(options(), format: .edgecast) {
            let r = try #require(try JSONSerialization.jsonObject(with: Data(m.payload)) as? [String: Any])
            let pop = r["pop"] as! String
            slow[pop, default: (0, 0)].all += 1
            if (r["write_time"] as! Double) > 0.2 { slow[pop, default: (0, 0)].slow += 1 }
        }
        let ams = try #require(slow["ams"])
        let others = slow.filter { $0.key != "ams" }.values
        let otherShare = Double(others.map(\.slow).reduce(0, +)) / Double(others.map(\.all).reduce(0, +))
        #expect(Double(ams.slow) / Double(ams.all) > 3 * otherShare)
    }

    @Test func stampingSegmentsLeavesTheBeaconTrafficAsItWas() {
        var stamped = options()
        stamped.stampSegments = true
        var a = TrafficGenerator(options()), b = TrafficGenerator(stamped)
        while true {
            let x = a.next(), y = b.next()
            #expect(x?.key == y?.key && x?.ts == y?.ts && x?.beacon?.seq == y?.beacon?.seq)
            if x?.beacon?.event != .segment { #expect(x?.payload == y?.payload) }
            if x == nil || y == nil { #expect(x == nil && y == nil); break }
        }
    }
}
