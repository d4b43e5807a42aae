import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization
import TollgateCore
import TollgateStore

/// Keeps rate limits global across the gateways of a shared store: every `interval` each gateway
/// sends the units its limiters took since the last round and charges its own buckets with what
/// the others took (``RateLimiter/charge(_:units:now:)``). Page-token uses, solved challenges and
/// API key uses go along (``SharedUses``): a token's or key's `max_uses` and a challenge's single
/// use hold across the cluster, one round late at most. Requests are decided locally, never
/// waiting on the database; a bucket learns of other gateways' requests one round late at most.
///
/// What that costs, for a key spread over N gateways at rate `r` with burst `b` and a round of
/// `L` (the interval plus one exchange): each gateway may let through the others' share of the
/// last round before it hears of it, so over a window `W` the key gets at most
/// `r·W + N·b + r·L` — the local bursts before the first round, then one round's worth of lag.
/// At the default 200 ms that is under 0.5 % of a minute's allowance plus the bursts.
///
/// When the store cannot be reached the round is skipped (its usage is dropped, not queued) and
/// every gateway keeps enforcing its own limits: open, as a rate limit's `on_store_error` is by
/// default. A limit with `on_store_error: closed` refuses instead while rounds fail
/// (``isStale``).
final class RateSync: Sendable {
    private let store: any SharedRateUsage
    /// This process's name in the shared rows (others skip their own).
    let gateway = UUID().uuidString
    let interval: TimeAmount
    private let queue = DispatchQueue(label: "tollgate.rate-sync")
    private let cursor = Mutex<Int64?>(nil)
    private let lastSuccess = Atomic<Int64>(0)
    private let stopped = Atomic<Bool>(false)
    /// Set once a failing run of rounds has been logged; cleared by the next success.
    private let failingLogged = Atomic<Bool>(false)
    private let current: NIOLockedValueBox<GatewayState>
    private let logger: Logger
    /// Rounds that failed (the store down or slow), for metrics.
    let failures = Atomic<Int>(0)
    /// Units received from other gateways, for metrics.
    let unitsReceived = Atomic<Int>(0)

    init(store: any SharedRateUsage, interval: TimeAmount, current: NIOLockedValueBox<GatewayState>, logger: Logger) {
        self.store = store
        self.interval = interval
        self.current = current
        self.logger = logger
        lastSuccess.store(Int64(NIODeadline.now().uptimeNanoseconds), ordering: .relaxed)
    }

    func start() { schedule() }

    func stop() { stopped.store(true, ordering: .relaxed) }

    /// Whether no round has succeeded for three intervals (the store is unreachable).
    var isStale: Bool {
        Int64(NIODeadline.now().uptimeNanoseconds) - lastSuccess.load(ordering: .relaxed) > 3 * interval.nanoseconds
    }

    private func schedule() {
        queue.asyncAfter(deadline: .now() + .nanoseconds(Int(interval.nanoseconds))) { [self] in
            guard !stopped.load(ordering: .relaxed) else { return }
            round()
            schedule()
        }
    }

    /// One exchange: what this gateway took out, what the others took in.
    func round() {
        let state = current.withLockedValue { $0 }
        let limiters = state.limiters
        var sending: [RateUsage] = []
        for (name, limiter) in limiters.named where limiter.recordsUsage {
            for (key, units) in limiter.takeUnsynced() { sending.append(RateUsage(limit: name, key: key, units: units)) }
        }
        // Page-token uses and solved challenges travel the same way, named by their prefixes.
        for (item, count) in (state.pageTokens?.shared?.take() ?? []) + (state.proofOfWork?.shared?.take() ?? [])
            + (state.identity?.keys?.shared?.take() ?? []) {
            sending.append(RateUsage(limit: item, key: .shared, units: count))
        }
        do {
            let (received, next) = try store.exchangeRateUsage(gateway: gateway, sending: sending, after: cursor.withLock { $0 },
                                                               nowMillis: NIODeadline.wallClockMillis)
            let wasStale = isStale
            cursor.withLock { $0 = next }
            let now = Int64(NIODeadline.now().uptimeNanoseconds)
            lastSuccess.store(now, ordering: .relaxed)
            var units = 0
            let wall = NIODeadline.wallClockMillis
            for usage in received {
                if usage.limit.hasPrefix(PageTokens.sharedPrefix) {
                    state.pageTokens?.addRemoteUses(usage.limit, count: Int(usage.units), nowMillis: wall)
                } else if usage.limit.hasPrefix(ProofOfWork.sharedPrefix) {
                    state.proofOfWork?.addRemoteSolution(usage.limit, nowSeconds: wall / 1000)
                } else if usage.limit.hasPrefix(APIKeyIndex.sharedPrefix) {
                    state.identity?.keys?.addRemoteUses(usage.limit, count: usage.units)
                } else {
                    limiters.limiter(named: usage.limit)?.charge(usage.key, units: usage.units, now: now)
                    units += Int(usage.units)
                }
            }
            unitsReceived.add(units, ordering: .relaxed)
            for (_, limiter) in limiters.named { limiter.syncStale.store(false, ordering: .relaxed) }
            if failingLogged.exchange(false, ordering: .relaxed) || wasStale {
                logger.notice("rate limits shared again", metadata: ["store": "reachable"])
            }
        } catch {
            failures.add(1, ordering: .relaxed)
            let stale = isStale
            for (_, limiter) in limiters.named { limiter.syncStale.store(stale, ordering: .relaxed) }
            if !failingLogged.exchange(true, ordering: .relaxed) {
                logger.warning("rate limit sync failed: each gateway enforces its own limits until the store is back",
                               metadata: ["error": "\(error)"])
            }
        }
    }
}
