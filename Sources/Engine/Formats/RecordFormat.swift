import QoSCore

/// Turns one raw record into engine input: beacons, or rejects with a
/// reason and the offending bytes. The beacon JSON of README "Input: beacons" is
/// `BeaconJSONFormat`; a new input format (CDN access logs, CMCD) is a new
/// file in this folder plus one line in `RecordFormats.all`.
public protocol RecordFormat: Sendable {
    /// The name a configuration selects the format by.
    var name: String { get }
    /// Decodes one record, in order, into beacons and rejects (for the
    /// decode stage, `DecodeStage`, which decodes ahead of the engine's thread).
    func decode(_ record: UnsafeRawBufferPointer, _ sink: (DecodedItem) -> Void)
    /// The same with the decode thread's scratch kept across records; the
    /// items may lend bytes of `record` (`Beacon.sessionIdSpan`), so they
    /// must be applied with the same record bytes. The default is `decode`.
    func decode(_ record: UnsafeRawBufferPointer, scratch: inout DecodeScratch, _ sink: (DecodedItem) -> Void)
    /// The same with beacons apart from the other items: `beacon` gets each
    /// in place (the decode stage copies it into its batch once, without
    /// wrapping it in a `DecodedItem`). The default splits `decode`'s items.
    func decode(_ record: UnsafeRawBufferPointer, scratch: inout DecodeScratch,
                beacon: (inout Beacon) -> Void, other: (DecodedItem) -> Void)
    /// Decodes one record and applies it to the engine, counting it as one
    /// message. The default decodes then applies; a format may go faster.
    func ingest(_ record: UnsafeRawBufferPointer, into engine: QoSEngine<DataSketchesKit>,
                partition: Int32, position: SourcePosition, nowMs: Int64)
    /// The format for one source (a file, a Kafka partition), given its name
    /// (file path or topic): formats with per-source state (CDN log
    /// parsers) return a fresh instance; the default is `self`. Called on
    /// the registry's format for each new stream, and on the current
    /// file's instance for the next file of the same `qos replay` stream
    /// (CMCD keeps its per-session state across them, CDN logs do not).
    func forSource(named source: String) -> any RecordFormat
    /// A stream's own state (CMCD's last state per session) as bytes for
    /// the partition's checkpoint, taken at the same record as the engine's
    /// snapshot; empty when the format keeps none (the default).
    func checkpointState() -> [UInt8]
    /// Gives a checkpoint's `checkpointState()` back to a fresh stream
    /// instance (a partition assigned again, a restart). Throws `StateError`
    /// for bytes it cannot read. The default ignores them.
    func restoreState(_ bytes: [UInt8]) throws
    /// Whether a record's items depend on its bytes alone: not on earlier
    /// records, not on its source's name. Such a format's records may be
    /// decoded on several threads at once (`DecodeStage`'s decoders). The
    /// default is false.
    var decodesRecordsAlone: Bool { get }
}

extension RecordFormat {
    public func forSource(named source: String) -> any RecordFormat { self }
    public func checkpointState() -> [UInt8] { [] }
    public func restoreState(_ bytes: [UInt8]) throws {}
    public var decodesRecordsAlone: Bool { false }

    public func decode(_ record: UnsafeRawBufferPointer, scratch: inout DecodeScratch, _ sink: (DecodedItem) -> Void) {
        decode(record, sink)
    }

    public func decode(_ record: UnsafeRawBufferPointer, scratch: inout DecodeScratch,
                       beacon: (inout Beacon) -> Void, other: (DecodedItem) -> Void) {
        decode(record, scratch: &scratch) { item in
            if case .beacon(var b) = item { beacon(&b) } else { other(item) }
        }
    }

    public func ingest(_ record: UnsafeRawBufferPointer, into engine: QoSEngine<DataSketchesKit>,
                       partition: Int32, position: SourcePosition, nowMs: Int64) {
        engine.countMessage()
        decode(record) { engine.ingest($0, message: record, partition: partition, source: position, nowMs: nowMs) }
    }
}

/// The registry of input formats, by name.
public enum RecordFormats {
    /// Every format `qos` can read. Register a new one here.
    public static let all: [any RecordFormat] = [
        BeaconJSONFormat(),
        CdnLogFormat { EdgecastParser() },
        CdnLogFormat(perSource: { CloudFrontParser(distributionId: CloudFrontParser.distributionId(fromFileName: $0)) }),
        CdnLogFormat { FastlyParser() },
        CdnLogFormat { AkamaiParser() },
        CMCDFormat(),
    ]

    public static let defaultName = BeaconJSONFormat().name

    /// The registered names, for help texts and errors.
    public static var names: String { all.map(\.name).joined(separator: ", ") }

    /// The format called `name` as `settings` configure it (Fastly's field names).
    public static func named(_ name: String, settings: FormatSettings) throws -> any RecordFormat {
        if name == FastlyParser.formatName, let fields = settings.fastlyFields {
            return CdnLogFormat { FastlyParser(fields: fields) }
        }
        return try named(name)
    }

    /// The format called `name`; throws a one-line error listing the known ones.
    public static func named(_ name: String) throws -> any RecordFormat {
        guard let f = all.first(where: { $0.name == name }) else {
            throw UserError("unknown input format '\(name)' — use one of: \(all.map(\.name).joined(separator: ", "))")
        }
        return f
    }
}

/// What input formats take from the configuration.
public struct FormatSettings: Sendable, Equatable {
    /// The `fastly` format's field names (nil: the documented defaults).
    public var fastlyFields: FastlyFieldMap?

    public init(fastlyFields: FastlyFieldMap? = nil) {
        self.fastlyFields = fastlyFields
    }
}
