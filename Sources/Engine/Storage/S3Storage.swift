#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ObjectStore

extension S3Error: OperatorError {}
extension S3CredentialError: OperatorError {}

/// The sink in an S3-compatible bucket (docs/object-storage.md). There is
/// no rename and no directory: a staged file is an object under
/// `_staging/`, a move is a server-side copy then a delete, and the commit
/// point is the manifest created with `If-None-Match: *`, so two writers can
/// never both commit the same epoch. Every PUT or COPY is atomic per
/// object, so a reader sees a file whole or not at all.
public final class S3Storage: SinkStorage, @unchecked Sendable {
    public let location: String
    public let client: S3Client
    /// Objects larger than this are uploaded in parts.
    static let multipartBytes = 64 << 20

    public init(location: String, client: S3Client) {
        self.location = location
        self.client = client
    }

    /// `s3://bucket/prefix`, reached per the usual AWS variables (region also
    /// from `~/.aws/config`, profile `AWS_PROFILE` or `default`; credentials
    /// per `S3CredentialChain`, docs/object-storage.md "Credentials"):
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_REGION` (or `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL_S3` (or
    /// `AWS_ENDPOINT_URL`), and `QOS_S3_PATH_STYLE` (default: path style
    /// when an endpoint is given, as MinIO, Ceph and moto expect), under the
    /// settings s3_endpoint, s3_region and s3_connect_timeout (`QOS_S3_*`;
    /// their flags and config keys are put there by `Configuration.s3Environment`).
    public convenience init(location: String, environment env: [String: String]) throws {
        guard let (bucket, prefix) = S3Config.parse(location: location) else {
            throw UserError("sink '\(location)' is not an s3://bucket/prefix address (bucket: 3–63 lowercase letters, digits, '.' or '-') — fix --sink")
        }
        func value(_ names: String...) -> String? {
            names.lazy.compactMap { env[$0] }.first { !$0.isEmpty }
        }
        // The shared files of the AWS CLI and SDKs, for what the variables leave out.
        let profile = value("AWS_PROFILE") ?? "default"
        let home = env["HOME"] ?? ""
        let shared = try S3Storage.iniSection(path: value("AWS_SHARED_CREDENTIALS_FILE") ?? "\(home)/.aws/credentials", section: profile)
        let configFile = try S3Storage.iniSection(path: value("AWS_CONFIG_FILE") ?? "\(home)/.aws/config",
                                              section: profile == "default" ? "default" : "profile \(profile)")
        // Variables, shared credentials file, credential_process, container, instance metadata.
        let credentials = try S3CredentialChain.resolve(environment: env, credentialsFile: shared, configFile: configFile,
                                                        profile: profile)
        let region = value("QOS_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION") ?? configFile["region"] ?? "us-east-1"
        let custom = value("QOS_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
        if let custom, !(custom.hasPrefix("http://") || custom.hasPrefix("https://")) {
            throw UserError("the s3 endpoint '\(custom)' is not an http:// or https:// address — fix --s3-endpoint or AWS_ENDPOINT_URL")
        }
        var pathStyle = custom != nil
        if let p = value("QOS_S3_PATH_STYLE") {
            switch p.lowercased() {
            case "1", "true", "yes": pathStyle = true
            case "0", "false", "no": pathStyle = false
            default: throw UserError("s3_path_style '\(p)' is not true or false — fix --s3-path-style or QOS_S3_PATH_STYLE")
            }
        }
        var config = S3Config(bucket: bucket, prefix: prefix, endpoint: custom ?? "https://s3.\(region).amazonaws.com",
                              region: region, pathStyle: pathStyle,
                              credentials: (credentials as? S3Credentials) ?? S3Credentials(accessKeyId: "", secretAccessKey: ""))
        if let t = value("QOS_S3_CONNECT_TIMEOUT") {
            guard let ms = DurationText.milliseconds(t), ms > 0 else {
                throw UserError("s3_connect_timeout '\(t)' is not \(DurationText.form) — fix --s3-connect-timeout or QOS_S3_CONNECT_TIMEOUT")
            }
            config.connectTimeoutSeconds = Double(ms) / 1000
        }
        self.init(location: "s3://\(bucket)" + (prefix.isEmpty ? "" : "/\(prefix)"), client: S3Client(config, credentials: credentials))
    }

    func key(_ rel: String) -> String { client.config.key(rel) }

    /// `key = value` lines of one `[section]` of an AWS shared file (empty
    /// when the file or section is missing; comments start with `#` or `;`).
    static func iniSection(path: String, section: String) throws -> [String: String] {
        guard access(path, R_OK) == 0 else { return [:] }
        let text = String(decoding: try Inspector.readFile(path), as: UTF8.self)
        var out: [String: String] = [:]
        var inside = false
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                inside = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces) == section
                continue
            }
            guard inside, let eq = line.firstIndex(of: "=") else { continue }
            out[line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()] = line[line.index(after: eq)...]
                .trimmingCharacters(in: .whitespaces)
        }
        return out
    }

    /// The key prefix of a directory's contents.
    func dirPrefix(_ rel: String) -> String {
        let k = rel.isEmpty ? client.config.prefix : key(rel)
        return k.isEmpty ? "" : k + "/"
    }

    /// Fails fast (`S3Client.probeWritable`): an unreachable endpoint stops
    /// the start within seconds, not after the running sink's retries.
    public func checkWritable() throws {
        try client.probeWritable(key(".qos-write-probe"))
    }

    public func makeDirectory(_ rel: String) throws {}

    public func stage(_ rel: String, _ bytes: [UInt8]) throws { try put(rel, bytes) }

    public func syncDirectory(_ rel: String) throws {}

    public func publish(_ rel: String, _ bytes: [UInt8]) throws { try put(rel, bytes) }

    public func replace(_ rel: String, _ bytes: [UInt8]) throws { try put(rel, bytes) }

    func put(_ rel: String, _ bytes: [UInt8]) throws {
        if bytes.count > S3Storage.multipartBytes {
            try client.putMultipart(key(rel), bytes)
        } else {
            try client.put(key(rel), bytes)
        }
    }

    /// A conditional PUT. `.exists` with our own bytes is our own earlier
    /// attempt whose reply was lost (the client retried it): committed.
    public func commit(_ rel: String, _ bytes: [UInt8]) throws -> Bool {
        switch try client.put(key(rel), bytes, ifAbsent: true) {
        case .created: return true
        case .exists: return try client.get(key(rel)) == bytes
        }
    }

    public func create(_ rel: String, _ bytes: [UInt8]) throws -> Bool {
        switch try client.put(key(rel), bytes, ifAbsent: true) {
        case .created: return true
        case .exists: return false
        }
    }

    public func move(_ from: String, to: String) throws -> Bool {
        do {
            try client.copy(key(from), to: key(to))
        } catch let e as S3Error where e.kind == .notFound {
            return false  // moved (and deleted) before
        }
        try client.delete(key(from))
        return true
    }

    public func read(_ rel: String) throws -> [UInt8]? { try client.get(key(rel)) }

    public func list(_ rel: String) throws -> [String] {
        let prefix = dirPrefix(rel)
        let l = try client.listChildren(prefix: prefix)
        let names = l.objects.map { String($0.key.dropFirst(prefix.count)) } + l.directories
        return names.filter { !$0.isEmpty && !$0.hasPrefix(".") }.sorted()
    }

    public func remove(_ rel: String) { try? client.delete(key(rel)) }

    public func removeEmptyDirectory(_ rel: String) {}

    /// A conditional PUT creates an object whole: no temporaries.
    public func removeStaleTemporaries(_ rel: String, olderThan seconds: Double) -> Int { 0 }

    public func removeTree(_ rel: String) {
        guard let objects = try? client.list(prefix: dirPrefix(rel)) else { return }
        for o in objects { try? client.delete(o.key) }
    }

    public func ageSeconds(_ rel: String) -> Double {
        let objects = ((try? client.list(prefix: key(rel))) ?? []).filter { $0.key == key(rel) || $0.key.hasPrefix(dirPrefix(rel)) }
        guard let newest = objects.compactMap({ S3Storage.epochSeconds(iso: $0.lastModified) }).max() else { return 0 }
        return Double(wallClockMs() / 1000 - newest)
    }

    public func firstFile(suffix: String) -> String? {
        func search(_ rel: String, _ depth: Int) -> String? {
            guard let l = try? client.listChildren(prefix: dirPrefix(rel)) else { return nil }
            let prefix = dirPrefix(rel)
            if let o = l.objects.first(where: { $0.key.hasSuffix(suffix) && !$0.key.dropFirst(prefix.count).hasPrefix("_") }) {
                return "s3://\(client.config.bucket)/\(o.key)"
            }
            guard depth < 4 else { return nil }
            for d in l.directories where !d.hasPrefix("_") && !d.hasPrefix(".") {
                if let f = search(rel.isEmpty ? d : "\(rel)/\(d)", depth + 1) { return f }
            }
            return nil
        }
        return search("", 0)
    }

    /// `2026-01-01T00:02:00.000Z` → seconds since the epoch (nil if not that form).
    static func epochSeconds(iso: String) -> Int64? {
        let u = Array(iso.utf8)
        guard u.count >= 19 else { return nil }
        func num(_ r: Range<Int>) -> Int64? { Int64(String(decoding: u[r], as: UTF8.self)) }
        guard let y = num(0..<4), let m = num(5..<7), let d = num(8..<10), let hh = num(11..<13), let mm = num(14..<16),
              let ss = num(17..<19) else { return nil }
        // Days from civil (H. Hinnant), the inverse of `CivilTime`.
        let yy = m <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return days * 86_400 + hh * 3600 + mm * 60 + ss
    }
}
