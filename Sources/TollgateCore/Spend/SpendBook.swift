import Foundation
import Synchronization

/// The running totals of every budget, kept exact under concurrency: a reservation checks and
/// takes the amount from every applicable budget in one step under one lock, so concurrent requests
/// can never together pass a cap. Settling adjusts the totals to the real cost; a reservation that
/// is never settled stays counted at its reserved (worst-case) amount.
public final class SpendBook: Sendable {
    /// One total: a budget and the scope value it is kept for (`*` for global, a route, a client).
    public struct Key: Hashable, Sendable {
        public let budget: Int
        public let scope: String
        public init(budget: Int, scope: String) {
            self.budget = budget
            self.scope = scope
        }
    }

    /// Why a reservation was refused.
    public struct Refusal: Sendable, Equatable {
        public let budget: Int
        /// Unix seconds at which the budget's period resets (or, rolling, when enough spend leaves).
        public let resetAt: Int64
    }

    /// Spend of one key: per period start (calendar) or per slice start (rolling), in micros.
    struct Tally {
        var slices: [Int64: Int64] = [:]
    }

    public let budgets: [BudgetConfig]
    /// The one total of a session budget for every request without a session the gateway issued.
    public static let unverifiedSession = "unverified"
    /// The one total of a key or subject budget for every call without an authenticated caller.
    public static let anonymous = "anonymous"
    /// The one total that calls without a verified address share under an `email` budget.
    public static let unverifiedEmail = "unverified-email"
    static let maxKeysBeforeSweep = 100_000
    private let sweepAt = Mutex<Int>(SpendBook.maxKeysBeforeSweep)
    private let tallies = Mutex<[Key: Tally]>([:])
    private let pausedRoutes = Mutex<Set<String>>([])
    /// Whether any route is paused: the common answer (none) is one atomic load, no lock.
    private let anyPaused = Atomic<Bool>(false)

    public init(budgets: [BudgetConfig]) {
        self.budgets = budgets
    }

    /// The keys a request of `route` from `client` (in `session`, a hash of a session cookie the
    /// gateway issued, or empty) is counted in. Requests without an issued session share one
    /// total, ``unverifiedSession``: an invented cookie never gets a fresh budget.
    ///
    /// `key` and `subject` (the authenticated caller's key id and subject) key `scope: key` and
    /// `scope: subject` budgets; calls without them share one total, ``anonymous``.
    public func keys(route: String, client: String, session: String = "", key: String = "", subject: String = "",
                     email: String = "") -> [Key] {
        budgets.enumerated().compactMap { i, b in
            guard b.covers(route) else { return nil }
            switch b.scope {
            case .global: return Key(budget: i, scope: "*")
            case .route: return Key(budget: i, scope: route)
            case .client: return Key(budget: i, scope: client)
            case .session: return Key(budget: i, scope: session.isEmpty ? Self.unverifiedSession : session)
            case .key: return Key(budget: i, scope: key.isEmpty ? Self.anonymous : key)
            case .subject: return Key(budget: i, scope: subject.isEmpty ? Self.anonymous : "sub:" + subject)
            case .email: return Key(budget: i, scope: email.isEmpty ? Self.unverifiedEmail : email)
            }
        }
    }

    /// Takes `amount` from every key at `now` (Unix seconds) if none would exceed its limit. With
    /// `evenOverCap` (shadow mode) it is taken regardless, and the refusal it would have been is returned.
    public func reserve(_ keys: [Key], amount: Int64, now: Int64, evenOverCap: Bool = false) -> Refusal? {
        tallies.withLock { tallies in
            var refusal: Refusal?
            for key in keys {
                let budget = budgets[key.budget]
                let spent = Self.spent(tallies[key], budget: budget, now: now)
                if spent + amount > budget.limit.micros {
                    refusal = Refusal(budget: key.budget, resetAt: Self.resetTime(tallies[key], budget: budget, now: now, needed: amount))
                    break
                }
            }
            if refusal != nil, !evenOverCap { return refusal }
            for key in keys {
                let slot = Self.slot(budgets[key.budget], time: now)
                tallies[key, default: Tally()].slices[slot, default: 0] += amount
                Self.prune(&tallies[key]!, budget: budgets[key.budget], now: now)
            }
            // Per-client budgets add a key per client: drop the ones with nothing in their current
            // period (they count as zero either way), so memory follows active clients only.
            // The next sweep waits until the table has doubled, so sweeping stays O(1) per reservation.
            if tallies.count > sweepAt.withLock({ $0 }) {
                tallies = tallies.filter { Self.spent($0.value, budget: budgets[$0.key.budget], now: now) > 0 }
                let next = max(Self.maxKeysBeforeSweep, tallies.count * 2)
                sweepAt.withLock { $0 = next }
            }
            return refusal
        }
    }

    /// Adds `delta` (negative to give back) to the period the reservation was made in.
    public func adjust(_ keys: [Key], delta: Int64, reservedAt: Int64) {
        guard delta != 0 else { return }
        tallies.withLock { tallies in
            for key in keys {
                let slot = Self.slot(budgets[key.budget], time: reservedAt)
                guard tallies[key]?.slices[slot] != nil else { continue }  // that period is over
                tallies[key]!.slices[slot]! += delta
            }
        }
    }

    /// Adds spend found in the ledger at start-up.
    public func seed(_ key: Key, amount: Int64, at time: Int64) {
        tallies.withLock { tallies in
            let slot = Self.slot(budgets[key.budget], time: time)
            tallies[key, default: Tally()].slices[slot, default: 0] += amount
        }
    }

    /// Where spend of `key` at `now` is recorded (`slot`) and the window its total sums over.
    public func window(_ key: Key, now: Int64) -> (slot: Int64, start: Int64, end: Int64) {
        let budget = budgets[key.budget]
        let (start, end) = budget.period.bounds(containing: now, in: budget.timeZone)
        return (Self.slot(budget, time: now), start, end)
    }

    /// Makes `key`'s total in the window containing `now` equal `total` — the count of a store
    /// several gateways share — by moving the difference into the current slot.
    public func mirror(_ key: Key, total: Int64, now: Int64) {
        tallies.withLock { tallies in
            let budget = budgets[key.budget]
            let difference = total - Self.spent(tallies[key], budget: budget, now: now)
            guard difference != 0 else { return }
            tallies[key, default: Tally()].slices[Self.slot(budget, time: now), default: 0] += difference
        }
    }

    /// Spend counted now for `key`.
    public func spent(_ key: Key, now: Int64) -> Int64 {
        tallies.withLock { Self.spent($0[key], budget: budgets[key.budget], now: now) }
    }

    /// Every key with spend in the current period, with its total.
    public func snapshot(now: Int64) -> [(key: Key, spent: Int64)] {
        tallies.withLock { tallies in
            tallies.compactMap { key, tally in
                let s = Self.spent(tally, budget: budgets[key.budget], now: now)
                return s > 0 ? (key, s) : nil
            }
        }
    }

    // MARK: Kill switch

    /// Routes whose upstream calls are stopped (`*` stops all).
    public var paused: Set<String> { pausedRoutes.withLock { $0 } }

    public func setPaused(_ routes: Set<String>) {
        pausedRoutes.withLock { $0 = routes }
        anyPaused.store(!routes.isEmpty, ordering: .releasing)
    }

    /// Checked before every upstream call; without a pause it takes no lock.
    public func isPaused(_ route: String) -> Bool {
        guard anyPaused.load(ordering: .acquiring) else { return false }
        return pausedRoutes.withLock { $0.contains(route) || $0.contains("*") }
    }

    // MARK: Periods

    /// The slot spend at `time` is recorded in: the period start (calendar) or slice start (rolling).
    static func slot(_ budget: BudgetConfig, time: Int64) -> Int64 {
        switch budget.period {
        case .rolling(let seconds):
            let slice = max(1, seconds / BudgetPeriod.rollingSlices)
            return time - ((time % slice) + slice) % slice
        default:
            return budget.period.bounds(containing: time, in: budget.timeZone).start
        }
    }

    static func spent(_ tally: Tally?, budget: BudgetConfig, now: Int64) -> Int64 {
        guard let tally else { return 0 }
        let (start, end) = budget.period.bounds(containing: now, in: budget.timeZone)
        return tally.slices.reduce(0) { total, slice in
            slice.key >= start && slice.key < end ? total + slice.value : total
        }
    }

    /// When a reservation of `needed` would fit again.
    static func resetTime(_ tally: Tally?, budget: BudgetConfig, now: Int64, needed: Int64) -> Int64 {
        let (start, end) = budget.period.bounds(containing: now, in: budget.timeZone)
        guard case .rolling(let seconds) = budget.period, let tally else { return end }
        // Oldest slices leave the window first; find when enough has left.
        var remaining = spent(tally, budget: budget, now: now) + needed - budget.limit.micros
        for (slot, amount) in tally.slices.filter({ $0.key >= start }).sorted(by: { $0.key < $1.key }) {
            remaining -= amount
            if remaining <= 0 { return slot + seconds }
        }
        return end + seconds
    }

    static func prune(_ tally: inout Tally, budget: BudgetConfig, now: Int64) {
        guard tally.slices.count > Int(BudgetPeriod.rollingSlices) + 2 else { return }
        let start = budget.period.bounds(containing: now, in: budget.timeZone).start
        tally.slices = tally.slices.filter { $0.key >= start }
    }
}
