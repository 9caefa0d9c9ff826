import Synchronization
import Enrichment
import QoSCore

/// Adapts the Enrichment module to the core's `Enricher` protocol: GeoIP
/// through libmaxminddb and user agents through the uap-core regexes, each
/// looked up once per session by the core.
public final class EngineEnricher: Enricher {
    let geo: GeoIPResolver?
    let ua: UserAgentClassifier?
    /// The GeoIP files' mappings watched by `MappedInputGuard`: a file
    /// truncated in place while open (copied over instead of renamed into
    /// place) raised SIGBUS at the next lookup of a missing page and ended
    /// the process. Now its missing pages read as zeros, and from then on
    /// geo lookups find nothing (geo stays as beacons say it) and `warn`
    /// says once which file and what to do.
    private var watched: [(slot: Int, path: String)] = []
    private let warn: (String) -> Void
    private let warned = Atomic<Bool>(false)

    public init(geo: GeoIPResolver?, ua: UserAgentClassifier?, warn: @escaping (String) -> Void = { _ in }) {
        self.geo = geo
        self.ua = ua
        self.warn = warn
        for (path, bytes) in geo?.mappedFiles ?? [] {
            if let slot = MappedInputGuard.watch(bytes) { watched.append((slot, path)) }
        }
    }

    deinit {
        for w in watched { MappedInputGuard.release(w.slot) }  // before the resolver unmaps
    }

    public func geo(ip: String) -> GeoAttributes? {
        guard let geo else { return nil }
        let outcome = geo.lookup(ip)
        // After the lookup: a page that went missing during it read as zeros.
        if !watched.isEmpty, let shrunk = watched.first(where: { MappedInputGuard.shrunkFlag($0.slot).pointee.load(ordering: .relaxed) != 0 }) {
            if !warned.exchange(true, ordering: .relaxed) {
                warn("GeoIP database '\(shrunk.path)' shrank on disk while open (overwritten in place?): geo lookups "
                     + "find nothing from now on — restart to load the new file, and replace it by renaming a complete "
                     + "copy over it (as geoipupdate does)")
            }
            return nil
        }
        guard case .found(let g) = outcome else { return nil }
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
///
/// `warn`: where a problem found later goes (a GeoIP file truncated while
/// open); `log` when not given.
public func makeEnricher(geoip: [String], uaRegexes: String?, log: @escaping (String) -> Void,
                         warn: ((String) -> Void)? = nil) throws -> Enricher {
    let geo: GeoIPResolver?
    do { geo = geoip.isEmpty ? nil : try GeoIPResolver(paths: geoip) } catch let e as GeoIPError {
        throw UserError(e.description)
    }
    log(geo?.summary ?? GeoIPResolver.disabledNotice)
    let path = uaRegexes ?? UserAgentClassifier.defaultRegexesPath
    do {
        return EngineEnricher(geo: geo, ua: try UserAgentClassifier(regexesPath: path), warn: warn ?? log)
    } catch let e as UserAgentRegexesError {
        // Its description names the file, the reason and the package; the flag is ours to name.
        throw UserError("cannot load user-agent regexes '\(e.path)': \(e.reason) — install uap-core (make deps) or pass --ua-regexes")
    } catch {
        throw UserError("cannot load user-agent regexes '\(path)': \(error) — install uap-core (make deps) or pass --ua-regexes")
    }
}
