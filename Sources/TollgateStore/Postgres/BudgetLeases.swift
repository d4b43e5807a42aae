import Foundation
import Synchronization

/// Shares of busy budget totals this gateway took in advance (leases), so that its reservations
/// on them are decided here, in the group commit's writer, without the shared total's lock and
/// without the budget transaction: a commit whose reservations all fit in leases is one
/// transaction (the ledger rows), as on a gateway without budgets.
///
/// Guarantees (docs/cluster.md, "Budget leases"):
/// - A lease is counted in the shared total (`budget_spend`) when it is granted, under the
///   total's lock and only if it fits with everything counted so far, so the other gateways see
///   it as spent. This gateway draws at most the lease's amount; what does not fit goes to the
///   exact check. Together the gateways never pass a cap, with leases or without.
/// - A grant is at most an eighth of what the window has left, in whole reservations, and none
///   is made below four: the last part of a cap is always decided exactly, so it is used up.
/// - A lease retires after `ttl`, when it is nearly spent (a successor is asked for before), or
///   at shutdown: its room goes back at once, what settlements free later once no call drawn from
///   it is in flight. A lease whose gateway died stays counted until its database expiry
///   (2 × `ttl` + 2 s) and is then reclaimed by any gateway at what the ledger rows drawn from it
///   hold — the most a crash strands is one lease per busy total, for that long.
///
/// Only the writer thread plans and records; the state sits in a mutex because
/// ``unused(in:)`` is read by the gateway's threads.
final class BudgetLeases: Sendable {
    /// One total's slot: what a lease is for.
    struct Key: Hashable {
        var total: BudgetCharge.Total
        var slot: Int64
    }

    struct Lease {
        var id: Int64
        var key: Key
        var granted: Int64
        /// Reserved by calls drawn from it, corrected by their settlements.
        var used: Int64 = 0
        var inFlight = 0
        var takenAt: Double
        /// No more draws: its room went back (``Return``); closed once nothing is in flight.
        var retiring = false
        var room: Int64 { granted - used }
    }

    /// A lease request for the budget function: `want` micros of `window`'s total, in whole `unit`s.
    struct Request {
        var key: Key
        var window: BudgetCharge.Window
        var limit: Int64
        var unit: Int64
        var want: Int64
    }

    /// What one commit gives back: a retiring lease's room (`close` false) or what is left of it
    /// when nothing drawn from it is in flight any more (`close` true: the lease ends).
    struct Return {
        var id: Int64
        var key: Key
        var back: Int64
        var close: Bool
    }

    /// What the leases decided for one batch of reservations.
    struct Plan {
        /// Per reservation, its charges: those drawn from a lease carry its id.
        var charges: [[BudgetCharge]]
        /// Per reservation, the charges the shared total must still decide.
        var exact: [[BudgetCharge]]
        /// Per reservation, its amount (the same for each of its charges).
        var amounts: [Int64]
        var requests: [Request] = []
        /// The leases reservation `i` drew from.
        func leases(_ i: Int) -> [Int64] { charges[i].compactMap { $0.lease == 0 ? nil : $0.lease } }
    }

    private struct Drawn {
        var reserved: Int64
        var leases: [Int64]
        /// Every charge of the row drew from a lease: its settlement moves no shared total.
        var whole: Bool
    }

    private struct State {
        var leases: [Int64: Lease] = [:]
        /// The lease each key draws from now.
        var current: [Key: Int64] = [:]
        /// Rows committed with draws, until settled or released.
        var drawn: [Int64: Drawn] = [:]
        var deniedUntil: [Key: Double] = [:]
        /// Micros a second the key's last lease was spent at: the next one asks for `ttl` of it.
        var rate: [Key: Double] = [:]
        var reclaimedAt: Double = 0
        /// Reservations decided exactly per key since `seenSince`: a key is busy from ``busy`` on.
        var exactSeen: [Key: Int] = [:]
        var seenSince: Double = 0
    }

    /// Exact reservations on a key within one `ttl` before it asks for a lease: a total touched
    /// now and then (most per-client budgets) is not worth a lease's rows.
    static let busy = 4

    /// How long a lease is drawn from (0: no leases, every reservation is decided exactly).
    let ttl: Double
    private let state = Mutex(State())
    private let start = ContinuousClock.now

    init(ttl: Duration) {
        self.ttl = Double(ttl.components.seconds) + Double(ttl.components.attoseconds) / 1e18
    }

    /// Seconds on a monotonic clock.
    func now() -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// How long the database keeps a lease before any gateway may reclaim it, in milliseconds.
    var databaseTTLMillis: Int64 { Int64((2 * ttl + 2) * 1000) }

    /// Unused room of this gateway's leases counted in `window`: the shared total holds it as spent.
    func unused(in window: BudgetCharge.Window) -> Int64 {
        state.withLock { s in
            s.leases.values.reduce(0) { sum, l in window.contains(l.key.total, l.key.slot) ? sum + max(0, l.room) : sum }
        }
    }

    /// Whether a reclaim pass is due (once per `ttl`, at least a second apart).
    func reclaimDue(_ now: Double) -> Bool {
        state.withLock { s in
            guard ttl > 0, now - s.reclaimedAt >= max(1, ttl) else { return false }
            s.reclaimedAt = now
            return true
        }
    }

    // MARK: Settlements

    /// Takes the settlements and releases of rows whose charges all drew from leases still held
    /// out of `updates` (their cost difference goes to the leases, no shared total moves) and
    /// returns them; the leased part of the others is corrected here too. The others go to the
    /// budget function, which skips a leased charge while its lease exists — so a lease that may
    /// have outlived its database expiry (and been reclaimed) sends its settlements there.
    func settle(_ updates: inout LedgerBatch.Split, now: Double) -> LedgerBatch.Split {
        let safeAge = 2 * ttl + 1
        return state.withLock { s in
            var whole = LedgerBatch.Split([])
            func take(_ id: Int64, delta: (Int64) -> Int64) -> Bool {
                guard let d = s.drawn.removeValue(forKey: id) else { return false }
                var held = true
                for lease in d.leases {
                    s.leases[lease]?.used += delta(d.reserved)
                    s.leases[lease]?.inFlight -= 1
                    held = held && s.leases[lease].map { now - $0.takenAt < safeAge } ?? false
                }
                return d.whole && held
            }
            updates.settles.removeAll { u in
                guard take(u.id, delta: { u.cost - $0 }) else { return false }
                whole.settles.append(u)
                return true
            }
            updates.releases.removeAll { u in
                guard take(u.id, delta: { -$0 }) else { return false }
                whole.releases.append(u)
                return true
            }
            return whole
        }
    }

    // MARK: Reservations

    /// Draws what fits from the current leases, retires leases that are old, nearly spent or (when
    /// `closing`) all of them, and asks for leases where a busy key has none or its lease runs low.
    func plan(_ reservations: [LedgerEntry], now: Double, closing: Bool) -> Plan {
        var plan = Plan(charges: reservations.map(\.charges), exact: [], amounts: reservations.map(\.reservedMicros))
        guard ttl > 0 else {
            plan.exact = plan.charges
            return plan
        }
        return state.withLock { s in
            for (key, id) in s.current where closing || now - s.leases[id]!.takenAt >= ttl {
                Self.retire(id, key, &s, now: now)
            }
            // Past its database expiry a lease is another gateway's to reclaim: forget it.
            for (id, l) in s.leases where l.retiring && now - l.takenAt > 2 * ttl + 3 { Self.forget(id, &s) }
            if now - s.seenSince >= max(1, ttl) {
                s.exactSeen = [:]
                s.seenSince = now
            }
            var asked = Set<Key>()
            func ask(_ key: Key, _ c: BudgetCharge, unit: Int64, renewing: Bool = false) {
                guard !closing, unit > 0, !asked.contains(key), (s.deniedUntil[key] ?? 0) <= now else { return }
                if !renewing {
                    s.exactSeen[key, default: 0] += 1
                    guard s.exactSeen[key]! >= Self.busy else { return }
                }
                asked.insert(key)
                let want = max(16 * unit, Int64((s.rate[key] ?? 0) * ttl))
                plan.requests.append(Request(key: key, window: c.window, limit: c.limit, unit: unit, want: want))
            }
            plan.exact = plan.charges.indices.map { i in
                let amount = reservations[i].reservedMicros
                var exact: [BudgetCharge] = []
                for j in plan.charges[i].indices {
                    let c = plan.charges[i][j]
                    let key = Key(total: c.total, slot: c.slot)
                    var renewing = false
                    if c.enforced, amount > 0, let id = s.current[key], let lease = s.leases[id] {
                        if lease.room >= amount {
                            s.leases[id]!.used += amount
                            s.leases[id]!.inFlight += 1
                            plan.charges[i][j].lease = id
                            // Ask for the successor before this one runs out or ages.
                            let l = s.leases[id]!
                            if l.room < l.granted / 4 || now - l.takenAt >= ttl * 0.75 { ask(key, c, unit: amount, renewing: true) }
                            continue
                        }
                        Self.retire(id, key, &s, now: now)
                        renewing = true
                    }
                    exact.append(c)
                    if c.enforced { ask(key, c, unit: amount, renewing: renewing) }
                }
                return exact
            }
            return plan
        }
    }

    /// The budget function's answer: refused reservations give their draws back; grants become
    /// the keys' current leases (their predecessors retire); denied keys wait a while before asking again.
    func decided(_ plan: Plan, refused: [Int], grants: [(request: Int, id: Int64, granted: Int64)], now: Double) {
        state.withLock { s in
            for i in refused { Self.undraw(plan, i, &s) }
            var granted = Set<Int>()
            for g in grants {
                granted.insert(g.request)
                let key = plan.requests[g.request].key
                if let old = s.current[key] { Self.retire(old, key, &s, now: now) }
                s.leases[g.id] = Lease(id: g.id, key: key, granted: g.granted, takenAt: now)
                s.current[key] = g.id
            }
            for (i, r) in plan.requests.enumerated() where !granted.contains(i) {
                s.deniedUntil[r.key] = now + min(1, ttl)
            }
        }
    }

    /// What retiring leases give back in this commit.
    func returns() -> [Return] {
        state.withLock { s in
            s.leases.values.compactMap { l in
                guard l.retiring else { return nil }
                let back = max(0, l.room)
                if l.inFlight <= 0 { return Return(id: l.id, key: l.key, back: l.room, close: true) }
                return back > 0 ? Return(id: l.id, key: l.key, back: back, close: false) : nil
            }
        }
    }

    /// The commit that wrote `accepted` rows (ids by reservation index) and `returns` succeeded.
    /// `lost` are leases the database no longer had (reclaimed): they are forgotten.
    func committed(_ plan: Plan, ids: [Int: Int64], dropped: [Int], returns: [Return], lost: Set<Int64>) {
        state.withLock { s in
            for (i, id) in ids {
                let leases = plan.leases(i)
                guard !leases.isEmpty else { continue }
                s.drawn[id] = Drawn(reserved: plan.amounts[i], leases: leases, whole: plan.exact[i].isEmpty)
            }
            for i in dropped {
                Self.undraw(plan, i, &s)
                for id in plan.leases(i) { Self.forget(id, &s) }
            }
            for r in returns {
                if r.close { Self.forget(r.id, &s) } else { s.leases[r.id]?.granted -= r.back }
            }
            for id in lost { Self.forget(id, &s) }
        }
    }

    /// A commit failed: `reservations` (indices into the plan) are refused, so their draws go back.
    func failed(_ plan: Plan, _ reservations: [Int]) {
        state.withLock { s in
            for i in reservations { Self.undraw(plan, i, &s) }
        }
    }

    private static func undraw(_ plan: Plan, _ i: Int, _ s: inout State) {
        for c in plan.charges[i] where c.lease != 0 {
            guard s.leases[c.lease] != nil else { continue }
            s.leases[c.lease]!.used -= plan.amounts[i]
            s.leases[c.lease]!.inFlight -= 1
        }
    }

    private static func retire(_ id: Int64, _ key: Key, _ s: inout State, now: Double) {
        guard var l = s.leases[id], !l.retiring else { return }
        l.retiring = true
        s.leases[id] = l
        if s.current[key] == id { s.current[key] = nil }
        s.rate[key] = Double(max(0, l.used)) / max(0.1, now - l.takenAt)
    }

    private static func forget(_ id: Int64, _ s: inout State) {
        guard let l = s.leases.removeValue(forKey: id) else { return }
        if s.current[l.key] == id { s.current[l.key] = nil }
    }
}
