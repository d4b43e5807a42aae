import Foundation
import PostgresNIO
import Synchronization

/// Budget totals shared by every gateway on the database, decided inside the group commit that
/// makes the reservations durable (``SharedBudgets``).
///
/// Why not leases: a reservation must be committed before its upstream call anyway, so checking
/// it in that same commit costs no extra round trip, is exact (nothing is parked in a gateway's
/// lease, so a crash strands only the calls it had in flight, as on one gateway), and works as
/// well for a budget per client or session as for a global one, where leases would split a small
/// per-client cap into unusable pieces. The cost is that commits touching the same total wait for
/// each other (measured in docs/PERFORMANCE.md; a hot global total still wants leases on top).
///
/// One commit's budget half is one call of ``commitFunction``: settlements' deltas (from the
/// charges their ledger rows keep) and the reservations' charges under transaction-scoped advisory
/// locks on every total involved, taken in one sorted order (no deadlock between gateways); each
/// window's sum read once, after the locks; reservations decided one after the other in arrival
/// order — all of a reservation's enforced charges fit, or it is refused and takes nothing.
final class PostgresBudgets: Sendable {
    private struct State {
        /// Totals as of the last commit that touched them (``SharedBudgets/latestTotal(_:)``).
        var latest: [BudgetCharge.Window: Int64] = [:]
        /// Per budget, the newest window start seen: older slots can go.
        var floors: [String: Int64] = [:]
        var prunedAt: Int64 = 0
    }

    private let state = Mutex(State())
    /// Set once this store has written a reservation with charges. Only the gateway that made a
    /// reservation settles it, so until then no settlement can carry a budget delta and commits
    /// need no budget transaction.
    let inUse = Atomic<Bool>(false)
    /// Bound on ``State/latest``: a cache, emptied when it grows past this.
    static let maxRemembered = 200_000
    /// Slots this far before the newest window start are kept anyway (gateways' clocks disagree a little).
    static let pruneMargin: Int64 = 600

    /// What one commit decided.
    struct Decision {
        var refusals: [BudgetRefused?]
        var totals: [BudgetCharge.Window: Int64]
    }

    func latestTotal(_ window: BudgetCharge.Window) -> Int64? { state.withLock { $0.latest[window] } }

    /// Remembers a committed decision's totals.
    func committed(_ decision: Decision) {
        guard !decision.totals.isEmpty else { return }
        state.withLock { s in
            if s.latest.count > Self.maxRemembered { s.latest = [:] }
            s.latest.merge(decision.totals) { _, new in new }
        }
    }

    /// Applies `updates` (their cost deltas go back to the totals their entries were counted in)
    /// and decides `reservations`, in one call of ``commitFunction``, which commits on its own
    /// without waiting for its WAL flush (see ``PostgresStore/write(_:budgets:_:)``).
    func decide(_ reservations: [LedgerEntry], updates: LedgerBatch.Split, _ s: PostgresConnections.Session) throws -> Decision {
        if reservations.contains(where: { !$0.charges.isEmpty }) { inUse.store(true, ordering: .relaxed) }
        var windows: [BudgetCharge.Window] = [], windowIndex: [BudgetCharge.Window: Int32] = [:]
        var cRes: [Int32] = [], cWin: [Int32] = [], cSlot: [Int64] = [], cLimit: [Int64] = [], cEnforced: [Bool] = []
        var charges: [BudgetCharge] = []
        for (i, r) in reservations.enumerated() {
            for c in r.charges {
                let w = c.window
                if windowIndex[w] == nil {
                    windows.append(w)
                    windowIndex[w] = Int32(windows.count)
                }
                cRes.append(Int32(i + 1)); cWin.append(windowIndex[w]!); cSlot.append(c.slot); cLimit.append(c.limit)
                cEnforced.append(c.enforced)
                charges.append(c)
            }
        }
        var decision = Decision(refusals: Array(repeating: nil, count: reservations.count), totals: [:])
        let (settles, releases) = (updates.settles, updates.releases)
        for row in try s.run("""
            SELECT kind, idx, charge, total FROM tollgate_budget_commit(
                \(settles.map(\.id))::bigint[], \(settles.map(\.cost))::bigint[], \(settles.map(\.status))::int[], \(settles.map(\.at))::bigint[],
                \(releases.map(\.id))::bigint[], \(releases.map(\.status))::int[], \(releases.map(\.at))::bigint[],
                \(windows.map(\.budget))::text[], \(windows.map(\.scope))::text[], \(windows.map(\.start))::bigint[], \(windows.map(\.end))::bigint[],
                \(reservations.map(\.reservedMicros))::bigint[],
                \(cRes)::int[], \(cWin)::int[], \(cSlot)::bigint[], \(cLimit)::bigint[], \(cEnforced)::boolean[])
            """) {
            let (kind, idx, charge, total) = try row.decode((String, Int32, Int32, Int64).self)
            if kind == "refused" {
                decision.refusals[Int(idx) - 1] = BudgetRefused(charge: charges[Int(charge) - 1], spent: total)
            } else {
                decision.totals[windows[Int(idx) - 1]] = total
            }
        }
        state.withLock { st in
            for w in windows where (st.floors[w.budget] ?? .min) < w.start { st.floors[w.budget] = w.start }
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
