/// One CDN access-log record, reduced to what the `cdn_edge` table needs
/// (docs/semantics.md, "CDN access logs"). Every CDN format (EdgeCast,
/// CloudFront, Fastly, Akamai) parses its own fields into this one shape, so
/// the engine aggregates them the same way.
public struct CdnLogRecord: Sendable {
    /// The record's own time in Unix milliseconds, already truncated to whole
    /// seconds (the window rule for CDN logs).
    public var timeMs: Int64
    /// The format the record came in (`edgecast`, `cloudfront`, …): the
    /// table's `cdn` column.
    public var cdn: String
    /// The CDN customer account (EdgeCast: first path segment), `""` when the
    /// format has none.
    public var account: String
    /// The content owner (EdgeCast GUID rule, CloudFront distribution, Fastly
    /// service id, Akamai CP code), `""` when the record has none.
    public var owner: String
    /// The edge location (PoP) that served the request, `""` when absent.
    public var pop: String
    /// HTTP status sent to the client; 0 when the CDN logged none (`000`).
    public var status: Int32
    /// Time the edge spent serving the response, ms; nil when the format or
    /// the record has none.
    public var serveMs: Double?
    /// Time to first byte, ms; nil when the format or the record has none.
    public var ttfbMs: Double?
    /// Bytes sent edge → client.
    public var bytesOut: Int64
    public var cache: CacheOutcome
    /// The client's IP address as text (for `unique_clients`), `""` when absent.
    public var clientIP: String
    /// True when the format says the last byte was not served; nil when the
    /// format cannot tell.
    public var incomplete: Bool?
    /// The bytes of its message that hold the record (its line, its JSON
    /// object or string), set by the parser: what a reject row of the record
    /// stores when time admission refuses it, rather than the message's
    /// start. Where it came from, not what it says: `==` leaves it out.
    public var span: Range<Int> = 0..<0

    public init(timeMs: Int64, cdn: String, account: String = "", owner: String = "", pop: String = "",
                status: Int32, serveMs: Double? = nil, ttfbMs: Double? = nil, bytesOut: Int64 = 0,
                cache: CacheOutcome = .other, clientIP: String = "", incomplete: Bool? = nil) {
        precondition(timeMs % 1000 == 0, "CDN record time is whole seconds")
        self.timeMs = timeMs
        self.cdn = cdn
        self.account = account
        self.owner = owner
        self.pop = pop
        self.status = status
        self.serveMs = serveMs
        self.ttfbMs = ttfbMs
        self.bytesOut = bytesOut
        self.cache = cache
        self.clientIP = clientIP
        self.incomplete = incomplete
    }

    /// The record's own value: every field but `span`.
    public static func == (a: CdnLogRecord, b: CdnLogRecord) -> Bool {
        a.timeMs == b.timeMs && a.cdn == b.cdn && a.account == b.account && a.owner == b.owner && a.pop == b.pop
            && a.status == b.status && a.serveMs == b.serveMs && a.ttfbMs == b.ttfbMs && a.bytesOut == b.bytesOut
            && a.cache == b.cache && a.clientIP == b.clientIP && a.incomplete == b.incomplete
    }

    /// The record with its `span` in the message.
    public func spanning(_ range: Range<Int>) -> CdnLogRecord {
        var r = self
        r.span = range
        return r
    }

    /// The cache result, mapped from each vendor's own vocabulary.
    public enum CacheOutcome: Sendable, Equatable {
        case hit, miss, other
    }
}

extension CdnLogRecord: Equatable {}

/// One element of a parsed CDN log record: a record, or a reject with the
/// byte range of the offending record (relative to the message).
public enum CdnLogItem: Sendable {
    case record(CdnLogRecord)
    case reject(RejectReason, payload: Range<Int>)
}

/// Parses one raw CDN log message (a line, a JSON object or array, a file's
/// contents) into records and rejects, in order. One parser per format; a
/// parser may keep state across the messages of one source (CloudFront's
/// `#Fields:` header), so each source gets an instance of its own.
public protocol CdnLogParser: AnyObject {
    /// The format name, also the `cdn` column.
    static var formatName: String { get }
    func parse(_ message: UnsafeRawBufferPointer, _ emit: (CdnLogItem) -> Void)
    /// What the parser carries from one message of its source to the next
    /// (CloudFront's `#Fields:` header), as bytes for the daemon's
    /// checkpoint of the source's partition; empty when nothing (the default).
    func checkpointState() -> [UInt8]
    /// Takes `checkpointState()` bytes back (a fresh parser, a restarted
    /// partition). Throws `StateError` for bytes it cannot read.
    func restoreState(_ bytes: [UInt8]) throws
}

extension CdnLogParser {
    public func checkpointState() -> [UInt8] { [] }
    public func restoreState(_ bytes: [UInt8]) throws {}
}
