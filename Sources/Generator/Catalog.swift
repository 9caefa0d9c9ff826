/// The static world the generator draws from: device profiles with real
/// user-agent strings, players, CDNs and their PoPs, and IP ranges of real
/// national access networks with their subdivision and ASN. The geo table
/// is also what the demo's `.mmdb` is built from (`qos generate --geo-table`).

public struct DeviceProfile: Sendable {
    public let userAgent: String
    /// Share of viewers (relative weight).
    public let weight: Double
    public let players: [(name: String, version: String)]
}

public struct GeoRange: Sendable {
    public let network: String
    public let country: String
    /// ISO 3166-2 subdivision code without the country prefix (as MaxMind stores it).
    public let subdivision: String
    public let city: String
    public let asn: Int
    public let asOrg: String
    public let weight: Double
    /// IPv4 base address and prefix length, or nil for IPv6 ranges.
    var v4: (base: UInt32, prefix: Int)? {
        let parts = network.split(separator: "/")
        guard parts.count == 2, let len = Int(parts[1]) else { return nil }
        let octets = parts[0].split(separator: ".").compactMap { UInt32($0) }
        guard octets.count == 4 else { return nil }
        return (octets.reduce(0) { $0 << 8 | $1 }, len)
    }
}

public enum Catalog {
    public static let devices: [DeviceProfile] = [
        DeviceProfile(userAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                      weight: 22, players: [("hls.js", "1.5.7"), ("shaka-player", "4.7.11"), ("dash.js", "4.7.4")]),
        DeviceProfile(userAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
                      weight: 6, players: [("hls.js", "1.5.7"), ("shaka-player", "4.7.11")]),
        DeviceProfile(userAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
                      weight: 8, players: [("hls.js", "1.5.7"), ("native-hls", "17.4")]),
        DeviceProfile(userAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
                      weight: 3, players: [("hls.js", "1.5.7"), ("dash.js", "4.7.4")]),
        DeviceProfile(userAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
                      weight: 18, players: [("avplayer", "17.4")]),
        DeviceProfile(userAgent: "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
                      weight: 16, players: [("exoplayer", "2.19.1"), ("shaka-player", "4.7.11")]),
        DeviceProfile(userAgent: "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.6312.99 Mobile Safari/537.36",
                      weight: 5, players: [("exoplayer", "2.19.1")]),
        DeviceProfile(userAgent: "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
                      weight: 6, players: [("avplayer", "17.4")]),
        DeviceProfile(userAgent: "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
                      weight: 2, players: [("exoplayer", "2.19.1")]),
        DeviceProfile(userAgent: "Mozilla/5.0 (SMART-TV; LINUX; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) 94.0.4606.31/7.0 TV Safari/537.36",
                      weight: 5, players: [("tizen-avplay", "7.0")]),
        DeviceProfile(userAgent: "Roku/DVP-12.5 (12.5.0.4178-51)",
                      weight: 4, players: [("roku", "12.5")]),
        DeviceProfile(userAgent: "AppleCoreMedia/1.0.0.21L569 (Apple TV; U; CPU OS 17_4 like Mac OS X; en_us)",
                      weight: 2, players: [("avplayer", "17.4")]),
        DeviceProfile(userAgent: "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)",
                      weight: 2, players: [("ps5-player", "2.26")]),
        DeviceProfile(userAgent: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                      weight: 1, players: [("hls.js", "1.5.7")]),
    ]

    /// CDN → PoPs.
    public static let cdns: [(cdn: String, pops: [String])] = [
        ("akamai", ["fra", "lhr", "iad", "nrt", "gru"]),
        ("fastly", ["ams", "lhr", "sjc", "syd"]),
        ("cloudfront", ["fra", "iad", "bom", "nrt"]),
    ]

    /// Bitrate ladder, kbps.
    public static let ladder: [Int64] = [400, 800, 1600, 3000, 4500, 6000]

    public static let errorCodes = ["MEDIA_ERR_DECODE", "MEDIA_ERR_NETWORK", "MANIFEST_LOAD_ERROR", "DRM_LICENSE_FAILED"]

    /// Access-network ranges of national ISPs. A small share of private
    /// addresses exercises the "unknown geo" path.
    public static let geo: [GeoRange] = [
        GeoRange(network: "73.0.0.0/12", country: "US", subdivision: "CA", city: "San Jose", asn: 7922, asOrg: "Comcast Cable Communications, LLC", weight: 14),
        GeoRange(network: "24.0.0.0/13", country: "US", subdivision: "NY", city: "New York", asn: 7922, asOrg: "Comcast Cable Communications, LLC", weight: 10),
        GeoRange(network: "2601::/20", country: "US", subdivision: "TX", city: "Houston", asn: 7922, asOrg: "Comcast Cable Communications, LLC", weight: 6),
        GeoRange(network: "86.128.0.0/12", country: "GB", subdivision: "ENG", city: "London", asn: 2856, asOrg: "British Telecommunications PLC", weight: 8),
        GeoRange(network: "81.2.64.0/19", country: "GB", subdivision: "SCT", city: "Glasgow", asn: 2856, asOrg: "British Telecommunications PLC", weight: 2),
        GeoRange(network: "2a00:23c0::/28", country: "GB", subdivision: "ENG", city: "Manchester", asn: 2856, asOrg: "British Telecommunications PLC", weight: 2),
        GeoRange(network: "91.0.0.0/12", country: "DE", subdivision: "BE", city: "Berlin", asn: 3320, asOrg: "Deutsche Telekom AG", weight: 5),
        GeoRange(network: "2003::/19", country: "DE", subdivision: "BY", city: "Munich", asn: 3320, asOrg: "Deutsche Telekom AG", weight: 3),
        GeoRange(network: "90.0.0.0/12", country: "FR", subdivision: "IDF", city: "Paris", asn: 3215, asOrg: "Orange S.A.", weight: 6),
        GeoRange(network: "83.32.0.0/12", country: "ES", subdivision: "M", city: "Madrid", asn: 3352, asOrg: "Telefonica de Espana S.A.U.", weight: 3),
        GeoRange(network: "79.0.0.0/13", country: "IT", subdivision: "RM", city: "Rome", asn: 3269, asOrg: "Telecom Italia S.p.A.", weight: 3),
        GeoRange(network: "84.80.0.0/13", country: "NL", subdivision: "NH", city: "Amsterdam", asn: 1136, asOrg: "KPN B.V.", weight: 2),
        GeoRange(network: "126.0.0.0/12", country: "JP", subdivision: "13", city: "Tokyo", asn: 17676, asOrg: "SoftBank Corp.", weight: 6),
        GeoRange(network: "211.200.0.0/13", country: "KR", subdivision: "11", city: "Seoul", asn: 4766, asOrg: "Korea Telecom", weight: 3),
        GeoRange(network: "49.32.0.0/12", country: "IN", subdivision: "MH", city: "Mumbai", asn: 55836, asOrg: "Reliance Jio Infocomm Limited", weight: 7),
        GeoRange(network: "177.0.0.0/12", country: "BR", subdivision: "SP", city: "Sao Paulo", asn: 28573, asOrg: "Claro NXT Telecomunicacoes Ltda", weight: 5),
        GeoRange(network: "187.128.0.0/12", country: "MX", subdivision: "CMX", city: "Mexico City", asn: 8151, asOrg: "UNINET", weight: 3),
        GeoRange(network: "70.24.0.0/13", country: "CA", subdivision: "ON", city: "Toronto", asn: 577, asOrg: "Bell Canada", weight: 3),
        GeoRange(network: "1.120.0.0/13", country: "AU", subdivision: "NSW", city: "Sydney", asn: 1221, asOrg: "Telstra Limited", weight: 3),
        GeoRange(network: "192.168.0.0/16", country: "", subdivision: "", city: "", asn: 0, asOrg: "", weight: 1),
    ]

    /// CSV of the geo table (header `network,country,region,city,asn,as_org`),
    /// the input of `tools/build_mmdb.py`. Private ranges are left out.
    public static func geoCSV() -> String {
        var out = "network,country,region,city,asn,as_org\n"
        for g in geo where !g.country.isEmpty {
            out += "\(g.network),\(g.country),\(g.subdivision),\(g.city),\(g.asn),\"\(g.asOrg)\"\n"
        }
        return out
    }
}
