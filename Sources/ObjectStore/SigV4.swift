/// Credentials of an S3-compatible store (docs/object-storage.md).
public struct S3Credentials: Sendable, Equatable {
    public var accessKeyId: String
    public var secretAccessKey: String
    /// For temporary credentials (STS): sent as `x-amz-security-token`.
    public var sessionToken: String?

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

/// AWS Signature Version 4 for S3 requests (docs/object-storage.md,
/// "Signing"): a canonical form of the request is hashed, and the hash is
/// signed with a key derived from the secret, the day, the region and the
/// service. The store recomputes the same signature; any difference in the
/// canonical form is a `SignatureDoesNotMatch`.
public struct SigV4Signer: Sendable {
    public let credentials: S3Credentials
    public let region: String
    public let service: String

    /// The payload hash that tells the store the body is not signed.
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    public init(credentials: S3Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// One request to sign. `path` is the decoded object path (`/bucket/key`
    /// or `/key`); `query` the decoded query parameters.
    public struct Request: Sendable {
        public var method: String
        public var host: String
        public var path: String
        public var query: [(String, String)]
        /// Headers to send and sign (names in any case). `host`,
        /// `x-amz-date`, `x-amz-content-sha256` and the security token are added.
        public var headers: [(String, String)]
        /// Hex SHA-256 of the body, or `unsignedPayload`.
        public var payloadHash: String

        public init(method: String, host: String, path: String, query: [(String, String)] = [],
                    headers: [(String, String)] = [], payloadHash: String) {
            self.method = method
            self.host = host
            self.path = path
            self.query = query
            self.headers = headers
            self.payloadHash = payloadHash
        }
    }

    /// The headers to send: the request's own plus the signing headers and
    /// `Authorization`. `amzDate` is `YYYYMMDD'T'HHMMSS'Z'` (UTC).
    public func sign(_ r: Request, amzDate: String) -> [(String, String)] {
        precondition(amzDate.utf8.count == 16 && amzDate.hasSuffix("Z"), "x-amz-date is YYYYMMDDTHHMMSSZ")
        var headers = r.headers
        headers.append(("host", r.host))
        headers.append(("x-amz-date", amzDate))
        headers.append(("x-amz-content-sha256", r.payloadHash))
        if let token = credentials.sessionToken { headers.append(("x-amz-security-token", token)) }
        let (canonical, signedHeaders) = canonicalRequest(r, headers: headers)
        let day = String(amzDate.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n\(Self.hex(SHA256Hash.hash(Array(canonical.utf8))))"
        let signature = Self.hex(SHA256Hash.hmac(key: signingKey(day: day), Array(stringToSign.utf8)))
        headers.append(("Authorization",
                        "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyId)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"))
        return headers.filter { $0.0.lowercased() != "host" }  // the HTTP client sends Host itself
    }

    /// The canonical request and the signed-header list.
    func canonicalRequest(_ r: Request, headers: [(String, String)]) -> (String, String) {
        let uri = r.path.split(separator: "/", omittingEmptySubsequences: false)
            .map { Self.uriEncode(String($0)) }.joined(separator: "/")
        let query = r.query.map { (Self.uriEncode($0.0), Self.uriEncode($0.1)) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            .map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        var byName: [String: [String]] = [:]
        for (n, v) in headers {
            byName[n.lowercased(), default: []].append(Self.trimmed(v))
        }
        let names = byName.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(byName[$0]!.joined(separator: ","))\n" }.joined()
        let signed = names.joined(separator: ";")
        let text = "\(r.method)\n\(uri.isEmpty ? "/" : uri)\n\(query)\n\(canonicalHeaders)\n\(signed)\n\(r.payloadHash)"
        return (text, signed)
    }

    func signingKey(day: String) -> [UInt8] {
        var key = Array("AWS4\(credentials.secretAccessKey)".utf8)
        for part in [day, region, service, "aws4_request"] { key = SHA256Hash.hmac(key: key, Array(part.utf8)) }
        return key
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters
    /// (`A–Z a–z 0–9 - _ . ~`), as SigV4 requires (a `/` in a query value too).
    public static func uriEncode(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out += "%" + String(hexDigit(b >> 4)) + String(hexDigit(b & 0xF))
            }
        }
        return out
    }

    static func hexDigit(_ v: UInt8) -> Character { Character(Unicode.Scalar(v < 10 ? 48 + v : 55 + v)) }

    /// Leading and trailing spaces removed, inner runs of spaces as one.
    static func trimmed(_ v: String) -> String {
        v.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }

    public static func hex<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xF)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Hex SHA-256 of a body (the `x-amz-content-sha256` of a signed payload).
    public static func payloadHash(_ body: [UInt8]) -> String { hex(SHA256Hash.hash(body)) }
}
