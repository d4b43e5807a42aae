import Crypto
import Synchronization

/// Applies a route's limits in order. Every limit must allow the request; if a later one refuses,
/// the units already taken from earlier ones are given back, so a refused request costs nothing.
/// Gives every response of the route `RateLimit-Policy` and `RateLimit`
/// (draft-ietf-httpapi-ratelimit-headers-10) — a passing request's as ``RequestView/rateLimit``,
/// rendered when the response is written — and a 429 `Retry-After`.
public struct RateLimitPolicy: Policy {
    public let kind = RouteConfig.PolicyKind.rateLimit

    /// A limit with its (possibly shared) limiter and, for throttling, its waiting-room counter.
    public struct Bound: Sendable {
        public let config: LimitConfig
        public let limiter: RateLimiter
        let waiting: WaitingRoom?
        /// A `per: cookie:` limit on the page-token session cookie: it counts only sessions the
        /// gateway issued (``RequestView/session``); every other value shares one bucket.
        var issuedSessionsOnly = false

        /// The bucket `request` is counted in.
        func key(_ request: RequestView) -> BucketKey {
            issuedSessionsOnly ? RateLimitPolicy.hashed(request.session) : RateLimitPolicy.key(config.scope, request)
        }
    }

    public let limits: [Bound]
    /// Whether a limit counts per issued session (the route must then verify the session cookie).
    public let countsSessions: Bool
    private let policyHeader: String

    public init(limits: [Bound], sessionCookie: String? = nil) {
        var limits = limits
        for i in limits.indices where sessionCookie != nil && limits[i].config.scope == .cookie(sessionCookie!) {
            limits[i].issuedSessionsOnly = true
        }
        self.limits = limits
        self.countsSessions = limits.contains { $0.issuedSessionsOnly }
        policyHeader = limits.map { "\"\($0.config.name)\";q=\($0.config.rate.count);w=\($0.config.rate.windowSeconds)" }
            .joined(separator: ", ")
    }

    public func evaluate(_ request: inout RequestView) -> Decision {
        if let closed = limits.first(where: { $0.config.onStoreError == .closed && $0.limiter.syncStale.load(ordering: .relaxed) }) {
            return .reject(Self.unshared(closed.config.name))
        }
        var state = RateLimitState(policy: policyHeader)
        var delay: Int64 = 0
        for (i, bound) in limits.enumerated() {
            let config = bound.config
            let key = bound.key(request)
            var maxDelay: Int64 = 0
            if case .throttle(let d, _) = config.mode { maxDelay = d.nanoseconds }
            let outcome = bound.limiter.acquire(key, weight: config.weight, now: request.now, maxDelayNanos: maxDelay,
                                                commit: !config.skipSuccessful)
            var accepted = outcome.allowed
            if accepted, outcome.delayNanos > 0 {
                if let slot = bound.waiting?.enter() {
                    request.holds.append(slot)
                } else {
                    accepted = false
                }
            }
            guard accepted else {
                if outcome.allowed, !config.skipSuccessful { bound.limiter.refund(key, weight: config.weight) }
                for earlier in limits[..<i] where !earlier.config.skipSuccessful {
                    earlier.limiter.refund(earlier.key(request), weight: earlier.config.weight)
                }
                request.holds.removeAll()
                state.append(config.name, remaining: 0, resetNanos: outcome.resetNanos)
                return .reject(tooManyRequests(retryAfterNanos: max(outcome.retryAfterNanos, 1), state: state.value, limit: config.name))
            }
            delay = max(delay, outcome.delayNanos)
            state.append(config.name, remaining: outcome.remaining, resetNanos: outcome.resetNanos)
        }
        request.rateLimit = state
        return delay > 0 ? .delay(.nanoseconds(delay)) : .pass
    }

    /// `RateLimit-Policy` and `RateLimit` for a response this policy did not decide (an earlier
    /// policy refused first): the state of every bucket, nothing consumed.
    public func currentHeaders(_ request: RequestView) -> [(String, String)] {
        var state = RateLimitState(policy: policyHeader)
        for bound in limits {
            let (remaining, reset) = bound.limiter.peek(bound.key(request), now: request.now)
            state.append(bound.config.name, remaining: remaining, resetNanos: reset)
        }
        return [("RateLimit-Policy", policyHeader), ("RateLimit", state.value)]
    }

    /// `skip_successful` limits count a request only once its response shows it failed.
    public var observesCompletion: Bool { limits.contains { $0.config.skipSuccessful } }

    public func completed(_ request: RequestView, status: Int) {
        guard status >= 400 else { return }
        for bound in limits where bound.config.skipSuccessful {
            _ = bound.limiter.acquire(bound.key(request), weight: bound.config.weight, now: request.now)
        }
    }

    /// The answer of an `on_store_error: closed` limit while the gateways cannot share usage.
    static func unshared(_ limit: String) -> Problem {
        Problem(status: 503, code: "rate-limit-unavailable", title: "Service Unavailable",
                detail: "This service cannot check its request limits right now; try again shortly.",
                extensions: [JSONMember("limit", .string(limit))], headers: [("Retry-After", "1")])
    }

    private func tooManyRequests(retryAfterNanos: Int64, state: String, limit: String) -> Problem {
        let seconds = (retryAfterNanos + 999_999_999) / 1_000_000_000
        return Problem(status: 429, code: "rate-limited", title: "Too Many Requests",
                       detail: "This client has sent too many requests; try again later.",
                       extensions: [JSONMember("limit", .string(limit)), JSONMember("retry_after", .number(String(seconds)))],
                       headers: [("Retry-After", String(seconds)), ("RateLimit-Policy", policyHeader),
                                 ("RateLimit", state)])
    }

    static func key(_ scope: LimitConfig.Scope, _ request: RequestView) -> BucketKey {
        switch scope {
        case .ip: return BucketKey(request.clientKey)
        case .route, .global: return .shared
        case .header(let name): return hashed(request.header(name))
        case .cookie(let name): return hashed(request.cookie(name))
        case .key: return hashed(request.caller?.keyID)
        case .subject: return hashed(request.caller?.subject)
        case .clientID: return hashed(request.caller?.clientID)
        case .email: return hashed(request.email?.addressHash)
        case .emailDomain: return hashed(request.email?.domain)
        }
    }

    /// Distinct values get distinct buckets; absent values share one. The key is the first 128 bits
    /// of the value's SHA-256: the same on every gateway (a cluster synchronises buckets by key),
    /// and no value can be made to land in another's bucket.
    public static func hashed(_ value: String?) -> BucketKey {
        guard let value else { return .shared }
        return SHA256.hash(data: Array(value.utf8)).withUnsafeBytes { raw in
            BucketKey(high: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self) | 1,
                      low: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
    }
}

/// Counts requests waiting in throttle delays for one limit; a slot frees itself when released.
public final class WaitingRoom: Sendable {
    private let capacity: Int
    private let count = Atomic<Int>(0)

    public init(capacity: Int) { self.capacity = capacity }

    public var waiting: Int { count.load(ordering: .relaxed) }

    /// A slot, or nil when the room is full.
    func enter() -> Hold? {
        let now = count.add(1, ordering: .relaxed).newValue
        if now > capacity {
            count.subtract(1, ordering: .relaxed)
            return nil
        }
        return Hold { [self] in self.count.subtract(1, ordering: .relaxed) }
    }
}

/// Something a request holds while it is alive (a throttle slot); released when the request is
/// dropped, whatever path it took.
public final class Hold: Sendable {
    private let release: @Sendable () -> Void
    init(release: @escaping @Sendable () -> Void) { self.release = release }
    deinit { release() }
}


/// The limiters of one config, by route and limit name (shared limits by name alone). Built for a
/// reload from the previous registry: a limit whose definition did not change keeps its limiter —
/// its buckets, so a reload never hands a client a fresh allowance — and a changed one starts anew.
public final class LimiterRegistry: @unchecked Sendable {
    private var bound: [String: (LimitConfig, RateLimiter, WaitingRoom?)] = [:]
    private var previous: LimiterRegistry?
    public let maxKeys: Int
    /// Whether new limiters keep their usage for other gateways (``RateLimiter/recordsUsage``).
    public let recordsUsage: Bool

    public init(maxKeys: Int, previous: LimiterRegistry? = nil, recordsUsage: Bool = false) {
        self.maxKeys = maxKeys
        self.previous = previous
        self.recordsUsage = recordsUsage
    }

    func bind(_ config: LimitConfig, route: String) -> RateLimitPolicy.Bound {
        let key = config.shared ? "shared:" + config.name : route + "/" + config.name
        if let existing = bound[key] {
            return RateLimitPolicy.Bound(config: config, limiter: existing.1, waiting: existing.2)
        }
        var entry: (LimitConfig, RateLimiter, WaitingRoom?)
        if let kept = previous?.bound[key], Self.sameBuckets(kept.0, config), kept.1.recordsUsage == recordsUsage {
            entry = (config, kept.1, kept.2)
        } else {
            var room: WaitingRoom?
            if case .throttle(_, let queue) = config.mode { room = WaitingRoom(capacity: queue) }
            entry = (config, RateLimiter(rate: config.rate, burst: config.burst, maxKeys: maxKeys, recordsUsage: recordsUsage), room)
        }
        bound[key] = entry
        all.append((config.name, entry.1))
        return RateLimitPolicy.Bound(config: config, limiter: entry.1, waiting: entry.2)
    }

    /// Whether two definitions count the same buckets the same way (weights and `skip_successful`
    /// change what a request costs, not the buckets).
    static func sameBuckets(_ a: LimitConfig, _ b: LimitConfig) -> Bool {
        var a = a, b = b
        a.weight = 1; b.weight = 1
        a.skipSuccessful = false; b.skipSuccessful = false
        return a == b
    }

    /// Lets go of the previous registry once every route is bound (generations must not chain).
    public func detachPrevious() { previous = nil }

    /// Every limiter, for metrics.
    public private(set) var all: [(name: String, limiter: RateLimiter)] = []

    /// Every limiter by the name gateways with the same config agree on (`ROUTE/LIMIT`, `shared:LIMIT`).
    public var named: [(name: String, limiter: RateLimiter)] { bound.map { ($0.key, $0.value.1) } }

    /// The limiter of a ``named`` name.
    public func limiter(named name: String) -> RateLimiter? { bound[name]?.1 }

    /// Whether the limiter of `limit` on `route` is the one of `other` (tests: counters kept).
    public func limiter(route: String, limit: String) -> RateLimiter? {
        bound[route + "/" + limit]?.1 ?? bound["shared:" + limit]?.1
    }
}
