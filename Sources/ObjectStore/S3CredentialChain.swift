#if canImport(Glibc)
import Glibc
#endif
import Foundation
import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// Where the client gets the credentials of each request.
public protocol S3CredentialsProvider: Sendable {
    func credentials() throws -> S3Credentials
}

/// Long-lived keys (variables, the shared credentials file) never change.
extension S3Credentials: S3CredentialsProvider {
    public func credentials() throws -> S3Credentials { self }
}

/// Credentials as a source returns them: temporary ones carry their expiry.
public struct ExpiringCredentials: Sendable, Equatable {
    public var credentials: S3Credentials
    /// Seconds since the epoch; nil: does not expire.
    public var expiration: Double?

    public init(_ credentials: S3Credentials, expiration: Double?) {
        self.credentials = credentials
        self.expiration = expiration
    }
}

/// A temporary-credential source (credential_process, container, instance
/// metadata) asked again `refreshAheadSeconds` before the credentials
/// expire, so a long-running daemon never signs with expired keys. A failed
/// refresh while the cached credentials are still valid keeps them (the next
/// request asks again).
public final class RefreshingCredentials: S3CredentialsProvider, @unchecked Sendable {
    public let source: String
    let fetch: @Sendable () throws -> ExpiringCredentials
    /// Seconds since the epoch (tests advance it).
    var now: @Sendable () -> Double = { Date().timeIntervalSince1970 }
    public static let refreshAheadSeconds = 300.0
    private let lock = NSLock()
    private var cached: ExpiringCredentials?

    public init(source: String, first: ExpiringCredentials? = nil, fetch: @escaping @Sendable () throws -> ExpiringCredentials) {
        self.source = source
        self.fetch = fetch
        cached = first
    }

    public func credentials() throws -> S3Credentials {
        try lock.withLock {
            let t = now()
            if let c = cached, c.expiration.map({ t < $0 - Self.refreshAheadSeconds }) ?? true { return c.credentials }
            do {
                let fresh = try fetch()
                cached = fresh
                return fresh.credentials
            } catch {
                if let c = cached, let e = c.expiration, t < e { return c.credentials }
                throw error
            }
        }
    }
}

/// A credential source failed or none was found: one line naming the fix.
public struct S3CredentialError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message.split(whereSeparator: \.isNewline).joined(separator: " ") }
}

/// The usual AWS SDK chain (docs/object-storage.md, "Credentials"): the
/// variables, the shared credentials file's profile, the profile's
/// `credential_process`, the container endpoint (ECS, EKS pod identity),
/// then the EC2 instance metadata service (IMDSv2).
public enum S3CredentialChain {
    /// `environment`: the process's variables; `credentialsFile` and
    /// `configFile`: the profile's sections of `~/.aws/credentials` and
    /// `~/.aws/config`; `profile`: its name (for messages).
    public static func resolve(environment env: [String: String], credentialsFile: [String: String],
                               configFile: [String: String], profile: String) throws -> any S3CredentialsProvider {
        func value(_ name: String) -> String? { env[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let key = value("AWS_ACCESS_KEY_ID") {
            guard let secret = value("AWS_SECRET_ACCESS_KEY") else {
                throw S3CredentialError("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is empty — set both (or neither, to use a profile)")
            }
            return S3Credentials(accessKeyId: key, secretAccessKey: secret, sessionToken: value("AWS_SESSION_TOKEN"))
        }
        if let key = credentialsFile["aws_access_key_id"], !key.isEmpty {
            guard let secret = credentialsFile["aws_secret_access_key"], !secret.isEmpty else {
                throw S3CredentialError("profile '\(profile)' of the shared credentials file has aws_access_key_id but no aws_secret_access_key — add it")
            }
            return S3Credentials(accessKeyId: key, secretAccessKey: secret, sessionToken: credentialsFile["aws_session_token"])
        }
        if let command = credentialsFile["credential_process"] ?? configFile["credential_process"], !command.isEmpty {
            let fetch: @Sendable () throws -> ExpiringCredentials = { try credentialProcess(command, profile: profile) }
            return RefreshingCredentials(source: "credential_process", first: try fetch(), fetch: fetch)
        }
        if let container = try containerRequest(env) {
            let fetch: @Sendable () throws -> ExpiringCredentials = {
                let (status, body) = try httpRequest("GET", container.url, headers: container.headers, timeoutSeconds: 2)
                guard status == 200 else {
                    throw S3CredentialError("the container credentials endpoint \(container.url) answered HTTP \(status) — check the task role (AWS_CONTAINER_CREDENTIALS_*)")
                }
                return try parse(body, source: "the container credentials endpoint \(container.url)", token: "Token")
            }
            return RefreshingCredentials(source: "container", first: try fetch(), fetch: fetch)
        }
        let none = "no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or keys or credential_process for "
            + "profile '\(profile)' in ~/.aws/credentials or ~/.aws/config, or run with a container or instance role"
        guard value("AWS_EC2_METADATA_DISABLED")?.lowercased() != "true" else {
            throw S3CredentialError(none + " (instance metadata disabled by AWS_EC2_METADATA_DISABLED)")
        }
        let endpoint = value("AWS_EC2_METADATA_SERVICE_ENDPOINT") ?? "http://169.254.169.254"
        let fetch: @Sendable () throws -> ExpiringCredentials = { try instanceMetadata(endpoint) }
        let first: ExpiringCredentials
        do { first = try fetch() } catch {
            throw S3CredentialError(none + " (instance metadata at \(endpoint): \(error))")
        }
        return RefreshingCredentials(source: "instance metadata", first: first, fetch: fetch)
    }

    // MARK: credential_process

    /// Runs the profile's `credential_process` (a shell command line) and
    /// reads its JSON (`Version` 1: `AccessKeyId`, `SecretAccessKey`,
    /// optional `SessionToken` and `Expiration`).
    static func credentialProcess(_ command: String, profile: String) throws -> ExpiringCredentials {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch {
            throw S3CredentialError("credential_process of profile '\(profile)' could not start: \(error) — fix the command")
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let why = String(decoding: stderr, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            throw S3CredentialError("credential_process of profile '\(profile)' exited with status \(p.terminationStatus)"
                                    + (why.isEmpty ? "" : ": \(why)") + " — run it by hand to see why")
        }
        let source = "credential_process of profile '\(profile)'"
        guard let json = try? JSONSerialization.jsonObject(with: stdout) as? [String: Any] else {
            throw S3CredentialError("\(source) did not print a JSON object — it must print {\"Version\": 1, \"AccessKeyId\": …}")
        }
        guard (json["Version"] as? NSNumber)?.intValue == 1 else {
            throw S3CredentialError("\(source) printed Version \(json["Version"].map { "\($0)" } ?? "(none)"), not 1 — only Version 1 is known")
        }
        return try parse(json, source: source, token: "SessionToken")
    }

    // MARK: Container and instance metadata

    /// The container endpoint's URL and headers, nil when the variables do not name one.
    static func containerRequest(_ env: [String: String]) throws -> (url: String, headers: [(String, String)])? {
        func value(_ name: String) -> String? { env[name].flatMap { $0.isEmpty ? nil : $0 } }
        let url: String
        if let relative = value("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            url = "http://169.254.170.2" + (relative.hasPrefix("/") ? relative : "/" + relative)
        } else if let full = value("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            guard full.hasPrefix("http://") || full.hasPrefix("https://") else {
                throw S3CredentialError("AWS_CONTAINER_CREDENTIALS_FULL_URI '\(full)' is not an http:// or https:// address — fix it")
            }
            url = full
        } else {
            return nil
        }
        var token = value("AWS_CONTAINER_AUTHORIZATION_TOKEN")
        if token == nil, let file = value("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw S3CredentialError("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE '\(file)' cannot be read — fix the path")
            }
            token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return (url, token.map { [("authorization", $0)] } ?? [])
    }

    /// IMDSv2: a session token (PUT), the instance role's name, its credentials.
    static func instanceMetadata(_ endpoint: String) throws -> ExpiringCredentials {
        let base = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        let (s1, token) = try httpRequest("PUT", base + "/latest/api/token",
                                          headers: [("x-aws-ec2-metadata-token-ttl-seconds", "21600")], timeoutSeconds: 1)
        guard s1 == 200 else { throw S3CredentialError("the token request answered HTTP \(s1)") }
        let auth = [("x-aws-ec2-metadata-token", String(decoding: token, as: UTF8.self))]
        let path = base + "/latest/meta-data/iam/security-credentials/"
        let (s2, roles) = try httpRequest("GET", path, headers: auth, timeoutSeconds: 1)
        guard s2 == 200, let role = String(decoding: roles, as: UTF8.self).split(whereSeparator: \.isNewline).first else {
            throw S3CredentialError("no instance role (HTTP \(s2)) — attach an IAM role to the instance")
        }
        let (s3, body) = try httpRequest("GET", path + role, headers: auth, timeoutSeconds: 1)
        guard s3 == 200 else { throw S3CredentialError("the role '\(role)' answered HTTP \(s3)") }
        return try parse(body, source: "instance metadata (role '\(role)')", token: "Token")
    }

    // MARK: Parsing

    static func parse(_ body: [UInt8], source: String, token: String) throws -> ExpiringCredentials {
        guard let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw S3CredentialError("\(source) did not answer a JSON object")
        }
        if let code = json["Code"] as? String, code != "Success" {
            throw S3CredentialError("\(source) answered Code \(code): \(json["Message"] as? String ?? "")")
        }
        return try parse(json, source: source, token: token)
    }

    static func parse(_ json: [String: Any], source: String, token: String) throws -> ExpiringCredentials {
        guard let key = json["AccessKeyId"] as? String, !key.isEmpty,
              let secret = json["SecretAccessKey"] as? String, !secret.isEmpty else {
            throw S3CredentialError("\(source) gave no AccessKeyId and SecretAccessKey")
        }
        var expiration: Double?
        if let e = json["Expiration"] as? String {
            guard let t = isoSeconds(e) else {
                throw S3CredentialError("\(source): Expiration '\(e)' is not an ISO 8601 time such as 2026-12-01T15:00:00Z")
            }
            expiration = t
        }
        let session = (json[token] as? String).flatMap { $0.isEmpty ? nil : $0 }
        return ExpiringCredentials(S3Credentials(accessKeyId: key, secretAccessKey: secret, sessionToken: session),
                                   expiration: expiration)
    }

    /// `2026-12-01T15:00:00Z` (fractional seconds and offsets allowed) → seconds since the epoch.
    static func isoSeconds(_ s: String) -> Double? {
        let f = ISO8601DateFormatter()
        if let d = f.date(from: s) { return d.timeIntervalSince1970 }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s)?.timeIntervalSince1970
    }

    /// One short blocking request (no retries: a source that does not answer
    /// within `timeoutSeconds` is not there).
    static func httpRequest(_ method: String, _ url: String, headers: [(String, String)],
                            timeoutSeconds: Double) throws -> (status: Int, body: [UInt8]) {
        var c = HTTPClient.Configuration()
        let t = TimeAmount.milliseconds(Int64(timeoutSeconds * 1000))
        c.timeout = .init(connect: t, read: t)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: c)
        defer { try? http.syncShutdown() }
        var h = HTTPHeaders()
        for (n, v) in headers { h.add(name: n, value: v) }
        do {
            let request = try HTTPClient.Request(url: url, method: HTTPMethod(rawValue: method), headers: h,
                                                 body: method == "PUT" ? .bytes([]) : nil)
            let response = try http.execute(request: request, deadline: .now() + t).wait()
            var bytes: [UInt8] = []
            if var b = response.body { bytes = b.readBytes(length: b.readableBytes) ?? [] }
            return (Int(response.status.code), bytes)
        } catch let e as S3CredentialError {
            throw e
        } catch {
            throw S3CredentialError("no answer from \(url) within \(timeoutSeconds) s (\(error))")
        }
    }
}
