// Enrichment: per-session lookups the engine does once per session, never per
// beacon.
//
// - GeoIP.swift — `GeoIPResolver`: IP → country / ISO 3166-2 region / city /
//   ASN / AS org through libmaxminddb (.mmdb files given by --geoip-db).
// - UserAgent.swift, RegexPrefilter.swift — `UAPRegexes`: ua-parser's
//   uap-core regexes.yaml compiled with NSRegularExpression behind an
//   Aho-Corasick literal prefilter.
// - UserAgentClassifier.swift — `UserAgentClassifier`: the parse plus
//   `DeviceType` (DeviceType.swift, docs/device-type.md) behind an LRU cache.
// Its benchmark (`EnrichmentBench`), the synthetic MaxMind DB writer and the
// user-agent mix live in the QoSBench module.
