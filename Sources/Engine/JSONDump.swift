import Parquet
import QoSCore

/// `--json-dump`: every file the engine writes, as one JSON line with its
/// path and column values — what the interop tests compare the Parquet
/// readers against. Timestamps are integer microseconds, blobs hex.
public final class JSONDump {
    let sink: LineSink
    let root: String

    public init(path: String, sinkRoot: String) throws {
        sink = try LineSink(path: path)
        root = sinkRoot
    }

    public func record(_ files: [WindowFileWriter.PlannedFile]) throws {
        for f in files {
            var out: [UInt8] = []
            out += Array("{\"path\":".utf8)
            let rel = f.path.hasPrefix(root + "/") ? String(f.path.dropFirst(root.count + 1)) : f.path
            BeaconEncoder.quote(rel, &out)
            out += Array(",\"table\":".utf8)
            BeaconEncoder.quote(f.table, &out)
            out += Array(",\"columns\":{".utf8)
            for (i, (field, col)) in zip(f.schema, try f.columnData()).enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                BeaconEncoder.quote(field.name, &out)
                out.append(UInt8(ascii: ":"))
                JSONDump.values(col, field, &out)
            }
            out += Array("}}".utf8)
            try sink.writeLine(out)
        }
    }

    public func close() throws { try sink.close() }

    static func values(_ c: ParquetColumnData, _ f: ParquetField, _ out: inout [UInt8]) {
        var items: [String] = []
        switch c {
        case .boolean(let v): items = v.map { $0.map { String($0) } ?? "null" }
        case .int32(let v): items = v.map { $0.map { String($0) } ?? "null" }
        case .int64(let v): items = v.map { $0.map { String($0) } ?? "null" }
        case .double(let v): items = v.map { $0.map { $0.isFinite ? "\($0)" : "null" } ?? "null" }
        case .byteArray(let v):
            items = v.map { b in
                guard let b else { return "null" }
                var q: [UInt8] = []
                if f.logical == .string { BeaconEncoder.quote(String(decoding: b, as: UTF8.self), &q) } else {
                    BeaconEncoder.quote(hex(b), &q)
                }
                return String(decoding: q, as: UTF8.self)
            }
        }
        out += Array(("[" + items.joined(separator: ",") + "]").utf8)
    }

    static func hex(_ b: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(b.count * 2)
        for x in b { out.append(digits[Int(x >> 4)]); out.append(digits[Int(x & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
