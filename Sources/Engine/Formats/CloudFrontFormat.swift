import QoSCore

/// Amazon CloudFront standard logs (legacy access logs; README "Input: CDN
/// access logs", CloudFront): tab-separated lines under `#Version:` and
/// `#Fields:` header lines. A message is one line or a whole file's content
/// (many lines, `.gz` files are decompressed by the file input). The
/// `#Fields:` line names the columns in order and stays in force for the
/// following messages of the same parser (one instance per source); before
/// any header the documented 33-field order applies.
///
/// Fields: `date` + `time` (UTC, whole seconds) → time; `x-edge-location` →
/// PoP; `sc-status` (`000` → 0); `time-taken` (s) → serve time;
/// `time-to-first-byte` (s) → TTFB; `sc-bytes` → bytes out;
/// `x-edge-result-type` (Hit, RefreshHit → hit; Miss → miss) with
/// `x-edge-detailed-result-type` OriginShieldHit → hit; `c-ip` → client;
/// `x-edge-response-result-type` / `x-edge-detailed-result-type`
/// ClientCommError → incomplete. Owner: the distribution id given to the
/// parser (from the log file name), else the `dXXXX` label of a
/// `dXXXX.cloudfront.net` `cs(Host)` or `x-host-header`. `-` is absent.
public final class CloudFrontParser: CdnLogParser {
    public static let formatName = "cloudfront"

    /// The documented default column order (33 fields).
    public static let defaultFields = [
        "date", "time", "x-edge-location", "sc-bytes", "c-ip", "cs-method", "cs(Host)", "cs-uri-stem", "sc-status",
        "cs(Referer)", "cs(User-Agent)", "cs-uri-query", "cs(Cookie)", "x-edge-result-type", "x-edge-request-id",
        "x-host-header", "cs-protocol", "cs-bytes", "time-taken", "x-forwarded-for", "ssl-protocol", "ssl-cipher",
        "x-edge-response-result-type", "cs-protocol-version", "fle-status", "fle-encrypted-fields", "c-port",
        "time-to-first-byte", "x-edge-detailed-result-type", "sc-content-type", "sc-content-len", "sc-range-start",
        "sc-range-end",
    ]

    enum Column: Int, CaseIterable {
        case date, time, edgeLocation, scBytes, clientIP, host, status, resultType, hostHeader, timeTaken
        case responseResultType, ttfb, detailedResultType

        var name: String {
            switch self {
            case .date: "date"
            case .time: "time"
            case .edgeLocation: "x-edge-location"
            case .scBytes: "sc-bytes"
            case .clientIP: "c-ip"
            case .host: "cs(Host)"
            case .status: "sc-status"
            case .resultType: "x-edge-result-type"
            case .hostHeader: "x-host-header"
            case .timeTaken: "time-taken"
            case .responseResultType: "x-edge-response-result-type"
            case .ttfb: "time-to-first-byte"
            case .detailedResultType: "x-edge-detailed-result-type"
            }
        }
    }

    /// The distribution every record of this source belongs to, when known.
    public let distributionId: String?
    /// Column index (in the line) of each `Column`, or nil when the header lacks it.
    private var positions: [Int?]
    /// Number of columns a line must have: the header's, or 9...33 before any header.
    private var expectedColumns: ClosedRange<Int>

    public init(distributionId: String? = nil) {
        self.distributionId = distributionId.flatMap { $0.isEmpty ? nil : $0 }
        positions = []
        expectedColumns = 9...Self.defaultFields.count
        setFields(Self.defaultFields)
        expectedColumns = 9...Self.defaultFields.count
        header = nil  // no header seen yet: 9...33 columns of the documented order
    }

    /// The distribution id of a CloudFront log file name
    /// (`[prefix/]<distribution-id>.YYYY-MM-DD-HH.<unique>[.gz]`), or nil.
    public static func distributionId(fromFileName path: String) -> String? {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 3, let id = parts.first, !id.isEmpty,
              id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else { return nil }
        let stamp = Array(parts[1].utf8)
        guard stamp.count == 13, stamp[4] == UInt8(ascii: "-"), stamp[7] == UInt8(ascii: "-"),
              stamp[10] == UInt8(ascii: "-"), CdnValues.date(Array(stamp[0..<10])) != nil,
              let h = CdnValues.digits(stamp, 11, 2), h < 24 else { return nil }
        return String(id)
    }

    private func setFields(_ names: [String]) {
        positions = Column.allCases.map { c in names.firstIndex(of: c.name) }
        expectedColumns = names.count...names.count
        header = names
    }

    /// The last `#Fields:` header's names (nil before any).
    private var header: [String]?

    /// The header in force, for the partition's checkpoint: a source that
    /// sends its header once, then line after line, is read with it after
    /// a restart too. Empty before any header.
    public func checkpointState() -> [UInt8] {
        guard let header else { return [] }
        var w = StateWriter()
        w.uint(UInt64(header.count))
        for name in header { w.string(name) }
        return w.bytes
    }

    public func restoreState(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        var r = StateReader(bytes)
        var names: [String] = []
        for _ in 0..<(try r.count(1024)) { names.append(try r.string()) }
        guard !names.isEmpty, r.atEnd else { throw StateError(message: "CloudFront state: bad #Fields header") }
        setFields(names)
    }

    public func parse(_ message: UnsafeRawBufferPointer, _ emit: (CdnLogItem) -> Void) {
        var start = 0
        var sawLine = false
        // A UTF-8 byte order mark before the first header is not part of it.
        if message.count >= 3 && message[0] == 0xEF && message[1] == 0xBB && message[2] == 0xBF { start = 3 }
        while start < message.count {
            var end = start
            while end < message.count && message[end] != 0x0A { end += 1 }
            var lineEnd = end
            if lineEnd > start && message[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            if lineEnd > start {
                sawLine = true
                parseLine(message, start..<lineEnd, emit)
            }
            start = end + 1
        }
        if !sawLine { emit(.reject(RejectReason("invalid_line:empty"), payload: 0..<message.count)) }
    }

    private func parseLine(_ m: UnsafeRawBufferPointer, _ line: Range<Int>, _ emit: (CdnLogItem) -> Void) {
        if m[line.lowerBound] == UInt8(ascii: "#") {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: m[line]), as: UTF8.self)
            if text.hasPrefix("#Fields:") {
                let names = text.dropFirst("#Fields:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
                if names.isEmpty { return emit(.reject(RejectReason("invalid_line:fields_header"), payload: line)) }
                setFields(names)
            }
            return // #Version: and other comment lines carry no record
        }
        // Split on tabs.
        var columns: [Range<Int>] = []
        columns.reserveCapacity(40)
        var s = line.lowerBound
        for i in line {
            if m[i] == 0x09 { columns.append(s..<i); s = i + 1 }
        }
        columns.append(s..<line.upperBound)
        guard expectedColumns.contains(columns.count) else {
            return emit(.reject(RejectReason("invalid_line:field_count"), payload: line))
        }
        func field(_ c: Column) -> [UInt8]? {
            guard let p = positions[c.rawValue], p < columns.count else { return nil }
            let r = columns[p]
            if r.isEmpty || (r.count == 1 && m[r.lowerBound] == UInt8(ascii: "-")) { return nil }
            return Array(UnsafeRawBufferPointer(rebasing: m[r]))
        }
        func text(_ c: Column) -> String { field(c).map { String(decoding: $0, as: UTF8.self) } ?? "" }
        func reject(_ r: RejectReason) { emit(.reject(r, payload: line)) }

        guard let date = field(.date) else { return reject(.missingField("date")) }
        guard let time = field(.time) else { return reject(.missingField("time")) }
        guard let day = CdnValues.date(date) else { return reject(.invalidValue("date")) }
        guard time.count == 8, let tod = CdnValues.timeOfDay(time) else { return reject(.invalidValue("time")) }
        guard let statusText = field(.status) else { return reject(.missingField("sc-status")) }
        guard let status = CdnValues.status(statusText) else { return reject(.invalidValue("sc-status")) }
        var seconds: [Double?] = []
        for c in [Column.timeTaken, .ttfb] {
            guard let b = field(c) else { seconds.append(nil); continue }
            guard let v = CdnValues.double(b), v >= 0 else { return reject(.invalidValue(c.name)) }
            seconds.append(v * 1000)
        }
        var bytesOut: Int64 = 0
        if let b = field(.scBytes) {
            guard let v = CdnValues.integer(b) else { return reject(.invalidValue("sc-bytes")) }
            bytesOut = v
        }
        let result = text(.resultType), detailed = text(.detailedResultType), response = text(.responseResultType)
        var cache: CdnLogRecord.CacheOutcome
        switch result {
        case "Hit", "RefreshHit", "OriginShieldHit": cache = .hit
        case "Miss": cache = .miss
        default: cache = .other
        }
        if detailed == "OriginShieldHit" { cache = .hit }
        let incomplete: Bool?
        if field(.responseResultType) == nil && field(.detailedResultType) == nil {
            incomplete = nil
        } else {
            incomplete = response == "ClientCommError" || detailed == "ClientCommError"
        }
        let owner = distributionId ?? Self.cloudFrontLabel(text(.host)) ?? Self.cloudFrontLabel(text(.hostHeader)) ?? ""
        emit(.record(CdnLogRecord(
            timeMs: Int64(day * 86_400 + tod) * 1000, cdn: Self.formatName, owner: owner, pop: text(.edgeLocation),
            status: status, serveMs: seconds[0], ttfbMs: seconds[1], bytesOut: bytesOut, cache: cache,
            clientIP: text(.clientIP), incomplete: incomplete).spanning(line)))
    }

    /// `d111111abcdef8` of `d111111abcdef8.cloudfront.net`, else nil.
    static func cloudFrontLabel(_ host: String) -> String? {
        let suffix = ".cloudfront.net"
        let h = host.lowercased()
        guard h.hasSuffix(suffix) else { return nil }
        let label = h.dropLast(suffix.count)
        guard !label.isEmpty, !label.contains(".") else { return nil }
        return String(label)
    }
}
