import Foundation
import Testing

/// Helpers shared by the Enrichment tests: the repo root, the Python oracle
/// venv, temporary directories.
enum TestSupport {
    /// Repo root: this file is Tests/EnrichmentTests/TestSupport.swift.
    static let repoRoot: URL = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var python: String { repoRoot.appendingPathComponent(".venv/bin/python").path }

    static func oracle(_ name: String) -> String {
        repoRoot.appendingPathComponent("tests/oracles/\(name)").path
    }

    struct ProcessFailure: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs the venv's Python. Missing venv is a failure ("run make deps"),
    /// never a skip.
    @discardableResult
    static func runPython(_ args: [String], stdin: String? = nil) throws -> String {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw ProcessFailure(description: "Python oracle venv missing at \(python): run make deps")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        var inFile: URL?
        if let stdin {
            let f = try makeTempDir("stdin").appendingPathComponent("in.txt")
            try stdin.write(to: f, atomically: true, encoding: .utf8)
            p.standardInput = try FileHandle(forReadingFrom: f)
            inFile = f
        }
        defer { if let inFile { try? FileManager.default.removeItem(at: inFile.deletingLastPathComponent()) } }
        try p.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw ProcessFailure(description: "python \(args.joined(separator: " ")) failed (\(p.terminationStatus)); if modules are missing, run make deps: \(String(decoding: errData, as: UTF8.self))")
        }
        return String(decoding: outData, as: UTF8.self)
    }

    static func makeTempDir(_ tag: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("enrichment-tests-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

/// The oracle's test databases, built once per test process.
final class GeoFixtures: Sendable {
    static let shared: Result<GeoFixtures, Error> = Result { try GeoFixtures() }

    let dir: URL
    var city: String { dir.appendingPathComponent("city.mmdb").path }
    var asn: String { dir.appendingPathComponent("asn.mmdb").path }
    var country: String { dir.appendingPathComponent("country.mmdb").path }
    var corrupt: String { dir.appendingPathComponent("corrupt.mmdb").path }
    var cases: String { dir.appendingPathComponent("cases.jsonl").path }

    private init() throws {
        dir = try TestSupport.makeTempDir("geo")
        try TestSupport.runPython([TestSupport.oracle("enrichment_geo_oracle.py"), dir.path, "--count", "10000"])
    }

    static func get() throws -> GeoFixtures { try shared.get() }
}
