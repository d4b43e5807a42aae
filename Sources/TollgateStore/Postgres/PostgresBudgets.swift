import Foundation
import PostgresNIO
import Synchronization

/// Budget totals shared by every gateway on the database, decided inside the group commit that
/// makes the reservations durable (``SharedBudgets``).
///
/// Exact first: a reservation must be committed before its upstream call anyway, so checking it
/// in that same commit costs no extra round trip, and it works for a budget per client or session
/// as well as for a global one. Its cost is that commits touching the same total wait for each
/// other, so busy totals are decided from leases (``BudgetLeases``): shares taken in advance in the
/// same call, counted in the total as spent, drawn from locally. The last part of every cap is
/// decided exactly (leases shrink as it fills), so a cap is used up and never passed.
///
/// One commit's budget half is one call of ``decideFunction``: settlements' deltas (from the
/// charges their ledger rows keep; leased charges excepted) and the reservations' remaining charges
/// under transaction-scoped advisory locks on every total involved, taken in one sorted order (no
/// deadlock between gateways); each window's sum read once, after the locks; reservations decided
/// one after the other in arrival order — all of a reservation's enforced charges fit, or it is
/// refused and takes nothing — then the lease requests. A commit with nothing to decide makes no call.
final class PostgresBudgets: Sendable {
    private struct State {
        /// Totals as of the last commit that touched them (``SharedBudgets/latestTotal(_:)``).
        var latest: [BudgetCharge.Window: Int64] = [:]
        /// Windows a reservation was just refused on, with what they held and when (monotonic s).
        var full: [BudgetCharge.Window: (spent: Int64, at: Double)] = [:]
        /// Per budget, the newest window start seen: older slots can go.
        var floors: [String: Int64] = [:]
        var prunedAt: Int64 = 0
    }

    private let state = Mutex(State())
    /// This gateway's leases on busy totals.
    let leases: BudgetLeases

    init(leaseTTL: Duration) {
        leases = BudgetLeases(ttl: leaseTTL)
    }
    /// Set once this store has written a reservation with charges. Only the gateway that made a
    /// reservation settles it, so until then no settlement can carry a budget delta and commits
    /// need no budget transaction.
    let inUse = Atomic<Bool>(false)
    /// Bound on ``State/latest``: a cache, emptied when it grows past this.
    static let maxRemembered = 200_000
    /// How long a refusal answers later reservations on the same window without the database: a
    /// flood on a spent budget costs one budget call per this, not one per commit. Room that comes
    /// back meanwhile (a settlement, a lease given back) is found after it.
    static let refusalMemory: Double = 0.1
    /// Budget calls made (``decide(_:plan:updates:gateway:_:)``), for tests and metrics.
    let calls = Atomic<Int>(0)
    /// Slots this far before the newest window start are kept anyway (gateways' clocks disagree a little).
    static let pruneMargin: Int64 = 600

    /// What one commit decided.
    struct Decision {
        /// Per reservation of the batch: the charge that did not fit, or nil.
        var refusals: [BudgetRefused?]
        var totals: [BudgetCharge.Window: Int64]
        /// Leases granted, by index into the plan's requests.
        var grants: [(request: Int, id: Int64, granted: Int64)] = []
    }

    /// Own leases' unused room is counted in the shared totals as spent; what this gateway's book
    /// is shown (alerts, console) leaves it out.
    func latestTotal(_ window: BudgetCharge.Window) -> Int64? {
        state.withLock { $0.latest[window] }.map { $0 - leases.unused(in: window) }
    }

    /// The refusal a recent one already gives `charges` (a reservation of `amount`): the first
    /// enforced charge whose window was refused within ``refusalMemory`` and still cannot fit it.
    func knownRefusal(_ charges: [BudgetCharge], amount: Int64, now: Double) -> BudgetRefused? {
        state.withLock { s in
            for c in charges where c.enforced {
                if let f = s.full[c.window], now - f.at < Self.refusalMemory, f.spent + amount > c.limit {
                    return BudgetRefused(charge: c, spent: f.spent)
                }
            }
            return nil
        }
    }

    /// This gateway gives money back (settlements, releases): its remembered refusals may no longer hold.
    func forgetRefusals() {
        state.withLock { $0.full = [:] }
    }

    /// Remembers a committed decision's totals.
    func committed(_ decision: Decision) {
        guard !decision.totals.isEmpty else { return }
        state.withLock { s in
            if s.latest.count > Self.maxRemembered { s.latest = [:] }
            s.latest.merge(decision.totals) { _, new in new }
        }
    }

    /// Lease room given back: the remembered totals that counted it drop with it.
    func returned(_ returns: [BudgetLeases.Return]) {
        guard !returns.isEmpty else { return }
        state.withLock { s in
            for r in returns where r.back != 0 {
                for (w, total) in s.latest where w.contains(r.key.total, r.key.slot) { s.latest[w] = total - r.back }
            }
        }
    }

    /// Applies `updates` (their cost deltas go back to the totals their entries were counted in,
    /// leased charges excepted), decides the plan's exact charges of `reservations` and its lease
    /// requests, in one call of ``decideFunction``, which commits on its own without waiting for
    /// its WAL flush (see ``PostgresStore/write(_:budgets:gateway:_:)``).
    func decide(_ reservations: [LedgerEntry], plan: BudgetLeases.Plan, updates: LedgerBatch.Split, gateway: String,
                _ s: PostgresConnections.Session) throws -> Decision {
        calls.add(1, ordering: .relaxed)
        if reservations.contains(where: { !$0.charges.isEmpty }) { inUse.store(true, ordering: .relaxed) }
        var windows: [BudgetCharge.Window] = [], windowIndex: [BudgetCharge.Window: Int32] = [:]
        func index(_ w: BudgetCharge.Window) -> Int32 {
            if let i = windowIndex[w] { return i }
            windows.append(w)
            windowIndex[w] = Int32(windows.count)
            return Int32(windows.count)
        }
        // Only reservations with charges left for the exact check go to the function, renumbered.
        var passed: [Int] = []
        var cRes: [Int32] = [], cWin: [Int32] = [], cSlot: [Int64] = [], cLimit: [Int64] = [], cEnforced: [Bool] = []
        var charges: [BudgetCharge] = []
        for (i, exact) in plan.exact.enumerated() where !exact.isEmpty {
            passed.append(i)
            for c in exact {
                cRes.append(Int32(passed.count)); cWin.append(index(c.window)); cSlot.append(c.slot); cLimit.append(c.limit)
                cEnforced.append(c.enforced)
                charges.append(c)
            }
        }
        let q = plan.requests
        let qWin = q.map { index($0.window) }
        var decision = Decision(refusals: Array(repeating: nil, count: reservations.count), totals: [:])
        let (settles, releases) = (updates.settles, updates.releases)
        for row in try s.run("""
            SELECT kind, idx, charge, total, lease FROM tollgate_budget_decide(
                \(settles.map(\.id))::bigint[], \(settles.map(\.cost))::bigint[], \(settles.map(\.status))::int[], \(settles.map(\.at))::bigint[],
                \(releases.map(\.id))::bigint[], \(releases.map(\.status))::int[], \(releases.map(\.at))::bigint[],
                \(windows.map(\.budget))::text[], \(windows.map(\.scope))::text[], \(windows.map(\.start))::bigint[], \(windows.map(\.end))::bigint[],
                \(passed.map { reservations[$0].reservedMicros })::bigint[],
                \(cRes)::int[], \(cWin)::int[], \(cSlot)::bigint[], \(cLimit)::bigint[], \(cEnforced)::boolean[],
                \(qWin)::int[], \(q.map(\.key.slot))::bigint[], \(q.map(\.limit))::bigint[], \(q.map(\.unit))::bigint[],
                \(q.map(\.want))::bigint[], \(gateway)::text, \(leases.databaseTTLMillis)::bigint)
            """) {
            let (kind, idx, charge, total, lease) = try row.decode((String, Int32, Int32, Int64, Int64).self)
            switch kind {
            case "refused": decision.refusals[passed[Int(idx) - 1]] = BudgetRefused(charge: charges[Int(charge) - 1], spent: total)
            case "lease": decision.grants.append((Int(idx) - 1, lease, total))
            default: decision.totals[windows[Int(idx) - 1]] = total
            }
        }
        let now = leases.now()
        state.withLock { st in
            for w in windows where (st.floors[w.budget] ?? .min) < w.start { st.floors[w.budget] = w.start }
            if st.full.count > Self.maxRemembered { st.full = [:] }
            for case let r? in decision.refusals { st.full[r.charge.window] = (r.spent, now) }
        }
        return decision
    }

    /// Drops slots no window reaches any more, at most once a minute (with the counters' commit).
    func prune(_ s: PostgresConnections.Session, now: Int64) throws {
        let floors = state.withLock { st -> [String: Int64]? in
            guard now - st.prunedAt >= 60, !st.floors.isEmpty else { return nil }
            st.prunedAt = now
            return st.floors
        }
        guard let floors else { return }
        let f = Array(floors)
        try s.run("""
            DELETE FROM budget_spend AS b USING unnest(\(f.map(\.key))::text[], \(f.map { $0.value - Self.pruneMargin })::bigint[]) AS u(budget, floor)
            WHERE b.budget = u.budget AND b.slot < u.floor
            """)
    }

    /// Raises slots to at least the given amounts (``SharedBudgets/raiseTotals(_:)``), under the same locks.
    func raise(_ totals: [(charge: BudgetCharge, micros: Int64)], _ s: PostgresConnections.Session) throws {
        guard !totals.isEmpty else { return }
        var bySlot: [SlotKey: Int64] = [:]
        for (c, micros) in totals { bySlot[SlotKey(total: c.total, slot: c.slot), default: 0] += micros }
        let totals = Array(Set(bySlot.keys.map(\.total)))
        try s.run("""
            SELECT count(pg_advisory_xact_lock(k)) FROM (
                SELECT DISTINCT hashtextextended('tollgate-budget:' || b || chr(31) || s, 0) AS k
                FROM unnest(\(totals.map(\.budget))::text[], \(totals.map(\.scope))::text[]) AS u(b, s) ORDER BY 1) AS sorted
            """)
        let rows = Array(bySlot)
        try s.run("""
            INSERT INTO budget_spend (budget, scope, slot, micros)
            SELECT * FROM unnest(\(rows.map(\.key.total.budget))::text[], \(rows.map(\.key.total.scope))::text[],
                                 \(rows.map(\.key.slot))::bigint[], \(rows.map(\.value))::bigint[])
            ON CONFLICT (budget, scope, slot) DO UPDATE SET micros = GREATEST(budget_spend.micros, excluded.micros)
            """)
    }

    struct SlotKey: Hashable {
        var total: BudgetCharge.Total
        var slot: Int64
    }
}
