import Foundation
/// Where a sink on object storage lives and how to reach it
/// (docs/object-storage.md, "Configuration").
public struct S3Config: Sendable, Equatable {
    public var bucket: String
    /// The key prefix of the dataset, without leading or trailing `/` ("" = the bucket's root).
    public var prefix: String
    /// `scheme://host[:port]` of the store: `https://s3.<region>.amazonaws.com`
    /// for AWS, the server's address for MinIO, Ceph or a local test store.
    public var endpoint: String
    public var region: String
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-hosted
    /// (`bucket.host/key`): what MinIO, Ceph and local stores expect.
    public var pathStyle: Bool
    public var credentials: S3Credentials
    public var retry = RetryPolicy()
    public var requestTimeoutSeconds = 30
    /// How long a connection may take to open (the HTTP client keeps
    /// retrying a refused connect within it, before the request's retries);
    /// the setting s3_connect_timeout.
    public var connectTimeoutSeconds = 3.0
    /// The start-up probe's budget (`S3Client.probeWritable`).
    public var probe = ProbePolicy()
    /// Keys per LIST page (the store's maximum is 1000).
    public var listPageSize = 1000

    public init(bucket: String, prefix: String, endpoint: String, region: String, pathStyle: Bool,
                credentials: S3Credentials) {
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.region = region
        self.pathStyle = pathStyle
        self.credentials = credentials
    }

    /// `s3://bucket/prefix` → (bucket, prefix); nil when it is not one.
    public static func parse(location: String) -> (bucket: String, prefix: String)? {
        guard location.hasPrefix("s3://") else { return nil }
        let rest = location.dropFirst(5)
        let bucket = rest.prefix { $0 != "/" }
        guard isBucketName(String(bucket)) else { return nil }
        let prefix = rest.dropFirst(bucket.count).split(separator: "/").joined(separator: "/")
        return (String(bucket), prefix)
    }

    /// S3's bucket naming rule: 3–63 characters of lowercase letters, digits,
    /// `.` and `-`, starting and ending with a letter or digit.
    public static func isBucketName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        func alnum(_ c: UInt8) -> Bool { (97...122).contains(c) || (48...57).contains(c) }
        return (3...63).contains(u.count) && alnum(u.first!) && alnum(u.last!)
            && u.allSatisfy { alnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    /// The scheme and authority requests go to.
    var origin: String {
        guard !pathStyle, let r = endpoint.range(of: "://") else { return endpoint }
        return endpoint[..<r.upperBound] + bucket + "." + endpoint[r.upperBound...]
    }

    /// The `Host` header value (what the signature covers).
    var hostHeader: String {
        let o = origin
        guard let r = o.range(of: "://") else { return o }
        let authority = o[r.upperBound...]
        // Default ports are not part of Host.
        if o.hasPrefix("https://"), authority.hasSuffix(":443") { return String(authority.dropLast(4)) }
        if o.hasPrefix("http://"), authority.hasSuffix(":80") { return String(authority.dropLast(3)) }
        return String(authority)
    }

    /// The decoded request path of `key` relative to the prefix (nil: the bucket itself).
    func path(key: String?) -> String {
        let bucketPart = pathStyle ? "/\(bucket)" : ""
        guard let key else { return bucketPart + "/" }
        return bucketPart + "/" + key
    }

    /// The full object key of a path relative to the dataset.
    public func key(_ relative: String) -> String { prefix.isEmpty ? relative : prefix + "/" + relative }
}

/// How hard the start-up probe tries: few short attempts, so an endpoint
/// that refuses or never answers fails the start within seconds.
public struct ProbePolicy: Sendable, Equatable {
    /// Two transient faults in a row still let the start go on.
    public var maxAttempts = 3
    /// Per attempt, connecting included.
    public var timeoutSeconds = 3.0

    public init() {}
}

/// Retries with exponential backoff and full jitter: attempt `n` waits a
/// uniformly random time in [0, min(cap, base × 2^(n−1))].
public struct RetryPolicy: Sendable, Equatable {
    public var maxAttempts = 6
    public var baseSeconds = 0.1
    public var capSeconds = 5.0

    public init() {}

    /// The wait after failed attempt `attempt` (1-based); `unit` in [0, 1].
    public func delay(attempt: Int, unit: Double) -> Double {
        precondition(attempt >= 1 && (0...1).contains(unit), "attempt ≥ 1, unit in [0, 1]")
        return unit * min(capSeconds, baseSeconds * Double(1 << min(attempt - 1, 30)))
    }
}
