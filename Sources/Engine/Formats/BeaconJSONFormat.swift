import QoSCore

/// A record is one JSON object or an array of them, each a beacon (README
/// "Beacons"); decoding is QoSCore's `BeaconDecoder`.
public struct BeaconJSONFormat: RecordFormat {
    public let name = "beacon-json"
    /// A beacon line decodes alone (`RecordFormat.decodesRecordsAlone`).
    public var decodesRecordsAlone: Bool { true }

    public init() {}

    public func decode(_ record: UnsafeRawBufferPointer, _ sink: (DecodedItem) -> Void) {
        BeaconDecoder.decode(record, sink)
    }

    /// Lends plain session ids from `record` (see `RecordFormat`).
    public func decode(_ record: UnsafeRawBufferPointer, scratch: inout DecodeScratch, _ sink: (DecodedItem) -> Void) {
        BeaconDecoder.decodeLending(record, scratch: &scratch, sink)
    }

    /// The same, beacons in place (see `RecordFormat`).
    public func decode(_ record: UnsafeRawBufferPointer, scratch: inout DecodeScratch,
                       beacon: (inout Beacon) -> Void, other: (DecodedItem) -> Void) {
        BeaconDecoder.decodeLending(record, scratch: &scratch, onBeacon: beacon,
                                    onReject: { other(.reject($0, payload: $1)) })
    }

    /// Decodes straight into the engine with its reused field reader, without
    /// building session-id strings (the daemon's hot path).
    public func ingest(_ record: UnsafeRawBufferPointer, into engine: QoSEngine<DataSketchesKit>,
                       partition: Int32, position: SourcePosition, nowMs: Int64) {
        engine.ingest(message: record, partition: partition, source: position, nowMs: nowMs)
    }
}
