/// `auto_bans:` — one rule: a network refused more than `refusals` times within `within` (answers
/// with one of `statuses`) is banned for `banFor`. Counted per network (`ipv4_prefix`, `ipv6_prefix`).
public struct AutoBanRule: Sendable, Equatable {
    public var name: String
    public var refusals: Int
    public var within: Duration
    public var statuses: Set<Int>
    public var ipv4Prefix: Int
    public var ipv6Prefix: Int
    public var banFor: Duration

    public static let defaultStatuses: Set<Int> = [401, 403, 422, 429]

    public init(name: String, refusals: Int, within: Duration, statuses: Set<Int> = defaultStatuses,
                ipv4Prefix: Int = 24, ipv6Prefix: Int = 48, banFor: Duration) {
        self.name = name
        self.refusals = refusals
        self.within = within
        self.statuses = statuses
        self.ipv4Prefix = ipv4Prefix
        self.ipv6Prefix = ipv6Prefix
        self.banFor = banFor
    }
}

/// Counts refusals per network for each ``AutoBanRule`` and says when one trips.
///
/// The count is a GCRA bucket of `refusals` per `within` (burst `refusals`) in a bounded
/// ``RateLimiter``: a network trips on its `refusals + 1`-th refusal inside a window, or when it
/// keeps up more than `refusals` per `within`. One striped-lock update per refused request; answers
/// that are not refusals cost nothing. Responses to banned clients are not counted (a ban must
/// not extend itself).
public final class AutoBanner: Sendable {
    private let rules: [(rule: AutoBanRule, counter: RateLimiter)]
    private let statuses: Set<Int>

    public init(rules: [AutoBanRule], maxKeys: Int) {
        self.rules = rules.map { rule in
            (rule, RateLimiter(rate: Rate(count: rule.refusals, period: rule.within),
                               burst: rule.refusals, maxKeys: maxKeys))
        }
        statuses = rules.reduce(into: []) { $0.formUnion($1.statuses) }
    }

    public var isEmpty: Bool { rules.isEmpty }

    /// Counts one answer with `status` to `address` (a whole address); returns the ban to add when
    /// a rule trips. `nowNanos` is a monotonic clock, `nowSeconds` the wall clock for the ban's expiry.
    public func count(status: Int, address: ClientKey, nowNanos: Int64, nowSeconds: Int64) -> Ban? {
        guard statuses.contains(status) else { return nil }
        var tripped: Ban?
        for (rule, counter) in rules where rule.statuses.contains(status) {
            let network = address.masked(to: UInt8(address.isIPv4 ? 96 + rule.ipv4Prefix : rule.ipv6Prefix))
            if !counter.acquire(BucketKey(network), now: nowNanos).allowed, tripped == nil {
                tripped = Ban(kind: network.prefixLength == 128 ? .address : .prefix, value: network.description,
                              reason: "more than \(rule.refusals) refusals within \(rule.within.compactText)",
                              createdAt: nowSeconds, expiresAt: nowSeconds + rule.banFor.wholeSeconds,
                              createdBy: "auto:\(rule.name)")
            }
        }
        return tripped
    }
}

extension Duration {
    var wholeSeconds: Int64 { components.seconds }

    /// `90s`, `15m`, `2h`.
    public var compactText: String {
        let s = components.seconds
        if s > 0, s % 3600 == 0 { return "\(s / 3600)h" }
        if s > 0, s % 60 == 0 { return "\(s / 60)m" }
        return "\(s)s"
    }
}
