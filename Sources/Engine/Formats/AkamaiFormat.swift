import QoSCore

/// Akamai DataStream 2 JSON logs (README "Input: CDN access logs", Akamai).
/// One message is one JSON object, an array of them, or newline-delimited
/// objects. DataStream writes numbers as strings (`"statusCode":"206"`) and
/// omits fields that are `-` or null; both plain and quoted numbers are read.
///
/// Fields: `reqTimeSec` (Unix seconds, fraction allowed) → time;
/// `statusCode`; `cacheStatus` (1 hit, 0 miss); `turnAroundTimeMSec` +
/// `transferTimeMSec` (ms) → serve time; `timeToFirstByte` (ms, when present; not a default field) → TTFB;
/// `cp` (CP code) → owner; `edgeIP` → PoP (DataStream 2 names no PoP: the
/// serving edge server's IP is the closest field); `bytes` (else
/// `totalBytes`) → bytes out; `cliIP` → client; `lastByte` (1 the last byte
/// was served, 0 not) → incomplete.
public final class AkamaiParser: CdnLogParser {
    public static let formatName = "akamai"

    public init() {}

    enum Field: Int, CaseIterable {
        case reqTimeSec, statusCode, cacheStatus, turnAroundTimeMSec, transferTimeMSec, timeToFirstByte
        case cp, edgeIP, bytes, totalBytes, cliIP, lastByte

        var key: String { String(describing: self) }
    }

    static let fields: [[UInt8]: Field] = Dictionary(uniqueKeysWithValues: Field.allCases.map { (Array($0.key.utf8), $0) })

    private var values = [FlatJSONValue?](repeating: nil, count: Field.allCases.count)

    public func parse(_ message: UnsafeRawBufferPointer, _ emit: (CdnLogItem) -> Void) {
        FlatJSONMessage.forEachObject(message, emit) { r, start in
            for i in values.indices { values[i] = nil }
            guard r.readObject({ key, value in
                if let f = AkamaiParser.fields[key] { values[f.rawValue] = value }
            }) else { return .reject(.invalidJSON, payload: start..<max(start, r.index)) }
            let range = start..<r.index
            switch record(r) {
            case .success(let rec): return .record(rec.spanning(range))
            case .failure(let reason): return .reject(reason.reason, payload: range)
            }
        }
    }

    struct Reject: Error { let reason: RejectReason }

    private func value(_ f: Field) -> FlatJSONValue? { values[f.rawValue] }

    private func record(_ r: FlatJSONReader) -> Result<CdnLogRecord, Reject> {
        func fail(_ reason: RejectReason) -> Result<CdnLogRecord, Reject> { .failure(Reject(reason: reason)) }
        let timeMs: Int64
        guard let tv = value(.reqTimeSec), let tb = r.text(tv) else { return fail(.missingField("reqTimeSec")) }
        guard let whole = CdnValues.wholeSecondMs(tb) else { return fail(.invalidValue("reqTimeSec")) }
        timeMs = whole
        let status: Int32
        switch r.status(value(.statusCode)) {
        case .absent: return fail(.missingField("statusCode"))
        case .invalid: return fail(.invalidValue("statusCode"))
        case .value(let s): status = s
        }
        var ms: [Double?] = []
        for f in [Field.turnAroundTimeMSec, .transferTimeMSec, .timeToFirstByte] {
            switch r.double(value(f)) {
            case .absent: ms.append(nil)
            case .invalid: return fail(.invalidValue(f.key))
            case .value(let v):
                guard v >= 0 else { return fail(.invalidValue(f.key)) }
                ms.append(v)
            }
        }
        let serveMs: Double? = ms[0] == nil && ms[1] == nil ? nil : (ms[0] ?? 0) + (ms[1] ?? 0)
        var bytesOut: Int64 = 0
        var bytesSeen = false
        for f in [Field.bytes, .totalBytes] where !bytesSeen {
            switch r.integer(value(f)) {
            case .absent: continue
            case .invalid: return fail(.invalidValue(f.key))
            case .value(let b): bytesOut = b; bytesSeen = true
            }
        }
        let cache: CdnLogRecord.CacheOutcome
        switch r.string(value(.cacheStatus)) {
        case "1": cache = .hit
        case "0": cache = .miss
        default: cache = .other
        }
        let incomplete: Bool?
        switch r.string(value(.lastByte)) {
        case "1", "true": incomplete = false
        case "0", "false": incomplete = true
        default: incomplete = nil
        }
        return .success(CdnLogRecord(
            timeMs: timeMs, cdn: Self.formatName, owner: r.string(value(.cp)), pop: r.string(value(.edgeIP)),
            status: status, serveMs: serveMs, ttfbMs: ms[2], bytesOut: bytesOut, cache: cache,
            clientIP: r.string(value(.cliIP)), incomplete: incomplete))
    }
}
