import Synchronization

/// Where a beacon came from, for `rejects.source`. Every record carries one
/// from its source to the engine; it holds no reference count (its names
/// are `SourceName`s), so building and dropping it per record is free.
public enum SourcePosition: Sendable, Equatable {
    case file(name: SourceName, line: Int64)
    case kafka(topic: SourceName, partition: Int32, offset: Int64)
    /// A record of an in-memory source (tests): its stream, partition and index.
    case memory(name: SourceName, partition: Int32, index: Int64)

    public var description: String {
        switch self {
        case .file(let n, let l): return "\(n):\(l)"
        case .kafka(let t, let p, let o): return "\(t)/\(p)/\(o)"
        case .memory(let n, let p, let i): return "memory:\(n)/\(p)/\(i)"
        }
    }
}

/// The name in a `SourcePosition`: an input file's path, a Kafka topic, a
/// stream. Interned for the life of the process — one immortal copy per
/// distinct name, compared by identity — so a position holds a plain
/// pointer. A `String` longer than 15 bytes is a reference: a replay of
/// `/data/beacons/….ndjson` retained and released it for every line, ≈ 6 %
/// of the engine thread (bench/results/speed.md section 46). The names are
/// the inputs and topics a process was given, so the table stays small.
/// Build a source's name once, not per record: `init` (a literal too)
/// takes a lock and looks the text up.
public struct SourceName: @unchecked Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// Never released: the registry keeps each one for the process's life.
    private final class Storage: Sendable {
        let string: String
        init(_ string: String) { self.string = string }
    }

    private static let registry = Mutex<[String: Unmanaged<Storage>]>([:])
    private let storage: Unmanaged<Storage>

    public init(_ string: String) {
        storage = Self.registry.withLock { table in
            if let known = table[string] { return known }
            let new = Unmanaged.passRetained(Storage(string))
            table[string] = new
            return new
        }
    }

    public init(stringLiteral value: String) { self.init(value) }

    /// The empty name: what a source holds before its first file.
    public static let empty = SourceName("")

    public var string: String { storage._withUnsafeGuaranteedRef { $0.string } }
    public var description: String { string }

    public static func == (a: SourceName, b: SourceName) -> Bool { a.storage.toOpaque() == b.storage.toOpaque() }
    public func hash(into h: inout Hasher) { h.combine(storage.toOpaque()) }
}
