import Foundation
import PostgresNIO
import Synchronization

/// Budget totals shared by every gateway on the database, decided inside the group commit that
/// makes the reservations durable (``SharedBudgets``).
///
/// Why not leases: a reservation must be committed before its upstream call anyway, so checking
/// it in that same transaction costs no extra round trip, is exact (nothing is parked in a
/// gateway's lease, so a crash strands only the calls it had in flight, as on one gateway), and
/// works as well for a budget per client or session as for a global one, where leases would
/// split a small per-client cap into unusable pieces. The cost is that commits touching the same
/// total wait for each other; each is one short transaction per batch, not per request.
///
/// In one commit: the settlements' deltas (from the charges their ledger rows keep) and the
/// reservations' charges are applied under transaction-scoped advisory locks on every total
/// involved, taken in one sorted order (no deadlock between gateways); each window's sum is read
/// once; reservations are then decided one after the other in arrival order — all of a
/// reservation's enforced charges fit, or it is refused and takes nothing.
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

    /// Applies `settled` (each a ledger row's charges and its cost minus its reservation) and
    /// decides `reservations`, in the caller's transaction.
    func decide(_ reservations: [LedgerEntry], settled: [(charges: String, delta: Int64)],
                _ s: PostgresConnections.Session) throws -> Decision {
        var deltas: [SlotKey: Int64] = [:]
        for (charges, delta) in settled where delta != 0 {
            for (total, slot) in BudgetCharge.decode(charges) { deltas[SlotKey(total: total, slot: slot), default: 0] += delta }
        }
        if reservations.contains(where: { !$0.charges.isEmpty }) { inUse.store(true, ordering: .relaxed) }
        var totals = Set(deltas.keys.map(\.total))
        for r in reservations { for c in r.charges { totals.insert(c.total) } }
        var decision = Decision(refusals: Array(repeating: nil, count: reservations.count), totals: [:])
        guard !totals.isEmpty else { return decision }
        let locks = Set(totals.map(Self.lockKey)).sorted()
        try s.run("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(\(locks)::bigint[]) AS k")

        let windows = Array(Set(reservations.flatMap { $0.charges.map(\.window) }))
        var current: [BudgetCharge.Window: Int64] = [:]
        if !windows.isEmpty {
            for row in try s.run("""
                SELECT u.i, COALESCE(SUM(b.micros), 0)::bigint
                FROM unnest(\(windows.map(\.budget))::text[], \(windows.map(\.scope))::text[], \(windows.map(\.start))::bigint[],
                            \(windows.map(\.end))::bigint[]) WITH ORDINALITY AS u(budget, scope, lo, hi, i)
                LEFT JOIN budget_spend AS b ON b.budget = u.budget AND b.scope = u.scope AND b.slot >= u.lo AND b.slot < u.hi
                GROUP BY u.i
                """) {
                let (i, sum) = try row.decode((Int64, Int64).self)
                current[windows[Int(i) - 1]] = sum
            }
        }
        func count(_ amount: Int64, at key: SlotKey) {
            for w in windows where w.contains(key.total, key.slot) { current[w, default: 0] += amount }
        }
        // Settlements first: what they give back is there for this batch's reservations.
        for (key, delta) in deltas { count(delta, at: key) }
        for (i, r) in reservations.enumerated() where !r.charges.isEmpty {
            if let over = r.charges.first(where: { $0.enforced && current[$0.window, default: 0] + r.reservedMicros > $0.limit }) {
                decision.refusals[i] = BudgetRefused(charge: over, spent: current[over.window, default: 0])
                continue
            }
            for c in r.charges {
                let key = SlotKey(total: c.total, slot: c.slot)
                deltas[key, default: 0] += r.reservedMicros
                count(r.reservedMicros, at: key)
            }
        }
        let changed = deltas.filter { $0.value != 0 }
        if !changed.isEmpty {
            let rows = Array(changed)
            try s.run("""
                INSERT INTO budget_spend (budget, scope, slot, micros)
                SELECT * FROM unnest(\(rows.map(\.key.total.budget))::text[], \(rows.map(\.key.total.scope))::text[],
                                     \(rows.map(\.key.slot))::bigint[], \(rows.map(\.value))::bigint[])
                ON CONFLICT (budget, scope, slot) DO UPDATE SET micros = budget_spend.micros + excluded.micros
                """)
        }
        decision.totals = current
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
        let locks = Set(bySlot.keys.map { Self.lockKey($0.total) }).sorted()
        try s.run("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(\(locks)::bigint[]) AS k")
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

    /// The advisory lock of one total: FNV-1a of a namespaced name (a collision only makes two
    /// totals wait for each other).
    static func lockKey(_ total: BudgetCharge.Total) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "tollgate-budget\u{0}\(total.budget)\u{1F}\(total.scope)".utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }
}
