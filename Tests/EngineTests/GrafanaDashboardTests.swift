import Foundation
import QoSCore
import Testing
@testable import Engine

/// deploy/grafana/videoqos-daemon.json is a Grafana dashboard over the
/// daemon's /metrics: valid JSON of the shape Grafana imports, every query
/// naming metrics the daemon exports, and every exported metric on a panel.
@Suite struct GrafanaDashboardTests {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("deploy/grafana/videoqos-daemon.json")

    func dashboard() throws -> [String: Any] {
        let data = try Data(contentsOf: Self.path)
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The metric names of the exposition of a status with every field set.
    func exported() -> Set<String> {
        var s = RunStatus()
        s.counters.rejected = ["invalid_json": 1]
        s.watermarkMs = 1
        s.lag = [0: 1]
        let text = MetricsServer.render(s)
        return Set(text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { String($0.split(separator: " ")[2]) })
    }

    func expressions(_ d: [String: Any]) throws -> [String] {
        let panels = try #require(d["panels"] as? [[String: Any]])
        return panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
    }

    func metricNames(_ expr: String) -> Set<String> {
        var out = Set<String>()
        var i = expr.startIndex
        while let r = expr[i...].range(of: "qos_") {
            var j = r.lowerBound
            while j < expr.endIndex, expr[j].isLetter || expr[j].isNumber || expr[j] == "_" { j = expr.index(after: j) }
            out.insert(String(expr[r.lowerBound..<j]))
            i = j
        }
        return out
    }

    @Test func isADashboardGrafanaImports() throws {
        let d = try dashboard()
        #expect(d["title"] as? String == "VideoQoS daemon")
        #expect((d["uid"] as? String)?.isEmpty == false)
        #expect(d["schemaVersion"] is Int)
        let panels = try #require(d["panels"] as? [[String: Any]])
        #expect(!panels.isEmpty)
        let ids = panels.compactMap { $0["id"] as? Int }
        #expect(ids.count == panels.count && Set(ids).count == ids.count, "every panel has a unique id")
        for p in panels {
            let grid = try #require(p["gridPos"] as? [String: Int], "panel \(p["title"] ?? "?") lacks gridPos")
            #expect(grid["w"]! > 0 && grid["h"]! > 0 && grid["x"]! + grid["w"]! <= 24)
            let targets = try #require(p["targets"] as? [[String: Any]])
            #expect(!targets.isEmpty && targets.allSatisfy { ($0["expr"] as? String)?.isEmpty == false })
        }
        let vars = try #require((d["templating"] as? [String: Any])?["list"] as? [[String: Any]])
        #expect(Set(vars.compactMap { $0["name"] as? String }) == ["datasource", "job", "instance"])
    }

    @Test func queriesNameOnlyExportedMetricsAndEveryMetricIsShown() throws {
        let exported = exported()
        #expect(exported.contains("qos_consumer_lag"))
        var used = Set<String>()
        for e in try expressions(try dashboard()) {
            let names = metricNames(e)
            #expect(!names.isEmpty, "a query without a qos metric: \(e)")
            #expect(names.isSubset(of: exported), "unknown metric in \(e): \(names.subtracting(exported))")
            used.formUnion(names)
            var depth = 0
            for c in e { if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }; #expect(depth >= 0) }
            #expect(depth == 0, "unbalanced parentheses: \(e)")
        }
        #expect(exported.subtracting(used).isEmpty, "metrics on no panel: \(exported.subtracting(used).sorted())")
    }
}
