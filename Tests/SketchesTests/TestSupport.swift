import Foundation
import Testing

/// Hex helpers and the Python-oracle runner shared by the tests.
enum Hex {
    static func encode(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
    static func decode(_ s: String) -> [UInt8] {
        let chars = Array(s.utf8)
        return stride(from: 0, to: chars.count - 1, by: 2).map { i in
            UInt8(String(decoding: chars[i ..< i + 2], as: UTF8.self), radix: 16)!
        }
    }
}

extension Dictionary where Key == String, Value == Any {
    /// A double sent by an oracle as the 16 hex digits of its IEEE bits.
    func double(_ key: String) -> Double? {
        guard let s = self[key] as? String, let b = UInt64(s, radix: 16) else { return nil }
        return Double(bitPattern: b)
    }
}

enum Oracle {
    /// Repository root: Tests/SketchesTests/TestSupport.swift -> ../../
    static var repoRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
    static var python: URL { repoRoot.appendingPathComponent(".venv/bin/python") }

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Runs tests/oracles/<script> with the venv python, feeding `input` on stdin;
    /// returns stdout. Throws (never skips) when the venv is missing.
    static func run(_ script: String, args: [String] = [], input: Data = Data()) throws -> Data {
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw Failure(description: "Python oracle \(python.path) is missing: run make deps")
        }
        let proc = Process()
        proc.executableURL = python
        proc.arguments = [repoRoot.appendingPathComponent("tests/oracles/\(script)").path] + args
        let inPipe = Pipe(), outPipe = Pipe(), errPipe = Pipe()
        proc.standardInput = inPipe
        proc.standardOutput = outPipe
        proc.standardError = errPipe
        try proc.run()
        let writer = Thread {
            inPipe.fileHandleForWriting.write(input)
            try? inPipe.fileHandleForWriting.close()
        }
        writer.start()
        let errBox = ErrBox()
        let errReader = Thread { errBox.data = errPipe.fileHandleForReading.readDataToEndOfFile() }
        errReader.start()
        let out = outPipe.fileHandleForReading.readDataToEndOfFile()
        proc.waitUntilExit()
        while errReader.isExecuting { usleep(1000) }
        guard proc.terminationStatus == 0 else {
            let msg = String(decoding: errBox.data, as: UTF8.self)
            throw Failure(description: "oracle \(script) failed (\(proc.terminationStatus)); if datasketches/ddsketch are missing, run make deps:\n\(msg)")
        }
        return out
    }

    static func runJSON(_ script: String, args: [String] = [], input: Data = Data()) throws -> [String: Any] {
        let out = try run(script, args: args, input: input)
        guard let obj = try JSONSerialization.jsonObject(with: out) as? [String: Any] else {
            throw Failure(description: "oracle \(script) did not print a JSON object")
        }
        return obj
    }
}

final class ErrBox: @unchecked Sendable { var data = Data() }
