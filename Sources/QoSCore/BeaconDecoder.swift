/// Byte-level beacon decoder (docs/semantics.md §1). Reads one Kafka message — a JSON
/// object or an array of objects — from raw UTF-8 bytes, looks only for the
/// known keys, validates unknown values without building them, and returns
/// for each object either a `Beacon` or a `Reject` with a reason code.
///
/// It never traps on any input: every index is bounds-checked, nesting is
/// capped (`BeaconLimits.nestingDepthMax`), numbers are overflow-checked.

/// A reason code for a rejected beacon (the `reason` column of `rejects`).
public struct RejectReason: Sendable, Hashable, CustomStringConvertible {
    public let code: String
    public init(_ code: String) { self.code = code }
    public var description: String { code }

    public static let invalidJSON = RejectReason("invalid_json")
    public static let invalidUTF8 = RejectReason("invalid_utf8")
    public static let tooLarge = RejectReason("too_large")
    public static let notAnObject = RejectReason("not_an_object")
    public static let emptyBatch = RejectReason("empty_batch")
    public static let unknownEvent = RejectReason("unknown_event")
    public static let tsInFuture = RejectReason("ts_in_future")
    public static let tsTooOld = RejectReason("ts_too_old")
    public static func missingField(_ f: String) -> RejectReason { RejectReason("missing_field:\(f)") }
    public static func wrongType(_ f: String) -> RejectReason { RejectReason("wrong_type:\(f)") }
    public static func fieldTooLong(_ f: String) -> RejectReason { RejectReason("field_too_long:\(f)") }
    public static func invalidValue(_ f: String) -> RejectReason { RejectReason("invalid_value:\(f)") }
}

/// One element of a decoded message.
public enum DecodedItem: Sendable {
    case beacon(Beacon)
    /// `payload` is the byte range of the offending object (or of the whole
    /// message when it is not parseable), relative to the message.
    case reject(RejectReason, payload: Range<Int>)
    /// A CDN access-log record (CdnLogRecord.swift), for the `cdn_edge` table.
    case cdnLog(CdnLogRecord)
}

/// What a decoder keeps from one message to the next (its field reader,
/// so no beacon is built or destroyed per message). One per thread.
public struct DecodeScratch {
    var reader = FieldReader()
    public init() {}
}

public enum BeaconDecoder {
    /// Decode one message. Calls `sink` once per object (or once with a
    /// reject for a message that is not valid JSON).
    public static func decode(_ bytes: UnsafeRawBufferPointer, _ sink: (DecodedItem) -> Void) {
        decodeEach(bytes, onBeacon: { b, id in
            if let id { b.sessionId = String(decoding: id, as: UTF8.self) }
            sink(.beacon(b))
        }, onReject: { sink(.reject($0, payload: $1)) })
    }

    /// Decode one message with a reader kept across messages, lending each
    /// plain ASCII session id as a byte range of `bytes` instead of building
    /// its String (`Beacon.sessionIdSpan`): the decode stage of `qos replay`
    /// (the engine applies the items with the same message bytes).
    public static func decodeLending(_ bytes: UnsafeRawBufferPointer, scratch: inout DecodeScratch,
                                     _ sink: (DecodedItem) -> Void) {
        decodeLending(bytes, scratch: &scratch, onBeacon: { sink(.beacon($0)) },
                      onReject: { sink(.reject($0, payload: $1)) })
    }

    /// `decodeLending` without wrapping beacons in `DecodedItem`: `onBeacon`
    /// gets each beacon in place (it may keep a copy; the reader overwrites
    /// it with the next one), `onReject` each reject with its byte range.
    /// The decode stage stores beacons apart from rejects this way, so the
    /// engine's thread reads them where they lie (docs/architecture.md "Threads").
    public static func decodeLending(_ bytes: UnsafeRawBufferPointer, scratch: inout DecodeScratch,
                                     onBeacon: (inout Beacon) -> Void,
                                     onReject: (RejectReason, Range<Int>) -> Void) {
        guard let base = bytes.baseAddress else {
            return decode(bytes) { item in
                switch item {
                case .beacon(var b): onBeacon(&b)
                case .reject(let r, let range): onReject(r, range)
                case .cdnLog: preconditionFailure("the beacon decoder makes no CDN records")
                }
            }
        }
        decodeEach(bytes, reader: &scratch.reader, onBeacon: { b, id in
            if let id, let start = id.baseAddress {
                let lo = start - base
                b.sessionIdSpan = Int32(lo)..<Int32(lo + id.count)
                onBeacon(&b)
                b.sessionIdSpan = nil
            } else {
                onBeacon(&b)
            }
        }, onReject: onReject)
    }

    /// Decode one message without copying beacons: `onBeacon` gets each
    /// beacon in place (it may be modified; it is overwritten by the next
    /// one) and, when the session id is plain ASCII, its bytes — then
    /// `sessionId` is empty and the caller builds it if it needs it.
    /// `onReject` gets each reject with the byte range of the offending
    /// object (or of the whole message when it is not parseable).
    @inline(__always)
    public static func decodeEach(_ bytes: UnsafeRawBufferPointer,
                                  onBeacon: (inout Beacon, UnsafeRawBufferPointer?) -> Void,
                                  onReject: (RejectReason, Range<Int>) -> Void) {
        var fields = FieldReader()
        decodeEach(bytes, reader: &fields, onBeacon: onBeacon, onReject: onReject)
    }

    /// The same with a reader kept by the caller across messages (it is
    /// reset before each object), so no beacon is built or destroyed per message.
    @inline(__always)
    static func decodeEach(_ bytes: UnsafeRawBufferPointer, reader fields: inout FieldReader,
                           onBeacon: (inout Beacon, UnsafeRawBufferPointer?) -> Void,
                           onReject: (RejectReason, Range<Int>) -> Void) {
        let whole = 0..<bytes.count
        guard bytes.count <= BeaconLimits.messageBytesMax else { return onReject(.tooLarge, whole) }
        var p = JSONCursor(bytes)
        p.skipByteOrderMark()
        p.skipWhitespace()
        guard let first = p.peek() else { return onReject(.invalidJSON, whole) }
        fields.reset()
        if first == UInt8(ascii: "{") {
            let outcome = decodeObject(&p, &fields)
            p.skipWhitespace()
            guard p.atEnd else { return onReject(.invalidJSON, whole) }
            switch outcome {
            case .beacon: onBeacon(&fields.beacon, fields.sessionIdRange.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) })
            case .reject(let r, let range): onReject(r, range)
            }
        } else if first == UInt8(ascii: "[") {
            decodeArray(&p, &fields, whole: whole, onBeacon, onReject)
        } else {
            // Valid JSON that is not an object is "not_an_object"; anything else invalid_json.
            var probe = JSONCursor(bytes)
            probe.skipByteOrderMark()
            probe.skipWhitespace()
            let ok = probe.skipValue(depth: 0)
            probe.skipWhitespace()
            onReject(ok && probe.atEnd ? .notAnObject : .invalidJSON, whole)
        }
    }

    /// The payload of an item of `message` refused after it was decoded
    /// (time admission, docs/semantics.md §1): the top-level array element
    /// that holds byte `offset`, like a reject found while decoding; the
    /// whole message when it is not an array or no element holds `offset`.
    /// Reads the message again: for the reject path only.
    public static func element(of message: UnsafeRawBufferPointer, containing offset: Int) -> UnsafeRawBufferPointer {
        guard offset >= 0, offset < message.count else { return message }
        var p = JSONCursor(message)
        p.skipByteOrderMark()
        p.skipWhitespace()
        guard p.peek() == UInt8(ascii: "[") else { return message }
        p.advance()
        while true {
            p.skipWhitespace()
            let start = p.index
            guard p.skipValue(depth: 1) else { return message }
            if offset >= start && offset < p.index { return UnsafeRawBufferPointer(rebasing: message[start..<p.index]) }
            p.skipWhitespace()
            guard p.next() == UInt8(ascii: ",") else { return message }
        }
    }

    /// Convenience for tests and tools: decode a byte array into an array.
    public static func decode(_ bytes: [UInt8]) -> [DecodedItem] {
        var out: [DecodedItem] = []
        bytes.withUnsafeBytes { raw in decode(raw) { out.append($0) } }
        return out
    }

    private static func decodeArray(_ p: inout JSONCursor, _ fields: inout FieldReader, whole: Range<Int>,
                                    _ onBeacon: (inout Beacon, UnsafeRawBufferPointer?) -> Void,
                                    _ onReject: (RejectReason, Range<Int>) -> Void) {
        // Validate the whole array first so a malformed batch is one reject,
        // not a prefix of beacons followed by garbage.
        var probe = p
        guard probe.skipValue(depth: 0) else { return onReject(.invalidJSON, whole) }
        probe.skipWhitespace()
        guard probe.atEnd else { return onReject(.invalidJSON, whole) }
        p.advance() // '['
        p.skipWhitespace()
        if p.peek() == UInt8(ascii: "]") { return onReject(.emptyBatch, whole) }
        while true {
            p.skipWhitespace()
            let start = p.index
            if p.peek() == UInt8(ascii: "{") {
                fields.reset()
                switch decodeObject(&p, &fields) {
                case .beacon: onBeacon(&fields.beacon, fields.sessionIdRange.map { p.slice($0) })
                case .reject(let r, let range): onReject(r, range)
                }
            } else {
                _ = p.skipValue(depth: 1)
                onReject(.notAnObject, start..<p.index)
            }
            p.skipWhitespace()
            guard let c = p.next(), c == UInt8(ascii: ",") else { return } // ']' (validated above)
        }
    }

    enum ObjectOutcome {
        /// The beacon is in the reader's `beacon`.
        case beacon
        case reject(RejectReason, Range<Int>)
    }

    /// Decode one object at the cursor into `fields` (fresh or reset); on
    /// return the cursor is past it.
    static func decodeObject(_ p: inout JSONCursor, _ fields: inout FieldReader) -> ObjectOutcome {
        let start = p.index
        guard p.next() == UInt8(ascii: "{") else { return .reject(.invalidJSON, start..<p.index) }
        p.skipWhitespace()
        if p.peek() == UInt8(ascii: "}") { p.advance() } else {
            var previous = FieldReader.KeyPredictor.start
            var (ok, field) = fields.readKey(after: previous, from: &p)
            guard ok else { return failObject(&p, start) }
            while true {
                previous = FieldReader.KeyPredictor.after(field)
                p.skipWhitespace()  // (the colon is read with the key)
                guard fields.read(field, from: &p) else { return failObject(&p, start) }
                // The guessed next key right after its comma (`,"name":`): one compare.
                if let next = fields.readSeparatedKey(after: previous, from: &p) {
                    field = next
                    continue
                }
                p.skipWhitespace()
                guard let c = p.next() else { return failObject(&p, start) }
                if c == UInt8(ascii: "}") { break }
                guard c == UInt8(ascii: ",") else { return failObject(&p, start) }
                p.skipWhitespace()
                (ok, field) = fields.readKey(after: previous, from: &p)
                guard ok else { return failObject(&p, start) }
            }
        }
        let range = start..<p.index
        if let reason = fields.error ?? fields.missing() { return .reject(reason, range) }
        return .beacon
    }

    private static func failObject(_ p: inout JSONCursor, _ start: Int) -> ObjectOutcome {
        return .reject(.invalidJSON, start..<max(start, min(p.index, p.count)))
    }
}

