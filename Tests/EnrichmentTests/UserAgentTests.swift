import Foundation
import Testing
@testable import Enrichment
import SplitMix
import QoSBench

@Suite("User agents")
struct UserAgentTests {
    static let classifier: Result<UserAgentClassifier, Error> = Result {
        try UserAgentClassifier(regexes: UAPSuiteTests.regexes.get(), cacheSize: 1000)
    }

    @Test(arguments: [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", DeviceType.desktop),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", .desktop),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", .desktop),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", .desktop),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", .mobile),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", .mobile),
        ("ExoPlayerLib/2.19.1 (Linux; Android 13) ExoPlayerLib/2.19.1", .mobile),
        ("AppleCoreMedia/1.0.0.21F90 (iPhone; U; CPU OS 17_5 like Mac OS X; en_us)", .mobile),
        ("Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0 Mobile Safari/537.36 Edge/15.15063", .mobile),
        ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", .tablet),
        ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", .tablet),
        ("Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/126.4.1 like Chrome/126.0 Safari/537.36", .tablet),
        ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/3.0 TV Safari/537.36", .tv),
        ("Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0.0.0 Safari/537.36 WebAppManager", .tv),
        ("Roku/DVP-13.0 (13.0.0.4230-46)", .tv),
        ("Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7633.3445N; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/108.0 Mobile Safari/537.36", .tv),
        ("Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/90.0.4430.225 Safari/537.36 CrKey/1.56.500000", .tv),
        ("AppleTV11,1/11.1", .tv),
        ("Mozilla/5.0 (Linux; Android 9; BRAVIA 4K GB) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/91.0 Safari/537.36", .tv),
        ("Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.4 Safari/605.1.15", .console),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/110.0 Safari/537.36 Edge/44.18363.8131", .console),
        ("Mozilla/5.0 (Nintendo Switch; WifiWebAuthApplet) AppleWebKit/606.4 (KHTML, like Gecko) NF/6.0.1.15.4 NintendoBrowser/5.1.0.20393", .console),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", .bot),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", .bot),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36", .bot),
        ("python-requests/2.32.3", .bot),
        ("curl/8.5.0", .bot),
        ("", .unknown),
        ("VLC/3.0.18 LibVLC/3.0.18", .unknown),
        ("Mozilla/5.0 (Linux; Android 10; Cubot X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", .mobile),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 (after hours)", .desktop),
    ])
    func deviceTypes(ua: String, expected: DeviceType) throws {
        let info = try Self.classifier.get().classify(ua)
        #expect(info.deviceType == expected, "\(ua) → \(info)")
    }

    @Test func classifyFields() throws {
        let c = try Self.classifier.get()
        let i = c.classify("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36")
        #expect(i == UserAgentInfo(browser: "Samsung Internet", browserMajor: "25", os: "Android", osMajor: "14",
                                   deviceFamily: "Samsung SM-S918B", deviceBrand: "Samsung", deviceModel: "SM-S918B",
                                   deviceType: .mobile))
        let e = c.classify("")
        #expect(e == UserAgentInfo(browser: "Other", browserMajor: nil, os: "Other", osMajor: nil, deviceFamily: "Other",
                                   deviceBrand: nil, deviceModel: nil, deviceType: .unknown))
    }

    /// The literal prefilter must never change a result: compare with running
    /// every regex on the sample mix, the uap suites' strings (every 7th) and
    /// mangled variants (case changes, non-ASCII look-alikes, truncation).
    @Test func prefilterIsExact() throws {
        let r = try UAPSuiteTests.regexes.get()
        var uas = SampleUserAgents.distinct.map(\.userAgent)
        for suite in ["test_ua.yaml", "test_os.yaml", "test_device.yaml"] {
            for (i, c) in try UAPSuiteTests.load(suite).enumerated() where i % 7 == 0 { uas.append(c.ua) }
        }
        var rng = SplitMix64(seed: 3)
        let base = uas
        for ua in base.prefix(400) {
            uas.append(ua.uppercased())
            uas.append(ua.lowercased())
            uas.append(ua.replacingOccurrences(of: "k", with: "\u{212A}").replacingOccurrences(of: "s", with: "\u{017F}"))
            uas.append(String(ua.prefix(Int(rng.next() % UInt64(max(ua.count, 1))))))
        }
        var mismatches: [String] = []
        var filteredRuns = 0, allRuns = 0
        for ua in uas {
            if r.parse(ua, prefilter: true) != r.parse(ua, prefilter: false) { mismatches.append(ua) }
        }
        for ua in SampleUserAgents.distinct.map(\.userAgent) {
            let (f, a) = r.regexRuns(ua)
            filteredRuns += f; allRuns += a
        }
        let count = mismatches.count
        let first = mismatches.prefix(5).joined(separator: "\n")
        #expect(count == 0, "\(count) differences, e.g.\n\(first)")
        // The filter must actually filter (at least 3x fewer regex runs on the sample mix).
        #expect(filteredRuns * 3 < allRuns, "filtered \(filteredRuns) vs \(allRuns)")
    }

    @Test func literalExtraction() {
        func lits(_ p: String) -> LiteralCondition { LiteralExtractor.condition(for: p) }
        #expect(lits("ArcGIS Client Using WinInet") == .literal(Array("arcgis client using wininet".utf8)))
        #expect(lits("(Luminary)[Stage]+/(\\d+) CFNetwork") == .and([.literal(Array("luminary".utf8)), .literal(Array(" cfnetwork".utf8))]))
        #expect(lits("(Collector|Explorer)-iOS") == .or([.literal(Array("collector-ios".utf8)), .literal(Array("explorer-ios".utf8))]))
        #expect(lits("(?:Opera|OPR)?(\\d+)") == .always)
        #expect(lits("Chrom(?:e|ium)/(\\d+)") == .or([.literal(Array("chrome/".utf8)), .literal(Array("chromium/".utf8))]))
        #expect(lits("(a|bc)") == .always)           // a 1-char alternative makes the filter useless
        #expect(lits("x{0,3}yz") == .literal(Array("yz".utf8)))
        #expect(lits("[^a]bc") == .literal(Array("bc".utf8)))
        #expect(lits("(?i)FOO") == .literal(Array("foo".utf8)))
        #expect(lits("Foo(?=Bar)baz") == .literal(Array("foobaz".utf8)))  // lookahead is zero-width
        #expect(lits("(unbalanced") == .always)
    }

    @Test func icuPatternEscapesPythonLiterals() {
        #expect(UAPRegexes.icuPattern("[a[b]") == "[a\\[b]")
        #expect(UAPRegexes.icuPattern("[]a]") == "[]a]")
        #expect(UAPRegexes.icuPattern("[a&&b]x[^]]") == "[a\\&\\&b]x[^]]")
        #expect(UAPRegexes.icuPattern("\\[x\\]") == "\\[x\\]")
        #expect(UAPRegexes.icuPattern("[a--b]") == "[a-\\-b]")
        #expect(UAPRegexes.icuPattern("é[ü[&]ß\\é]") == "é[ü\\[\\&]ß\\é]")  // other characters pass as they are
    }

    /// The pattern is read as UTF-8 bytes; every byte it acts on is ASCII.
    /// It must give what reading it code point by code point gives (as ICU
    /// reads a pattern; a combining mark after `]` does not hide the `]`),
    /// on patterns of the special characters mixed with characters of two
    /// to four bytes and combining marks.
    @Test func icuPatternByBytesEqualsByCharacters() {
        func byCharacters(_ p: String) -> String {
            var out = "", inClass = false, classStart = false, escaped = false
            for ch in p.unicodeScalars {
                if escaped { out.unicodeScalars.append(ch); escaped = false; classStart = false; continue }
                if ch == "\\" { out.unicodeScalars.append(ch); escaped = true; continue }
                if inClass {
                    if ch == "]" && !classStart { inClass = false; out.unicodeScalars.append(ch); continue }
                    if ch == "^" && classStart { out.unicodeScalars.append(ch); continue }
                    classStart = false
                    if ch == "[" || ch == "&" { out += "\\"; out.unicodeScalars.append(ch); continue }
                    if ch == "-", out.unicodeScalars.last == "-" { out += "\\-"; continue }
                    out.unicodeScalars.append(ch)
                } else {
                    if ch == "[" { inClass = true; classStart = true }
                    out.unicodeScalars.append(ch)
                }
            }
            return out
        }
        let pieces = ["[", "]", "^", "&", "-", "\\", "a", "é", "€", "𝄞", "\u{301}", "(", "|"]
        var seed: UInt64 = 7
        for _ in 0..<3000 {
            var p = ""
            for _ in 0..<12 {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                p += pieces[Int((seed >> 33) % UInt64(pieces.count))]
            }
            #expect(UAPRegexes.icuPattern(p) == byCharacters(p), "\(p)")
        }
    }

    @Test func replacementSemantics() throws {
        let yaml = """
        user_agent_parsers:
          - regex: 'Empty(X?)/(\\d+)'
          - regex: '(Foo)Bar/(\\d+)\\.(\\d+)'
            family_replacement: '$1 Browser'
            v2_replacement: 'beta'
          - regex: 'Empty(X?)/(\\d+)'
            family_replacement: 'Fallback'
        os_parsers:
          - regex: 'MyOS ?(\\d+)?'
            os_replacement: 'My OS $1'
            os_v1_replacement: '$1'
        device_parsers:
          - regex: '; *(sm-\\w+)'
            regex_flag: 'i'
            device_replacement: 'Samsung $1'
            brand_replacement: 'Samsung'
            model_replacement: '$1 $9'
        """
        let r = try UAPRegexes(yaml: yaml)
        let p = r.parse("FooBar/12.3 MyOS 7; SM-A5")
        #expect(p.userAgent == UAFamilyVersion(family: "Foo Browser", major: "12", minor: "beta"))
        #expect(p.os == UAFamilyVersion(family: "My OS 7", major: "7"))
        #expect(p.device == UADevice(family: "Samsung SM-A5", brand: "Samsung", model: "SM-A5"))
        // Empty group 1 → empty family → next rule; unset $1 → trimmed away, empty → nil.
        let q = r.parse("Empty/5 MyOS")
        #expect(q.userAgent == UAFamilyVersion(family: "Fallback", major: "5"))
        #expect(q.os == UAFamilyVersion(family: "My OS", major: nil))
        #expect(q.device == UADevice(family: "Other"))
    }

    /// The file is read as YAML text (no tag resolution): a plain `~`/`null`
    /// replacement is no replacement, a quoted 'null' and an unquoted number
    /// are their text; a key given twice takes the last value; a list that
    /// is not a list of mappings is refused.
    @Test func yamlValuesAreReadAsText() throws {
        let yaml = """
        user_agent_parsers:
          - regex: '(Foo)/(\\d+)'
            family_replacement: ~
            v1_replacement: 07
            v2_replacement: 'null'
          - regex: '(Bar)/(\\d+)'
            regex: '(Baz)/(\\d+)'
            family_replacement: null
            v1_replacement: 1.10
        os_parsers: []
        device_parsers: []
        """
        let r = try UAPRegexes(yaml: yaml)
        #expect(r.parse("Foo/5").userAgent == UAFamilyVersion(family: "Foo", major: "07", minor: "null"))
        #expect(r.parse("Baz/5").userAgent == UAFamilyVersion(family: "Baz", major: "1.10"))
        #expect(r.parse("Bar/5").userAgent == UAFamilyVersion(family: "Other"))
        #expect(throws: UserAgentRegexesError.self) {
            try UAPRegexes(yaml: "user_agent_parsers: [a, b]\nos_parsers: []\ndevice_parsers: []\n")
        }
        #expect(throws: UserAgentRegexesError.self) { try UAPRegexes(yaml: "- just\n- a list\n") }
    }

    @Test func missingOrBrokenRegexesFile() throws {
        let dir = try TestSupport.makeTempDir("uap")
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("nope.yaml").path
        let broken = dir.appendingPathComponent("broken.yaml")
        try "user_agent_parsers: [\n  - regex: '(unclosed'\n".write(to: broken, atomically: true, encoding: .utf8)
        let badRegex = dir.appendingPathComponent("badregex.yaml")
        try "user_agent_parsers:\n  - regex: '(unclosed'\nos_parsers: []\ndevice_parsers: []\n".write(to: badRegex, atomically: true, encoding: .utf8)
        for path in [missing, broken.path, badRegex.path] {
            #expect(throws: UserAgentRegexesError.self) { try UserAgentClassifier(regexesPath: path) }
            do { _ = try UserAgentClassifier(regexesPath: path) } catch {
                let line = "\(error)"
                #expect(line.contains(path) && !line.contains("\n") && line.contains("fix:"), "\(line)")
            }
        }
    }

    /// The regexes compile on several threads; the error still names the
    /// first entry (in file order) whose regex does not compile, and the
    /// rules keep their order (the first matching rule wins).
    @Test func compileErrorsAndRuleOrderDoNotDependOnThreads() throws {
        func entries(_ n: Int, bad: Set<Int>, family: (Int) -> String) -> String {
            (0..<n).map { k in
                bad.contains(k) ? "  - regex: '(unclosed\(k)'\n"
                    : "  - regex: '(Agent)/(\\d+)'\n    family_replacement: '\(family(k))'\n"
            }.joined()
        }
        for _ in 0..<5 {
            let yaml = "user_agent_parsers:\n" + entries(40, bad: [17, 33], family: { "F\($0)" })
                + "os_parsers:\n" + entries(9, bad: [2], family: { "O\($0)" }) + "device_parsers: []\n"
            do {
                _ = try UAPRegexes(yaml: yaml)
                Issue.record("a broken regex was accepted")
            } catch let e as UserAgentRegexesError {
                #expect("\(e)".contains("user_agent_parsers[17] regex does not compile: (unclosed17"), "\(e)")
            }
            let good = try UAPRegexes(yaml: "user_agent_parsers:\n" + entries(40, bad: [], family: { "F\($0)" })
                                      + "os_parsers: []\ndevice_parsers: []\n")
            #expect(good.parse("Agent/3").userAgent.family == "F0")
            #expect(good.ruleCount == 40)
        }
    }

    @Test func lruCacheEvictsLeastRecentlyUsed() {
        var c = LRUCache(capacity: 3)
        let v = UserAgentInfo(browser: "B", browserMajor: nil, os: "O", osMajor: nil, deviceFamily: "D",
                              deviceBrand: nil, deviceModel: nil, deviceType: .unknown)
        func val(_ s: String) -> UserAgentInfo { var x = v; x.browser = s; return x }
        c.put(LRUKey("a"), val("a")); c.put(LRUKey("b"), val("b")); c.put(LRUKey("c"), val("c"))
        #expect(c.get(LRUKey("a"))?.browser == "a")      // a is now most recent
        c.put(LRUKey("d"), val("d"))                      // evicts b
        #expect(c.get(LRUKey("b")) == nil)
        #expect(c.get(LRUKey("c"))?.browser == "c")
        #expect(c.get(LRUKey("a"))?.browser == "a")
        #expect(c.get(LRUKey("d"))?.browser == "d")
        c.put(LRUKey("e"), val("e"))                      // evicts c (least recent)
        #expect(c.get(LRUKey("c")) == nil)
        #expect(c.count == 3)
        c.put(LRUKey("a"), val("a2"))                     // update in place
        #expect(c.get(LRUKey("a"))?.browser == "a2" && c.count == 3)
        var z = LRUCache(capacity: 0)
        z.put(LRUKey("a"), v)
        #expect(z.get(LRUKey("a")) == nil && z.count == 0)
    }

    /// Random operations against a plain reference LRU (array in recency
    /// order); small key space and colliding hashes stress probing/deletion.
    @Test(arguments: [1, 2, 3, 7, 16, 33])
    func lruCacheMatchesReferenceModel(capacity: Int) {
        var c = LRUCache(capacity: capacity)
        var model: [(String, String)] = []   // most recent first
        var rng = SplitMix64(seed: UInt64(capacity))
        let base = UserAgentInfo(browser: "", browserMajor: nil, os: "", osMajor: nil, deviceFamily: "",
                                 deviceBrand: nil, deviceModel: nil, deviceType: .unknown)
        for step in 0..<20_000 {
            let k = "ua-\(rng.next() % UInt64(capacity * 3 + 2))"
            if rng.next() % 2 == 0 {
                let got = c.get(LRUKey(k))?.browser
                let idx = model.firstIndex { $0.0 == k }
                let want = idx.map { model[$0].1 }
                if let idx { let e = model.remove(at: idx); model.insert(e, at: 0) }
                if got != want { Issue.record("step \(step): get \(k) = \(got ?? "nil"), want \(want ?? "nil")"); return }
            } else {
                var v = base
                v.browser = "v\(step)"
                c.put(LRUKey(k), v)
                if let idx = model.firstIndex(where: { $0.0 == k }) { model.remove(at: idx) }
                model.insert((k, v.browser), at: 0)
                if model.count > capacity { model.removeLast() }
            }
            if c.count != model.count { Issue.record("step \(step): count \(c.count) vs \(model.count)"); return }
        }
    }

    /// The cache's key hash before it had a secret (fixed seed), kept here
    /// to build an attack on it.
    static func fixedSeedHash(_ b: [UInt8]) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(b.count)
        var i = 0
        while i + 8 <= b.count {
            var w: UInt64 = 0
            for k in 0..<8 { w |= UInt64(b[i + k]) << (8 * UInt64(k)) }
            h = (h ^ w) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
            i += 8
        }
        var tail: UInt64 = 0, shift: UInt64 = 0
        while i < b.count { tail |= UInt64(b[i]) << shift; shift += 8; i += 1 }
        h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
        return h ^ (h >> 29)
    }

    /// User agents chosen offline to share their bucket under the old
    /// fixed-seed hash do not form one probe run in the cache: its keys are
    /// hashed with this process's secrets (docs/architecture.md "Keys from
    /// anyone"). Under the old hash these 1 000 agents fill one run that
    /// every lookup of a new agent walks; the test fails if it comes back.
    @Test func userAgentsChosenToCollideDoNotFormOneProbeRun() {
        let hex = Array("0123456789abcdef".utf8)
        var ua = Array("Mozilla/5.0 (X11; Linux x86_64) Flood/0000000000000000".utf8)
        let digits = (ua.count - 16)..<ua.count
        var chosen: [String] = []
        var n: UInt64 = 0
        while chosen.count < 1_000 {
            n += 1
            var x = n
            for k in digits { ua[k] = hex[Int(x & 15)]; x >>= 4 }
            if Self.fixedSeedHash(ua) & 0xFFF == 0 { chosen.append(String(decoding: ua, as: UTF8.self)) }
        }
        var c = LRUCache(capacity: 1_000)  // 2 048 positions
        let v = UserAgentInfo(browser: "B", browserMajor: nil, os: "O", osMajor: nil, deviceFamily: "D",
                              deviceBrand: nil, deviceModel: nil, deviceType: .unknown)
        for s in chosen { c.put(LRUKey(s), v) }
        #expect(c.count == chosen.count)
        #expect(c.longestRun() < 100, "the chosen agents formed a probe run of \(c.longestRun())")
        for s in chosen { #expect(c.get(LRUKey(s)) != nil) }
    }

    @Test func classifierCacheIsBoundedAndTransparent() throws {
        let r = try UAPSuiteTests.regexes.get()
        let cached = UserAgentClassifier(regexes: r, cacheSize: 50)
        let uncached = UserAgentClassifier(regexes: r, cacheSize: 0)
        let mix = SampleUserAgents.mix(count: 600, seed: 9)
        for ua in mix { #expect(cached.classify(ua) == uncached.classify(ua)) }
        let s = cached.cacheStats
        #expect(s.count <= 50 && s.hits + s.misses == 600 && s.hits > 0)
        #expect(uncached.cacheStats.count == 0)
    }

    @Test func concurrentClassification() async throws {
        let c = UserAgentClassifier(regexes: try UAPSuiteTests.regexes.get(), cacheSize: 20)
        let uas = Array(Set(SampleUserAgents.mix(count: 200, seed: 5))).sorted()
        let expected = uas.map { UserAgentClassifier(regexes: c.regexes, cacheSize: 0).classify($0) }
        await withTaskGroup(of: Bool.self) { g in
            for t in 0..<4 {
                g.addTask {
                    var ok = true
                    for k in 0..<300 { let i = (k * 7 + t) % uas.count; ok = ok && c.classify(uas[i]) == expected[i] }
                    return ok
                }
            }
            for await ok in g { #expect(ok) }
        }
    }
}
