import Foundation

/// A token bucket per client address: `ratePerSecond` requests a second on
/// average, bursts of up to `burst`. Memory is bounded: at most
/// `clientsMax` buckets are kept; when that is reached, buckets that have
/// refilled completely (clients that have been quiet) are dropped, and if
/// none has, every new client shares one overflow bucket until some do.
public final class RateLimiter: @unchecked Sendable {
    struct Bucket { var tokens: Double; var at: Double }
    public let ratePerSecond: Double
    public let burst: Double
    public let clientsMax: Int
    private var buckets: [String: Bucket] = [:]
    private var overflow: Bucket
    private let lock = NSLock()

    public init(ratePerSecond: Double, burst: Double, clientsMax: Int = 100_000) {
        self.ratePerSecond = ratePerSecond
        self.burst = max(1, burst)
        self.clientsMax = max(1, clientsMax)
        overflow = Bucket(tokens: max(1, burst), at: 0)
    }

    /// Takes one token for `client` at `now` (monotonic seconds); false when
    /// the client is over its rate.
    public func allow(_ client: String, now: Double) -> Bool {
        guard ratePerSecond > 0 else { return true }   // 0 = unlimited
        return lock.withLock {
            if var b = buckets[client] {
                let ok = take(&b, now)
                buckets[client] = b
                return ok
            }
            if buckets.count >= clientsMax { evictFull(now) }
            if buckets.count >= clientsMax { return take(&overflow, now) }
            var b = Bucket(tokens: burst, at: now)
            let ok = take(&b, now)
            buckets[client] = b
            return ok
        }
    }

    /// Buckets currently held.
    public var clients: Int { lock.withLock { buckets.count } }

    private func take(_ b: inout Bucket, _ now: Double) -> Bool {
        b.tokens = min(burst, b.tokens + max(0, now - b.at) * ratePerSecond)
        b.at = now
        guard b.tokens >= 1 else { return false }
        b.tokens -= 1
        return true
    }

    private func evictFull(_ now: Double) {
        buckets = buckets.filter { $0.value.tokens + max(0, now - $0.value.at) * ratePerSecond < burst }
    }
}
