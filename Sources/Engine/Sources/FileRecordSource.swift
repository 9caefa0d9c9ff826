import QoSCore

/// NDJSON files (plain, `.zst`, or `-` for stdin) as one partition (0) in
/// file order: a record is a non-blank line, its offset the count of records
/// before it, its position `file:line`. `qos replay` reads through it.
public final class FileRecordSource: RecordSource {
    public let name: String
    public let partitionCount = 1
    let paths: [String]
    var fileIndex = 0
    var reader: LineReader?
    var file: ByteSource?
    var fileName = SourceName.empty
    /// Records delivered so far (the next offset).
    public private(set) var offset: Int64 = 0
    /// Records to skip before delivering (a start offset past 0).
    var skipTo: Int64 = 0
    var announced = false
    var owned = false
    /// Bytes read from earlier files (decompressed for `.zst`).
    var bytesBefore: Int64 = 0
    /// Plain files are mapped (false: read with `read`, as tests compare).
    var mapFiles = true

    public init(paths: [String], name: String = "files") {
        self.paths = paths
        self.name = name
    }

    /// Bytes read so far, over every file (decompressed).
    public var bytesRead: Int64 { bytesBefore + (file?.bytesRead ?? 0) }
    /// Every file was read to its end.
    public var atEnd: Bool { fileIndex >= paths.count }
    /// The name of the file being read (`stdin` for `-`).
    public var currentFile: String { fileName.string }

    /// The file being read when it is mapped: the lines of a poll lie in
    /// its mapping, which stays valid for as long as this object is held,
    /// past the poll and past the end of the file (`DecodedBatch.lend`).
    /// nil for stdin, compressed files, or a file that could not be mapped:
    /// their lines are valid only during the poll's callback.
    var lender: ByteSource? { file?.mapped != nil ? file : nil }

    /// Delivers up to `maxRecords` lines, never past the end of a file (so a
    /// caller that batches by file sees each file end). The first poll
    /// announces partition 0.
    public func poll(maxRecords: Int, timeoutMs: Int, onRecord: (RawRecord) -> Void,
                     onEvent: (SourceEvent) -> Void) throws -> Int {
        var name = SourceName.empty
        return try pollLines(maxRecords: maxRecords, onEvent: onEvent, onFile: { name = $0 }, onLine: { line, number, offset in
            onRecord(RawRecord(bytes: line, partition: 0, offset: offset, position: .file(name: name, line: number)))
        })
    }

    /// `poll` without a `RawRecord` per line: `onFile` gets the name of the
    /// file the lines come from (once, before them: a poll never crosses a
    /// file), then `onLine` each line with its line number and offset. The
    /// decode stage stages lines through it (`DecodedBatch.stageLine`):
    /// no position is built per line (bench/results/speed.md §18).
    func pollLines(maxRecords: Int, onEvent: (SourceEvent) -> Void, onFile: (SourceName) -> Void,
                   onLine: (UnsafeRawBufferPointer, _ line: Int64, _ offset: Int64) -> Void) throws -> Int {
        if !announced {
            announced = true
            onEvent(.assigned([0]))
            return 0
        }
        guard owned, !atEnd else { return 0 }
        if reader == nil {
            let path = paths[fileIndex]
            let f = try ByteSource(path: path, map: mapFiles)
            file = f
            reader = LineReader(f)
            fileName = SourceName(path == "-" ? "stdin" : path)
        }
        onFile(fileName)
        var n = 0
        let ended = try reader!.forEachLine(maxLines: maxRecords) { line, number in
            defer { offset += 1 }
            guard offset >= skipTo else { return }
            onLine(line, number, offset)
            n += 1
        }
        if ended {
            bytesBefore += file?.bytesRead ?? 0
            reader = nil
            file = nil
            fileIndex += 1
        }
        return n
    }

    public func startAssigned(_ start: [Int32: Int64?]) throws {
        owned = start.keys.contains(0)
        skipTo = (start[0] ?? nil) ?? 0
    }

    public func completeRevoke() throws { owned = false }
    public func commit(_ next: [Int32: Int64]) {}
    public func endOffset(_ partition: Int32) throws -> Int64 { atEnd ? offset : .max }
    public func idle(next: [Int32: Int64]) {}
    public func lag() -> [Int32: Int64] { [:] }

    /// Files have no group: their partition is always this process's.
    public func checkStillAssigned() throws {}
    public func close() {
        reader = nil
        file = nil
    }
}
