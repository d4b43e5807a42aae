import Synchronization

/// The key a limiter counts by: a client address, a hashed header value, or one shared bucket.
public struct BucketKey: Hashable, Sendable {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public init(_ client: ClientKey) {
        self.init(high: client.high, low: client.low)
    }

    /// The single bucket of `per: global` and `per: route` limits.
    public static let shared = BucketKey(high: 0, low: 0)
}

/// A GCRA (generic cell rate algorithm) limiter for one limit, over a bounded table of keys.
///
/// GCRA keeps one number per key, the theoretical arrival time (TAT): a request of weight `w` is
/// allowed when `max(TAT, now) + w·T − now ≤ burst·T`, where `T = period / count`. It is exact (no
/// window edges that allow double bursts), needs no timers, and a key whose TAT is in the past
/// is indistinguishable from an absent key — which is what makes eviction safe.
///
/// Bounded memory without free resets: each stripe holds at most `maxKeys / stripes` keys. A full
/// stripe first drops keys whose TAT has passed (lossless); if none has, a new key is counted in
/// one shared overflow bucket instead (never more permissive than its own bucket would be), and
/// ``overflowed`` counts that.
///
/// Concurrency: keys are spread over striped mutexes, so an update is atomic (exact under any
/// number of connections and event loops) and two event loops rarely touch the same lock.
public final class RateLimiter: Sendable {
    public struct Outcome: Sendable, Equatable {
        /// Allowed now, allowed after `delayNanos` (throttle), or refused.
        public var allowed: Bool
        public var delayNanos: Int64
        /// Whole requests still allowed right after this one.
        public var remaining: Int
        /// Nanoseconds until the bucket is full again.
        public var resetNanos: Int64
        /// For refusals: nanoseconds until this request would be allowed.
        public var retryAfterNanos: Int64
    }

    public let rate: Rate
    public let burst: Int
    let intervalNanos: Int64
    let capacityNanos: Int64
    private let stripes: [Stripe]
    private let stripeMask: Int
    private let overflow = Mutex<Int64>(0)
    private let overflowCount = Atomic<Int>(0)
    /// Minimum time between two sweeps of one stripe, so a flood of new keys cannot make every
    /// insert scan the stripe.
    static let sweepIntervalNanos: Int64 = 100_000_000

    final class Stripe: Sendable {
        /// Theoretical arrival times; a key whose TAT has passed is expired (as good as absent).
        let state: Mutex<BoundedTable<BucketKey, Int64>>
        /// Units taken here since the last ``RateLimiter/takeUnsynced()`` (only when ``RateLimiter/recordsUsage``).
        let unsynced = Mutex<[BucketKey: Int64]>([:])
        init(capacity: Int) { state = Mutex(BoundedTable(capacity: capacity, sweepInterval: RateLimiter.sweepIntervalNanos)) }
    }

    /// Whether taken units are kept for other gateways (``takeUnsynced()``), in a cluster.
    public let recordsUsage: Bool
    /// Set while usage cannot be shared with the other gateways (the store is unreachable).
    public let syncStale = Atomic<Bool>(false)
    /// Mixed into the stripe choice, so nobody can aim keys at one stripe.
    private let stripeSeed = UInt64.random(in: .min ... .max)

    public init(rate: Rate, burst: Int, maxKeys: Int, stripes: Int = 64, recordsUsage: Bool = false) {
        self.recordsUsage = recordsUsage
        self.rate = rate
        self.burst = max(1, burst)
        intervalNanos = max(1, rate.periodNanos / Int64(max(1, rate.count)))
        capacityNanos = intervalNanos * Int64(self.burst)
        let stripeCount = max(1, min(stripes, maxKeys)).nextPowerOfTwo
        let perStripe = max(1, maxKeys / stripeCount)
        self.stripes = (0..<stripeCount).map { _ in Stripe(capacity: perStripe) }
        stripeMask = stripeCount - 1
    }

    /// Keys refused a bucket of their own because the table was full of live keys.
    public var overflowed: Int { overflowCount.load(ordering: .relaxed) }
    /// Fully decayed keys dropped to make room.
    public var evicted: Int { stripes.reduce(0) { total, s in total + s.state.withLock { $0.swept } } }
    /// Keys tracked now.
    public var count: Int { stripes.reduce(0) { total, s in total + s.state.withLock { $0.count } } }

    /// Takes `weight` units for `key` at `now` (monotonic nanoseconds) if the limit allows it.
    /// With `maxDelayNanos > 0` a request over the limit is admitted late (throttled) when the wait
    /// is at most that long. With `commit == false` nothing is recorded (a dry run).
    public func acquire(_ key: BucketKey, weight: Int = 1, now: Int64, maxDelayNanos: Int64 = 0, commit: Bool = true) -> Outcome {
        let cost = intervalNanos * Int64(max(1, weight))
        let stripe = stripes[stripeIndex(key)]
        var outcome: Outcome? = stripe.state.withLock { table -> Outcome? in
            if let tat = table[key] {
                let (o, newTAT) = decide(tat: tat, cost: cost, now: now, maxDelay: maxDelayNanos)
                if commit, o.allowed { table.update(key, newTAT) }
                return o
            }
            // A new key: room in the stripe (after a sweep of decayed keys, when one is due), or the overflow bucket.
            guard table.makeRoom(now: now, expiresAt: { $0 }) else { return nil }
            let (o, newTAT) = decide(tat: now, cost: cost, now: now, maxDelay: maxDelayNanos)
            if commit, o.allowed { _ = table.insert(key, newTAT, now: now) { $0 } }
            return o
        }
        if outcome == nil {
            overflowCount.add(1, ordering: .relaxed)
            outcome = overflow.withLock { tat in
                let (o, newTAT) = decide(tat: tat, cost: cost, now: now, maxDelay: maxDelayNanos)
                if commit, o.allowed { tat = newTAT }
                return o
            }
        }
        if recordsUsage, commit, outcome!.allowed { stripe.unsynced.withLock { $0[key, default: 0] += Int64(max(1, weight)) } }
        return outcome!
    }

    /// The units taken per key since the last call (refunds subtracted), for the other gateways.
    public func takeUnsynced() -> [(key: BucketKey, units: Int64)] {
        var taken: [(key: BucketKey, units: Int64)] = []
        for stripe in stripes {
            let pending = stripe.unsynced.withLock { u -> [BucketKey: Int64] in
                defer { u = [:] }
                return u
            }
            for (key, units) in pending where units > 0 { taken.append((key, units)) }
        }
        return taken
    }

    /// Counts `units` that other gateways took for `key`, as if taken here at `now` — without a
    /// check: a bucket may go into debt, which later requests then wait out. A key new here needs
    /// room in its stripe like any other (else the overflow bucket pays).
    public func charge(_ key: BucketKey, units: Int64, now: Int64) {
        guard units > 0 else { return }
        let cost = intervalNanos * units
        let stripe = stripes[stripeIndex(key)]
        let charged = stripe.state.withLock { table -> Bool in
            if let tat = table[key] { return table.update(key, max(tat, now) + cost) }
            return table.insert(key, now + cost, now: now) { $0 }
        }
        if !charged { overflow.withLock { $0 = max($0, now) + cost } }
    }

    /// What the bucket of `key` holds at `now`, without taking anything or adding the key: whole
    /// requests allowed now and nanoseconds until it is full. For `RateLimit` headers on responses
    /// that an earlier policy refused.
    public func peek(_ key: BucketKey, now: Int64) -> (remaining: Int, resetNanos: Int64) {
        let stripe = stripes[stripeIndex(key)]
        let tat = stripe.state.withLock { $0[key] } ?? now
        let current = max(tat, now)
        return (max(0, Int((capacityNanos - (current - now)) / intervalNanos)), current - now)
    }

    /// Gives back `weight` units taken by ``acquire(_:weight:now:maxDelayNanos:commit:)`` (when a
    /// later limit refused the same request).
    public func refund(_ key: BucketKey, weight: Int = 1) {
        let cost = intervalNanos * Int64(max(1, weight))
        let stripe = stripes[stripeIndex(key)]
        let found = stripe.state.withLock { table -> Bool in
            guard let tat = table[key] else { return false }
            return table.update(key, tat - cost)
        }
        if !found { overflow.withLock { $0 -= cost } }
        if recordsUsage { stripe.unsynced.withLock { $0[key, default: 0] -= Int64(max(1, weight)) } }
    }

    private func decide(tat: Int64, cost: Int64, now: Int64, maxDelay: Int64) -> (Outcome, Int64) {
        let newTAT = max(tat, now) + cost
        let excess = newTAT - now - capacityNanos
        if excess <= 0 {
            return (Outcome(allowed: true, delayNanos: 0, remaining: Int(-excess / intervalNanos), resetNanos: newTAT - now,
                            retryAfterNanos: 0), newTAT)
        }
        if excess <= maxDelay {
            return (Outcome(allowed: true, delayNanos: excess, remaining: 0, resetNanos: newTAT - now, retryAfterNanos: 0), newTAT)
        }
        let current = max(tat, now)
        return (Outcome(allowed: false, delayNanos: 0, remaining: max(0, Int((capacityNanos - (current - now)) / intervalNanos)),
                        resetNanos: current - now, retryAfterNanos: excess), tat)
    }

    private func stripeIndex(_ key: BucketKey) -> Int {
        // Mix both halves so that IPv4 keys (which differ only in `low`) spread over all stripes.
        var x = (key.low ^ stripeSeed) ^ (key.high &* 0x9E37_79B9_7F4A_7C15)
        x ^= x >> 33
        x &*= 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 33
        return Int(truncatingIfNeeded: x) & stripeMask
    }
}

extension Int {
    var nextPowerOfTwo: Int {
        var v = 1
        while v < self { v <<= 1 }
        return v
    }
}

/// A rate such as `10/s`, `100/min`, `1000/day`.
public struct Rate: Sendable, Equatable, CustomStringConvertible {
    public let count: Int
    public let periodNanos: Int64
    public let description: String

    public init?(_ text: String) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let count = Int(parts[0].trimmingWhitespace()), count > 0 else { return nil }
        let unit = parts[1].trimmingWhitespace()
        let seconds: Int64
        switch unit {
        case "s", "sec", "second": seconds = 1
        case "m", "min", "minute": seconds = 60
        case "h", "hour": seconds = 3600
        case "d", "day": seconds = 86400
        default:
            guard let d = Units.parseDuration(unit) else { return nil }
            let nanos = d.nanoseconds
            guard nanos > 0 else { return nil }
            self.count = count
            self.periodNanos = nanos
            self.description = text
            return
        }
        self.count = count
        self.periodNanos = seconds * 1_000_000_000
        self.description = text
    }

    /// `count` per `period` (rules built in code, such as automatic bans).
    public init(count: Int, period: Duration) {
        self.count = max(1, count)
        self.periodNanos = max(1, period.nanoseconds)
        self.description = "\(self.count)/\(period.compactText)"
    }

    /// Window in whole seconds, for the RateLimit-Policy header.
    public var windowSeconds: Int64 { max(1, periodNanos / 1_000_000_000) }
}
