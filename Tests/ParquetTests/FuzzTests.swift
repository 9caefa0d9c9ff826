import Testing
@testable import Parquet
import SplitMix

/// Corrupted files must make the reader throw a ParquetError or succeed — never trap.
@Suite struct FuzzTests {
    static func seedFiles() throws -> [[UInt8]] {
        var files = [hexBytes(goldenHex)]
        for (seed, rows) in [(1, 60), (2, 200), (3, 30)] {
            var t = randomTable(rows: rows, seed: UInt64(seed))
            t.options.compression = seed == 2 ? .zstd(level: 3) : .uncompressed
            files.append(try writeParquet(schema: t.schema, columns: t.columns, options: t.options))
        }
        let (schema, cols) = allKindsTable(rows: 120, seed: 9, optional: true, nullRate: 0.3, unique: false)
        var o = ParquetWriterOptions()
        o.dataPageMaxRows = 40
        o.rowGroupMaxRows = 60
        files.append(try writeParquet(schema: schema, columns: cols, options: o))
        return files
    }

    /// Returns whether the file was read; records an issue for non-ParquetError errors.
    @discardableResult
    static func tryRead(_ bytes: [UInt8]) -> Bool {
        do {
            _ = try readEverything(bytes)
            return true
        } catch is ParquetError {
            return false
        } catch {
            Issue.record("unexpected error type: \(error)")
            return false
        }
    }

    @Test func truncatedFilesThrow() throws {
        for file in try Self.seedFiles() {
            let step = max(1, file.count / 150)
            for n in stride(from: 0, to: file.count, by: step) {
                #expect(!Self.tryRead(Array(file[0..<n])), "truncated to \(n) of \(file.count) bytes was accepted")
            }
            // Same length, cut in the middle: tail kept, body missing.
            #expect(!Self.tryRead(Array(file[0..<4]) + Array(file[(file.count / 2)...])))
        }
    }

    @Test func flippedBytesThrowOrSucceed() throws {
        var rng = SplitMix64(seed: 42)
        var read = 0, rejected = 0
        for file in try Self.seedFiles() {
            for _ in 0..<400 {
                var bytes = file
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    let i = Int.random(in: 0..<bytes.count, using: &rng)
                    bytes[i] ^= UInt8.random(in: 1...255, using: &rng)
                }
                if Self.tryRead(bytes) { read += 1 } else { rejected += 1 }
            }
        }
        #expect(rejected > 0)
        print("fuzz: \(read) corrupted files still readable, \(rejected) rejected")
    }

    @Test func footerFieldsFuzzed() throws {
        // Flip bytes only inside the footer, where counts and offsets live.
        var rng = SplitMix64(seed: 7)
        for file in try Self.seedFiles() {
            let n = file.count
            let footerLength = Int(file[n - 8]) | Int(file[n - 7]) << 8 | Int(file[n - 6]) << 16
            let footer = (n - 8 - footerLength)..<(n - 8)
            for _ in 0..<300 {
                var bytes = file
                let i = Int.random(in: footer, using: &rng)
                bytes[i] = [0x00, 0xFF, 0x7F, 0x80, UInt8.random(in: 0...255, using: &rng)].randomElement(using: &rng)!
                Self.tryRead(bytes)
            }
        }
    }

    @Test func errorMessagesNameTheProblem() {
        #expect(throws: ParquetError.corrupt("file is 3 bytes, too short for Parquet")) {
            try ParquetFileReader(bytes: [0x50, 0x41, 0x52])
        }
        var golden = hexBytes(goldenHex)
        golden.removeLast()
        do {
            _ = try ParquetFileReader(bytes: golden)
            Issue.record("truncated file accepted")
        } catch let e as ParquetError {
            #expect("\(e)".contains("PAR1"))
        } catch { Issue.record("\(error)") }
    }
}
