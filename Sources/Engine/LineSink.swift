#if canImport(Glibc)
import Glibc
#endif
import CZstd

/// Writes lines to a file or stdout (`-`), zstd-compressed when the path
/// ends in `.zst`. Buffered; `close()` flushes and ends the zstd frame.
/// The descriptor and the zstd stream are released once: by the first
/// `close()` (also when its last write fails), else by `deinit`, which
/// writes nothing more.
public final class LineSink {
    let path: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private var zstd: OpaquePointer?
    private var compressed = [UInt8](repeating: 0, count: 1 << 17)

    public init(path: String) throws {
        self.path = path
        if path == "-" {
            fd = 1
        } else {
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else {
                throw UserError("cannot write '\(path)': \(String(cString: strerror(errno))) — check the directory exists and is writable")
            }
        }
        zstd = path.hasSuffix(".zst") ? ZSTD_createCStream() : nil
        if let z = zstd { ZSTD_initCStream(z, 3) }
        buffer.reserveCapacity(1 << 20)
    }

    public func writeLine(_ bytes: [UInt8]) throws {
        precondition(fd >= 0, "a LineSink written after close()")
        buffer.append(contentsOf: bytes)
        buffer.append(0x0A)
        if buffer.count >= 1 << 20 { try drain(end: false) }
    }

    public func close() throws {
        guard fd >= 0 else { return }
        defer { release() }
        try drain(end: true)
    }

    deinit { release() }

    private func release() {
        if fd > 1 { Glibc.close(fd) }
        fd = -1
        if let z = zstd { ZSTD_freeCStream(z) }
        zstd = nil
    }

    private func drain(end: Bool) throws {
        guard let z = zstd else {
            try writeAll(buffer[...])
            buffer.removeAll(keepingCapacity: true)
            return
        }
        try buffer.withUnsafeBytes { src in
            var input = ZSTD_inBuffer(src: src.baseAddress, size: src.count, pos: 0)
            var finished = false
            while input.pos < input.size || (end && !finished) {
                let (produced, rest) = try compressed.withUnsafeMutableBytes { dst -> (Int, Int) in
                    var output = ZSTD_outBuffer(dst: dst.baseAddress, size: dst.count, pos: 0)
                    let r = end ? ZSTD_compressStream2(z, &output, &input, ZSTD_e_end)
                                : ZSTD_compressStream2(z, &output, &input, ZSTD_e_continue)
                    if ZSTD_isError(r) != 0 { throw UserError("zstd compression failed: \(String(cString: ZSTD_getErrorName(r)))") }
                    return (output.pos, r)
                }
                try writeAll(compressed[0..<produced])
                finished = end && rest == 0 && input.pos == input.size
                if !end && input.pos == input.size { break }
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: ArraySlice<UInt8>) throws {
        try bytes.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let n = write(fd, b.baseAddress! + off, b.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw UserError("cannot write '\(path)': \(String(cString: strerror(errno)))")
                }
                off += n
            }
        }
    }
}
