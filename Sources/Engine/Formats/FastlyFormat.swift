import QoSCore
import BoundedYAML
import Yams

/// Which keys of a Fastly JSON log line hold the fields `cdn_edge` needs,
/// and in which units (README "Input: CDN access logs", Fastly). Fastly
/// logs whatever format string the customer configured, so the default
/// field set below is ours, documented with the VCL variable to log for
/// each key; a YAML mapping (`fastly_fields:`) maps a customer's own keys.
/// A nested key is written with dots (`event.status`).
public struct FastlyFieldMap: Sendable, Equatable {
    /// A logical field of a Fastly record.
    public enum Field: Int, CaseIterable, Sendable {
        case timestamp, status, elapsed, ttfb, bytes, cacheStatus, pop, clientIP, serviceId
    }

    /// How a time or duration value is written.
    public enum Unit: Sendable, Equatable {
        /// Timestamps: ISO 8601 text, or a number of Unix seconds.
        case auto
        case seconds, milliseconds, microseconds
    }

    /// The JSON key (dotted path) of each field, and its unit.
    public private(set) var keys: [Field: (key: String, unit: Unit)] = [:]

    public static func == (a: Self, b: Self) -> Bool {
        Field.allCases.allSatisfy { a.keys[$0]?.key == b.keys[$0]?.key && a.keys[$0]?.unit == b.keys[$0]?.unit }
    }

    /// The mapping names (`fastly_fields:` keys): a logical field, with the
    /// unit in the suffix where the field has one.
    static let names: [String: (Field, Unit)] = [
        "timestamp": (.timestamp, .auto), "timestamp_s": (.timestamp, .seconds),
        "timestamp_ms": (.timestamp, .milliseconds), "timestamp_us": (.timestamp, .microseconds),
        "status": (.status, .auto),
        "elapsed_us": (.elapsed, .microseconds), "elapsed_ms": (.elapsed, .milliseconds), "elapsed_s": (.elapsed, .seconds),
        "ttfb_s": (.ttfb, .seconds), "ttfb_ms": (.ttfb, .milliseconds), "ttfb_us": (.ttfb, .microseconds),
        "bytes": (.bytes, .auto), "cache_status": (.cacheStatus, .auto), "pop": (.pop, .auto),
        "client_ip": (.clientIP, .auto), "service_id": (.serviceId, .auto),
    ]

    /// The default field set: what a Fastly logging endpoint writes with the
    /// format string in README "Fastly".
    public static let `default` = FastlyFieldMap(defaults: [
        .timestamp: ("timestamp", .auto),            // %{strftime(\{"%Y-%m-%dT%H:%M:%S%z"\}, time.start)}V
        .status: ("status", .auto),                  // %{resp.status}V
        .elapsed: ("time_elapsed", .microseconds),   // %{time.elapsed.usec}V (%D)
        .ttfb: ("time_to_first_byte", .seconds),     // %{time.to_first_byte}V
        .bytes: ("resp_body_size", .auto),           // %{resp.body_bytes_written}V (%B)
        .cacheStatus: ("cache_status", .auto),       // %{fastly_info.state}V
        .pop: ("pop", .auto),                        // %{server.datacenter}V
        .clientIP: ("client_ip", .auto),             // %{req.http.Fastly-Client-IP}V
        .serviceId: ("service_id", .auto),           // %{req.service_id}V
    ])

    private init(defaults: [Field: (String, Unit)]) {
        for (f, v) in defaults { keys[f] = (v.0, v.1) }
    }

    /// The default set with `mapping`'s entries (mapping name → the log's
    /// key) replacing the defaults' keys. Throws a one-line error for an
    /// unknown name, an empty key or two units of one field.
    public init(mapping: [String: String]) throws {
        self = .default
        var seen: [Field: String] = [:]
        for (name, key) in mapping.sorted(by: { $0.key < $1.key }) {
            guard let (field, unit) = Self.names[name] else {
                throw UserError("unknown fastly_fields key '\(name)' — use one of: \(Self.names.keys.sorted().joined(separator: ", "))")
            }
            if let other = seen[field] {
                throw UserError("fastly_fields sets '\(other)' and '\(name)' — keep one unit per field")
            }
            guard !key.isEmpty else { throw UserError("fastly_fields key '\(name)' is empty — give the JSON key of your log") }
            seen[field] = name
            keys[field] = (key, unit)
        }
    }

    /// A YAML document with a `fastly_fields:` mapping (or the mapping
    /// itself), e.g. `fastly_fields: {status: resp_status, elapsed_ms: took}`.
    public init(yaml text: String) throws {
        let node: Node?
        do { node = try BoundedYAML.compose(yaml: text) } catch {
            let first = String(describing: error).split(separator: "\n").first ?? ""
            throw UserError("fastly_fields is not valid YAML: \(first) — fix its syntax")
        }
        guard let root = node?.mapping else {
            throw UserError("fastly_fields must be a YAML mapping — e.g. fastly_fields: {status: resp_status}")
        }
        let map = root["fastly_fields"]?.mapping ?? root
        var out: [String: String] = [:]
        for (k, v) in map {
            guard let name = k.scalar?.string, let key = v.scalar?.string, v.null == nil else {
                throw UserError("fastly_fields entries must be 'name: json_key' — fix '\(k.scalar?.string ?? "\(k)")'")
            }
            out[name] = key
        }
        try self.init(mapping: out)
    }
}

/// Fastly JSON logs (README "Input: CDN access logs", Fastly): one JSON
/// object per line (or per message; an array of objects too), its keys per
/// a `FastlyFieldMap`. Numbers may be plain or quoted; `-`, `""` and null
/// are absent. Owner is the service id; Fastly logs carry no account and no
/// "last byte served" flag.
public final class FastlyParser: CdnLogParser {
    public static let formatName = "fastly"

    public let fields: FastlyFieldMap
    private let lookup: [[UInt8]: FastlyFieldMap.Field]
    private var values = [FlatJSONValue?](repeating: nil, count: FastlyFieldMap.Field.allCases.count)

    public init(fields: FastlyFieldMap = .default) {
        self.fields = fields
        var l: [[UInt8]: FastlyFieldMap.Field] = [:]
        for (f, v) in fields.keys { l[Array(v.key.utf8)] = f }
        lookup = l
    }

    public func parse(_ message: UnsafeRawBufferPointer, _ emit: (CdnLogItem) -> Void) {
        FlatJSONMessage.forEachObject(message, emit) { r, start in
            for i in values.indices { values[i] = nil }
            guard r.readObject({ key, value in
                if let f = lookup[key] { values[f.rawValue] = value }
            }) else { return .reject(.invalidJSON, payload: start..<max(start, r.index)) }
            switch record(r) {
            case .success(let rec): return .record(rec.spanning(start..<r.index))
            case .failure(let e): return .reject(e.reason, payload: start..<r.index)
            }
        }
    }

    struct Reject: Error { let reason: RejectReason }

    private func key(_ f: FastlyFieldMap.Field) -> String { fields.keys[f]?.key ?? "" }
    private func value(_ f: FastlyFieldMap.Field) -> FlatJSONValue? { values[f.rawValue] }

    /// `v` in `unit` as seconds (`toMs`: as milliseconds). Divides rather
    /// than multiplies by a fraction, so 183512 µs is exactly 183.512 ms.
    static func convert(_ v: Double, _ unit: FastlyFieldMap.Unit, toMs: Bool) -> Double {
        switch (unit, toMs) {
        case (.auto, false), (.seconds, false): v
        case (.milliseconds, false): v / 1000
        case (.microseconds, false): v / 1_000_000
        case (.auto, true), (.seconds, true): v * 1000
        case (.milliseconds, true): v
        case (.microseconds, true): v / 1000
        }
    }

    /// The power of ten between `unit` and seconds (milliseconds: 3).
    static func secondsShift(_ unit: FastlyFieldMap.Unit) -> Int {
        switch unit {
        case .auto, .seconds: 0
        case .milliseconds: 3
        case .microseconds: 6
        }
    }

    private func record(_ r: FlatJSONReader) -> Result<CdnLogRecord, Reject> {
        func fail(_ reason: RejectReason) -> Result<CdnLogRecord, Reject> { .failure(Reject(reason: reason)) }
        // Time.
        let timeUnit = fields.keys[.timestamp]?.unit ?? .auto
        guard let tv = value(.timestamp), let tb = r.text(tv) else { return fail(.missingField(key(.timestamp))) }
        var timeMs: Int64?
        if CdnValues.double(tb) != nil {
            timeMs = CdnValues.wholeSecondMs(tb, shift: Self.secondsShift(timeUnit))
        } else if timeUnit == .auto {
            timeMs = CdnValues.iso8601Ms(tb)
        }
        guard let timeMs else { return fail(.invalidValue(key(.timestamp))) }
        // Status.
        let status: Int32
        switch r.status(value(.status)) {
        case .absent: return fail(.missingField(key(.status)))
        case .invalid: return fail(.invalidValue(key(.status)))
        case .value(let s): status = s
        }
        // Durations, to ms.
        var ms: [Double?] = []
        for f in [FastlyFieldMap.Field.elapsed, .ttfb] {
            switch r.double(value(f)) {
            case .absent: ms.append(nil)
            case .invalid: return fail(.invalidValue(key(f)))
            case .value(let v):
                guard v >= 0 else { return fail(.invalidValue(key(f))) }
                ms.append(Self.convert(v, fields.keys[f]?.unit ?? .seconds, toMs: true))
            }
        }
        var bytesOut: Int64 = 0
        switch r.integer(value(.bytes)) {
        case .absent: break
        case .invalid: return fail(.invalidValue(key(.bytes)))
        case .value(let b): bytesOut = b
        }
        return .success(CdnLogRecord(
            timeMs: timeMs, cdn: Self.formatName, owner: r.string(value(.serviceId)), pop: r.string(value(.pop)),
            status: status, serveMs: ms[0], ttfbMs: ms[1], bytesOut: bytesOut,
            cache: Self.cache(r.string(value(.cacheStatus))), clientIP: r.string(value(.clientIP)), incomplete: nil))
    }

    /// `fastly_info.state` (or an `X-Cache` list, whose last entry is the
    /// edge's): HIT… → hit (HIT, HIT-STALE, HIT-SYNTH, HIT-CLUSTER…), except
    /// HITPASS; MISS… and PASS…, HITPASS → miss; anything else (ERROR…) other.
    static func cache(_ state: String) -> CdnLogRecord.CacheOutcome {
        let last = state.split(separator: ",").last.map { $0.trimmingCharacters(in: .whitespaces).uppercased() } ?? ""
        if last.hasPrefix("HITPASS") { return .miss }
        if last.hasPrefix("HIT") { return .hit }
        if last.hasPrefix("MISS") || last.hasPrefix("PASS") { return .miss }
        return .other
    }
}
