/// A request the store refused or could not answer, as one line that names
/// the key, the store's error code and what to do (docs/object-storage.md, "Errors").
public struct S3Error: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The access key is unknown or the signature does not match the secret.
        case credentials
        /// Known credentials without permission for the request.
        case accessDenied
        case noSuchBucket
        case notFound
        /// A 5xx, throttling (503 SlowDown, 429) or a request timeout: retried.
        case server
        /// The connection failed or timed out: retried.
        case transport
        /// A reply that is not what the protocol promises.
        case malformedResponse
        case other
    }

    public var kind: Kind
    /// HTTP status (0: no reply).
    public var status: Int
    /// The store's error code (`SignatureDoesNotMatch`), or "".
    public var code: String
    public var message: String
    public var key: String

    public init(_ kind: Kind, status: Int, code: String = "", message: String, key: String) {
        self.kind = kind
        self.status = status
        self.code = code
        self.message = message
        self.key = key
    }

    public var isRetryable: Bool { kind == .server || kind == .transport }

    /// The error of a non-2xx reply from its XML body (S3's `<Error>` document; may be empty).
    static func fromBody(status: Int, xml: String, key: String) -> S3Error {
        let code = XMLText.value("Code", in: xml) ?? ""
        let message = XMLText.value("Message", in: xml) ?? ""
        let kind: Kind
        switch (status, code) {
        case (_, "InvalidAccessKeyId"), (_, "SignatureDoesNotMatch"), (_, "InvalidToken"), (_, "ExpiredToken"),
             (_, "AuthorizationHeaderMalformed"), (_, "InvalidSecurity"):
            kind = .credentials
        case (_, "NoSuchBucket"): kind = .noSuchBucket
        case (_, "AccessDenied"): kind = .accessDenied
        case (_, "SlowDown"), (_, "InternalError"), (_, "RequestTimeout"), (_, "ServiceUnavailable"): kind = .server
        case (404, _), (_, "NoSuchKey"): kind = .notFound
        case (403, _): kind = .accessDenied
        case (429, _), (500...599, _): kind = .server
        default: kind = .other
        }
        return S3Error(kind, status: status, code: code, message: message.isEmpty ? "HTTP \(status)" : message, key: key)
    }

    public var description: String {
        let what = code.isEmpty ? message : "\(code): \(message)"
        switch kind {
        case .credentials:
            return "object store rejected the credentials (\(what)) — check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile) and the region"
        case .accessDenied:
            return "object store denied access to '\(key)' (\(what)) — the credentials need s3:GetObject, PutObject, DeleteObject and ListBucket on the sink's prefix"
        case .noSuchBucket:
            return "object store has no such bucket (\(what)) — create it or fix the s3:// address"
        case .transport:
            return "object store unreachable for '\(key)': \(message) — check the endpoint"
        case .server:
            return "object store failed on '\(key)' (\(what), HTTP \(status)) after retries"
        case .notFound, .malformedResponse, .other:
            return "object store: '\(key)': \(what) (HTTP \(status))"
        }
    }
}
