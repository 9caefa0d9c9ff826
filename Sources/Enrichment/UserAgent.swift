// User-agent parsing with ua-parser's uap-core regexes.yaml.
//
// Semantics follow uap-core's specification and its reference implementations:
// each of the three parser lists (user agent, OS, device) is tried in file
// order; the first regex that matches *and yields a non-empty family* wins.
// Replacement fields may contain `$1`…`$9` (the regex's capture groups; a group
// that did not take part is empty); a replaced value is trimmed and an empty
// result counts as absent. Families default to "Other".

import Foundation
import BoundedYAML
import Yams

/// A parsed user-agent or OS: family and up to four version components.
public struct UAFamilyVersion: Sendable, Equatable, Hashable {
    public var family: String
    public var major: String?
    public var minor: String?
    public var patch: String?
    public var patchMinor: String?

    public init(family: String, major: String? = nil, minor: String? = nil, patch: String? = nil, patchMinor: String? = nil) {
        self.family = family
        self.major = major
        self.minor = minor
        self.patch = patch
        self.patchMinor = patchMinor
    }
}

/// A parsed device: family, brand, model.
public struct UADevice: Sendable, Equatable, Hashable {
    public var family: String
    public var brand: String?
    public var model: String?

    public init(family: String, brand: String? = nil, model: String? = nil) {
        self.family = family
        self.brand = brand
        self.model = model
    }
}

/// The full uap-core parse of one user-agent string.
public struct UserAgentParse: Sendable, Equatable, Hashable {
    public var userAgent: UAFamilyVersion
    public var os: UAFamilyVersion
    public var device: UADevice
}

/// Device classes used by the `device` table.
public enum DeviceType: String, Sendable, CaseIterable, Hashable {
    case desktop, mobile, tablet, tv, console, bot, unknown
}

/// What the engine keeps per session.
public struct UserAgentInfo: Sendable, Equatable, Hashable {
    /// Browser / app family (`user_agent_parsers`), "Other" when unknown.
    public var browser: String
    public var browserMajor: String?
    /// OS family (`os_parsers`), "Other" when unknown.
    public var os: String
    public var osMajor: String?
    /// Device family (`device_parsers`), "Other" when unknown.
    public var deviceFamily: String
    public var deviceBrand: String?
    public var deviceModel: String?
    /// See ``DeviceTypeRule``.
    public var deviceType: DeviceType

    public init(browser: String, browserMajor: String?, os: String, osMajor: String?, deviceFamily: String,
                deviceBrand: String?, deviceModel: String?, deviceType: DeviceType) {
        self.browser = browser
        self.browserMajor = browserMajor
        self.os = os
        self.osMajor = osMajor
        self.deviceFamily = deviceFamily
        self.deviceBrand = deviceBrand
        self.deviceModel = deviceModel
        self.deviceType = deviceType
    }
}

/// Loading regexes.yaml failed. `description` is one line naming the file and the fix.
public struct UserAgentRegexesError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let reason: String
    public var description: String {
        "cannot load user-agent regexes '\(path)': \(reason) — fix: install Debian package uap-core (/usr/share/uap-core/regexes.yaml) or pass the path of ua-parser's regexes.yaml"
    }
}

/// One compiled uap-core rule.
struct UAPRule: @unchecked Sendable {   // NSRegularExpression is immutable and thread-safe
    let regex: NSRegularExpression
    let caseInsensitive: Bool
    /// Replacement templates, by output slot (meaning depends on the list).
    let replacements: [String?]
}

/// One parser list: the rules plus their prefilters flattened into one
/// `Int32` program (no reference counting while evaluating). Node layout at
/// offset o: kind (0 always, 1 atom, 2 and, 3 or), then the atom id or the
/// child count n, then n child offsets.
final class RuleList: @unchecked Sendable {   // immutable after init
    let rules: [UAPRule]
    private let program: UnsafeMutableBufferPointer<Int32>
    private let roots: UnsafeMutableBufferPointer<Int32>
    private let caseInsensitive: UnsafeMutableBufferPointer<Bool>
    var count: Int { rules.count }

    init(_ rules: [UAPRule], filters: [Prefilter]) {
        self.rules = rules
        var prog: [Int32] = []
        func emit(_ f: Prefilter) -> Int32 {
            let at = Int32(prog.count)
            switch f {
            case .always: prog += [0, 0]
            case .atom(let i): prog += [1, Int32(i)]
            case .and(let xs), .or(let xs):
                if case .and = f { prog.append(2) } else { prog.append(3) }
                prog.append(Int32(xs.count))
                let slots = prog.count
                prog += [Int32](repeating: 0, count: xs.count)
                for (k, x) in xs.enumerated() {
                    let child = emit(x)
                    prog[slots + k] = child
                }
            }
            return at
        }
        var rootOffsets: [Int32] = []
        for f in filters { rootOffsets.append(emit(f)) }
        program = .allocate(capacity: max(prog.count, 1))
        _ = program.initialize(from: prog)
        roots = .allocate(capacity: max(rootOffsets.count, 1))
        _ = roots.initialize(from: rootOffsets)
        caseInsensitive = .allocate(capacity: max(rules.count, 1))
        _ = caseInsensitive.initialize(from: rules.map(\.caseInsensitive))
    }

    deinit {
        program.deallocate()
        roots.deallocate()
        caseInsensitive.deallocate()
    }

    /// Whether rule `i` can possibly match given the atoms `present`.
    @inline(__always)
    func passes(_ i: Int, _ present: UnsafePointer<UInt64>, nonASCII: Bool) -> Bool {
        // ICU case-insensitive matching folds some non-ASCII characters to
        // ASCII letters (KELVIN SIGN → k): the ASCII filter does not apply then.
        if nonASCII && caseInsensitive[i] { return true }
        return Self.eval(UnsafePointer(program.baseAddress!), Int(roots[i]), present)
    }

    private static func eval(_ p: UnsafePointer<Int32>, _ o: Int, _ present: UnsafePointer<UInt64>) -> Bool {
        switch p[o] {
        case 0: return true
        case 1:
            let a = Int(p[o + 1])
            return present[a >> 6] & (1 << UInt64(a & 63)) != 0
        case 2:
            let n = Int(p[o + 1])
            for k in 0..<n where !eval(p, Int(p[o + 2 + k]), present) { return false }
            return true
        default:
            let n = Int(p[o + 1])
            for k in 0..<n where eval(p, Int(p[o + 2 + k]), present) { return true }
            return false
        }
    }
}

/// The three compiled uap-core parser lists plus the literal prefilter. Immutable.
public final class UAPRegexes: Sendable {
    let userAgentRules: RuleList
    let osRules: RuleList
    let deviceRules: RuleList
    let automaton: AhoCorasick
    /// How many regexes were compiled (all three lists).
    public var ruleCount: Int { userAgentRules.count + osRules.count + deviceRules.count }

    static let uaSlots = ["family_replacement", "v1_replacement", "v2_replacement", "v3_replacement", "v4_replacement"]
    static let osSlots = ["os_replacement", "os_v1_replacement", "os_v2_replacement", "os_v3_replacement", "os_v4_replacement"]
    static let deviceSlots = ["device_replacement", "brand_replacement", "model_replacement"]

    /// Loads and compiles regexes.yaml. Throws ``UserAgentRegexesError``.
    public convenience init(path: String) throws {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "unreadable" : "no such file"
            throw UserAgentRegexesError(path: path, reason: reason)
        }
        try self.init(yaml: text, path: path)
    }

    /// Compiles regexes from YAML text (`path` is only used in error messages).
    public init(yaml: String, path: String = "<yaml>") throws {
        // The document as nodes, read as plain strings: no tag resolution or
        // `Any` per scalar (that was most of the load time of every `qos` start).
        let root: Node
        do {
            guard let r = try BoundedYAML.compose(yaml: yaml), r.mapping != nil else {
                throw UserAgentRegexesError(path: path, reason: "not a YAML mapping")
            }
            root = r
        } catch let e as UserAgentRegexesError {
            throw e
        } catch {
            throw UserAgentRegexesError(path: path, reason: "invalid YAML (\("\(error)".split(separator: "\n").first ?? ""))")
        }
        var literals: [[UInt8]: Int] = [:]
        var atoms: [[UInt8]] = []
        func number(_ c: LiteralCondition) -> Prefilter {
            switch c {
            case .always: return .always
            case .literal(let s):
                if let id = literals[s] { return .atom(id) }
                literals[s] = atoms.count
                atoms.append(s)
                return .atom(atoms.count - 1)
            case .and(let xs): return .and(xs.map(number))
            case .or(let xs): return .or(xs.map(number))
            }
        }
        // Each entry's regex and literal condition compiled on every core
        // (about half of the load time; entries are independent), then the
        // literals numbered in entry order, so the result does not depend
        // on which thread compiled what.
        struct Entry { let list: String; let n: Int; let pattern: String; let ci: Bool; let repl: [String?] }
        var entries: [Entry] = []
        var counts: [Int] = []
        for (key, slots) in [("user_agent_parsers", Self.uaSlots), ("os_parsers", Self.osSlots),
                             ("device_parsers", Self.deviceSlots)] {
            guard let list = Self.value(root, key)?.sequence, list.allSatisfy({ $0.mapping != nil }) else {
                throw UserAgentRegexesError(path: path, reason: "missing list '\(key)'")
            }
            let names = ["regex", "regex_flag"] + slots
            for (n, entry) in list.enumerated() {
                let found = Self.values(entry, names)
                guard let pattern = found[0]?.scalar?.string else {
                    throw UserAgentRegexesError(path: path, reason: "\(key)[\(n)] has no regex")
                }
                let flag = found[1]?.scalar?.string ?? ""
                let repl = slots.indices.map { slot -> String? in
                    guard let v = found[2 + slot]?.scalar else { return nil }
                    // A plain `~`, `null` or empty value is YAML's null: no replacement.
                    if v.style == .plain, NSNull.construct(from: v) != nil { return nil }
                    return v.string
                }
                entries.append(Entry(list: key, n: n, pattern: pattern, ci: flag.contains("i"), repl: repl))
            }
            counts.append(list.count)
        }
        let compiled = Self.compileAll(entries.map { ($0.pattern, $0.ci) })
        var lists: [RuleList] = []
        var at = 0
        for count in counts {
            var rules: [UAPRule] = []
            var filters: [Prefilter] = []
            rules.reserveCapacity(count)
            for k in at..<(at + count) {
                let e = entries[k]
                guard let (regex, condition) = compiled[k] else {
                    throw UserAgentRegexesError(path: path, reason: "\(e.list)[\(e.n)] regex does not compile: \(e.pattern)")
                }
                rules.append(UAPRule(regex: regex, caseInsensitive: e.ci, replacements: e.repl))
                filters.append(number(condition))
            }
            lists.append(RuleList(rules, filters: filters))
            at += count
        }
        userAgentRules = lists[0]
        osRules = lists[1]
        deviceRules = lists[2]
        automaton = AhoCorasick(atoms: atoms)
    }

    /// Each (pattern, case-insensitive) compiled for ICU with its literal
    /// condition (nil: the regex does not compile), in order, spread over
    /// the machine's cores (up to 4).
    static func compileAll(_ patterns: [(String, Bool)]) -> [(NSRegularExpression, LiteralCondition)?] {
        // Each slot is written by one thread, and read after all joined.
        nonisolated(unsafe) let out = UnsafeMutableBufferPointer<(NSRegularExpression, LiteralCondition)?>
            .allocate(capacity: patterns.count)
        out.initialize(repeating: nil)
        defer { out.deallocate() }
        let threads = max(1, min(4, ProcessInfo.processInfo.activeProcessorCount, patterns.count))
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            // Interleaved (entry k on thread k mod threads): neighbouring
            // entries are alike in size, so the threads finish together.
            for k in stride(from: t, to: patterns.count, by: threads) {
                let (pattern, ci) = patterns[k]
                guard let regex = try? NSRegularExpression(pattern: icuPattern(pattern),
                                                           options: ci ? [.caseInsensitive] : []) else { continue }
                out[k] = (regex, LiteralExtractor.condition(for: pattern))
            }
        }
        return Array(out)
    }

    /// A mapping's value for a plain string key (the last one, as YAML
    /// loaders take it), compared as text without resolving tags.
    static func value(_ node: Node, _ key: String) -> Node? { values(node, [key])[0] }

    /// `value(node, key)` for each of `keys`, in one pass over the mapping
    /// (a rule has a handful of keys; a pass per key cost ≈ 15 M
    /// instructions at every start, bench/results/speed.md section 64).
    static func values(_ node: Node, _ keys: [String]) -> [Node?] {
        var found = [Node?](repeating: nil, count: keys.count)
        guard case .mapping(let mapping) = node else { return found }
        for (k, v) in mapping {
            if let name = k.scalar?.string, let i = keys.firstIndex(of: name) { found[i] = v }
        }
        return found
    }

    /// Python `re` → ICU: inside a character class ICU treats an unescaped
    /// `[` as a nested set and `&&`/`--` as set operators; Python treats them
    /// as literals. Escape them. Everything else uap-core uses is common syntax.
    /// Read as UTF-8 bytes: every byte it looks for is ASCII, which no byte
    /// of a longer character equals, and walking the 1 162 patterns by
    /// `Character` was 0.3 % of a replay's instructions (bench/results/speed.md
    /// section 57).
    static func icuPattern(_ p: String) -> String {
        let backslash = UInt8(ascii: "\\"), open = UInt8(ascii: "["), close = UInt8(ascii: "]")
        let caret = UInt8(ascii: "^"), amp = UInt8(ascii: "&"), dash = UInt8(ascii: "-")
        var out: [UInt8] = []
        out.reserveCapacity(p.utf8.count + 8)
        var inClass = false
        var classStart = false
        var escaped = false
        for b in p.utf8 {
            if escaped { out.append(b); escaped = false; classStart = false; continue }
            if b == backslash { out.append(b); escaped = true; continue }
            if inClass {
                if b == close && !classStart { inClass = false; out.append(b); continue }
                if b == caret && classStart { out.append(b); continue }
                classStart = false
                if b == open || b == amp { out.append(backslash); out.append(b); continue }
                if b == dash, out.last == dash { out.append(backslash); out.append(b); continue }
                out.append(b)
            } else {
                if b == open { inClass = true; classStart = true }
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: parsing

    /// Parses one user agent with all three lists (no cache).
    public func parse(_ ua: String) -> UserAgentParse { parse(ua, prefilter: true) }

    /// `prefilter: false` runs every regex in order (the reference behaviour
    /// the prefilter must reproduce; for tests).
    func parse(_ ua: String, prefilter: Bool) -> UserAgentParse {
        var bytes = Array(ua.utf8)
        let nonASCII = bytes.contains { $0 >= 0x80 }
        let words = automaton.wordCount
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: max(words, 1)) { present in
            present.initialize(repeating: 0)
            bytes.withUnsafeMutableBufferPointer { b in
                automaton.scan(UnsafeBufferPointer(b), into: present.baseAddress!)
            }
            bytes = []
            let ns = ua as NSString
            let ctx = MatchContext(string: ua, ns: ns, range: NSRange(location: 0, length: ns.length),
                                   present: UnsafePointer(present.baseAddress!), bypassFilter: !prefilter,
                                   nonASCII: nonASCII)
            let agent = ctx.first(userAgentRules) { m in
                guard let family = ctx.value(self.userAgentRules, m.rule, 0, m.match, defaultGroup: 1) else { return nil }
                return UAFamilyVersion(family: family,
                                       major: ctx.value(self.userAgentRules, m.rule, 1, m.match, defaultGroup: 2),
                                       minor: ctx.value(self.userAgentRules, m.rule, 2, m.match, defaultGroup: 3),
                                       patch: ctx.value(self.userAgentRules, m.rule, 3, m.match, defaultGroup: 4),
                                       patchMinor: ctx.value(self.userAgentRules, m.rule, 4, m.match, defaultGroup: 5))
            } ?? UAFamilyVersion(family: "Other")
            let os = ctx.first(osRules) { m in
                guard let family = ctx.value(self.osRules, m.rule, 0, m.match, defaultGroup: 1) else { return nil }
                return UAFamilyVersion(family: family,
                                       major: ctx.value(self.osRules, m.rule, 1, m.match, defaultGroup: 2),
                                       minor: ctx.value(self.osRules, m.rule, 2, m.match, defaultGroup: 3),
                                       patch: ctx.value(self.osRules, m.rule, 3, m.match, defaultGroup: 4),
                                       patchMinor: ctx.value(self.osRules, m.rule, 4, m.match, defaultGroup: 5))
            } ?? UAFamilyVersion(family: "Other")
            let device = ctx.first(deviceRules) { m in
                guard let family = ctx.value(self.deviceRules, m.rule, 0, m.match, defaultGroup: 1) else { return nil }
                return UADevice(family: family,
                                brand: ctx.value(self.deviceRules, m.rule, 1, m.match, defaultGroup: nil),
                                model: ctx.value(self.deviceRules, m.rule, 2, m.match, defaultGroup: 1))
            } ?? UADevice(family: "Other")
            return UserAgentParse(userAgent: agent, os: os, device: device)
        }
    }

    /// Statistics for the prefilter: how many regexes would run for `ua` with
    /// and without it (first match in each list). For tests and tuning.
    func regexRuns(_ ua: String) -> (filtered: Int, unfiltered: Int) {
        var r = (filtered: 0, unfiltered: 0)
        let bytes = Array(ua.utf8)
        let nonASCII = bytes.contains { $0 >= 0x80 }
        var present = [UInt64](repeating: 0, count: max(automaton.wordCount, 1))
        present.withUnsafeMutableBufferPointer { p in
            bytes.withUnsafeBufferPointer { automaton.scan($0, into: p.baseAddress!) }
        }
        let ns = ua as NSString
        let range = NSRange(location: 0, length: ns.length)
        present.withUnsafeBufferPointer { p in
            for list in [userAgentRules, osRules, deviceRules] {
                for i in 0..<list.count {
                    r.unfiltered += 1
                    if list.passes(i, p.baseAddress!, nonASCII: nonASCII) {
                        r.filtered += 1
                        if list.rules[i].regex.firstMatch(in: ua, options: [], range: range) != nil { break }
                    }
                }
            }
        }
        return r
    }
}

/// Per-call matching state.
private struct MatchContext {
    let string: String
    let ns: NSString
    let range: NSRange
    let present: UnsafePointer<UInt64>
    let bypassFilter: Bool
    let nonASCII: Bool

    struct Hit {
        let rule: Int
        let match: NSTextCheckingResult
    }

    /// First rule (in order) that passes the prefilter, matches, and for which
    /// `make` returns a value (i.e. yields a non-empty family).
    func first<T>(_ list: RuleList, _ make: (Hit) -> T?) -> T? {
        for i in 0..<list.count {
            guard bypassFilter || list.passes(i, present, nonASCII: nonASCII) else { continue }
            guard let m = list.rules[i].regex.firstMatch(in: string, options: [], range: range) else { continue }
            if let v = make(Hit(rule: i, match: m)) { return v }
        }
        return nil
    }

    func group(_ m: NSTextCheckingResult, _ n: Int) -> String? {
        guard n < m.numberOfRanges else { return nil }
        let r = m.range(at: n)
        guard r.location != NSNotFound else { return nil }
        return ns.substring(with: r)
    }

    /// Slot value: the replacement template with `$n` substituted (trimmed,
    /// empty → nil), or the default capture group (empty → nil).
    func value(_ list: RuleList, _ rule: Int, _ slot: Int, _ m: NSTextCheckingResult, defaultGroup: Int?) -> String? {
        if let template = list.rules[rule].replacements[slot] {
            let s = substitute(template, m)
            return s.isEmpty ? nil : s
        }
        guard let g = defaultGroup, let v = group(m, g), !v.isEmpty else { return nil }
        return v
    }

    func substitute(_ template: String, _ m: NSTextCheckingResult) -> String {
        guard template.utf8.contains(UInt8(ascii: "$")) else {
            return template.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var out = ""
        var it = template.makeIterator()
        var pending: Character?
        while let ch = pending ?? it.next() {
            pending = nil
            if ch == "$" {
                if let d = it.next() {
                    if let n = d.wholeNumberValue, d.isASCII, n >= 1 {
                        out += group(m, n) ?? ""
                    } else {
                        out.append("$")
                        pending = d
                    }
                } else {
                    out.append("$")
                }
            } else {
                out.append(ch)
            }
        }
        return out.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
