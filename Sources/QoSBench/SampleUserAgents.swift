// A realistic user-agent mix for benchmarks and the synthetic generator:
// real-world templates of the clients that play video (desktop and mobile
// browsers, smart TVs and sticks, consoles, native player stacks) plus a few
// bots, expanded over versions and models.

import SplitMix

public enum SampleUserAgents {
    /// Base templates; `{v}` is replaced by a browser/app major version, `{m}`
    /// by a device model, `{o}` by an OS version.
    static let templates: [(weight: Int, template: String, versions: [String], models: [String], osVersions: [String])] = [
        (30, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
         ["120", "121", "122", "123", "124", "125", "126", "127", "128", "129", "130", "131"], [""], [""]),
        (12, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
         ["124", "125", "126", "127", "128", "129", "130"], [""], [""]),
        (10, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v} Safari/605.1.15",
         ["16.6", "17.0", "17.4", "17.5", "17.6", "18.0", "18.1"], [""], [""]),
        (8, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
         ["115", "125", "126", "127", "128", "129", "130", "131"], [""], [""]),
        (8, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0",
         ["124", "125", "126", "127", "128", "129", "130"], [""], [""]),
        (40, "Mozilla/5.0 (iPhone; CPU iPhone OS {o} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v} Mobile/15E148 Safari/604.1",
         ["16.6", "17.5", "17.6", "18.0", "18.1"], [""], ["16_6", "17_5_1", "17_6_1", "18_0", "18_1", "18_1_1"]),
        (12, "Mozilla/5.0 (iPad; CPU OS {o} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v} Mobile/15E148 Safari/604.1",
         ["16.6", "17.5", "18.0", "18.1"], [""], ["16_6", "17_5", "18_0", "18_1"]),
        (35, "Mozilla/5.0 (Linux; Android {o}; {m}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",
         ["124", "125", "126", "127", "128", "129", "130"],
         ["K", "SM-S918B", "SM-A546B", "SM-G991B", "Pixel 7", "Pixel 8 Pro", "Redmi Note 12", "moto g54 5G", "CPH2451", "2201116SG"],
         ["10", "12", "13", "14", "15"]),
        (8, "Mozilla/5.0 (Linux; Android {o}; {m}) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/{v}.0 Chrome/115.0.0.0 Mobile Safari/537.36",
         ["23", "24", "25", "26"], ["SM-S911B", "SM-A536B", "SM-G998B", "SM-A145R"], ["13", "14"]),
        (5, "Mozilla/5.0 (Linux; Android {o}; {m}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
         ["124", "127", "129"], ["SM-X710", "SM-T870", "Lenovo TB-X606F", "KFTRWI"], ["11", "13", "14"]),
        (10, "AppleCoreMedia/1.0.0.{o} (iPhone; U; CPU OS {v} like Mac OS X; en_us)",
         ["17_5", "17_6", "18_0", "18_1"], [""], ["21F90", "21G93", "22A3354", "22B83"]),
        (6, "ExoPlayerLib/{v} (Linux; Android {o}) ExoPlayerLib/{v}",
         ["2.18.7", "2.19.1", "1.1.1", "1.3.1"], [""], ["11", "12", "13", "14"]),
        (6, "Mozilla/5.0 (SMART-TV; LINUX; Tizen {o}) AppleWebKit/537.36 (KHTML, like Gecko) {v}/5.0 TV Safari/537.36",
         ["SamsungBrowser/2.1", "SamsungBrowser/3.0", "SamsungBrowser/4.0"], [""], ["5.0", "6.0", "6.5", "7.0"]),
        (4, "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36 WebAppManager",
         ["79", "87", "94", "108"], [""], [""]),
        (4, "Roku/DVP-{v} ({o})", ["12.5", "13.0", "13.1"], [""], ["12.5.0.4178-46", "13.0.0.4230-46"]),
        (4, "Mozilla/5.0 (Linux; Android {o}; {m} Build/PS7633.3445N; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/{v}.0.0.0 Mobile Safari/537.36",
         ["108", "118", "126"], ["AFTMM", "AFTKA", "AFTSSS", "AFTT"], ["7.1.2", "9", "11"]),
        (3, "AppleTV11,1/{v}", ["11.1", "17.5", "18.0"], [""], [""]),
        (3, "Mozilla/5.0 (PlayStation; PlayStation 5/{v}) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.4 Safari/605.1.15",
         ["2.26", "4.03", "8.20"], [""], [""]),
        (2, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36 Edge/44.18363.8131",
         ["102", "110"], [""], [""]),
        (3, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
         ["126", "128", "130"], [""], [""]),
        (2, "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
         ["126", "129"], [""], [""]),
        (2, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", [""], [""], [""]),
        (1, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/{v}.0.0.0 Safari/537.36",
         ["120", "128"], [""], [""]),
        (1, "python-requests/{v}", ["2.31.0", "2.32.3"], [""], [""]),
    ]

    /// All distinct expanded user agents with their weights.
    public static let distinct: [(userAgent: String, weight: Int)] = {
        var out: [(String, Int)] = []
        for t in templates {
            var variants: [String] = []
            for v in t.versions { for m in t.models { for o in t.osVersions {
                variants.append(t.template.replacingOccurrences(of: "{v}", with: v)
                    .replacingOccurrences(of: "{m}", with: m).replacingOccurrences(of: "{o}", with: o))
            } } }
            // Spread the template's weight so newer variants (later in the list) are more common.
            let total = variants.count * (variants.count + 1) / 2
            for (i, ua) in variants.enumerated() {
                out.append((ua, max(1, t.weight * 1000 * (i + 1) / max(total, 1))))
            }
        }
        return out
    }()

    /// `count` user agents drawn from ``distinct`` by weight, deterministically.
    public static func mix(count: Int, seed: UInt64 = 42) -> [String] {
        let all = distinct
        var cumulative: [Int] = []
        var acc = 0
        for d in all { acc += d.weight; cumulative.append(acc) }
        var rng = SplitMix64(seed: seed)
        var out: [String] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            let r = Int(rng.next() % UInt64(acc))
            var lo = 0, hi = cumulative.count - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if cumulative[mid] > r { hi = mid } else { lo = mid + 1 }
            }
            out.append(all[lo].userAgent)
        }
        return out
    }
}
