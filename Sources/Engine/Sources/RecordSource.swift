import QoSCore

/// One raw record from a source: its bytes (valid only during the callback
/// that delivers it), its partition and offset, and where it came from (for
/// the `rejects` table).
public struct RawRecord {
    public var bytes: UnsafeRawBufferPointer
    public var partition: Int32
    public var offset: Int64
    public var position: SourcePosition

    public init(bytes: UnsafeRawBufferPointer, partition: Int32, offset: Int64, position: SourcePosition) {
        self.bytes = bytes
        self.partition = partition
        self.offset = offset
        self.position = position
    }
}

/// What a source reports besides records. Assignment and revocation must be
/// completed with `startAssigned` / `completeRevoke` before the next poll.
public enum SourceEvent {
    case assigned([Int32])
    /// `lost`: the partitions were already given to another member (no
    /// checkpoint of them may be written any more).
    case revoked([Int32], lost: Bool)
    /// A problem the source retries by itself (logged, never fatal).
    case error(SourceError)
}

/// A retryable source problem; `dataLoss` means records were skipped.
public struct SourceError: Error {
    public var kind: String
    public var message: String
    public var dataLoss: Bool

    public init(kind: String, message: String, dataLoss: Bool = false) {
        self.kind = kind
        self.message = message
        self.dataLoss = dataLoss
    }
}

/// A partitioned, replayable stream of raw records: Kafka
/// (`KafkaRecordSource`), NDJSON files (`FileRecordSource`), or memory
/// (`MemoryRecordSource`, for tests). The
/// driver (`StreamDriver`) owns what the partitions mean; a source only
/// delivers bytes, positions and ownership changes, starts partitions at the
/// offsets it is given and is told which offsets are durable.
public protocol RecordSource: AnyObject {
    /// The stream's name (the Kafka topic): recorded with every partition checkpoint.
    var name: String { get }
    /// How many partitions the stream has (only an owner of all of them may declare the end of input).
    var partitionCount: Int { get }
    /// Delivers up to `maxRecords` records, in partition order, then any
    /// ownership change (last). Returns the number of records delivered.
    func poll(maxRecords: Int, timeoutMs: Int, onRecord: (RawRecord) -> Void,
              onEvent: (SourceEvent) -> Void) throws -> Int
    /// Completes an assignment: each partition starts at its offset, or at its beginning when nil.
    func startAssigned(_ start: [Int32: Int64?]) throws
    /// Completes a revocation.
    func completeRevoke() throws
    /// Every record below these offsets is in a committed checkpoint (for lag monitoring).
    func commit(_ next: [Int32: Int64])
    /// The offset after the partition's last record (blocking at most briefly).
    func endOffset(_ partition: Int32) throws -> Int64
    /// Called after an empty poll with the owned partitions' next offsets: a
    /// source may ask for more data of one that is behind.
    func idle(next: [Int32: Int64])
    /// Records not yet delivered, per owned partition, as far as known.
    func lag() -> [Int32: Int64]
    func close()
}
