import TollgateCore

/// One reservation as the ledger records it.
public struct LedgerEntry: Sendable {
    public var requestID: String
    public var route: String
    public var client: String
    /// Hash of the session cookie (never the cookie itself), or empty.
    public var session: String
    /// The authenticated caller's key id and subject, or empty.
    public var keyID: String = ""
    public var subject: String = ""
    /// The verified address's hash and its domain, or empty.
    public var email: String = ""
    public var emailDomain: String = ""
    public var reservedMicros: Int64
    /// Unix seconds.
    public var createdAt: Int64
    /// The budget totals a store shared by several gateways checks and counts it in (``SharedBudgets``);
    /// stores of one gateway ignore them (its own book is exact).
    public var charges: [BudgetCharge] = []

    public init(requestID: String, route: String, client: String, session: String = "", reservedMicros: Int64, createdAt: Int64) {
        self.requestID = requestID
        self.route = route
        self.client = client
        self.session = session
        self.reservedMicros = reservedMicros
        self.createdAt = createdAt
    }
}

/// Spend found in the ledger, to rebuild budget totals at start-up: reserved-but-unsettled
/// entries count at their reserved amount, so a crash can only make totals higher, never lower.
public struct SpendRow: Sendable, Equatable {
    public var route: String
    public var client: String
    public var session: String = ""
    public var keyID: String = ""
    public var subject: String = ""
    public var email: String = ""
    public var createdAt: Int64
    public var micros: Int64
}

/// Things counted without money attached; written in batches (see ``SpendLedger/count(_:route:day:savedMicros:)``).
/// Refusals are counted apart, with who was refused and why (``SpendLedger/countRefusal(route:client:reason:day:)``).
public enum UsageEvent: String, Sendable, CaseIterable {
    case cacheHit = "cache_hit"
}

extension SpendLedger {
    /// Counts one refused request.
    public func countRefusal(route: String, client: String, reason: String, day: String) {
        countRefusal(route: route, client: client, reason: reason, day: day, count: 1)
    }
}

/// The durable record of what was spent, and the operator's switches.
///
/// Money: ``reserve(_:done:)`` calls `done` only once the entry is committed, and the gateway calls
/// the upstream only after that, so a crash can never forget spend it had reserved. Settlements
/// and counters are written in batches after the fact; losing them in a crash leaves a reservation
/// counted at its (higher) reserved amount, and undercounts non-money counters by at most one
/// batch interval.
public protocol SpendLedger: AnyObject, Sendable, UseJournal, VerificationJournal {
    /// Commits `entry`; then calls `done` with its row id, on the ledger's own thread. A store with
    /// ``SharedBudgets`` may answer ``BudgetRefused`` instead (and writes no row).
    func reserve(_ entry: LedgerEntry, done: @escaping @Sendable (Result<Int64, any Error>) -> Void)
    /// The call's real cost is known.
    func settle(id: Int64, costMicros: Int64, status: Int?, at: Int64)
    /// The upstream did not bill: the reservation no longer counts.
    func release(id: Int64, status: Int?, at: Int64)
    /// Adds to a per-day counter (cache hits with the money they saved).
    func count(_ event: UsageEvent, route: String, day: String, savedMicros: Int64)
    /// Counts one refused request: the route (`-` for none), the resolved client, and the policy or
    /// stage that refused it (`rate_limit`, `origin`, `budget`, … — `shadow:NAME` for a refusal a
    /// shadow-mode policy would have made).
    func countRefusal(route: String, client: String, reason: String, day: String, count: Int64)
    /// Spend of every entry created at or after `since` (Unix seconds), released ones excluded.
    func spend(since: Int64) throws -> [SpendRow]
    /// Routes whose upstream calls an operator paused (`*` for all).
    func pausedRoutes() throws -> Set<String>
    func setPaused(_ route: String, paused: Bool, at: Int64) throws
    /// Records that an alert fired; false if it had already fired (once per budget, scope, period, threshold).
    func recordAlert(budget: String, scope: String, periodStart: Int64, threshold: Int, at: Int64) throws -> Bool
    /// Writes whatever is still batched.
    func flush()
    /// The gateway is stopping: writes whatever is still batched and gives back what the store
    /// holds for this gateway alone (budget leases). The store stays usable.
    func finish()
    /// Group commits that failed since start (the store down or refusing writes), for metrics.
    var failedCommits: Int { get }
}
