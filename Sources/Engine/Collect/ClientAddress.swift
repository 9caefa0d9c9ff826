#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `::1/128`, or a
/// bare address for one host): the collector's trusted proxies.
public struct IPNetwork: Sendable, Equatable, CustomStringConvertible {
    let bytes: [UInt8]      // 4 or 16
    let prefix: Int
    public let description: String

    /// Parses `address[/prefix]`; nil when it is not one.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let addr = IPNetwork.parse(String(parts[0])) else { return nil }
        let bits = addr.count * 8
        var prefix = bits
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...bits).contains(p) else { return nil }
            prefix = p
        }
        bytes = addr
        self.prefix = prefix
        description = text
    }

    /// Whether `address` (text) lies in this network. An IPv4-mapped IPv6
    /// address (`::ffff:1.2.3.4`) matches the IPv4 network.
    public func contains(_ address: String) -> Bool {
        guard var a = IPNetwork.parse(address) else { return false }
        if a.count == 16, bytes.count == 4, a[0..<10].allSatisfy({ $0 == 0 }), a[10] == 0xff, a[11] == 0xff {
            a = Array(a[12..<16])
        }
        guard a.count == bytes.count else { return false }
        var left = prefix
        for i in 0..<a.count where left > 0 {
            let n = min(8, left)
            let mask: UInt8 = n == 8 ? 0xff : ~(0xff >> UInt8(n))
            if a[i] & mask != bytes[i] & mask { return false }
            left -= n
        }
        return true
    }

    /// The 4 or 16 bytes of a textual IPv4 / IPv6 address (inet_pton).
    static func parse(_ s: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, s, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    /// Whether `s` is a textual IPv4 or IPv6 address.
    public static func isAddress(_ s: String) -> Bool { parse(s) != nil }
}

/// The viewer's address for a request: the peer of the connection, unless
/// that peer is a trusted proxy — then the right-most `X-Forwarded-For`
/// entry that is not itself a trusted proxy (entries left of it can be
/// forged by the client, so they are never used). README, "qos collect".
/// An entry may carry a port or brackets (`1.2.3.4:443`, `[2001:db8::1]`,
/// `[2001:db8::1]:443` — Azure Application Gateway writes `ip:port`) or an
/// IPv6 zone (`fe80::1%eth0`): the bare address is used.
public func clientAddress(peer: String, forwardedFor: [String], trusted: [IPNetwork]) -> String {
    guard !trusted.isEmpty, trusted.contains(where: { $0.contains(peer) }) else { return peer }
    let hops = forwardedFor.flatMap { $0.split(separator: ",") }
        .map { $0.trimmingSpaces() }
        .filter { !$0.isEmpty }
    for hop in hops.reversed() {
        guard let address = forwardedAddress(hop) else { return peer }   // garbage: do not trust the chain further
        if !trusted.contains(where: { $0.contains(address) }) { return address }
    }
    return hops.first.flatMap(forwardedAddress) ?? peer
}

/// The bare address of an `X-Forwarded-For` entry: `a.b.c.d`, `a.b.c.d:port`,
/// an IPv6 address, `[v6]`, `[v6]:port`, `v6%zone`; nil when it is none of them.
func forwardedAddress(_ hop: String) -> String? {
    func port(_ p: Substring) -> Bool { !p.isEmpty && p.count <= 5 && p.allSatisfy(\.isASCIIDigit) && Int(p)! <= 65535 }
    var address = Substring(hop)
    if address.hasPrefix("[") {
        guard let close = address.firstIndex(of: "]") else { return nil }
        let rest = address[address.index(after: close)...]
        guard rest.isEmpty || (rest.first == ":" && port(rest.dropFirst())) else { return nil }
        address = address[address.index(after: address.startIndex)..<close]
    } else if let colon = address.firstIndex(of: ":"), address.lastIndex(of: ":") == colon {
        guard port(address[address.index(after: colon)...]) else { return nil }   // IPv4 with a port
        address = address[..<colon]
    }
    if let zone = address.firstIndex(of: "%"), address.contains(":") { address = address[..<zone] }
    let bare = String(address)
    return IPNetwork.isAddress(bare) ? bare : nil
}

private extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

extension Substring {
    func trimmingSpaces() -> String {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
