import Enrichment
import QoSCore

/// Adapts the Enrichment module to the core's `Enricher` protocol: GeoIP
/// through libmaxminddb and user agents through the uap-core regexes, each
/// looked up once per session by the core.
public final class EngineEnricher: Enricher {
    let geo: GeoIPResolver?
    let ua: UserAgentClassifier?

    public init(geo: GeoIPResolver?, ua: UserAgentClassifier?) {
        self.geo = geo
        self.ua = ua
    }

    public func geo(ip: String) -> GeoAttributes? {
        guard let geo, case .found(let g) = geo.lookup(ip) else { return nil }
        return GeoAttributes(country: g.country, region: g.region, city: g.city,
                             asn: g.asn.map(Int64.init), asOrg: g.asOrg)
    }

    /// "Other" (uap-core's unknown) becomes `unknown`, so GROUP BY stays stable.
    public func device(userAgent: String) -> DeviceAttributes? {
        guard let ua else { return nil }
        let i = ua.classify(userAgent)
        func known(_ s: String) -> String? { s == "Other" || s.isEmpty ? nil : s }
        return DeviceAttributes(deviceType: i.deviceType == .unknown ? nil : i.deviceType.rawValue,
                                os: known(i.os), browser: known(i.browser))
    }
}

/// Builds the enricher from `--geoip-db` paths and the uap-core regexes,
/// logging once what geo enrichment will do. Errors name the file and the fix.
public func makeEnricher(geoip: [String], uaRegexes: String?, log: (String) -> Void) throws -> Enricher {
    let geo: GeoIPResolver?
    do { geo = geoip.isEmpty ? nil : try GeoIPResolver(paths: geoip) } catch let e as GeoIPError {
        throw UserError(e.description)
    }
    log(geo?.summary ?? GeoIPResolver.disabledNotice)
    let path = uaRegexes ?? UserAgentClassifier.defaultRegexesPath
    do {
        return EngineEnricher(geo: geo, ua: try UserAgentClassifier(regexesPath: path))
    } catch {
        throw UserError("cannot load user-agent regexes '\(path)': \(error) — install uap-core (make deps) or pass --ua-regexes")
    }
}
