import Foundation
import Testing
import TestSupport
@testable import Engine
@testable import ObjectStore

/// The credential chain beyond the variables and the shared credentials
/// file (docs/object-storage.md, "Credentials"): credential_process, and
/// the refresh of temporary credentials before they expire. The container
/// endpoint and instance metadata are tested against local HTTP servers in
/// tests/interop/test_object_storage.py.
@Suite(.serialized) struct S3CredentialTests {
    final class Clock: @unchecked Sendable { var t = 1_000_000.0 }
    final class Counter: @unchecked Sendable { var n = 0 }

    @Test func temporaryCredentialsAreRefreshedFiveMinutesBeforeTheyExpire() throws {
        let clock = Clock(), calls = Counter()
        let p = RefreshingCredentials(source: "test") {
            calls.n += 1
            return ExpiringCredentials(S3Credentials(accessKeyId: "AK\(calls.n)", secretAccessKey: "s"), expiration: clock.t + 3600)
        }
        p.now = { clock.t }
        #expect(try p.credentials().accessKeyId == "AK1")
        clock.t += 3600 - 301
        #expect(try p.credentials().accessKeyId == "AK1" && calls.n == 1)  // cached until 5 min before expiry
        clock.t += 2
        #expect(try p.credentials().accessKeyId == "AK2" && calls.n == 2)
        #expect(try p.credentials().accessKeyId == "AK2" && calls.n == 2)
    }

    @Test func aFailedRefreshKeepsCredentialsThatAreStillValid() throws {
        let clock = Clock(), calls = Counter()
        let p = RefreshingCredentials(source: "test") {
            calls.n += 1
            if calls.n > 1 { throw S3CredentialError("source down") }
            return ExpiringCredentials(S3Credentials(accessKeyId: "AK", secretAccessKey: "s"), expiration: clock.t + 600)
        }
        p.now = { clock.t }
        _ = try p.credentials()
        clock.t += 400  // inside the refresh margin, not expired
        #expect(try p.credentials().accessKeyId == "AK" && calls.n == 2)
        clock.t += 300  // expired
        #expect(throws: S3CredentialError.self) { try p.credentials() }
    }

    /// A `credential_process` script in a temporary directory: its keys sign
    /// requests moto accepts; it runs once while its credentials are fresh,
    /// again on every request once they are within the refresh margin.
    @Test(.enabled(if: MotoServer.available, MotoServer.skipReason))
    func credentialProcessKeysSignRequestsAndAreRefreshedBeforeExpiry() throws {
        let moto = try MotoServer()
        try moto.client().createBucket()
        let dir = NSTemporaryDirectory() + "qos-credproc-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The expiry is read from a file the test rewrites.
        try "2099-01-01T00:00:00Z".write(toFile: dir + "/expiry", atomically: true, encoding: .utf8)
        let script = """
            #!/bin/sh
            echo run >> '\(dir)/runs'
            printf '{"Version": 1, "AccessKeyId": "AKPROC", "SecretAccessKey": "sp", "SessionToken": "tp", "Expiration": "%s"}' "$(cat '\(dir)/expiry')"
            """
        try script.write(toFile: dir + "/creds.sh", atomically: true, encoding: .utf8)
        chmod(dir + "/creds.sh", 0o755)
        try "[profile ops]\nregion = us-east-1\ncredential_process = \(dir)/creds.sh --role reader\n"
            .write(toFile: dir + "/config", atomically: true, encoding: .utf8)
        let env = ["AWS_CONFIG_FILE": dir + "/config", "AWS_SHARED_CREDENTIALS_FILE": dir + "/none", "AWS_PROFILE": "ops",
                   "AWS_ENDPOINT_URL": moto.endpoint, "AWS_EC2_METADATA_DISABLED": "true"]
        func runs() -> Int { ((try? String(contentsOfFile: dir + "/runs", encoding: .utf8)) ?? "").split(separator: "\n").count }

        let storage = try S3Storage(location: "s3://qos-test/proc", environment: env)
        #expect(try storage.client.credentials.credentials() == S3Credentials(accessKeyId: "AKPROC", secretAccessKey: "sp", sessionToken: "tp"))
        try storage.checkWritable()
        try storage.publish("a/b.bin", [1, 2, 3])
        #expect(try storage.read("a/b.bin") == [1, 2, 3])
        #expect(runs() == 1)

        let soon = Date(timeIntervalSinceNow: 120)
        try ISO8601DateFormatter().string(from: soon).write(toFile: dir + "/expiry", atomically: true, encoding: .utf8)
        let expiring = try S3Storage(location: "s3://qos-test/proc", environment: env)
        #expect(runs() == 2)
        _ = try expiring.read("a/b.bin")
        _ = try expiring.read("a/b.bin")
        #expect(runs() == 4)  // within 5 minutes of expiry: asked again per request
    }

    @Test func aFailingCredentialProcessIsOneLine() throws {
        let dir = NSTemporaryDirectory() + "qos-credproc-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "[default]\ncredential_process = sh -c 'echo token expired >&2; echo more >&2; exit 3'\n"
            .write(toFile: dir + "/config", atomically: true, encoding: .utf8)
        let env = ["AWS_CONFIG_FILE": dir + "/config", "AWS_SHARED_CREDENTIALS_FILE": dir + "/none"]
        #expect(performing: { try S3Storage(location: "s3://qos-test/x", environment: env) }, throws: { e in
            let s = "\(e)"
            return s.contains("credential_process of profile 'default' exited with status 3: token expired") && !s.contains("\n")
        })
        try "[default]\ncredential_process = echo '{\"Version\": 2}'\n".write(toFile: dir + "/config", atomically: true, encoding: .utf8)
        #expect(performing: { try S3Storage(location: "s3://qos-test/x", environment: env) }, throws: { e in
            "\(e)".contains("Version 2, not 1")
        })
    }

    @Test func noCredentialsAnywhereIsOneLineNamingEverySource() {
        let env = ["AWS_CONFIG_FILE": "/nonexistent/config", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
                   "AWS_EC2_METADATA_DISABLED": "true"]
        #expect(performing: { try S3Storage(location: "s3://qos-test/x", environment: env) }, throws: { e in
            let s = "\(e)"
            return s.hasPrefix("no credentials found: set AWS_ACCESS_KEY_ID") && s.contains("credential_process") && !s.contains("\n")
        })
    }
}
