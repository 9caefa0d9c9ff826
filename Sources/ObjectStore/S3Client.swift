import Foundation
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
#if canImport(Glibc)
import Glibc
#endif

/// The requests an exactly-once sink needs from an S3-compatible store
/// (AWS S3, MinIO, Ceph RGW, GCS's and Azure's S3 endpoints):
/// put (optionally only if absent), get (optionally a byte range), list a
/// prefix, delete, copy, and multipart upload for large objects; each
/// signed with SigV4 and retried with backoff and jitter when the store
/// or the network fails in a way a retry can fix (docs/object-storage.md).
/// Blocking calls, for the driver's threads.
public final class S3Client: @unchecked Sendable {
    public let config: S3Config
    /// Asked before every request (temporary credentials are refreshed
    /// before they expire); `config.credentials` when none is given.
    public let credentials: any S3CredentialsProvider
    let http: HTTPClient
    /// Sleeps between retries (tests inject a recorder).
    var sleep: (Double) -> Void = { s in usleep(UInt32(max(0, min(s, 60)) * 1_000_000)) }
    /// Current time as `YYYYMMDDTHHMMSSZ` (tests pin it).
    var amzDate: () -> String = S3Client.nowAmzDate

    public init(_ config: S3Config, credentials: (any S3CredentialsProvider)? = nil) {
        self.config = config
        self.credentials = credentials ?? config.credentials
        var c = HTTPClient.Configuration()
        c.timeout = .init(connect: .milliseconds(Int64(config.connectTimeoutSeconds * 1000)),
                          read: .seconds(Int64(config.requestTimeoutSeconds)))
        c.decompression = .disabled
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: c)
    }

    deinit { try? http.syncShutdown() }

    // MARK: Objects

    /// What a conditional put found.
    public enum PutOutcome: Equatable, Sendable {
        case created
        /// `ifAbsent`: an object was there already (the store answered 412).
        case exists
    }

    /// Writes `body` to `key`. With `ifAbsent`, only when no object has that
    /// key (`If-None-Match: *`): of two writers, exactly one gets `.created`.
    @discardableResult
    public func put(_ key: String, _ body: [UInt8], ifAbsent: Bool = false,
                    contentType: String = "application/octet-stream") throws -> PutOutcome {
        var headers = [("content-type", contentType)]
        if ifAbsent { headers.append(("if-none-match", "*")) }
        let r = try send("PUT", key: key, headers: headers, body: body, accept: [200, 412])
        return r.status == 412 ? .exists : .created
    }

    /// The object's bytes (a `range` of them), or nil when there is no such key.
    public func get(_ key: String, range: Range<Int64>? = nil) throws -> [UInt8]? {
        var headers: [(String, String)] = []
        if let range {
            precondition(!range.isEmpty && range.lowerBound >= 0, "a non-empty byte range")
            headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)"))
        }
        let r = try send("GET", key: key, headers: headers, accept: [200, 206, 404])
        return r.status == 404 ? nil : r.body
    }

    public struct Object: Equatable, Sendable {
        public var key: String
        public var size: Int64
        /// `LastModified` as the store wrote it (ISO 8601, UTC).
        public var lastModified = ""
        /// The store's ETag (quotes removed): changes when the object is rewritten.
        public var etag = ""
    }

    /// Every object under `prefix`, in key order (LIST v2, page by page).
    public func list(prefix: String) throws -> [Object] {
        try listing(prefix: prefix, delimiter: nil).objects
    }

    /// One level under `prefix` (which ends in `/`, or is ""): the objects
    /// directly in it and the names of the "directories" below it (common
    /// prefixes, without `prefix` and the trailing `/`).
    public func listChildren(prefix: String) throws -> (objects: [Object], directories: [String]) {
        let l = try listing(prefix: prefix, delimiter: "/")
        return (l.objects, l.prefixes.map { String($0.dropFirst(prefix.count).dropLast()) })
    }

    func listing(prefix: String, delimiter: String?) throws -> (objects: [Object], prefixes: [String]) {
        var out: [Object] = []
        var prefixes: [String] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix), ("encoding-type", "url")]
            if let delimiter { query.append(("delimiter", delimiter)) }
            if let token { query.append(("continuation-token", token)) }
            if config.listPageSize != 1000 { query.append(("max-keys", String(config.listPageSize))) }
            let r = try send("GET", key: nil, query: query, accept: [200])
            let xml = String(decoding: r.body, as: UTF8.self)
            for block in XMLText.blocks("Contents", in: xml) {
                guard let k = XMLText.value("Key", in: block), let size = XMLText.value("Size", in: block).flatMap({ Int64($0) }) else {
                    throw S3Error(.malformedResponse, status: r.status, message: "a LIST entry without Key or Size", key: prefix)
                }
                out.append(Object(key: XMLText.percentDecoded(k), size: size,
                                  lastModified: XMLText.value("LastModified", in: block) ?? "",
                                  etag: (XMLText.value("ETag", in: block) ?? "").replacingOccurrences(of: "\"", with: "")))
            }
            for block in XMLText.blocks("CommonPrefixes", in: xml) {
                if let p = XMLText.value("Prefix", in: block) { prefixes.append(XMLText.percentDecoded(p)) }
            }
            let truncated = XMLText.value("IsTruncated", in: xml) == "true"
            token = truncated ? XMLText.value("NextContinuationToken", in: xml) : nil
            if truncated && token == nil {
                throw S3Error(.malformedResponse, status: r.status, message: "a truncated LIST without a continuation token", key: prefix)
            }
        } while token != nil
        return (out, prefixes)
    }

    /// Removes `key` (no error when it is already gone).
    public func delete(_ key: String) throws {
        _ = try send("DELETE", key: key, accept: [200, 204, 404])
    }

    /// Copies `source` to `destination` within the bucket, on the store's side.
    public func copy(_ source: String, to destination: String) throws {
        let src = "/\(config.bucket)/\(source)".split(separator: "/", omittingEmptySubsequences: false)
            .map { SigV4Signer.uriEncode(String($0)) }.joined(separator: "/")
        let r = try send("PUT", key: destination, headers: [("x-amz-copy-source", src)], accept: [200])
        // A copy can fail after the 200 status line: the error is in the body.
        let xml = String(decoding: r.body, as: UTF8.self)
        if xml.contains("<Error>") { throw S3Error.fromBody(status: 200, xml: xml, key: destination) }
    }

    /// Creates the bucket (tests and local stores; production buckets are made by their owners).
    public func createBucket() throws {
        _ = try send("PUT", key: nil, accept: [200])
    }

    /// The start-up check that the sink can be written: a PUT and a DELETE
    /// of `key`, failing fast — at most `config.probe.maxAttempts` attempts of
    /// at most `config.probe.timeoutSeconds` each — so an unreachable or
    /// silent endpoint is one line within seconds; the running sink's
    /// requests keep `config.retry` for transient faults.
    public func probeWritable(_ key: String) throws {
        let p = config.probe
        _ = try send("PUT", key: key, headers: [("content-type", "application/octet-stream")], accept: [200],
                     attempts: p.maxAttempts, timeoutSeconds: p.timeoutSeconds)
        _ = try send("DELETE", key: key, accept: [200, 204, 404], attempts: p.maxAttempts, timeoutSeconds: p.timeoutSeconds)
    }

    // MARK: Multipart

    /// Writes a large body in parts of `partSize` bytes (at least 5 MiB but
    /// the last), aborting the upload on failure so no parts linger.
    public func putMultipart(_ key: String, _ body: [UInt8], partSize: Int = 8 << 20) throws {
        precondition(partSize >= 5 << 20, "S3 parts are at least 5 MiB")
        let created = try send("POST", key: key, query: [("uploads", "")], accept: [200])
        guard let uploadId = XMLText.value("UploadId", in: String(decoding: created.body, as: UTF8.self)) else {
            throw S3Error(.malformedResponse, status: created.status, message: "no UploadId in the multipart reply", key: key)
        }
        do {
            var etags: [String] = []
            var start = 0
            repeat {
                let end = min(body.count, start + partSize)
                let part = Array(body[start..<end])
                let r = try send("PUT", key: key, query: [("partNumber", String(etags.count + 1)), ("uploadId", uploadId)],
                                 body: part, accept: [200])
                guard let etag = r.headers.first(name: "etag") else {
                    throw S3Error(.malformedResponse, status: r.status, message: "a part without ETag", key: key)
                }
                etags.append(etag)
                start = end
            } while start < body.count
            let parts = etags.enumerated().map { "<Part><PartNumber>\($0.offset + 1)</PartNumber><ETag>\(XMLText.escaped($0.element))</ETag></Part>" }
            let xml = Array("<CompleteMultipartUpload>\(parts.joined())</CompleteMultipartUpload>".utf8)
            let r = try send("POST", key: key, query: [("uploadId", uploadId)], headers: [("content-type", "application/xml")],
                             body: xml, accept: [200])
            let reply = String(decoding: r.body, as: UTF8.self)
            if reply.contains("<Error>") { throw S3Error.fromBody(status: 200, xml: reply, key: key) }
        } catch {
            _ = try? send("DELETE", key: key, query: [("uploadId", uploadId)], accept: [200, 204, 404])
            throw error
        }
    }

    // MARK: Requests

    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    /// One request, retried per `config.retry` (at most `attempts` when
    /// given, each within `timeoutSeconds` when given); `accept`: the
    /// statuses that are answers (anything else is an `S3Error`).
    func send(_ method: String, key: String?, query: [(String, String)] = [], headers: [(String, String)] = [],
              body: [UInt8] = [], accept: Set<Int>, attempts: Int? = nil, timeoutSeconds: Double? = nil) throws -> Reply {
        let maxAttempts = attempts ?? config.retry.maxAttempts
        var attempt = 0
        while true {
            attempt += 1
            // Outside the retry: a credential source's failure is its own one-line error.
            let signer = SigV4Signer(credentials: try credentials.credentials(), region: config.region)
            do {
                let reply = try sendOnce(method, key: key, query: query, headers: headers, body: body, signer: signer,
                                         timeoutSeconds: timeoutSeconds ?? Double(config.requestTimeoutSeconds))
                if accept.contains(reply.status) { return reply }
                let error = S3Error.fromBody(status: reply.status, xml: String(decoding: reply.body, as: UTF8.self), key: key ?? config.prefix)
                guard error.isRetryable, attempt < maxAttempts else { throw error }
            } catch let e as S3Error {
                guard e.isRetryable, attempt < maxAttempts else { throw e }
            } catch {
                let e = S3Error(.transport, status: 0, message: "\(error)", key: key ?? config.prefix)
                guard attempt < maxAttempts else { throw e }
            }
            sleep(config.retry.delay(attempt: attempt, unit: Double.random(in: 0...1)))
        }
    }

    func sendOnce(_ method: String, key: String?, query: [(String, String)], headers: [(String, String)],
                  body: [UInt8], signer: SigV4Signer, timeoutSeconds: Double) throws -> Reply {
        let path = config.path(key: key)
        let payloadHash = SigV4Signer.payloadHash(body)
        let signed = signer.sign(.init(method: method, host: config.hostHeader, path: path, query: query,
                                       headers: headers, payloadHash: payloadHash), amzDate: amzDate())
        var url = config.origin + path.split(separator: "/", omittingEmptySubsequences: false)
            .map { SigV4Signer.uriEncode(String($0)) }.joined(separator: "/")
        if !query.isEmpty {
            url += "?" + query.map { "\(SigV4Signer.uriEncode($0.0))=\(SigV4Signer.uriEncode($0.1))" }.joined(separator: "&")
        }
        var h = HTTPHeaders()
        for (n, v) in signed { h.add(name: n, value: v) }
        let request = try HTTPClient.Request(url: url, method: HTTPMethod(rawValue: method), headers: h,
                                             body: body.isEmpty && method != "PUT" ? nil : .bytes(body))
        let response = try http.execute(request: request,
                                        deadline: .now() + .milliseconds(Int64(timeoutSeconds * 1000))).wait()
        var bytes: [UInt8] = []
        if var b = response.body { bytes = b.readBytes(length: b.readableBytes) ?? [] }
        return Reply(status: Int(response.status.code), headers: response.headers, body: bytes)
    }

    static func nowAmzDate() -> String {
        var t = time(nil)
        var tm = tm()
        gmtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tm.tm_year + 1900)\(two(tm.tm_mon + 1))\(two(tm.tm_mday))T\(two(tm.tm_hour))\(two(tm.tm_min))\(two(tm.tm_sec))Z"
    }
}
