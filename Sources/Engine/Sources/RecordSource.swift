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

/// A retryable source problem. `dataLoss`: a partition's position was not
/// in its log any more and the source moved it (`partition`, when known):
/// records were skipped, or the log restarted below the position — the
/// driver tells which from the partition's next record (`StreamDriver`'s
/// position resets, docs/architecture.md "When Kafka moves a position").
public struct SourceError: Error {
    public var kind: String
    public var message: String
    public var dataLoss: Bool
    public var partition: Int32?
    /// The offset the source could not serve (`dataLoss`), when known.
    public var offset: Int64?

    public init(kind: String, message: String, dataLoss: Bool = false, partition: Int32? = nil, offset: Int64? = nil) {
        self.kind = kind
        self.message = message
        self.dataLoss = dataLoss
        self.partition = partition
        self.offset = offset
    }
}

/// A partitioned, replayable stream of raw records: Kafka
/// (`KafkaRecordSource`), NDJSON files (`FileRecordSource`), or memory
/// (`MemoryRecordSource`, for tests). The
/// driver (`StreamDriver`) owns what the partitions mean; a source only
/// delivers bytes, positions and ownership changes, starts partitions at the
/// offsets it is given and is told which offsets are durable.
public protocol RecordSource: AnyObject {
    /// The source's name (its streams' names joined by `+`), in logs and file metadata.
    var name: String { get }
    /// The streams (Kafka topics) in order: partition ids are
    /// `StreamPartition` ids over them; checkpoints record each partition
    /// under its stream's name and own partition number.
    var streams: [String] { get }
    /// How many partitions the streams have in all (only an owner of all of them may declare the end of input).
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
    /// The partition's first offset still in its log (blocking at most briefly).
    func startOffset(_ partition: Int32) throws -> Int64
    /// Called after an empty poll with the owned partitions' next offsets: a
    /// source may ask for more data of one that is behind.
    func idle(next: [Int32: Int64])
    /// Records not yet delivered, per owned partition, as far as known.
    func lag() -> [Int32: Int64]
    /// Throws `SourceFenced` when the partitions this process holds may
    /// already be another member's (a Kafka group that timed its session
    /// out): an epoch must then not be committed (docs/architecture.md,
    /// "Fencing").
    func checkStillAssigned() throws
    func close()
}

/// The source's partitions were taken away while this process held them.
public struct SourceFenced: OperatorError {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension RecordSource {
    public var streams: [String] { [name] }
    /// Sources whose partitions never lose their first records start at 0.
    public func startOffset(_ partition: Int32) throws -> Int64 { 0 }
}

/// Partition `partition` of the source's `stream`-th stream as one Int32 id
/// (`stream << 16 | partition`): the engine, the partition book and the
/// watermark key partitions by it. With one stream the id is the partition.
public struct StreamPartition: Equatable, Sendable {
    public static let partitionsMax = 1 << 16
    public static let streamsMax = 1 << 15

    public var stream: Int
    public var partition: Int32

    public init(stream: Int, partition: Int32) {
        precondition((0..<Self.streamsMax).contains(stream) && (0..<Int32(Self.partitionsMax)).contains(partition),
                     "stream \(stream), partition \(partition) out of range")
        self.stream = stream
        self.partition = partition
    }

    public init(id: Int32) {
        precondition(id >= 0, "a partition id is not negative")
        self.init(stream: Int(id >> 16), partition: id & 0xFFFF)
    }

    public var id: Int32 { Int32(stream) << 16 | partition }
}
