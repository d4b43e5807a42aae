import Foundation

/// One budget total a reservation draws on, as a store that several gateways share checks it
/// (``SharedBudgets``). The gateway computes it from its config: the store knows no budgets.
///
/// Totals are kept per `(budget, scope, slot)`: the slot is the period start (calendar budgets) or
/// the slice start (rolling ones) the reservation is recorded in; what counts against `limit` is
/// the sum of the slots in `[windowStart, windowEnd)`.
public struct BudgetCharge: Sendable, Hashable {
    /// The budget's name and period (`"daily@day"`), so a budget whose period changes starts apart.
    public var budget: String
    /// The scope value (`*`, a route, a client, a session hash, …).
    public var scope: String
    public var slot: Int64
    public var windowStart: Int64
    public var windowEnd: Int64
    /// Micro-units.
    public var limit: Int64
    /// False in shadow mode: the amount is added even over the limit.
    public var enforced: Bool
    /// The lease of this gateway the charge was drawn from (``BudgetLeases``), 0 when the shared
    /// total decided it. Set by the store, never by the gateway.
    public var lease: Int64 = 0

    public init(budget: String, scope: String, slot: Int64, windowStart: Int64, windowEnd: Int64, limit: Int64, enforced: Bool) {
        self.budget = budget
        self.scope = scope
        self.slot = slot
        self.windowStart = windowStart
        self.windowEnd = windowEnd
        self.limit = limit
        self.enforced = enforced
    }

    /// The total this charge is counted in, for locking and lookups.
    public var total: Total { Total(budget: budget, scope: scope) }

    /// What one window sums over.
    public var window: Window { Window(budget: budget, scope: scope, start: windowStart, end: windowEnd) }

    public struct Total: Hashable, Sendable, Comparable {
        public var budget: String
        public var scope: String
        public static func < (a: Total, b: Total) -> Bool { (a.budget, a.scope) < (b.budget, b.scope) }
    }

    public struct Window: Hashable, Sendable {
        public var budget: String
        public var scope: String
        public var start: Int64
        public var end: Int64

        public init(budget: String, scope: String, start: Int64, end: Int64) {
            self.budget = budget
            self.scope = scope
            self.start = start
            self.end = end
        }

        func contains(_ total: Total, _ slot: Int64) -> Bool {
            total.budget == budget && total.scope == scope && slot >= start && slot < end
        }
    }

    /// The charges as one ledger column (`budget US scope US slot`, and `US L<lease>` for a charge
    /// drawn from a lease; records RS-separated), read back when the entry is settled so the delta
    /// lands in the same slots — or, for a leased charge, in the lease (no shared total moves) —
    /// and when a dead gateway's lease is reclaimed (what the rows drawn from it hold).
    static func encode(_ charges: [BudgetCharge]) -> String {
        charges.map { c in
            c.lease == 0 ? "\(c.budget)\u{1F}\(c.scope)\u{1F}\(c.slot)" : "\(c.budget)\u{1F}\(c.scope)\u{1F}\(c.slot)\u{1F}L\(c.lease)"
        }.joined(separator: "\u{1E}")
    }
}

/// A reservation the shared budget totals refused: another gateway's spend reached the cap first.
public struct BudgetRefused: Error, Sendable, Equatable, CustomStringConvertible {
    /// The first enforced charge that did not fit.
    public let charge: BudgetCharge
    /// What that window held when it refused, in micros.
    public let spent: Int64

    public var description: String { "budget \(charge.budget) for \(charge.scope) has \(spent) of \(charge.limit) spent" }
}

/// A store that keeps budget totals for several gateways and checks each reservation's charges
/// against them in the commit that makes it durable: all of its enforced charges fit or it is
/// refused with ``BudgetRefused``, in the order reservations arrive, exactly as one gateway's
/// book would decide — so N gateways together never pass a cap.
public protocol SharedBudgets: Sendable {
    /// The window's total as of the last commit that touched it (nil: not seen since start).
    func latestTotal(_ window: BudgetCharge.Window) -> Int64?
    /// Raises each slot's total to at least `micros` (spend found in the ledger at start): a budget
    /// added to the config counts what the ledger already holds for its period.
    func raiseTotals(_ totals: [(charge: BudgetCharge, micros: Int64)]) throws
}
