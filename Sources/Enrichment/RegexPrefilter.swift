// Literal prefilter for the uap-core regexes (the idea of RE2's FilteredRE2).
//
// For each regex we derive a boolean condition over literal substrings that
// every match must contain ("'cfnetwork' AND ('ipad' OR 'iphone')"). One
// Aho-Corasick pass over the lower-cased user agent finds which literals occur;
// only regexes whose condition holds are run. The condition is necessary, never
// sufficient, so filtering can only skip regexes that cannot match: results are
// identical to running every regex in order.

/// A condition over literal atoms (indices into the atom table).
indirect enum Prefilter: Equatable, Sendable {
    case always
    case atom(Int)
    case and([Prefilter])
    case or([Prefilter])

    func evaluate(_ present: UnsafePointer<UInt64>) -> Bool {
        switch self {
        case .always: return true
        case .atom(let i): return present[i >> 6] & (1 << UInt64(i & 63)) != 0
        case .and(let ps):
            for p in ps where !p.evaluate(present) { return false }
            return true
        case .or(let ps):
            for p in ps where p.evaluate(present) { return true }
            return false
        }
    }
}

/// The literal analysis of one regex, before atoms are numbered.
indirect enum LiteralCondition: Equatable {
    case always
    case literal([UInt8])            // lower-cased ASCII bytes
    case and([LiteralCondition])
    case or([LiteralCondition])

    static func makeAnd(_ xs: [LiteralCondition]) -> LiteralCondition {
        var out: [LiteralCondition] = []
        for x in xs {
            switch x {
            case .always: continue
            case .and(let inner): out.append(contentsOf: inner)
            default: if !out.contains(x) { out.append(x) }
            }
        }
        if out.isEmpty { return .always }
        return out.count == 1 ? out[0] : .and(out)
    }

    static func makeOr(_ xs: [LiteralCondition]) -> LiteralCondition {
        var out: [LiteralCondition] = []
        for x in xs {
            switch x {
            case .always: return .always
            case .or(let inner): out.append(contentsOf: inner)
            default: if !out.contains(x) { out.append(x) }
            }
        }
        if out.isEmpty { return .always }
        return out.count == 1 ? out[0] : .or(out)
    }
}

/// Parses the regex dialect used by uap-core (Python `re` syntax, the common
/// subset) just far enough to extract required literals. Anything it does not
/// understand degrades to `.always` (no filtering), never to a wrong filter.
struct LiteralExtractor {
    /// Literals shorter than this are useless as filters and are dropped.
    static let minAtomLength = 2
    /// Exact-set cross products stop growing beyond this many strings.
    static let maxExactSet = 16

    private enum Info {
        /// The node matches exactly one of these (lower-cased, distinct)
        /// strings. An array, not a Set: the sets stay at most
        /// `maxExactSet` strings, where comparing beats hashing, and the
        /// analysis runs for every uap-core regex at every start
        /// (bench/results/speed.md section 64).
        case exact([[UInt8]])
        case cond(LiteralCondition) // every match contains a satisfying set of literals
    }

    private let p: [UInt8]
    private var i = 0
    private var failed = false

    static func condition(for pattern: String) -> LiteralCondition {
        var x = LiteralExtractor(Array(pattern.utf8))
        let info = x.parseAlternation()
        if x.failed || x.i != x.p.count { return .always }
        return toCond(info)
    }

    private init(_ p: [UInt8]) { self.p = p }

    private static func toCond(_ info: Info) -> LiteralCondition {
        switch info {
        case .cond(let c): return c
        case .exact(let set):
            assert(Set(set).count == set.count, "an exact set holds each string once")
            if set.isEmpty { return .always }
            var lits: [LiteralCondition] = []
            for s in set.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                if s.count < minAtomLength { return .always }
                lits.append(.literal(s))
            }
            return LiteralCondition.makeOr(lits)
        }
    }

    private static let any = Info.cond(.always)
    private static let empty = Info.exact([[]])

    private mutating func parseAlternation() -> Info {
        var branches = [parseConcat()]
        while i < p.count && p[i] == UInt8(ascii: "|") {
            i += 1
            branches.append(parseConcat())
        }
        if branches.count == 1 { return branches[0] }
        var union: [[UInt8]] = []
        var allExact = true
        for b in branches {
            if case .exact(let s) = b { Self.formUnion(&union, s) } else { allExact = false }
        }
        if allExact && union.count <= Self.maxExactSet { return .exact(union) }
        return .cond(LiteralCondition.makeOr(branches.map(Self.toCond)))
    }

    private mutating func parseConcat() -> Info {
        var conds: [LiteralCondition] = []
        var cur: [[UInt8]] = [[]]  // the strings the concatenation so far matches exactly (distinct)
        func flush() {
            conds.append(Self.toCond(.exact(cur)))
            cur = [[]]
        }
        while i < p.count && p[i] != UInt8(ascii: "|") && p[i] != UInt8(ascii: ")") {
            if let b = plainLiteral() {
                for j in cur.indices { cur[j].append(b) }
                continue
            }
            var atom = parseAtom()
            atom = parseQuantifier(atom)
            if failed { return Self.any }
            switch atom {
            case .exact(let s):
                if cur.count * s.count <= Self.maxExactSet {
                    var next: [[UInt8]] = []
                    for a in cur { for b in s { let x = a + b; if !next.contains(x) { next.append(x) } } }
                    cur = next
                } else {
                    flush()
                    cur = s
                }
            case .cond(let c):
                flush()
                conds.append(c)
            }
        }
        if conds.isEmpty { return .exact(cur) }
        flush()
        return .cond(LiteralCondition.makeAnd(conds))
    }

    /// The common case of `parseAtom` + `parseQuantifier`, without building
    /// a set per byte: a letter, digit or plain punctuation mark with no
    /// quantifier after it stands for itself. Consumed and lower-cased, or
    /// nil (nothing consumed) for anything else.
    private mutating func plainLiteral() -> UInt8? {
        let c = p[i]
        guard isAlnum(c) || c == UInt8(ascii: " ") || c == UInt8(ascii: "/") || c == UInt8(ascii: "-")
            || c == UInt8(ascii: ";") || c == UInt8(ascii: "_") || c == UInt8(ascii: ",") || c == UInt8(ascii: ":")
            || c == UInt8(ascii: "=") else { return nil }
        if i + 1 < p.count {
            let q = p[i + 1]
            if q == UInt8(ascii: "*") || q == UInt8(ascii: "+") || q == UInt8(ascii: "?") || q == UInt8(ascii: "{") { return nil }
        }
        i += 1
        return lower(c)
    }

    private mutating func parseQuantifier(_ atom: Info) -> Info {
        guard i < p.count else { return atom }
        var minCount: Int
        var maxCount: Int?
        switch p[i] {
        case UInt8(ascii: "*"): minCount = 0; maxCount = nil; i += 1
        case UInt8(ascii: "+"): minCount = 1; maxCount = nil; i += 1
        case UInt8(ascii: "?"): minCount = 0; maxCount = 1; i += 1
        case UInt8(ascii: "{"):
            // {n}, {n,}, {n,m}, {,m}; anything else is a literal '{' (Python).
            var j = i + 1
            var n = 0, hasN = false
            while j < p.count, p[j] >= 48, p[j] <= 57 { n = n * 10 + Int(p[j] - 48); hasN = true; j += 1 }
            if j < p.count && p[j] == UInt8(ascii: "}") {
                guard hasN else { return atom }
                minCount = n; maxCount = n; i = j + 1
            } else if j < p.count && p[j] == UInt8(ascii: ",") {
                j += 1
                var m = 0, hasM = false
                while j < p.count, p[j] >= 48, p[j] <= 57 { m = m * 10 + Int(p[j] - 48); hasM = true; j += 1 }
                guard j < p.count && p[j] == UInt8(ascii: "}") else { return atom }
                minCount = hasN ? n : 0; maxCount = hasM ? m : nil; i = j + 1
            } else {
                return atom
            }
        default:
            return atom
        }
        // Lazy / possessive suffix.
        if i < p.count && (p[i] == UInt8(ascii: "?") || p[i] == UInt8(ascii: "+")) { i += 1 }
        if minCount == 1 && maxCount == 1 { return atom }
        if minCount == 0 {
            if maxCount == 1, case .exact(var s) = atom {
                Self.formUnion(&s, [[]])
                return .exact(s)
            }
            return Self.any
        }
        // At least one repetition: the atom's condition still holds.
        return .cond(Self.toCond(atom))
    }

    private mutating func parseAtom() -> Info {
        let c = p[i]
        switch c {
        case UInt8(ascii: "("):
            i += 1
            var lookaround = false
            if i < p.count && p[i] == UInt8(ascii: "?") {
                i += 1
                guard i < p.count else { failed = true; return Self.any }
                switch p[i] {
                case UInt8(ascii: ":"): i += 1
                case UInt8(ascii: "="), UInt8(ascii: "!"): i += 1; lookaround = true
                case UInt8(ascii: "<"):
                    i += 1
                    if i < p.count && (p[i] == UInt8(ascii: "=") || p[i] == UInt8(ascii: "!")) {
                        i += 1; lookaround = true
                    } else { failed = true; return Self.any }   // named groups: give up
                case UInt8(ascii: "P"): failed = true; return Self.any
                default:
                    // Inline flags like (?i) or (?i:...): the filter is case-insensitive anyway.
                    while i < p.count && p[i] != UInt8(ascii: ")") && p[i] != UInt8(ascii: ":") { i += 1 }
                    guard i < p.count else { failed = true; return Self.any }
                    if p[i] == UInt8(ascii: ")") { i += 1; return Self.empty }
                    i += 1
                }
            }
            let inner = parseAlternation()
            guard i < p.count && p[i] == UInt8(ascii: ")") else { failed = true; return Self.any }
            i += 1
            return lookaround ? Self.empty : inner
        case UInt8(ascii: "["):
            return parseClass()
        case UInt8(ascii: "."):
            i += 1
            return Self.any
        case UInt8(ascii: "^"), UInt8(ascii: "$"):
            i += 1
            return Self.empty
        case UInt8(ascii: "\\"):
            i += 1
            guard i < p.count else { failed = true; return Self.any }
            let e = p[i]
            i += 1
            switch e {
            case UInt8(ascii: "b"), UInt8(ascii: "B"), UInt8(ascii: "A"), UInt8(ascii: "Z"), UInt8(ascii: "z"):
                return Self.empty
            case UInt8(ascii: "x"): i += 2; return Self.any
            case UInt8(ascii: "u"): i += 4; return Self.any
            case UInt8(ascii: "U"): i += 8; return Self.any
            default:
                if isAlnum(e) { return Self.any }  // \d \w \s \1 \t …: not a literal
                return .exact([[lower(e)]])
            }
        default:
            i += 1
            if c >= 0x80 {
                // Skip the rest of the UTF-8 sequence; non-ASCII is not used as a literal.
                while i < p.count && p[i] & 0xC0 == 0x80 { i += 1 }
                return Self.any
            }
            return .exact([[lower(c)]])
        }
    }

    /// `[...]`: a small set of ASCII characters becomes an exact set of
    /// one-character strings; anything else (negation, big ranges, \d) is "any".
    private mutating func parseClass() -> Info {
        i += 1
        var negated = false
        if i < p.count && p[i] == UInt8(ascii: "^") { negated = true; i += 1 }
        var chars = Set<UInt8>()
        var big = false
        var first = true
        var prev: UInt8?
        while i < p.count && (p[i] != UInt8(ascii: "]") || first) {
            first = false
            var ch = p[i]
            i += 1
            if ch == UInt8(ascii: "\\") {
                guard i < p.count else { failed = true; return Self.any }
                let e = p[i]
                i += 1
                if isAlnum(e) { big = true; prev = nil; continue }
                ch = e
            } else if ch >= 0x80 {
                big = true; prev = nil; continue
            } else if ch == UInt8(ascii: "-"), let lo = prev, i < p.count, p[i] != UInt8(ascii: "]") {
                var hi = p[i]
                i += 1
                if hi == UInt8(ascii: "\\") {
                    guard i < p.count else { failed = true; return Self.any }
                    hi = p[i]; i += 1
                }
                if hi < lo || hi >= 0x80 || Int(hi) - Int(lo) > 16 { big = true } else {
                    for x in lo...hi { chars.insert(lower(x)) }
                }
                prev = nil
                continue
            }
            chars.insert(lower(ch))
            prev = ch
        }
        guard i < p.count else { failed = true; return Self.any }
        i += 1  // ']'
        if negated || big || chars.isEmpty || chars.count > 8 { return Self.any }
        return .exact(chars.sorted().map { [$0] })
    }

    /// Adds to `set` the strings of `more` it does not hold yet.
    private static func formUnion(_ set: inout [[UInt8]], _ more: [[UInt8]]) {
        for x in more where !set.contains(x) { set.append(x) }
    }

    private func isAlnum(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
    }
}

@inline(__always) func lower(_ c: UInt8) -> UInt8 {
    (c >= 65 && c <= 90) ? c | 0x20 : c
}

/// Aho-Corasick automaton over lower-cased bytes with a dense transition table
/// on byte classes (bytes that occur in no atom share class 0). Built in flat
/// arrays (no array per state): it is built at every start of `qos`.
struct AhoCorasick: Sendable {
    let atomCount: Int
    private let byteClass: [UInt8]          // 256 entries
    private let classCount: Int
    private let next: [Int32]               // state * classCount + class
    /// Atoms ending at each state (incl. via suffix links): state s's are
    /// `outputIds[outputStart[s]..<outputStart[s + 1]]`.
    private let outputStart: [Int32]
    private let outputIds: [Int32]

    init(atoms: [[UInt8]]) {
        atomCount = atoms.count
        var cls = [UInt8](repeating: 0, count: 256)
        var k = 1
        for a in atoms { for b in a where cls[Int(b)] == 0 { cls[Int(b)] = UInt8(k); k += 1 } }
        precondition(k <= 256)
        byteClass = cls
        classCount = k
        // Trie: row s of `table` holds state s's edges, -1 for none yet.
        // Rows for as many states as the atoms have bytes (the most there
        // can be), filled once, so no row is appended or copied as the trie
        // grows; the unused rows are dropped below.
        let statesMax = 1 + atoms.reduce(0) { $0 + $1.count }
        var table = [Int32](repeating: -1, count: statesMax * k)
        var own: [[Int32]] = [[]]
        own.reserveCapacity(statesMax)
        table.withUnsafeMutableBufferPointer { t in
            for (id, a) in atoms.enumerated() {
                var s = 0
                for b in a {
                    let edge = s * k + Int(cls[Int(b)])
                    if t[edge] < 0 {
                        t[edge] = Int32(own.count)
                        own.append([])
                    }
                    s = Int(t[edge])
                }
                own[s].append(Int32(id))
            }
        }
        // BFS: failure links folded into a full DFA.
        let states = own.count
        var fail = [Int32](repeating: 0, count: states)
        var order: [Int] = [0]
        order.reserveCapacity(states)
        table.withUnsafeMutableBufferPointer { t in
            fail.withUnsafeMutableBufferPointer { fail in
                for c in 0..<k {
                    if t[c] < 0 { t[c] = 0 } else { order.append(Int(t[c])) }
                }
                // Rows by pointer: this loop visits every (state, class) cell.
                let base = t.baseAddress!
                var head = 1
                while head < order.count {
                    let s = order[head]; head += 1
                    let row = base + s * k, failRow = base + Int(fail[s]) * k
                    for c in 0..<k {
                        let edge = row[c]
                        if edge < 0 {
                            row[c] = failRow[c]
                        } else {
                            fail[Int(edge)] = failRow[c]
                            order.append(Int(edge))
                        }
                    }
                }
            }
        }
        // A state's outputs: its own atoms, then those of each state down
        // its failure chain (which ends at the root).
        var start = [Int32](repeating: 0, count: states + 1)
        var ids: [Int32] = []
        for s in 0..<states {
            start[s] = Int32(ids.count)
            var t = s
            while true {
                if !own[t].isEmpty { ids.append(contentsOf: own[t]) }
                if t == 0 { break }
                t = Int(fail[t])
            }
        }
        start[states] = Int32(ids.count)
        next = Array(table[..<(states * k)])  // a copy of its own size
        outputStart = start
        outputIds = ids
    }

    var wordCount: Int { (atomCount + 63) / 64 }

    /// Marks in `present` (zeroed by the caller, `wordCount` words) every atom
    /// that occurs in `text` (compared lower-cased).
    func scan(_ text: UnsafeBufferPointer<UInt8>, into present: UnsafeMutablePointer<UInt64>) {
        next.withUnsafeBufferPointer { nx in
            byteClass.withUnsafeBufferPointer { bc in
                outputStart.withUnsafeBufferPointer { os in
                    outputIds.withUnsafeBufferPointer { oi in
                        var s = 0
                        for b in text {
                            s = Int(nx[s * classCount + Int(bc[Int(lower(b))])])
                            for j in Int(os[s])..<Int(os[s + 1]) {
                                let id = oi[j]
                                present[Int(id) >> 6] |= 1 << UInt64(id & 63)
                            }
                        }
                    }
                }
            }
        }
    }
}
