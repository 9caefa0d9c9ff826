import QoSCore
import BoundedYAML
import Yams

/// One alert rule of the `alerts:` setting (README "Alerts", docs/semantics.md
/// §7): a metric of one table, per group of dimension values, compared with a
/// fixed limit or with a multiple of the same group's trailing hour.
public struct AlertRule: Equatable, Sendable {
    public enum Condition: Equatable, Sendable {
        /// value > limit.
        case above(Double)
        /// value < limit.
        case below(Double)
        /// value > factor × the group's trailing-hour baseline.
        case aboveTrailingHour(Double)
        /// value < factor × the group's trailing-hour baseline.
        case belowTrailingHour(Double)

        public var isRelative: Bool {
            switch self {
            case .above, .below: false
            case .aboveTrailingHour, .belowTrailingHour: true
            }
        }
    }

    public var name: String
    public var table: String
    public var metric: AlertMetric
    /// The dimensions a group is made of (rows with the same values are summed).
    public var by: [String]
    /// Only rows whose dimension equals one of the listed values count.
    public var filter: [String: [String]]
    /// Rows whose dimension equals one of the listed values do not count (`where_not`).
    public var exclude: [String: [String]] = [:]
    public var condition: Condition
    /// Groups whose volume (the metric's denominator, `AlertMetric.volumeName`) is
    /// below this are not evaluated (and do not enter the baseline).
    public var minVolume: Int64
    /// Relative rules: the group's history must reach this far back before it can fire.
    public var warmupMs: Int64
    /// An active alert of a group ends after this long without the condition.
    public var resolveAfterMs: Int64
    /// An http:// URL that receives each firing as a JSON POST.
    public var webhook: String?

    public static let trailingMs: Int64 = 3_600_000
    public static let defaultWarmupMs: Int64 = 1_800_000
    public static let defaultResolveAfterMs: Int64 = 600_000

    /// The dimensions of `table` a rule may group or filter by.
    public static func dimensions(of table: String) -> [String]? {
        if let t = MetricTable.allCases.first(where: { $0.name == table }) { return t.dimensions }
        if table == TableSchemas.cdnEdgeTable { return CdnEdgeKey.dimensions }
        if table == "sessions" { return AlertSums.sessionDimensions }
        return nil
    }

    /// The tables a rule may read.
    public static let tables = MetricTable.allCases.map(\.name) + ["sessions", TableSchemas.cdnEdgeTable]
}

/// A rule that cannot be used: which rule (its index in the list, from 0),
/// which field, and what is wrong — one line.
public struct AlertRuleError: OperatorError, Equatable {
    public let index: Int?
    public let field: String?
    public let problem: String

    public init(index: Int?, field: String?, _ problem: String) {
        self.index = index
        self.field = field
        self.problem = problem
    }

    public var description: String {
        var at = "alerts"
        if let index { at += "[\(index)]" }
        if let field { at += ".\(field)" }
        return "\(at): \(problem)"
    }
}

public enum AlertRules {
    /// The rules of `qos demo`: one for each incident it injects — the
    /// degraded PoP, the broken player version, the slow-startup episode
    /// (README "Alerts"; a test checks each fires exactly once).
    public static let demo = """
        - name: degraded-pop
          table: cdn
          metric: failed_request_rate
          above: 0.03
          min_volume: 200
        - name: broken-player-version
          table: sessions
          by: [player_name, player_version]
          where_not: {player_name: unknown}
          metric: vsf_rate
          above: 0.2
          min_volume: 50
          resolve_after: 30m
        - name: slow-startup
          table: overall
          metric: startup_ms_p50
          above_trailing_hour: 2
          warmup: 2m
          min_volume: 100
        """

    static let fields = ["name", "table", "metric", "by", "where", "where_not", "above", "below", "above_trailing_hour",
                         "below_trailing_hour", "min_volume", "warmup", "resolve_after", "webhook"]
    static let conditions = ["above", "below", "above_trailing_hour", "below_trailing_hour"]

    /// The rules in YAML text: a list of mappings (a block in the config
    /// file, flow style — `[{table: cdn, metric: rebuffer_ratio, above: 0.05}]`
    /// — in the environment or a flag). Empty text: no rules.
    public static func parse(yaml text: String) throws -> [AlertRule] {
        let node: Node?
        do { node = try BoundedYAML.compose(yaml: text) } catch {
            let first = String(describing: error).split(separator: "\n").first ?? ""
            throw AlertRuleError(index: nil, field: nil, "not valid YAML (\(first)) — write a list of rules, e.g. [{table: cdn, metric: rebuffer_ratio, above: 0.05}]")
        }
        guard let node, node.null == nil else { return [] }
        guard let list = node.sequence else {
            throw AlertRuleError(index: nil, field: nil, "must be a list of rules, each a mapping with table, metric and one of \(conditions.joined(separator: ", "))")
        }
        var rules: [AlertRule] = []
        var names = Set<String>()
        for (i, item) in list.enumerated() {
            let r = try parse(item, index: i)
            guard names.insert(r.name).inserted else {
                throw AlertRuleError(index: i, field: "name", "'\(r.name)' is the name of an earlier rule — give each rule its own name")
            }
            rules.append(r)
        }
        return rules
    }

    static func parse(_ node: Node, index i: Int) throws -> AlertRule {
        func fail(_ field: String?, _ problem: String) -> AlertRuleError { AlertRuleError(index: i, field: field, problem) }
        guard let map = node.mapping else { throw fail(nil, "is not a mapping — each rule is e.g. {table: cdn, metric: rebuffer_ratio, above: 0.05}") }
        var fields: [String: Node] = [:]
        for (k, v) in map {
            guard let key = k.scalar?.string, AlertRules.fields.contains(key) else {
                throw fail(k.scalar?.string ?? "?", "unknown field — valid fields: \(AlertRules.fields.joined(separator: ", "))")
            }
            fields[key] = v
        }
        func scalar(_ f: String) throws -> String? {
            guard let v = fields[f] else { return nil }
            guard v.null == nil, let s = v.scalar?.string, !s.isEmpty else { throw fail(f, "'\(ConfigurationLayers.shown(v))' is not a non-empty value") }
            return s
        }
        func number(_ f: String) throws -> Double? {
            guard let s = try scalar(f) else { return nil }
            guard let d = Double(s), d.isFinite else { throw fail(f, "'\(s)' is not a number") }
            return d
        }
        func duration(_ f: String, default d: Int64) throws -> Int64 {
            guard let s = try scalar(f) else { return d }
            guard let ms = DurationText.milliseconds(s), ms > 0, ms <= AlertRule.trailingMs else {
                throw fail(f, "'\(s)' is not a duration from 1s to 1h such as 30m")
            }
            return ms
        }

        guard let table = try scalar("table") else { throw fail("table", "missing — one of \(AlertRule.tables.joined(separator: ", "))") }
        guard let dims = AlertRule.dimensions(of: table) else {
            throw fail("table", "'\(table)' is not a table alerts can read — one of \(AlertRule.tables.joined(separator: ", "))")
        }
        guard let metricName = try scalar("metric") else {
            throw fail("metric", "missing — metrics of \(table): \(AlertMetric.names(table: table))")
        }
        guard let metric = AlertMetric(rawValue: metricName), metric.tables.contains(table) else {
            throw fail("metric", "'\(metricName)' is not a metric of table \(table) — one of \(AlertMetric.names(table: table))")
        }
        var by = table == "sessions" ? [] : dims
        if let v = fields["by"] {
            let list = v.sequence.map { $0.compactMap { $0.null == nil ? $0.scalar?.string : nil } } ?? v.scalar.map { [$0.string] }
            guard let list, list.count == (v.sequence?.count ?? 1) else { throw fail("by", "'\(ConfigurationLayers.shown(v))' is not a list of dimensions") }
            for d in list where !dims.contains(d) {
                throw fail("by", "'\(d)' is not a dimension of table \(table) — one of \(dims.joined(separator: ", "))")
            }
            by = dims.filter { list.contains($0) }  // the table's order
        }
        func valueFilter(_ field: String) throws -> [String: [String]] {
            guard let v = fields[field] else { return [:] }
            guard let m = v.mapping else { throw fail(field, "'\(ConfigurationLayers.shown(v))' is not a mapping of dimension: value (or a list of values)") }
            var out: [String: [String]] = [:]
            for (k, val) in m {
                guard let d = k.scalar?.string, dims.contains(d) else {
                    throw fail(field, "'\(k.scalar?.string ?? "?")' is not a dimension of table \(table) — one of \(dims.joined(separator: ", "))")
                }
                let values = val.sequence.map { $0.compactMap { $0.null == nil ? $0.scalar?.string : nil } }
                    ?? (val.null == nil ? val.scalar.map { [$0.string] } : nil)
                guard let values, !values.isEmpty, values.count == (val.sequence?.count ?? 1) else {
                    throw fail(field, "the value of '\(d)' is not a value or a list of values")
                }
                out[d] = values
            }
            return out
        }
        let filter = try valueFilter("where")
        let exclude = try valueFilter("where_not")
        let given = AlertRules.conditions.filter { fields[$0] != nil }
        guard given.count == 1 else {
            throw fail(given.isEmpty ? "above" : given[1], given.isEmpty
                ? "missing — give one of \(AlertRules.conditions.joined(separator: ", "))"
                : "a rule has one condition, but \(given.joined(separator: " and ")) are given")
        }
        let limit = try number(given[0])!
        let condition: AlertRule.Condition
        switch given[0] {
        case "above": condition = .above(limit)
        case "below": condition = .below(limit)
        default:
            guard limit > 0 else { throw fail(given[0], "'\(limit)' is not a factor > 0 (e.g. 2 for twice the trailing hour)") }
            condition = given[0] == "above_trailing_hour" ? .aboveTrailingHour(limit) : .belowTrailingHour(limit)
        }
        var minVolume: Int64 = 1
        if let s = try scalar("min_volume") {
            guard let n = Int64(s), n >= 0 else { throw fail("min_volume", "'\(s)' is not an integer ≥ 0 (the least \(metric.volumeName) a group needs)") }
            minVolume = n
        }
        let warmup = try duration("warmup", default: AlertRule.defaultWarmupMs)
        if fields["warmup"] != nil && !condition.isRelative {
            throw fail("warmup", "only a rule with above_trailing_hour or below_trailing_hour has a warm-up")
        }
        let resolve = try duration("resolve_after", default: AlertRule.defaultResolveAfterMs)
        let webhook = try scalar("webhook")
        if let w = webhook, WebhookURL(w) == nil {
            throw fail("webhook", "'\(w)' is not an http:// URL with a host (https is not supported: put a relay in front)")
        }
        if let n = try scalar("name"), n.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw fail("name", "contains a control character (a newline?) — a name is one line of text")
        }
        let name = try scalar("name") ?? "\(table).\(metric.rawValue) \(given[0].replacingOccurrences(of: "_", with: " ")) \(AlertEvaluator.format(limit))"
        return AlertRule(name: name, table: table, metric: metric, by: by, filter: filter, exclude: exclude,
                         condition: condition, minVolume: minVolume, warmupMs: warmup, resolveAfterMs: resolve,
                         webhook: webhook)
    }
}
