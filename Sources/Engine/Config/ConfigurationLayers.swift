import Foundation
import BoundedYAML
import Yams

/// Builds a `Configuration` from its layers: defaults < YAML config file <
/// `QOS_*` environment < flags. A later layer replaces a key of an earlier
/// one, except `kafka`, whose properties merge one by one. Each value keeps
/// where it came from, so an error names the file, variable or flag.
public struct ConfigurationLayers {
    enum Value {
        case text(String)
        case list([String])
        case map([String: String])
        var json: Any {
            switch self {
            case .text(let s): s
            case .list(let l): l
            case .map(let m): m
            }
        }
    }

    var values: [Configuration.Key: (value: Value, origin: ConfigurationOrigin)] = [:]
    var kafka: [String: String] = [:]

    public init() {}

    /// The environment variables that are not settings: `QOS_BIN` names the
    /// binary for the test suites and `make bench`.
    public static let environmentIgnored: Set<String> = ["QOS_BIN"]

    // MARK: Config file

    /// A config file is a few kilobytes; 16 MiB is far above any.
    static let fileBytesMax = 16 << 20

    public mutating func load(file path: String) throws {
        let text: String
        do { text = String(decoding: try Inspector.readFile(path, atMost: Self.fileBytesMax), as: UTF8.self) } catch let e as UserError {
            throw ConfigurationError.file("config file: \(e.message)")
        }
        try load(yaml: text, path: path)
    }

    /// A YAML mapping of keys. Scalars are read as written (`off` stays
    /// `off`, `2m` stays `2m`), not as YAML's booleans or numbers.
    public mutating func load(yaml text: String, path: String) throws {
        let origin = ConfigurationOrigin.file(path)
        let node: Node?
        do { node = try BoundedYAML.compose(yaml: text) } catch {
            let first = String(describing: error).split(separator: "\n").first ?? ""
            throw ConfigurationError.file("config file '\(path)' is not valid YAML: \(first) — fix its syntax")
        }
        guard let node else { return }  // an empty file sets nothing
        guard let map = node.mapping else {
            throw ConfigurationError.file("config file '\(path)' must be a YAML mapping of keys — e.g. window: 2m")
        }
        // A key written twice (also under its alias) would silently take the
        // last value: refused, naming both lines.
        var seen: [Configuration.Key: Node] = [:]
        func twice(_ what: String, _ first: Node, _ again: Node) -> ConfigurationError {
            let lines = [first, again].compactMap { $0.mark.map { String($0.line) } }
            return .file("config file '\(path)' sets \(what) twice\(lines.count == 2 ? " (lines \(lines[0]) and \(lines[1]))" : "") — keep one")
        }
        for (k, v) in map {
            guard let name = k.scalar?.string, let key = Configuration.Key(rawValue: name) ?? Configuration.Key.aliases[name] else {
                throw ConfigurationError.unknownKey(k.scalar?.string ?? "\(k)", origin: origin)
            }
            if let first = seen[key] { throw twice("'\(key.rawValue)'", first, k) }
            seen[key] = k
            func bad() -> ConfigurationError { .badValue(key, Self.shown(v), origin: origin) }
            switch key {
            case .kafka:
                guard let m = v.mapping else { throw bad() }
                var seenProperties: [String: Node] = [:]
                for (pk, pv) in m {
                    guard let name = pk.scalar?.string, let value = pv.scalar?.string, pv.null == nil else { throw bad() }
                    if let first = seenProperties[name] { throw twice("kafka property '\(name)'", first, pk) }
                    seenProperties[name] = pk
                    kafka[name] = value
                }
            case .fastly_fields:
                if let t = v.scalar?.string, v.null == nil {  // name=key,name=key
                    values[key] = (.text(t), origin)
                    continue
                }
                guard let m = v.mapping else { throw bad() }
                var map: [String: String] = [:], seenFields: [String: Node] = [:]
                for (mk, mv) in m {
                    guard let name = mk.scalar?.string, let value = mv.scalar?.string, mv.null == nil else { throw bad() }
                    if let first = seenFields[name] { throw twice("fastly_fields '\(name)'", first, mk) }
                    seenFields[name] = mk
                    map[name] = value
                }
                values[key] = (.map(map), origin)
            case .alerts:
                // Kept as YAML text: the rules parse the same from every layer.
                // A scalar is flow text, as in the environment.
                let text = v.null != nil ? "" : v.scalar?.string ?? ((try? Yams.serialize(node: v)) ?? "")
                values[key] = (.text(text), origin)
            case .geoip_db, .topics:
                if let seq = v.sequence {
                    let paths = seq.compactMap { $0.null == nil ? $0.scalar?.string : nil }
                    guard paths.count == seq.count else { throw bad() }
                    values[key] = (.list(paths), origin)
                } else if let s = v.scalar?.string, v.null == nil {
                    values[key] = (.list([s]), origin)
                } else {
                    throw bad()
                }
            default:
                guard let s = v.scalar?.string, v.null == nil else { throw bad() }
                values[key] = (.text(s), origin)
            }
        }
    }

    /// A YAML node as text for an error message.
    static func shown(_ n: Node) -> String {
        if n.null != nil { return "" }
        if let s = n.scalar?.string { return s }
        return ((try? Yams.serialize(node: n)) ?? "\(n)").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: Environment

    /// `QOS_<KEY>=value`; `QOS_GEOIP_DB` and `QOS_TOPICS` are comma-separated; `QOS_KAFKA_<PROP>`
    /// sets a librdkafka property (underscores become dots).
    public mutating func load(environment: [(name: String, value: String)]) throws {
        for (name, value) in environment where name.hasPrefix("QOS_") && !Self.environmentIgnored.contains(name) {
            let origin = ConfigurationOrigin.environment(name)
            let rest = name.dropFirst(4).lowercased()
            if rest.hasPrefix("kafka_") && rest.count > 6 {
                kafka[String(rest.dropFirst(6).map { $0 == "_" ? "." : $0 })] = value
                continue
            }
            guard let key = Configuration.Key(rawValue: rest) ?? Configuration.Key.aliases[rest], key != .kafka else {
                throw ConfigurationError.unknownKey(rest, origin: origin)
            }
            if key == .geoip_db || key == .topics {
                values[key] = (.list(value.split(separator: ",").map(String.init)), origin)
            } else {
                values[key] = (.text(value), origin)
            }
        }
    }

    /// This process's environment.
    public static func processEnvironment() -> [(name: String, value: String)] {
        ProcessInfo.processInfo.environment.map { (name: $0.key, value: $0.value) }.sorted { $0.name < $1.name }
    }

    // MARK: Flags

    /// A flag's value (nil: the flag was not given).
    public mutating func set(_ key: Configuration.Key, flag value: String?) {
        guard let value else { return }
        values[key] = (.text(value), .flag(key.flag))
    }

    /// `--geoip-db`, repeatable (empty: not given).
    public mutating func set(geoipDb paths: [String]) {
        guard !paths.isEmpty else { return }
        values[.geoip_db] = (.list(paths), .flag(Configuration.Key.geoip_db.flag))
    }

    /// `--topic NAME[:FORMAT]`, repeatable (empty: not given).
    public mutating func set(topics: [String]) {
        guard !topics.isEmpty else { return }
        values[.topics] = (.list(topics), .flag(Configuration.Key.topics.flag))
    }

    /// `--kafka key=value`, repeatable.
    public mutating func set(kafka pairs: [String]) throws {
        for kv in pairs {
            guard let eq = kv.firstIndex(of: "="), eq != kv.startIndex else {
                throw ConfigurationError.invalid("--kafka '\(kv)': expected key=value, e.g. --kafka security.protocol=SSL")
            }
            kafka[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
        }
    }

    // MARK: Resolve

    /// The configuration these layers give, or the first problem.
    public func resolve() throws -> Configuration {
        var object: [String: Any] = [:]
        for (k, v) in values { object[k.rawValue] = v.value.json }
        if !kafka.isEmpty { object[Configuration.Key.kafka.rawValue] = kafka }
        let data = try JSONSerialization.data(withJSONObject: object)
        do {
            return try JSONDecoder().decode(Configuration.self, from: data)
        } catch ConfigurationError.badValue(let k, let v, nil) {
            throw ConfigurationError.badValue(k, v, origin: values[k]?.origin)
        } catch ConfigurationError.alertRule(let e, nil) {
            throw ConfigurationError.alertRule(e, origin: values[.alerts]?.origin)
        }
    }
}
