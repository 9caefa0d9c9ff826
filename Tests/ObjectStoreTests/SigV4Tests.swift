import Foundation
import Testing
@testable import ObjectStore

/// SigV4 against botocore, the AWS SDK's own signer, as the oracle: the
/// same request, credentials and time must give the same Authorization.
@Suite struct SigV4Tests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let python = root.appendingPathComponent(".venv/bin/python").path

    struct Case {
        var method: String
        var path: String
        var query: [(String, String)]
        var headers: [(String, String)]
        var body: [UInt8]
    }

    static let cases: [Case] = [
        Case(method: "GET", path: "/bucket/a/b.parquet", query: [], headers: [], body: []),
        Case(method: "PUT", path: "/bucket/overall/dt=2026-01-01/hour=00/w 1+x.parquet", query: [],
             headers: [("Content-Type", "application/octet-stream"), ("If-None-Match", "*")], body: Array("hello".utf8)),
        Case(method: "GET", path: "/bucket/", query: [("list-type", "2"), ("prefix", "out/_qos/"), ("encoding-type", "url"),
                                                     ("continuation-token", "1/a+b=c")], headers: [], body: []),
        Case(method: "POST", path: "/bucket/big", query: [("uploads", "")], headers: [], body: []),
        Case(method: "PUT", path: "/bucket/k", query: [("partNumber", "2"), ("uploadId", "x~y.z_")],
             headers: [("X-Amz-Copy-Source", "/bucket/src%20key"), ("Range", "bytes=0-9")], body: Array(repeating: 7, count: 1000)),
        Case(method: "DELETE", path: "/bucket/é/ключ", query: [], headers: [("x-amz-meta-note", "  two   spaces ")], body: []),
    ]

    /// botocore's Authorization header for each case (host 127.0.0.1:9000, us-east-1).
    func botocore(_ cases: [Case], date: String, token: String?) throws -> [String] {
        let spec = cases.map { c -> [String: Any] in
            let url = "http://127.0.0.1:9000" + c.path.split(separator: "/", omittingEmptySubsequences: false)
                .map { SigV4Signer.uriEncode(String($0)) }.joined(separator: "/")
                + (c.query.isEmpty ? "" : "?" + c.query.map { "\(SigV4Signer.uriEncode($0.0))=\(SigV4Signer.uriEncode($0.1))" }.joined(separator: "&"))
            return ["method": c.method, "url": url, "headers": c.headers.map { [$0.0, $0.1] }, "body": c.body]
        }
        let script = """
        import json, sys, datetime
        from unittest import mock
        import botocore.auth as auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        spec = json.loads(sys.stdin.read())
        fixed = datetime.datetime.strptime("\(date)", "%Y%m%dT%H%M%SZ")
        class FixedDT(datetime.datetime):
            @classmethod
            def utcnow(cls): return fixed
            @classmethod
            def now(cls, tz=None): return fixed.replace(tzinfo=tz) if tz else fixed
        out = []
        with mock.patch.object(auth.datetime, "datetime", FixedDT):
            for c in spec:
                creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", \(token.map { "\"\($0)\"" } ?? "None"))
                req = AWSRequest(method=c["method"], url=c["url"], data=bytes(c["body"]))
                for n, v in c["headers"]: req.headers[n] = v
                auth.S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
                out.append(req.headers["Authorization"])
        print(json.dumps(out))
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.python)
        p.arguments = ["-c", script]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: spec))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String])
    }

    func ours(_ cases: [Case], date: String, token: String?) -> [String] {
        let signer = SigV4Signer(credentials: S3Credentials(accessKeyId: "AKIDEXAMPLE",
                                                            secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                                            sessionToken: token), region: "us-east-1")
        return cases.map { c in
            let headers = signer.sign(.init(method: c.method, host: "127.0.0.1:9000", path: c.path, query: c.query,
                                            headers: c.headers, payloadHash: SigV4Signer.payloadHash(c.body)), amzDate: date)
            return headers.first { $0.0 == "Authorization" }!.1
        }
    }

    @Test func signaturesEqualBotocores() throws {
        for token in [nil, "FQoGZXIvYXdzEXAMPLETOKEN"] as [String?] {
            let want = try botocore(Self.cases, date: "20260101T120000Z", token: token)
            let got = ours(Self.cases, date: "20260101T120000Z", token: token)
            #expect(want.count == Self.cases.count)
            for (i, (w, g)) in zip(want, got).enumerated() { #expect(w == g, "case \(i): \(Self.cases[i].method) \(Self.cases[i].path)") }
        }
    }

    @Test func theSignatureCoversTheBodyTheTimeAndTheSecret() {
        let c = Self.cases[1]
        let base = ours([c], date: "20260101T120000Z", token: nil)[0]
        var other = c
        other.body = Array("hellO".utf8)
        #expect(ours([other], date: "20260101T120000Z", token: nil)[0] != base)
        #expect(ours([c], date: "20260101T120001Z", token: nil)[0] != base)
        let signer = SigV4Signer(credentials: S3Credentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "other"), region: "us-east-1")
        let h = signer.sign(.init(method: c.method, host: "127.0.0.1:9000", path: c.path, headers: c.headers,
                                  payloadHash: SigV4Signer.payloadHash(c.body)), amzDate: "20260101T120000Z")
        #expect(h.first { $0.0 == "Authorization" }!.1 != base)
    }

    @Test func uriEncodingKeepsOnlyUnreservedCharacters() {
        #expect(SigV4Signer.uriEncode("a-b_c.d~e") == "a-b_c.d~e")
        #expect(SigV4Signer.uriEncode("a b/c+d=é") == "a%20b%2Fc%2Bd%3D%C3%A9")
    }

    @Test func retryDelaysGrowWithJitterUpToTheCap() {
        let p = RetryPolicy()
        #expect(p.delay(attempt: 1, unit: 1) == 0.1)
        #expect(p.delay(attempt: 3, unit: 1) == 0.4)
        #expect(p.delay(attempt: 20, unit: 1) == 5)
        #expect(p.delay(attempt: 3, unit: 0.5) == 0.2)
        #expect(p.delay(attempt: 9, unit: 0) == 0)
    }

    @Test func locationsParseLikeS3Addresses() {
        #expect(S3Config.parse(location: "s3://my-bucket/a/b/") ?? ("", "") == ("my-bucket", "a/b"))
        #expect(S3Config.parse(location: "s3://my-bucket") ?? ("", "") == ("my-bucket", ""))
        #expect(S3Config.parse(location: "s3://My_Bucket/x") == nil)
        #expect(S3Config.parse(location: "/local/dir") == nil)
    }
}
