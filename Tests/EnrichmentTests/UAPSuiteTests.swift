import Foundation
import Testing
@testable import Enrichment

/// uap-core's own test suites (/usr/share/uap-core/tests), run against our
/// parser. Every failing case must be listed in known-failures.txt with its
/// reason; a failure not listed fails the test, and so does a listed case that
/// now passes (keep the list honest).
@Suite("uap-core test suites")
struct UAPSuiteTests {
    static let regexesPath = "/usr/share/uap-core/regexes.yaml"
    static let testsDir = "/usr/share/uap-core/tests"

    /// Compiled once per test process.
    static let regexes: Result<UAPRegexes, Error> = Result { try UAPRegexes(path: regexesPath) }

    /// The three suites converted to JSON by the oracle script, once.
    static let casesDir: Result<URL, Error> = Result {
        let dir = try TestSupport.makeTempDir("uap")
        try TestSupport.runPython([TestSupport.oracle("enrichment_uap_cases.py"), dir.path, testsDir])
        return dir
    }

    static let knownFailuresFile = TestSupport.repoRoot
        .appendingPathComponent("Tests/EnrichmentTests/known-failures.txt")

    /// `suite<TAB>user agent<TAB>reason` lines; `#` comments.
    static func knownFailures() throws -> [String: Set<String>] {
        let text = try String(contentsOf: knownFailuresFile, encoding: .utf8)
        var out: [String: Set<String>] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) where !line.hasPrefix("#") {
            let parts = line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, !parts[2].trimmingCharacters(in: .whitespaces).isEmpty else {
                Issue.record("known-failures.txt: malformed line (need suite<TAB>ua<TAB>reason): \(line)")
                continue
            }
            out[String(parts[0]), default: []].insert(String(parts[1]))
        }
        return out
    }

    struct Case {
        let ua: String
        let expected: [String: String?]
    }

    static func load(_ suite: String) throws -> [Case] {
        let url = try casesDir.get().appendingPathComponent(suite.replacingOccurrences(of: ".yaml", with: ".json"))
        let arr = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [[String: Any]]
        return arr.map { obj in
            let e = obj["expected"] as! [String: Any]
            var exp: [String: String?] = [:]
            for (k, v) in e { exp[k] = v as? String }
            return Case(ua: obj["ua"] as! String, expected: exp)
        }
    }

    static func norm(_ s: String?) -> String? { (s?.isEmpty ?? true) ? nil : s }

    /// Runs one suite; returns (passed, total). Records issues for unexpected
    /// failures and for listed cases that pass.
    static func run(_ suite: String, minPassRate: Double,
                    actual: (UAPRegexes, String) -> [String: String?]) throws -> (Int, Int) {
        let regexes = try Self.regexes.get()
        let cases = try load(suite)
        let known = try knownFailures()[suite] ?? []
        var passed = 0
        var unexpected: [String] = []
        var fixed: [String] = []
        for c in cases {
            let got = actual(regexes, c.ua)
            var diffs: [String] = []
            for (k, v) in c.expected.sorted(by: { $0.key < $1.key }) {
                let g = norm(got[k] ?? nil), e = norm(v)
                if g != e { diffs.append("\(k): got \(g ?? "nil"), expected \(e ?? "nil")") }
            }
            if diffs.isEmpty {
                passed += 1
                if known.contains(c.ua) { fixed.append(c.ua) }
            } else if !known.contains(c.ua) {
                unexpected.append("\(suite)\t\(c.ua)\t\(diffs.joined(separator: "; "))")
            }
        }
        let rate = Double(passed) / Double(max(cases.count, 1))
        print("uap-core \(suite): \(passed)/\(cases.count) passed (\(String(format: "%.2f", rate * 100)) %)")
        let unexpectedCount = unexpected.count
        let unexpectedList = unexpected.prefix(30).joined(separator: "\n")
        #expect(unexpectedCount == 0, "\(unexpectedCount) failures not in known-failures.txt:\n\(unexpectedList)")
        let fixedCount = fixed.count
        let fixedList = fixed.prefix(10).joined(separator: "\n")
        #expect(fixedCount == 0, "\(fixedCount) cases in known-failures.txt now pass; remove them:\n\(fixedList)")
        #expect(rate >= minPassRate, "\(suite) pass rate \(rate) < \(minPassRate)")
        #expect(cases.count > 100)
        return (passed, cases.count)
    }

    @Test func testUA() throws {
        _ = try Self.run("test_ua.yaml", minPassRate: 0.99) { r, ua in
            let p = r.parse(ua).userAgent
            return ["family": p.family, "major": p.major, "minor": p.minor, "patch": p.patch]
        }
    }

    @Test func testOS() throws {
        _ = try Self.run("test_os.yaml", minPassRate: 0.99) { r, ua in
            let p = r.parse(ua).os
            return ["family": p.family, "major": p.major, "minor": p.minor, "patch": p.patch, "patch_minor": p.patchMinor]
        }
    }

    @Test func testDevice() throws {
        _ = try Self.run("test_device.yaml", minPassRate: 0.98) { r, ua in
            let p = r.parse(ua).device
            return ["family": p.family, "brand": p.brand, "model": p.model]
        }
    }
}
