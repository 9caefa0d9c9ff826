import Foundation
import Testing
@testable import Parquet

/// Repository root: this file is Tests/ParquetTests/OracleSupport.swift (symlinks resolved).
func repoRoot(_ file: String = #filePath) -> URL {
    URL(fileURLWithPath: file).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

/// Runs tests/oracles/<script> with the project's venv python. Fails the test
/// (never skips) when the venv is missing.
func runOracle(_ script: String, _ arguments: [String]) throws {
    let root = repoRoot()
    let python = root.appendingPathComponent(".venv/bin/python").path
    try #require(FileManager.default.isExecutableFile(atPath: python),
                 "\(python) not found: run make deps (installs pyarrow and duckdb)")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [root.appendingPathComponent("tests/oracles/\(script)").path] + arguments
    let errPipe = Pipe()
    process.standardError = errPipe
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    let err = errPipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    try #require(process.terminationStatus == 0,
                 "\(script) exited \(process.terminationStatus): \(String(decoding: err, as: UTF8.self))")
}

func makeTempDir() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parquet-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

func readJSON(_ url: URL) throws -> [String: Any] {
    let data = try Data(contentsOf: url)
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

/// Canonical strings as produced by the oracles (see tests/oracles/parquet_read.py).
func canonical(_ data: ParquetColumnData, logical: ParquetLogicalType) -> [String?] {
    func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }
    switch data {
    case .boolean(let v): return v.map { $0.map { $0 ? "true" : "false" } }
    case .int32(let v): return v.map { $0.map { "\($0)" } }
    case .int64(let v): return v.map { $0.map { "\($0)" } }
    case .double(let v):
        return v.map { $0.map { $0.isNaN ? "nan" : String(format: "%016llx", $0.bitPattern) } }
    case .byteArray(let v):
        if logical == .string { return v.map { $0.map { String(decoding: $0, as: UTF8.self) } } }
        return v.map { $0.map(hex) }
    }
}

func jsonStrings(_ any: Any?) -> [String?]? {
    guard let array = any as? [Any] else { return nil }
    return array.map { $0 as? String }
}
