/// Byte-level beacon decoder (SPEC §2). Reads one Kafka message — a JSON
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
}

public enum BeaconDecoder {
    /// Decode one message. Calls `sink` once per object (or once with a
    /// reject for a message that is not valid JSON).
    public static func decode(_ bytes: UnsafeRawBufferPointer, _ sink: (DecodedItem) -> Void) {
        let whole = 0..<bytes.count
        guard bytes.count <= BeaconLimits.messageBytesMax else {
            sink(.reject(.tooLarge, payload: whole)); return
        }
        var p = JSONCursor(bytes)
        p.skipWhitespace()
        guard let first = p.peek() else { sink(.reject(.invalidJSON, payload: whole)); return }
        if first == UInt8(ascii: "[") {
            decodeArray(&p, whole: whole, sink)
        } else if first == UInt8(ascii: "{") {
            let item = decodeObject(&p)
            p.skipWhitespace()
            if p.atEnd { sink(item) } else { sink(.reject(.invalidJSON, payload: whole)) }
        } else {
            // Valid JSON that is not an object is "not_an_object"; anything else invalid_json.
            var probe = JSONCursor(bytes)
            probe.skipWhitespace()
            let ok = probe.skipValue(depth: 0)
            probe.skipWhitespace()
            sink(.reject(ok && probe.atEnd ? .notAnObject : .invalidJSON, payload: whole))
        }
    }

    /// Convenience for tests and tools: decode a byte array into an array.
    public static func decode(_ bytes: [UInt8]) -> [DecodedItem] {
        var out: [DecodedItem] = []
        bytes.withUnsafeBytes { raw in decode(raw) { out.append($0) } }
        return out
    }

    private static func decodeArray(_ p: inout JSONCursor, whole: Range<Int>, _ sink: (DecodedItem) -> Void) {
        // Validate the whole array first so a malformed batch is one reject,
        // not a prefix of beacons followed by garbage.
        var probe = p
        guard probe.skipValue(depth: 0) else { sink(.reject(.invalidJSON, payload: whole)); return }
        probe.skipWhitespace()
        guard probe.atEnd else { sink(.reject(.invalidJSON, payload: whole)); return }
        p.advance() // '['
        p.skipWhitespace()
        if p.peek() == UInt8(ascii: "]") { sink(.reject(.emptyBatch, payload: whole)); return }
        while true {
            p.skipWhitespace()
            let start = p.index
            if p.peek() == UInt8(ascii: "{") {
                sink(decodeObject(&p))
            } else {
                _ = p.skipValue(depth: 1)
                sink(.reject(.notAnObject, payload: start..<p.index))
            }
            p.skipWhitespace()
            guard let c = p.next(), c == UInt8(ascii: ",") else { return } // ']' (validated above)
        }
    }

    /// Decode one object at the cursor; on return the cursor is past it.
    static func decodeObject(_ p: inout JSONCursor) -> DecodedItem {
        let start = p.index
        var fields = FieldReader()
        guard p.next() == UInt8(ascii: "{") else { return .reject(.invalidJSON, payload: start..<p.index) }
        p.skipWhitespace()
        if p.peek() == UInt8(ascii: "}") { p.advance() } else {
            while true {
                p.skipWhitespace()
                guard let key = p.readRawString() else { return failObject(&p, start) }
                p.skipWhitespace()
                guard p.next() == UInt8(ascii: ":") else { return failObject(&p, start) }
                p.skipWhitespace()
                guard fields.read(key: key, from: &p) else { return failObject(&p, start) }
                p.skipWhitespace()
                guard let c = p.next() else { return failObject(&p, start) }
                if c == UInt8(ascii: "}") { break }
                guard c == UInt8(ascii: ",") else { return failObject(&p, start) }
            }
        }
        let range = start..<p.index
        if let reason = fields.error { return .reject(reason, payload: range) }
        switch fields.build() {
        case .success(let b): return .beacon(b)
        case .failure(let r): return .reject(r.reason, payload: range)
        }
    }

    private static func failObject(_ p: inout JSONCursor, _ start: Int) -> DecodedItem {
        return .reject(.invalidJSON, payload: start..<max(start, min(p.index, p.count)))
    }
}

struct RejectError: Error { let reason: RejectReason }
