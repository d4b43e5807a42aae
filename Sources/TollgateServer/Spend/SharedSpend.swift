import TollgateCore
import TollgateStore

/// A gateway's side of budget totals kept by a store that several gateways share
/// (``SharedBudgets``, PostgreSQL).
///
/// The store decides: each reservation goes to it with one ``BudgetCharge`` per applicable budget
/// and is refused there when another gateway's spend filled the cap first. The gateway's own
/// ``SpendBook`` still counts every reservation (so shadow mode, alerts and the console see spend)
/// but never refuses on its own view, which lacks the other gateways' calls; after each answer it
/// is brought to the store's totals (``SpendBook/mirror(_:total:now:)``).
struct SharedSpend: Sendable {
    let store: any SharedBudgets
    let book: SpendBook
    /// Per budget index, the name its totals are kept under (``name(_:)``), built once per config.
    private let names: [String]

    init(store: any SharedBudgets, book: SpendBook) {
        self.store = store
        self.book = book
        names = book.budgets.map(Self.name)
    }

    /// The name a budget's totals are kept under: its name and period, so a budget whose period
    /// changes does not count the old period's slots.
    static func name(_ budget: BudgetConfig) -> String { "\(budget.name)@\(budget.period)" }

    /// The reservation's charges, in the order of its keys.
    func charges(_ keys: [SpendBook.Key], now: Int64, enforced: Bool) -> [BudgetCharge] {
        keys.map { key in
            let w = book.window(key, now: now)
            return BudgetCharge(budget: names[key.budget], scope: key.scope, slot: w.slot, windowStart: w.start, windowEnd: w.end,
                                limit: book.budgets[key.budget].limit.micros, enforced: enforced)
        }
    }

    /// Brings the book to the store's latest totals for `keys`.
    func mirror(_ keys: [SpendBook.Key], now: Int64) {
        for key in keys {
            let w = book.window(key, now: now)
            let window = BudgetCharge.Window(budget: names[key.budget], scope: key.scope, start: w.start, end: w.end)
            if let total = store.latestTotal(window) { book.mirror(key, total: total, now: now) }
        }
    }

    /// The answer to a reservation the store refused.
    func problem(_ refused: BudgetRefused, keys: [SpendBook.Key], now: Int64) -> Problem {
        let key = keys.first { names[$0.budget] == refused.charge.budget && $0.scope == refused.charge.scope }
        let budget = book.budgets[key?.budget ?? 0]
        if let key { book.mirror(key, total: refused.spent, now: now) }
        // A calendar budget resets when its period ends; a rolling one may have room as soon as its
        // oldest slice leaves (the store does not say which slice holds what).
        var resetAt = refused.charge.windowEnd
        if case .rolling(let seconds) = budget.period { resetAt = now + max(1, seconds / BudgetPeriod.rollingSlices) }
        return SpendControl.exhausted(budget, resetAt: resetAt, now: now)
    }

    /// Raises the store's totals to what the ledger holds for the current periods (at start and
    /// when the budgets change), so a budget new to the config counts spend already made.
    func raise(_ seeded: [(key: SpendBook.Key, at: Int64, micros: Int64)]) throws {
        try store.raiseTotals(seeded.map { s in (charge: charges([s.key], now: s.at, enforced: true)[0], micros: s.micros) })
    }
}
