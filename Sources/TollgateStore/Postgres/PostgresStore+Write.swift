import Foundation
import NIOCore
import PostgresNIO

/// The group commit's writer for PostgreSQL: what one batch does to the database.
extension PostgresStore {
    /// Writes one batch; returns the answer to each reservation in the batch's order (its id, the
    /// budget that refused it, or why it could not be written).
    ///
    /// First the leases (``BudgetLeases``) draw what they can: a reservation whose charges all fit
    /// in this gateway's leases needs no shared total. What is left — charges no lease covers,
    /// lease requests, settlements of rows a shared total counts — is decided in one call of
    /// ``PostgresBudgets/decideFunction``, which commits without waiting for its WAL flush: the
    /// locks other gateways' commits on the same totals wait for are held for one function's run,
    /// not a round trip per statement and a disk flush. Then one transaction writes the accepted
    /// reservations' rows (those drawn from a lease only while the lease still exists), settlements
    /// no total counts, the leases' returns, journals and counters, and commits synchronously: its
    /// flush covers the function's WAL too (the log is flushed in order), so when a reservation is
    /// answered, the total or lease that counts it and its row are both durable. Should that
    /// transaction fail, its reservations are refused and their draws go back, while the
    /// function's counts stand: totals can only be too high, never too low. A batch with nothing
    /// for a shared total (no budgets, or everything within leases) makes no function call.
    static func write(_ b: LedgerBatch, budgets: PostgresBudgets, gateway: String,
                      _ s: PostgresConnections.Session) throws -> [Result<Int64, any Error>] {
        let leases = budgets.leases
        let now = leases.now()
        var updates = LedgerBatch.Split(b.updates)
        let leased = leases.settle(&updates, now: now)
        var plan = leases.plan(b.reservations, now: now, closing: b.closing)
        // A window refused moments ago answers again without the database (a flood on a spent
        // budget), unless this gateway is giving money back.
        if !b.updates.isEmpty { budgets.forgetRefusals() }
        var known: [Int: BudgetRefused] = [:]
        for i in plan.exact.indices where !plan.exact[i].isEmpty {
            guard let refused = budgets.knownRefusal(plan.exact[i], amount: plan.amounts[i], now: now) else { continue }
            known[i] = refused
            plan.exact[i] = []
        }
        let budgetUpdates = !updates.isEmpty && budgets.inUse.load(ordering: .relaxed)
        var decision = PostgresBudgets.Decision(refusals: Array(repeating: nil, count: b.reservations.count), totals: [:])
        if plan.exact.contains(where: { !$0.isEmpty }) || !plan.requests.isEmpty || budgetUpdates {
            do {
                decision = try budgets.decide(b.reservations, plan: plan, updates: budgetUpdates ? updates : LedgerBatch.Split([]),
                                              gateway: gateway, s)
            } catch {
                leases.failed(plan, Array(b.reservations.indices))
                throw error
            }
            budgets.committed(decision)
        }
        for (i, refused) in known { decision.refusals[i] = refused }
        leases.decided(plan, refused: decision.refusals.indices.filter { decision.refusals[$0] != nil }, grants: decision.grants, now: now)
        let accepted = b.reservations.indices.filter { decision.refusals[$0] == nil }
        let plain = budgetUpdates ? leased : leased.merged(with: updates)
        let returns = leases.returns()
        // Journals other than confirmations travel only with the counters.
        guard !accepted.isEmpty || !b.confirmations.isEmpty || b.includesCounters || !plain.isEmpty || !returns.isEmpty else {
            return decision.refusals.map { .failure($0!) }
        }
        let reclaim = b.includesCounters && budgets.inUse.load(ordering: .relaxed) && leases.reclaimDue(now)
        // The once-a-second commit runs while leases may need it; with nothing batched, nothing to
        // give back and no reclaim due, it opens no transaction.
        if b.isEmpty && returns.isEmpty && !reclaim { return [] }
        let (ids, found): ([Int64?], Set<Int64>)
        do {
            (ids, found) = try s.transaction { s in
                try applyUpdates(plain, s)
                let found = try giveBack(returns, s)
                let ids = try insert(accepted.map { b.reservations[$0] }, charges: accepted.map { plan.charges[$0] }, s)
                try writeJournals(b, s)
                try writeCounters(b, s)
                if b.includesCounters { try budgets.prune(s, now: Int64(Date().timeIntervalSince1970)) }
                if reclaim { try s.run("SELECT tollgate_lease_reclaim()") }
                return (ids, found)
            }
        } catch {
            leases.failed(plan, accepted)
            throw error
        }
        var answers: [Result<Int64, any Error>] = decision.refusals.map { r in r.map { .failure($0) } ?? .success(0) }
        var written: [Int: Int64] = [:], dropped: [Int] = []
        for (k, i) in accepted.enumerated() {
            if let id = ids[k] {
                answers[i] = .success(id)
                written[i] = id
            } else {
                answers[i] = .failure(StoreError("a budget lease this reservation drew from was reclaimed before its row was written"))
                dropped.append(i)
            }
        }
        let given = returns.filter { found.contains($0.id) }
        leases.committed(plan, ids: written, dropped: dropped, returns: given, lost: Set(returns.map(\.id)).subtracting(found))
        budgets.returned(given)
        return answers
    }

    /// Settlements and releases no shared total counts (none, or all their charges drew from
    /// leases), one statement each.
    static func applyUpdates(_ u: LedgerBatch.Split, _ s: PostgresConnections.Session) throws {
        if !u.settles.isEmpty {
            try s.run("""
                UPDATE ledger AS l SET state = 'settled', cost_micros = x.cost, status = NULLIF(x.status, -1), settled_at = x.at
                FROM unnest(\(u.settles.map(\.id))::bigint[], \(u.settles.map(\.cost))::bigint[], \(u.settles.map(\.status))::int[],
                            \(u.settles.map(\.at))::bigint[]) AS x(id, cost, status, at)
                WHERE l.id = x.id AND l.state = 'reserved'
                """)
        }
        if !u.releases.isEmpty {
            try s.run("""
                UPDATE ledger AS l SET state = 'released', cost_micros = 0, status = NULLIF(x.status, -1), settled_at = x.at
                FROM unnest(\(u.releases.map(\.id))::bigint[], \(u.releases.map(\.status))::int[], \(u.releases.map(\.at))::bigint[])
                    AS x(id, status, at)
                WHERE l.id = x.id AND l.state = 'reserved'
                """)
        }
    }

    /// Gives back retiring leases' room, or ends them with what is left (negative when
    /// settlements cost more than was reserved: the slot then counts more). Returns the leases
    /// the database still had; the others were reclaimed, and their money with them.
    static func giveBack(_ r: [BudgetLeases.Return], _ s: PostgresConnections.Session) throws -> Set<Int64> {
        guard !r.isEmpty else { return [] }
        var found = Set<Int64>()
        for row in try s.run("""
            WITH c AS (SELECT * FROM unnest(\(r.map(\.id))::bigint[], \(r.map(\.back))::bigint[], \(r.map(\.close))::boolean[]) AS u(id, back, done)),
            gone AS (DELETE FROM budget_leases AS l USING c WHERE l.id = c.id AND c.done RETURNING l.id, l.budget, l.scope, l.slot, c.back),
            kept AS (UPDATE budget_leases AS l SET granted = l.granted - c.back FROM c WHERE l.id = c.id AND NOT c.done
                     RETURNING l.id, l.budget, l.scope, l.slot, c.back),
            found AS (SELECT * FROM gone UNION ALL SELECT * FROM kept),
            moved AS (UPDATE budget_spend AS b SET micros = b.micros - m.back
                      FROM (SELECT budget, scope, slot, SUM(back)::BIGINT AS back FROM found GROUP BY 1, 2, 3) AS m
                      WHERE b.budget = m.budget AND b.scope = m.scope AND b.slot = m.slot RETURNING 1)
            SELECT id FROM found
            """) {
            found.insert(try row.decode(Int64.self))
        }
        return found
    }

    /// The reservations, in one statement; ids matched back by request id (unique per request).
    /// A row whose charges drew from leases is written only if all of them still exist (`FOR KEY
    /// SHARE` holds them until this commit, so a reclaim waits for it and then counts the row);
    /// one whose lease is gone comes back nil.
    static func insert(_ r: [LedgerEntry], charges: [[BudgetCharge]], _ s: PostgresConnections.Session) throws -> [Int64?] {
        guard !r.isEmpty else { return [] }
        let leaseLists = charges.map { $0.compactMap { $0.lease == 0 ? nil : String($0.lease) }.joined(separator: ",") }
        let leaseIDs = Array(Set(charges.flatMap { $0.map(\.lease) }.filter { $0 != 0 }))
        let rows = try s.run("""
            WITH alive AS (SELECT id FROM budget_leases WHERE id = ANY(\(leaseIDs)::bigint[]) FOR KEY SHARE)
            INSERT INTO ledger (request_id, route, client, session, api_key, subject, email, email_domain, reserved_micros, created_at,
                                charges)
            SELECT u.request_id, u.route, u.client, u.session, u.api_key, u.subject, u.email, u.email_domain, u.reserved_micros,
                   u.created_at, u.charges
            FROM unnest(\(r.map(\.requestID))::text[], \(r.map(\.route))::text[], \(r.map(\.client))::text[],
                        \(r.map(\.session))::text[], \(r.map(\.keyID))::text[], \(r.map(\.subject))::text[],
                        \(r.map(\.email))::text[], \(r.map(\.emailDomain))::text[], \(r.map(\.reservedMicros))::bigint[],
                        \(r.map(\.createdAt))::bigint[], \(charges.map { BudgetCharge.encode($0) })::text[], \(leaseLists)::text[])
                AS u(request_id, route, client, session, api_key, subject, email, email_domain, reserved_micros, created_at, charges, leases)
            WHERE u.leases = '' OR string_to_array(u.leases, ',')::BIGINT[] <@ ARRAY(SELECT id FROM alive)
            RETURNING id, request_id
            """)
        var byRequest: [String: [Int64]] = [:]
        for row in rows {
            let (id, request) = try row.decode((Int64, String).self)
            byRequest[request, default: []].append(id)
        }
        for key in byRequest.keys { byRequest[key]?.sort() }
        return r.map { e in
            guard let id = byRequest[e.requestID]?.first else { return nil }
            byRequest[e.requestID]?.removeFirst()
            return id
        }
    }

    static func writeJournals(_ b: LedgerBatch, _ s: PostgresConnections.Session) throws {
        if !b.tokenUses.isEmpty {
            let t = Array(b.tokenUses)
            try s.run("""
                INSERT INTO token_uses (nonce, uses, expires_ms)
                SELECT * FROM unnest(\(t.map { ByteBuffer(bytes: $0.key) })::bytea[], \(t.map { Int32($0.value.uses) })::int[],
                                     \(t.map(\.value.expires))::bigint[])
                ON CONFLICT (nonce) DO UPDATE SET uses = GREATEST(token_uses.uses, excluded.uses)
                """)
        }
        if !b.solved.isEmpty {
            let v = Array(b.solved)
            try s.run("""
                INSERT INTO solved_challenges (challenge, expires_s) SELECT * FROM unnest(\(v.map(\.key))::text[], \(v.map(\.value))::bigint[])
                ON CONFLICT DO NOTHING
                """)
        }
        let now = Int64(Date().timeIntervalSince1970)
        if !b.confirmations.isEmpty {
            // Other gateways follow `seq > last seen`: the lock (until this commit) makes sequence
            // numbers visible in the order they are taken. Taken only by commits that carry a
            // confirmation, a few per sign-up.
            try s.run("LOCK TABLE verification_confirmations IN EXCLUSIVE MODE")
            let c = b.confirmations
            try s.run("""
                INSERT INTO verification_confirmations
                    (nonce, link_expires_ms, session_tag, address_hash, domain, verified_until_ms, confirmed_at)
                SELECT n, l, t, h, d, u, \(now) FROM unnest(
                    \(c.map { ByteBuffer(bytes: $0.nonce) })::bytea[], \(c.map(\.linkExpiresMillis))::bigint[], \(c.map(\.sessionTag))::text[],
                    \(c.map(\.email.addressHash))::text[], \(c.map(\.email.domain))::text[], \(c.map(\.email.untilMillis))::bigint[]
                ) AS x(n, l, t, h, d, u)
                ON CONFLICT DO NOTHING
                """)
            try announce(.verification, s)
        }
        if !b.verificationRequests.isEmpty {
            let r = b.verificationRequests
            try s.run("""
                INSERT INTO verification_requests (address_hash, domain, session_tag, requested_at)
                SELECT * FROM unnest(\(r.map(\.addressHash))::text[], \(r.map(\.domain))::text[], \(r.map(\.sessionTag))::text[],
                                     \(r.map(\.at))::bigint[])
                """)
            try s.run("DELETE FROM verification_confirmations WHERE link_expires_ms < \(now * 1000) AND verified_until_ms < \(now * 1000)")
        }
        if b.includesCounters {
            try s.run("DELETE FROM token_uses WHERE expires_ms < \(now * 1000)")
            try s.run("DELETE FROM solved_challenges WHERE expires_s < \(now)")
        }
    }

    static func writeCounters(_ b: LedgerBatch, _ s: PostgresConnections.Session) throws {
        if !b.counters.isEmpty {
            let c = Array(b.counters)
            try s.run("""
                INSERT INTO usage_counters (day, route, event, count, saved_micros)
                SELECT * FROM unnest(\(c.map(\.key.day))::text[], \(c.map(\.key.route))::text[], \(c.map(\.key.event.rawValue))::text[],
                                     \(c.map(\.value.count))::bigint[], \(c.map(\.value.saved))::bigint[])
                ON CONFLICT (day, route, event) DO UPDATE SET count = usage_counters.count + excluded.count,
                    saved_micros = usage_counters.saved_micros + excluded.saved_micros
                """)
        }
        if !b.refusals.isEmpty {
            let r = Array(b.refusals)
            try s.run("""
                INSERT INTO refusals (day, route, client, reason, count)
                SELECT * FROM unnest(\(r.map(\.key.day))::text[], \(r.map(\.key.route))::text[], \(r.map(\.key.client))::text[],
                                     \(r.map(\.key.reason))::text[], \(r.map(\.value))::bigint[])
                ON CONFLICT (day, route, client, reason) DO UPDATE SET count = refusals.count + excluded.count
                """)
        }
    }
}
