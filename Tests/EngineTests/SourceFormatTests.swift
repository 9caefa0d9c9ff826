import Foundation
import Testing
@testable import Engine
import QoSCore

/// The input seams: a file source yields records with offsets and
/// `file:line` positions; formats are found by name.
@Suite final class SourceFormatTests {
    /// Each test's input files, removed when the test's instance goes.
    private var written: [String] = []

    deinit { for p in written { try? FileManager.default.removeItem(atPath: p) } }

    func write(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "qos-src-\(UUID().uuidString).ndjson"
        written.append(path)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func drain(_ s: FileRecordSource, max: Int = 2, start: Int64? = nil) throws -> [(Int64, String, String)] {
        var out: [(Int64, String, String)] = []
        while !s.atEnd {
            var assigned = false
            _ = try s.poll(maxRecords: max, timeoutMs: 0, onRecord: { r in
                #expect(r.partition == 0)
                out.append((r.offset, r.position.description.split(separator: "/").last.map(String.init) ?? "",
                            String(decoding: r.bytes, as: UTF8.self)))
            }, onEvent: { if case .assigned([0]) = $0 { assigned = true } })
            if assigned { try s.startAssigned([0: start]) }
        }
        return out
    }

    @Test func fileSourceNumbersRecordsAcrossFilesAndSkipsBlankLines() throws {
        let a = try write("a1\n\nA3\r\na4"), b = try write("b1\nb2\n")
        let got = try drain(FileRecordSource(paths: [a, b]))
        let name = { (p: String) in p.split(separator: "/").last.map(String.init)! }
        #expect(got.map(\.0) == [0, 1, 2, 3, 4])
        #expect(got.map(\.1) == ["\(name(a)):1", "\(name(a)):3", "\(name(a)):4", "\(name(b)):1", "\(name(b)):2"])
        #expect(got.map(\.2) == ["a1", "A3", "a4", "b1", "b2"])
        // Started at an offset (a restart), earlier records are not delivered again.
        let resumed = try drain(FileRecordSource(paths: [a, b]), max: 3, start: 3)
        #expect(resumed.map(\.0) == [3, 4] && resumed.map(\.2) == ["b1", "b2"])
        // Lines of spaces and tabs are blank too (they were `invalid_json`
        // rejects while an empty line was skipped), mapped or read.
        let c = try write(" \t \n\r\n c3\n\t\n   ")
        for mapped in [true, false] {
            let source = FileRecordSource(paths: [c])
            source.mapFiles = mapped
            let lines = try drain(source)
            #expect(lines.map(\.2) == [" c3"] && lines.map(\.1) == ["\(name(c)):3"], "mapped \(mapped)")
        }
    }

    @Test func formatsAreFoundByName() throws {
        let f = try RecordFormats.named("beacon-json")
        var items: [DecodedItem] = []
        Array(#"{"event":"heartbeat","ts":1,"session_id":"s","seq":1}"#.utf8).withUnsafeBytes { f.decode($0) { items.append($0) } }
        #expect(items.count == 1)
        #expect(throws: UserError.self) { try RecordFormats.named("cdn-log") }
        #expect(RecordFormats.all.map(\.name) == ["beacon-json", "edgecast", "cloudfront", "fastly", "akamai", "cmcd"])
    }

    /// A record past the message limit is `too_large` in every format — a
    /// file line that long reaches the format cut to the limit + 1 byte, and
    /// a cut CloudFront line (its long last field short) parsed as a record.
    @Test func overlongRecordsAreTooLargeInEveryFormat() throws {
        let fields = ["2026-01-01", "00:00:00", "AMS50-C1", "2250420", "86.133.89.152", "GET", "d1.cloudfront.net",
                      "/a/seg3.ts", "200", "-", "ua"]
        let cloudfront = fields.joined(separator: "\t") + "\t" + String(repeating: "x", count: BeaconLimits.messageBytesMax)
        for format in RecordFormats.all {
            for text in [String(repeating: "a", count: BeaconLimits.messageBytesMax + 1), cloudfront] {
                var items: [DecodedItem] = []
                Array(text.utf8).withUnsafeBytes { format.forSource(named: "t").decode($0) { items.append($0) } }
                #expect(items.count == 1, "\(format.name)")
                guard case .reject(let reason, _) = items.first else { Issue.record("\(format.name): not a reject"); continue }
                #expect(reason == .tooLarge, "\(format.name): \(reason.code)")
            }
        }
        // Through a replay's line reader: the cut line is a reject, the next line is read whole.
        let path = try write(cloudfront + "\n" + fields.joined(separator: "\t") + "\n")
        var reasons: [String] = []
        let format = try RecordFormats.named("cloudfront").forSource(named: path)
        let source = FileRecordSource(paths: [path])
        while !source.atEnd {
            var assigned = false
            _ = try source.poll(maxRecords: 10, timeoutMs: 0, onRecord: { r in
                format.decode(r.bytes) { item in
                    if case .reject(let reason, _) = item { reasons.append(reason.code) } else { reasons.append("record") }
                }
            }, onEvent: { if case .assigned = $0 { assigned = true } })
            if assigned { try source.startAssigned([0: nil]) }
        }
        #expect(reasons.first == "too_large" && reasons.count >= 2)
    }

    /// A plain file is mapped and cut into lines in place; the lines (and
    /// line numbers, and bytes counted) must be those the read path cuts.
    @Test func mappedFilesSplitIntoTheSameLinesAsRead() throws {
        let long = String(repeating: "x", count: LineReader.limit + 10)
        let texts = ["a1\n\nA3\r\na4", "b1\nb2\n", "\n\n\r\n", "c\r", "\(long)\nd1\r\n\(long)\r\ne", "", "\r\n\r"]
        for text in texts {
            let path = try write(text)
            func lines(map: Bool) throws -> ([String], [Int64], Int64) {
                let source = try ByteSource(path: path, map: map)
                #expect((source.mapped != nil) == (map && !text.isEmpty))
                var reader = LineReader(source)
                var got: [String] = [], numbers: [Int64] = []
                while !(try reader.forEachLine(maxLines: 2, { line, n in
                    got.append(String(decoding: line, as: UTF8.self)); numbers.append(n)
                })) {}
                return (got, numbers, source.bytesRead)
            }
            let mapped = try lines(map: true), read = try lines(map: false)
            #expect(mapped.0 == read.0, "\(text.prefix(20).debugDescription)")
            #expect(mapped.1 == read.1 && mapped.2 == read.2 && mapped.2 == Int64(text.utf8.count))
        }
    }

    /// A mapped file that another process truncates while it is read: the
    /// lines before the cut are lent, then the read stops with an error that
    /// names the file, instead of the process dying of SIGBUS
    /// (MappedInputGuard). Twice, so a second mapping is watched as well.
    @Test func aMappedFileThatShrinksEndsWithAnErrorNotSIGBUS() throws {
        let line = #"{"event":"heartbeat","ts":1,"session_id":"s","seq":1}"# + "\n"
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let text = String(repeating: line, count: 4 * page / line.utf8.count + 10)
        let linesInFirstPage = text.utf8.prefix(page).filter { $0 == 0x0A }.count
        for _ in 0..<2 {
            let path = try write(text)
            let source = try ByteSource(path: path, map: true)
            #expect(source.mapped != nil)
            var reader = LineReader(source)
            var got = 0
            _ = try reader.forEachLine(maxLines: 3) { _, _ in got += 1 }
            #expect(truncate(path, off_t(page)) == 0)
            #expect {
                try reader.forEachLine { line, _ in
                    #expect(!line.contains(0), "a line of the zero page was lent")
                    got += 1
                }
            } throws: { error in
                (error as? UserError)?.message.contains("'\(path)' shrank while it was being read") == true
            }
            #expect(got == linesInFirstPage)
        }
    }
}
