import QoSCore

/// Any CDN access-log parser (`CdnLogParser`, QoSCore/CdnLogRecord.swift) as
/// an input format: its records go to the `cdn_edge` table, its rejects to
/// `rejects` (README "Input: CDN access logs"). A parser may keep state
/// across the records of one source (CloudFront's `#Fields:` header), so the
/// format in the registry is a prototype: `forSource()` gives each source
/// (file, Kafka partition) an instance with a parser of its own. A new CDN
/// format is a parser class plus one `CdnLogFormat { TheParser() }` line in
/// `RecordFormats.all`.
public struct CdnLogFormat: RecordFormat {
    public let name: String
    /// Makes a parser for a source, given the source's name (file path or topic).
    let makeParser: @Sendable (String) -> any CdnLogParser
    /// This instance's parser; nil in the registry's prototype.
    let own: ParserBox?

    public init<P: CdnLogParser & SendableMetatype>(_ make: @escaping @Sendable () -> P) {
        name = P.formatName
        makeParser = { _ in make() }
        own = nil
    }

    /// A parser that takes something from its source's name (CloudFront:
    /// the distribution id in a log file's name).
    public init<P: CdnLogParser>(perSource make: @escaping @Sendable (String) -> P) {
        name = P.formatName
        makeParser = make
        own = nil
    }

    init(name: String, makeParser: @escaping @Sendable (String) -> any CdnLogParser, own: ParserBox?) {
        self.name = name
        self.makeParser = makeParser
        self.own = own
    }

    public func forSource(named source: String) -> any RecordFormat {
        CdnLogFormat(name: name, makeParser: makeParser, own: ParserBox(makeParser(source)))
    }

    public func checkpointState() -> [UInt8] { own?.parser.checkpointState() ?? [] }

    public func restoreState(_ bytes: [UInt8]) throws {
        precondition(own != nil, "CdnLogFormat.restoreState on the registry's prototype: restore a source's instance")
        try own!.parser.restoreState(bytes)
    }

    /// Parses one record. The prototype (no `forSource()`) parses each
    /// record with a fresh parser, so no state leaks between sources.
    public func decode(_ record: UnsafeRawBufferPointer, _ sink: (DecodedItem) -> Void) {
        // Past the message limit is `too_large`, as for beacons; a file line
        // that long comes cut to the limit + 1 byte (`LineReader`), and a cut
        // tab-separated line could otherwise parse with its last field short.
        guard record.count <= BeaconLimits.messageBytesMax else { return sink(.reject(.tooLarge, payload: 0..<record.count)) }
        let parser = own?.parser ?? makeParser("")
        parser.parse(record) { item in
            switch item {
            case .record(let r): sink(.cdnLog(r))
            case .reject(let reason, let range): sink(.reject(reason, payload: range))
            }
        }
    }
}

/// One source's parser. Used by one thread at a time (the source's reader).
final class ParserBox: @unchecked Sendable {
    let parser: any CdnLogParser
    init(_ parser: any CdnLogParser) { self.parser = parser }
}
