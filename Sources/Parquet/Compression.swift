// Page compression: ZSTD frames through libzstd.
import CZstd
#if canImport(Glibc)
import Glibc
#endif

/// Largest page we agree to decompress (guards against absurd sizes in corrupt headers).
public let maxPageSize = 1 << 30

/// Reusable ZSTD compression context (one per file write; not shared across threads).
final class ZstdCompressor {
    private let ctx: OpaquePointer
    let level: Int32

    init(level: Int) throws {
        guard let c = ZSTD_createCCtx() else { throw ParquetError.compression("ZSTD_createCCtx failed") }
        ctx = c
        self.level = Int32(clamping: level)
    }

    deinit { ZSTD_freeCCtx(ctx) }

    /// Compresses `input` into `output` (replacing its contents).
    func compress(_ input: [UInt8], into output: inout [UInt8]) throws {
        let bound = ZSTD_compressBound(input.count)
        let written: Int = try input.withUnsafeBytes { src in
            var result = 0
            output = [UInt8](unsafeUninitializedCapacity: bound) { dst, count in
                result = ZSTD_compressCCtx(ctx, dst.baseAddress, bound, src.baseAddress, src.count, level)
                count = ZSTD_isError(result) != 0 ? 0 : result
            }
            guard ZSTD_isError(result) == 0 else {
                throw ParquetError.compression(String(cString: ZSTD_getErrorName(result)))
            }
            return result
        }
        precondition(output.count == written)
    }
}

/// One ZSTD frame of `input` (for callers outside Parquet pages: the
/// daemon's checkpoint manifests). Throws `ParquetError.compression`.
public func zstdCompress(_ input: [UInt8], level: Int) throws -> [UInt8] {
    var out: [UInt8] = []
    try ZstdCompressor(level: level).compress(input, into: &out)
    return out
}

/// One ZSTD frame of the concatenation of `parts`, compressed part by part
/// as libzstd streams them: the concatenation itself is never built (the
/// daemon's checkpoint manifest, whose body is every partition's snapshot:
/// a copy of it was the largest allocation of a soak's peak). The frame
/// declares its content size. Throws `ParquetError.compression`.
public func zstdCompress(parts: [[UInt8]], level: Int) throws -> [UInt8] {
    guard let ctx = ZSTD_createCCtx() else { throw ParquetError.compression("ZSTD_createCCtx failed") }
    defer { ZSTD_freeCCtx(ctx) }
    func check(_ r: Int) throws -> Int {
        guard ZSTD_isError(r) == 0 else { throw ParquetError.compression(String(cString: ZSTD_getErrorName(r))) }
        return r
    }
    _ = try check(ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, Int32(clamping: level)))
    _ = try check(ZSTD_CCtx_setPledgedSrcSize(ctx, UInt64(parts.reduce(0) { $0 + $1.count })))
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
    /// Feeds `src` (nil: none, to end the frame) until libzstd has taken all
    /// of it (and, when ending, flushed everything), appending its output.
    func feed(_ src: UnsafeRawBufferPointer?, end: Bool) throws {
        var input = ZSTD_inBuffer(src: src?.baseAddress, size: src?.count ?? 0, pos: 0)
        while true {
            let (left, produced): (Int, Int) = try chunk.withUnsafeMutableBytes { dst in
                var output = ZSTD_outBuffer(dst: dst.baseAddress, size: dst.count, pos: 0)
                let r = try check(ZSTD_compressStream2(ctx, &output, &input, end ? ZSTD_e_end : ZSTD_e_continue))
                return (r, output.pos)
            }
            out.append(contentsOf: chunk[0..<produced])
            if end ? left == 0 : input.pos == input.size { return }
        }
    }
    for part in parts where !part.isEmpty {
        try part.withUnsafeBytes { try feed($0, end: false) }
    }
    try feed(nil, end: true)
    return out
}

/// Decompresses a ZSTD frame whose size is known (from a page header, or
/// stored beside the frame), at most `limit` bytes; `what` names the data in
/// errors (`ParquetError.corrupt`).
public func zstdDecompress(_ bytes: [UInt8], range: Range<Int>, expectedSize: Int,
                           limit: Int = maxPageSize, what: String = "page") throws -> [UInt8] {
    guard expectedSize >= 0, expectedSize <= limit else {
        throw ParquetError.corrupt("\(what): uncompressed size \(expectedSize) out of range")
    }
    return try bytes.withUnsafeBytes { raw in
        let src = UnsafeRawBufferPointer(rebasing: raw[range])
        let frameSize = ZSTD_getFrameContentSize(src.baseAddress, src.count)
        // UInt64.max / UInt64.max - 1: ZSTD_CONTENTSIZE_ERROR / ZSTD_CONTENTSIZE_UNKNOWN.
        if frameSize < UInt64.max - 1 && frameSize != UInt64(expectedSize) {
            throw ParquetError.corrupt("\(what): zstd frame holds \(frameSize) bytes, header says \(expectedSize)")
        }
        guard let ctx = threadDecompressionContext() else { throw ParquetError.compression("ZSTD_createDCtx failed") }
        var result = 0
        let out = [UInt8](unsafeUninitializedCapacity: max(expectedSize, 1)) { dst, count in
            result = ZSTD_decompressDCtx(ctx, dst.baseAddress, expectedSize, src.baseAddress, src.count)
            count = ZSTD_isError(result) != 0 ? 0 : min(result, expectedSize)
        }
        guard ZSTD_isError(result) == 0 else {
            throw ParquetError.corrupt("\(what): zstd: \(String(cString: ZSTD_getErrorName(result)))")
        }
        guard result == expectedSize else {
            throw ParquetError.corrupt("\(what): zstd gave \(result) bytes, header says \(expectedSize)")
        }
        return out
    }
}

/// The calling thread's decompression context, created on its first page
/// and freed when the thread ends: a fresh context per page (what
/// `ZSTD_decompress` does) allocated and zeroed its window buffers every time.
private func threadDecompressionContext() -> OpaquePointer? {
    if let p = pthread_getspecific(decompressionContextKey) { return OpaquePointer(p) }
    guard let ctx = ZSTD_createDCtx() else { return nil }
    pthread_setspecific(decompressionContextKey, UnsafeRawPointer(ctx))
    return ctx
}

private let decompressionContextKey: pthread_key_t = {
    var key = pthread_key_t()
    let status = pthread_key_create(&key) { p in
        if let p { ZSTD_freeDCtx(OpaquePointer(p)) }
    }
    precondition(status == 0, "pthread_key_create failed")
    return key
}()
