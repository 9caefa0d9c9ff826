// Device type: one of desktop, mobile, tablet, tv, console, bot, unknown.


/// Derives ``DeviceType`` from the uap-core parse and the raw user agent.
///
/// uap-core itself has no device *class*, so this rule is ours (also in
/// docs/device-type.md). The first matching step wins:
///
/// 1. **bot** — uap's device family is `Spider` (its crawler catch-all), or the
///    browser family is a known automation client (`HeadlessChrome`,
///    `PhantomJS`, `Python Requests`, `curl`, `Wget`, …) or ends in `bot` /
///    contains `spider` / `crawler`.
/// 2. **console** — device, OS or user agent names a games console:
///    PlayStation (incl. PSP/Vita), Xbox, Nintendo (Wii, Switch, 3DS, DS).
/// 3. **tv** — a smart TV, set-top box or streaming stick: device family
///    `HbbTV`, `AppleTV`, `Roku`, `Chromecast` or containing `SmartTV`/`SMART-TV`,
///    or uap's brand `Generic_Inettv` (internet TV);
///    OS `tvOS`, `Roku`, `Chromecast`, `Fire OS` on an `AFT*` (Fire TV) model;
///    or a user-agent token `SmartTV`, `SMART-TV`, `Smart TV`, `HbbTV`,
///    `GoogleTV`, `Android TV`, `AppleTV`, `CrKey`, `Roku`, `BRAVIA`,
///    `NetCast`, `Web0S`, `webOS.TV`, `Tizen … TV`, `VIDAA`, `Opera TV`,
///    `AFT` Fire TV models (`AFTB`, `AFTS`, `AFTMM`, …).
/// 4. **tablet** — device family contains `iPad`, `Tablet`, `Kindle` or is uap's
///    `Generic Tablet`; or the user agent contains `iPad`, `Tablet`, `Silk/`,
///    `PlayBook`, `Kindle`; or it is an Android *browser* user agent
///    (`Mozilla/…`) without the `Mobile` token (Google's guidance: Android
///    phones' browsers send `Mobile`, tablets' do not).
/// 5. **mobile** — phones and wearables: OS `iOS`, `Android`, `Windows Phone`,
///    `Windows Mobile`, `BlackBerry OS`, `KaiOS`, `Symbian OS`, `Firefox OS`,
///    `Tizen`, `WatchOS`, `HarmonyOS`, …; device family `iPhone`, `iPod`,
///    `Apple Watch` or uap's `Generic Smartphone` / `Generic Feature Phone`;
///    or a `Mobile`/`Mobi`/`iPhone`/`Android` token in the user agent.
/// 6. **desktop** — desktop OS: `Windows` (not Phone/Mobile/CE), `Mac OS X`,
///    `Linux`, `Ubuntu`, `Fedora`, `Debian`, `Chrome OS`, `FreeBSD`,
///    `OpenBSD`, `NetBSD`, `Solaris`; or device family `Mac`.
/// 7. **unknown** — everything else (empty user agents, bare HTTP libraries and
///    player SDKs that name no OS).
///
/// Known limits: iPadOS 13+ Safari sends a Macintosh user agent by default and
/// is classified desktop; an Android app's own user agent (e.g.
/// `ExoPlayerLib/2.19 (Linux; Android 13)`) is mobile, not tablet.
public enum DeviceTypeRule {
    static let botFamilies: Set<String> = [
        "HeadlessChrome", "PhantomJS", "Python Requests", "Python-urllib", "curl", "Wget",
        "Go-http-client", "Apache-HttpClient", "Java", "libwww-perl", "Scrapy", "Lighthouse",
        "Chrome-Lighthouse", "Pingdom", "UptimeRobot", "facebookexternalhit", "Slurp",
    ]
    static let consoleWords = ["playstation", "xbox", "nintendo"]
    static let tvDeviceFamilies: Set<String> = ["HbbTV", "AppleTV", "Roku", "Chromecast", "Apple TV"]
    static let tvUAWords = [
        "smarttv", "smart-tv", "smart tv", "hbbtv", "googletv", "google tv", "android tv", "androidtv",
        "appletv", "apple tv", "crkey", "roku", "bravia", "netcast", "web0s", "webos.tv", "webos tv",
        "vidaa", "opera tv", "philipstv", "nettv", "tizen tv", "aquos", "viera", "tvos",
    ]
    static let mobileOS: Set<String> = [
        "iOS", "Android", "Windows Phone", "Windows Mobile", "BlackBerry OS", "BlackBerry Tablet OS",
        "KaiOS", "Symbian OS", "Symbian^3", "Firefox OS", "Tizen", "WatchOS", "HarmonyOS", "Sailfish",
        "MeeGo", "Maemo", "webOS", "Bada", "Windows CE", "Palm OS", "Ubuntu Touch", "Nokia Series 40",
        "Series 60", "Kindle",
    ]
    static let desktopOS: Set<String> = [
        "Windows", "Mac OS X", "Mac OS", "Linux", "Ubuntu", "Fedora", "Debian", "Chrome OS", "ChromeOS",
        "FreeBSD", "OpenBSD", "NetBSD", "Solaris", "Mandriva", "Red Hat", "SUSE", "Gentoo", "Slackware",
        "Linux Mint", "Arch Linux", "CentOS", "Kubuntu", "Xubuntu", "elementary OS", "Haiku", "BeOS",
    ]

    public static func classify(_ p: UserAgentParse, userAgent: String) -> DeviceType {
        let ua = LowercasedBytes(userAgent)
        let browser = p.userAgent.family
        let os = p.os.family
        let device = p.device.family

        // 1. bot
        let bl = LowercasedBytes(browser)
        if device == "Spider" || botFamilies.contains(browser) || bl.hasSuffix("bot")
            || bl.contains("spider") || bl.contains("crawler") {
            return .bot
        }
        // 2. console
        let dl = LowercasedBytes(device), ol = LowercasedBytes(os)
        if consoleWords.contains(where: { dl.contains($0) || ol.contains($0) || ua.contains($0) }) {
            return .console
        }
        // 3. tv
        if tvDeviceFamilies.contains(device) || dl.contains("smarttv") || dl.contains("smart-tv")
            || p.device.brand == "Generic_Inettv"
            || os == "tvOS" || os == "Roku" || os == "Chromecast"
            || tvUAWords.contains(where: { ua.contains($0) }) || hasFireTVModel(userAgent)
            || (ua.contains("tizen") && ua.contains(" tv")) {
            return .tv
        }
        // 4. tablet
        if dl.contains("ipad") || dl.contains("tablet") || dl.contains("kindle")
            || ua.contains("ipad") || ua.contains("tablet") || ua.contains("silk/") || ua.contains("playbook")
            || ua.contains("kindle")
            || (os == "Android" && ua.hasPrefix("mozilla/") && !ua.contains("mobile")) {
            return .tablet
        }
        // 5. mobile
        if mobileOS.contains(os) || device == "iPhone" || device == "iPod" || device == "Apple Watch"
            || device == "Generic Smartphone" || device == "Generic Feature Phone"
            || ua.contains("mobile") || ua.contains("mobi") || ua.contains("iphone") || ua.contains("android") {
            return .mobile
        }
        // 6. desktop
        if os.hasPrefix("Windows") || desktopOS.contains(os) || device == "Mac" {
            return .desktop
        }
        return .unknown
    }

    /// ASCII-lower-cased bytes of a user agent with fast substring tests
    /// (Foundation's `String.contains` is far slower on Linux).
    struct LowercasedBytes {
        let bytes: [UInt8]
        init(_ s: String) { bytes = s.utf8.map(lower) }

        func contains(_ needle: StaticString) -> Bool {
            let n = needle.utf8CodeUnitCount
            if n == 0 { return true }
            if n > bytes.count { return false }
            return bytes.withUnsafeBufferPointer { h in
                Self.find(h, UnsafeBufferPointer(start: needle.utf8Start, count: n))
            }
        }

        func contains(_ needle: String) -> Bool {
            var needle = needle
            return needle.withUTF8 { nb in
                if nb.isEmpty { return true }
                return bytes.withUnsafeBufferPointer { h in Self.find(h, nb) }
            }
        }

        static func find(_ h: UnsafeBufferPointer<UInt8>, _ n: UnsafeBufferPointer<UInt8>) -> Bool {
            guard n.count <= h.count else { return false }
            let first = n[0]
            var i = 0
            let last = h.count - n.count
            while i <= last {
                if h[i] == first {
                    var k = 1
                    while k < n.count && h[i + k] == n[k] { k += 1 }
                    if k == n.count { return true }
                }
                i += 1
            }
            return false
        }

        func hasSuffix(_ suffix: StaticString) -> Bool {
            let n = suffix.utf8CodeUnitCount
            guard n <= bytes.count else { return false }
            let off = bytes.count - n
            for i in 0..<n where bytes[off + i] != suffix.utf8Start[i] { return false }
            return true
        }

        func hasPrefix(_ prefix: StaticString) -> Bool {
            let n = prefix.utf8CodeUnitCount
            guard n <= bytes.count else { return false }
            for i in 0..<n where bytes[i] != prefix.utf8Start[i] { return false }
            return true
        }
    }

    /// Amazon Fire TV models: "AFT" + upper-case letters (AFTB, AFTS, AFTMM, AFTKA …).
    static func hasFireTVModel(_ userAgent: String) -> Bool {
        let b = Array(userAgent.utf8)
        guard b.count >= 4 else { return false }
        for i in 0...(b.count - 4) where b[i] == 0x41 && b[i + 1] == 0x46 && b[i + 2] == 0x54 {  // "AFT"
            let before: UInt8 = i == 0 ? 0x20 : b[i - 1]
            let after = b[i + 3]
            if (before == 0x20 || before == 0x3B || before == 0x28) && after >= 0x41 && after <= 0x5A { return true }
        }
        return false
    }

}
