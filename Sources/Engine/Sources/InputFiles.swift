#if canImport(Glibc)
import Glibc
#endif
import CZlib
import CZstd
import QoSCore
import Synchronization

/// A one-line, actionable error for the CLI (no stack traces).
public struct UserError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Reads an input file (or stdin for `-`) as a byte stream, decompressing
/// `.zst` files with libzstd's streaming API and `.gz` files (CloudFront's
/// log files; concatenated members too) with zlib's.
final class ByteSource {
    let name: String
    /// Bytes handed out so far (decompressed for `.zst`).
    private(set) var bytesRead: Int64 = 0
    private let fd: Int32
    private let zstd: OpaquePointer?
    private let gzip: UnsafeMutablePointer<z_stream>?
    private var gzipMemberOpen = false
    private var raw = [UInt8](repeating: 0, count: 1 << 20)
    private var rawStart = 0, rawEnd = 0
    private var frameOpen = false
    private var eof = false
    /// A plain regular file, mapped whole: `LineReader` cuts its lines
    /// straight out of the page cache instead of copying it through `read`.
    /// Only while `MappedInputGuard` watches it (slot `mappedSlot`), so a
    /// file that shrinks meanwhile ends the read with an error, not SIGBUS.
    private(set) var mapped: UnsafeRawBufferPointer?
    private var mappedSlot: Int?
    /// The slot's shrunk flag (`MappedInputGuard.shrunkFlag`), read before every line.
    private var shrunkFlag: UnsafeMutablePointer<Atomic<UInt>>?

    /// `map`: false reads a plain file with `read` too (tests compare the two).
    init(path: String, map: Bool = true) throws {
        name = path
        if path == "-" {
            fd = 0
        } else {
            fd = open(path, O_RDONLY)
            guard fd >= 0 else {
                throw UserError("cannot open input '\(path)': \(String(cString: strerror(errno))) — check the path")
            }
        }
        zstd = path.hasSuffix(".zst") ? ZSTD_createDStream() : nil
        if let z = zstd { ZSTD_initDStream(z) }
        if path.hasSuffix(".gz") {
            let s = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            s.initialize(to: z_stream())
            // 15 + 16: a 32 KiB window and a gzip header.
            guard inflateInit2_(s, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                s.deallocate()
                if fd > 0 { close(fd) }
                throw UserError("cannot start gzip decompression for '\(path)': out of memory")
            }
            gzip = s
        } else {
            gzip = nil
        }
        if map, fd > 0, zstd == nil, gzip == nil, let m = ByteSource.map(fd) {
            if let slot = MappedInputGuard.watch(m) {
                mapped = m
                mappedSlot = slot
                shrunkFlag = MappedInputGuard.shrunkFlag(slot)
            } else {
                munmap(UnsafeMutableRawPointer(mutating: m.baseAddress), m.count)
            }
        }
    }

    /// The whole of a non-empty regular file, read-only; nil (then it is
    /// read with `read`) for anything else or when mapping fails.
    private static func map(_ fd: Int32) -> UnsafeRawBufferPointer? {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size > 0 else { return nil }
        let size = Int(st.st_size)
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else { return nil }
        _ = madvise(p, size, MADV_SEQUENTIAL)
        return UnsafeRawBufferPointer(start: p, count: size)
    }

    /// Counts `n` bytes of the mapping as read (`LineReader` over `mapped`).
    func consumedMapped(_ n: Int) { bytesRead += Int64(n) }

    /// Throws once a page of the mapping went missing: the file shrank
    /// (another process truncated or replaced its contents) while mapped.
    /// `LineReader` calls it before it lends each line, so no line holding
    /// the zero bytes put in place of the missing page is handed out.
    @inline(__always)
    func checkMapped() throws {
        if let shrunkFlag, shrunkFlag.pointee.load(ordering: .relaxed) != 0 {
            throw UserError("input '\(name)' shrank while it was being read (another process truncated or "
                            + "rewrote it, e.g. a log rotation) — read a copy that nothing writes to")
        }
    }

    deinit {
        if let m = mapped {
            if let slot = mappedSlot { MappedInputGuard.release(slot) }
            munmap(UnsafeMutableRawPointer(mutating: m.baseAddress), m.count)
        }
        if fd > 0 { close(fd) }
        if let z = zstd { ZSTD_freeDStream(z) }
        if let s = gzip { inflateEnd(s); s.deallocate() }
    }

    /// Fills `buffer` from the start; returns the bytes read, 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try readDecoded(into: buffer)
        bytesRead += Int64(n)
        return n
    }

    private func readDecoded(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if let s = gzip { return try readGzip(s, into: buffer) }
        guard let z = zstd else { return try readRaw(buffer) }
        while true {
            if rawStart == rawEnd {
                if eof { return try finishZstd() }
                rawStart = 0
                rawEnd = try raw.withUnsafeMutableBytes { try readRaw($0) }
                if rawEnd == 0 { eof = true; continue }
            }
            let produced = try raw.withUnsafeBytes { rawBuf -> Int in
                var input = ZSTD_inBuffer(src: rawBuf.baseAddress! + rawStart, size: rawEnd - rawStart, pos: 0)
                var output = ZSTD_outBuffer(dst: buffer.baseAddress!, size: buffer.count, pos: 0)
                let r = ZSTD_decompressStream(z, &output, &input)
                if ZSTD_isError(r) != 0 {
                    throw UserError("input '\(name)' is not a valid zstd stream (\(String(cString: ZSTD_getErrorName(r))))")
                }
                frameOpen = r != 0
                rawStart += input.pos
                return output.pos
            }
            if produced > 0 { return produced }
        }
    }

    private func readGzip(_ s: UnsafeMutablePointer<z_stream>, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            if rawStart == rawEnd {
                if eof {
                    if gzipMemberOpen { throw UserError("input '\(name)' is a truncated gzip file — the file is incomplete") }
                    return 0
                }
                rawStart = 0
                rawEnd = try raw.withUnsafeMutableBytes { try readRaw($0) }
                if rawEnd == 0 { eof = true; continue }
            }
            let (produced, status) = raw.withUnsafeMutableBytes { rawBuf -> (Int, Int32) in
                s.pointee.next_in = rawBuf.baseAddress!.assumingMemoryBound(to: Bytef.self) + rawStart
                s.pointee.avail_in = uInt(rawEnd - rawStart)
                s.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
                s.pointee.avail_out = uInt(buffer.count)
                let r = inflate(s, Z_NO_FLUSH)
                rawStart = rawEnd - Int(s.pointee.avail_in)
                return (buffer.count - Int(s.pointee.avail_out), r)
            }
            switch status {
            case Z_STREAM_END:
                // A member ended; another may follow (`cat a.gz b.gz`).
                gzipMemberOpen = false
                inflateReset(s)
            case Z_OK, Z_BUF_ERROR:
                gzipMemberOpen = true
            default:
                let detail = s.pointee.msg.map { String(cString: $0) } ?? "error \(status)"
                throw UserError("input '\(name)' is not a valid gzip file (\(detail)) — check the file or drop its .gz suffix")
            }
            if produced > 0 { return produced }
        }
    }

    private func finishZstd() throws -> Int {
        if frameOpen { throw UserError("input '\(name)' is a truncated zstd stream — the file is incomplete") }
        return 0
    }

    private func readRaw(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw UserError("cannot read input '\(name)': \(String(cString: strerror(errno)))")
        }
    }
}

/// Splits a byte stream into lines (LF or CRLF) without copying them.
/// A line longer than the message limit is handed over truncated to the
/// limit + 1 byte, so the decoder rejects it as `too_large` with memory
/// bounded by the limit. A mapped file's lines are lent straight from the
/// mapping (no read buffer).
struct LineReader {
    private let source: ByteSource
    private let mapped: UnsafeRawBufferPointer?
    private var mappedAt = 0
    /// The mapping's pages before this offset were released (`releaseMappedPages`).
    private var releasedTo = 0
    private var buffer: [UInt8]
    private var start = 0, end = 0
    private var overlong = false
    private var done = false
    private(set) var lineNumber: Int64 = 0
    static let limit = BeaconLimits.messageBytesMax + 1
    /// How far behind the next line `releaseMappedPages` stops.
    static let releaseLag = 16 << 20

    /// A line of nothing but spaces, tabs and carriage returns (or none):
    /// no record, skipped like an empty line. (Only a line starting with a
    /// space or tab is scanned further.)
    @inline(__always) static func isBlank(_ line: UnsafeRawBufferPointer) -> Bool {
        guard let first = line.first else { return true }
        guard first == 0x20 || first == 0x09 || first == 0x0D else { return false }
        return line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }

    init(_ source: ByteSource) {
        self.source = source
        mapped = source.mapped
        buffer = mapped == nil ? [UInt8](repeating: 0, count: 4 << 20) : []
    }

    /// Calls `body` with each line; stops at the end of input.
    mutating func forEachLine(_ body: (UnsafeRawBufferPointer, Int64) throws -> Void) throws {
        _ = try forEachLine(maxLines: .max, body)
    }

    /// As above, but returns after `maxLines` lines; true at the end of input.
    mutating func forEachLine(maxLines: Int, _ body: (UnsafeRawBufferPointer, Int64) throws -> Void) throws -> Bool {
        if let m = mapped { return try forEachMappedLine(m, maxLines: maxLines, body) }
        var count = 0
        while true {
            if count >= maxLines { return false }
            if let nl = findNewline() {
                lineNumber += 1
                var lineEnd = nl
                if lineEnd > start && buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                let s = start
                // Blank lines carry no beacon and are skipped.
                let carries = try buffer.withUnsafeBytes { b -> Bool in
                    let line = UnsafeRawBufferPointer(rebasing: b[s..<(s + min(lineEnd - s, LineReader.limit))])
                    guard !LineReader.isBlank(line) else { return false }
                    try body(line, lineNumber)
                    return true
                }
                if carries { count += 1 }
                overlong = false
                start = nl + 1
                continue
            }
            if done {
                if end > start {
                    lineNumber += 1
                    let s = start, e = end
                    try buffer.withUnsafeBytes { b in
                        let line = UnsafeRawBufferPointer(rebasing: b[s..<min(e, s + LineReader.limit)])
                        if !LineReader.isBlank(line) { try body(line, lineNumber) }
                    }
                    start = end
                }
                return true
            }
            try refill()
        }
    }

    /// `forEachLine` over a mapped file: the same lines, cut the same way.
    private mutating func forEachMappedLine(_ m: UnsafeRawBufferPointer, maxLines: Int,
                                            _ body: (UnsafeRawBufferPointer, Int64) throws -> Void) throws -> Bool {
        let base = m.baseAddress!
        releaseMappedPages(m)
        var count = 0
        while mappedAt < m.count {
            if count >= maxLines { return false }
            let s = mappedAt
            let next: Int
            var lineEnd: Int
            if let p = memchr(base + s, 0x0A, m.count - s) {
                let nl = UnsafeRawPointer(p) - base
                next = nl + 1
                lineEnd = nl
                if lineEnd > s && m[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            } else {
                next = m.count
                lineEnd = m.count
            }
            try source.checkMapped()
            lineNumber += 1
            let len = min(lineEnd - s, LineReader.limit)
            mappedAt = next
            source.consumedMapped(next - s)
            // Blank lines carry no beacon and are skipped.
            let line = UnsafeRawBufferPointer(start: base + s, count: len)
            if !LineReader.isBlank(line) {
                try body(line, lineNumber)
                count += 1
            }
        }
        return true
    }

    /// Drops the pages of the mapping more than `releaseLag` bytes before
    /// the next line from this process's resident set, 8 MiB at a time:
    /// `qos replay`'s decoders read the lines of a mapped file in place,
    /// batches after the reader lent them (`DecodedBatch.lend`), and the lag
    /// keeps the pages of the batches in flight (a dozen batches of 4 096
    /// lines) resident, so a decoder does not fault them in again. Without this the page cache pages of the whole
    /// file read so far count in the replay's RSS (1.3 GB of an 8 M-line
    /// input, bench/results/speed.md "Memory per session"). The mapping is
    /// read-only and private, so a page touched again is read back from the
    /// file: bytes never change.
    private mutating func releaseMappedPages(_ m: UnsafeRawBufferPointer) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let upTo = Swift.max(0, mappedAt - Self.releaseLag) / page * page
        guard upTo - releasedTo >= 8 << 20 else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: m.baseAddress! + releasedTo), upTo - releasedTo, MADV_DONTNEED)
        releasedTo = upTo
    }

    /// The next `\n` in `start..<end` of the read buffer.
    private func findNewline() -> Int? {
        guard start < end else { return nil }
        return buffer.withUnsafeBytes { b -> Int? in
            guard let p = memchr(b.baseAddress! + start, 0x0A, end - start) else { return nil }
            return UnsafeRawPointer(p) - b.baseAddress!
        }
    }

    /// Moves the partial line to the front and reads more. A partial line
    /// past the limit keeps only its first `limit` bytes.
    private mutating func refill() throws {
        if end - start > LineReader.limit {
            overlong = true
            end = start + LineReader.limit
        }
        if start > 0 {
            buffer.withUnsafeMutableBytes { b in
                b.baseAddress!.copyMemory(from: b.baseAddress! + start, byteCount: end - start)
            }
            end -= start
            start = 0
        }
        if overlong {
            // Discard the rest of this line: read into scratch until a newline.
            try skipOverlongTail()
            return
        }
        let n = try buffer.withUnsafeMutableBytes { b in
            try source.read(into: UnsafeMutableRawBufferPointer(rebasing: b[end...]))
        }
        if n == 0 { done = true }
        end += n
    }

    private mutating func skipOverlongTail() throws {
        var scratch = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try scratch.withUnsafeMutableBytes { try source.read(into: $0) }
            if n == 0 { done = true; return }
            if let nl = scratch[0..<n].firstIndex(of: 0x0A) {
                // Keep the truncated line, mark its end, then append the rest after it.
                buffer[end] = 0x0A
                let rest = n - nl - 1
                buffer.withUnsafeMutableBytes { b in
                    scratch.withUnsafeBytes { s in
                        (b.baseAddress! + end + 1).copyMemory(from: s.baseAddress! + nl + 1, byteCount: rest)
                    }
                }
                end += 1 + rest
                return
            }
        }
    }
}
