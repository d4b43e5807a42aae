import Foundation
import Logging
import NIOCore
import PostgresNIO
import TollgateCore

/// The store for several gateways: one PostgreSQL database they all use (`store: postgres://…`).
///
/// Same contract as ``SQLiteLedger``, checked by the same conformance suite: a reservation's
/// `done` runs only after its row is committed (group commit: one transaction, one multi-row
/// statement per kind, for everything that arrived meanwhile); counters and journals follow at
/// most a second behind. Operator changes (keys, clients, bans) take their table's lock for the
/// length of one short transaction, so versions are committed in the order they were taken and a
/// gateway following `version > last seen` cannot skip one.
///
/// Every call blocks its caller until PostgreSQL answers or the query timeout passes; no call
/// runs on a data-plane event loop (see ``PostgresConnections``).
public final class PostgresStore: DurableStore, GroupCommitted, SharedBudgets, Sendable {
    public let config: PostgresStoreConfig
    let connections: PostgresConnections
    let commits: GroupCommit
    let budgets = PostgresBudgets()
    /// Change notifications received by this store's listeners (``listen(_:)``).
    public let notificationsReceived = NotificationCounter()
    /// This store's name among the gateways on the database (one store per gateway process).
    public let instanceID = UUID().uuidString

    /// Connects, applies the schema's migrations (one gateway at a time), and starts group commit.
    public init(config: PostgresStoreConfig, secrets: [String: String], logger: Logger) throws {
        self.config = config
        var password: String?
        if let name = config.passwordSecret {
            guard let value = secrets[name] else { throw StoreError("store.password names the secret \(name), which is not set") }
            password = value
        }
        var driverLogger = logger
        driverLogger.logLevel = .error
        let connections = try PostgresConnections(config: config, password: password, logger: driverLogger)
        do {
            try PostgresSchema.migrate(connections)
        } catch {
            connections.shutdown()
            throw StoreError("cannot open the store at \(config.description): \(error)")
        }
        self.connections = connections
        let budgets = budgets
        commits = GroupCommit(label: "tollgate.postgres.writer") { batch in
            try connections.with { try Self.write(batch, budgets: budgets, $0) }
        }
    }

    public func close() {
        commits.stop()
        connections.shutdown()
    }

    // MARK: Reads

    public func spend(since: Int64) throws -> [SpendRow] {
        try connections.run("""
            SELECT route, client, session, api_key, subject, email, created_at, COALESCE(cost_micros, reserved_micros)
            FROM ledger WHERE state <> 'released' AND created_at >= \(since)
            """).map { row in
            let (route, client, session, key, subject, email, createdAt, micros) =
                try row.decode((String, String, String, String, String, String, Int64, Int64).self)
            return SpendRow(route: route, client: client, session: session, keyID: key, subject: subject, email: email,
                            createdAt: createdAt, micros: micros)
        }
    }

    public func pausedRoutes() throws -> Set<String> {
        Set(try connections.run("SELECT route FROM pauses").map { try $0.decode(String.self) })
    }

    public func setPaused(_ route: String, paused: Bool, at: Int64) throws {
        try connections.transaction { s in
            if paused {
                try s.run("""
                    INSERT INTO pauses (route, paused_at) VALUES (\(route), \(at)) ON CONFLICT (route) DO UPDATE SET paused_at = excluded.paused_at
                    """)
            } else {
                try s.run("DELETE FROM pauses WHERE route = \(route)")
            }
            try Self.announce(.pauses, s)
        }
    }

    public func recordAlert(budget: String, scope: String, periodStart: Int64, threshold: Int, at: Int64) throws -> Bool {
        try connections.with { s in
            try s.changed("""
                INSERT INTO alerts_fired (budget, scope, period_start, threshold, fired_at)
                VALUES (\(budget), \(scope), \(periodStart), \(Int32(threshold)), \(at)) ON CONFLICT DO NOTHING
                """) > 0
        }
    }

    public func tokenUses(nowMillis: Int64) throws -> [(nonce: Data, uses: Int, expiresMillis: Int64)] {
        try connections.run("SELECT nonce, uses, expires_ms FROM token_uses WHERE expires_ms > \(nowMillis)").map { row in
            let (nonce, uses, expires) = try row.decode((Data, Int32, Int64).self)
            return (nonce: nonce, uses: Int(uses), expiresMillis: expires)
        }
    }

    public func solvedChallenges(nowSeconds: Int64) throws -> [(challenge: String, expiresSeconds: Int64)] {
        try connections.run("SELECT challenge, expires_s FROM solved_challenges WHERE expires_s >= \(nowSeconds)").map { row in
            let (challenge, expires) = try row.decode((String, Int64).self)
            return (challenge: challenge, expiresSeconds: expires)
        }
    }

    public func confirmations(nowMillis: Int64) throws -> [VerificationConfirmation] {
        try connections.run("""
            SELECT nonce, link_expires_ms, session_tag, address_hash, domain, verified_until_ms
            FROM verification_confirmations WHERE link_expires_ms > \(nowMillis) OR verified_until_ms > \(nowMillis)
            """).map { row in
            let (nonce, linkExpires, tag, hash, domain, until) = try row.decode((Data, Int64, String, String, String, Int64).self)
            return VerificationConfirmation(nonce: nonce, linkExpiresMillis: linkExpires, sessionTag: tag,
                                            email: VerifiedEmail(addressHash: hash, domain: domain, untilMillis: until))
        }
    }

    public func confirmations(after cursor: Int64, limit: Int) throws -> (confirmations: [VerificationConfirmation], cursor: Int64) {
        var next = cursor
        let found = try connections.run("""
            SELECT seq, nonce, link_expires_ms, session_tag, address_hash, domain, verified_until_ms
            FROM verification_confirmations WHERE seq > \(cursor) ORDER BY seq LIMIT \(Int64(limit))
            """).map { row in
            let (seq, nonce, linkExpires, tag, hash, domain, until) = try row.decode((Int64, Data, Int64, String, String, String, Int64).self)
            next = max(next, seq)
            return VerificationConfirmation(nonce: nonce, linkExpiresMillis: linkExpires, sessionTag: tag,
                                            email: VerifiedEmail(addressHash: hash, domain: domain, untilMillis: until))
        }
        return (found, next)
    }

    // MARK: Shared budgets

    public func latestTotal(_ window: BudgetCharge.Window) -> Int64? { budgets.latestTotal(window) }

    public func raiseTotals(_ totals: [(charge: BudgetCharge, micros: Int64)]) throws {
        try connections.transaction { try budgets.raise(totals, $0) }
    }

    // MARK: Group commit

    /// Writes one batch in two transactions on one connection; returns the answer to each
    /// reservation in the batch's order (its id, or the budget that refused it).
    ///
    /// The first decides budget totals — settlements and releases (whose cost deltas go back to
    /// the totals), then the reservations' charges under the totals' locks — in one call of
    /// ``PostgresBudgets/commitFunction``, which commits without waiting for its WAL flush: the
    /// locks other gateways' commits on the same totals wait for are held for one function's run,
    /// not a round trip per statement and a disk flush. The second writes the accepted reservations'
    /// rows and the rest, and commits synchronously: its flush covers the first's WAL too (the log
    /// is flushed in order), so when a reservation is answered, the total that counts it and its
    /// row are both durable. Should the second fail, its reservations are refused while the
    /// first's counts stand: totals can only be too high (money counted that no call spent),
    /// never too low. Without budgets (no charges, no entry ever counted) only the second runs.
    static func write(_ b: LedgerBatch, budgets: PostgresBudgets, _ s: PostgresConnections.Session) throws -> [Result<Int64, BudgetRefused>] {
        var decision = PostgresBudgets.Decision(refusals: Array(repeating: nil, count: b.reservations.count), totals: [:])
        let charged = b.reservations.contains { !$0.charges.isEmpty }
        let updates = LedgerBatch.Split(b.updates)
        let budgetUpdates = !b.updates.isEmpty && (charged || budgets.inUse.load(ordering: .relaxed))
        if charged || budgetUpdates {
            decision = try budgets.decide(b.reservations, updates: budgetUpdates ? updates : LedgerBatch.Split([]), s)
            budgets.committed(decision)
        }
        let accepted = b.reservations.indices.filter { decision.refusals[$0] == nil }
        // Journals other than confirmations travel only with the counters.
        guard !accepted.isEmpty || !b.confirmations.isEmpty || b.includesCounters || (!b.updates.isEmpty && !budgetUpdates) else {
            return decision.refusals.map { .failure($0!) }
        }
        var ids = try s.transaction { s in
            if !budgetUpdates { try applyUpdates(updates, s) }
            let ids = try insert(accepted.map { b.reservations[$0] }, s)
            try writeJournals(b, s)
            try writeCounters(b, s)
            if b.includesCounters { try budgets.prune(s, now: Int64(Date().timeIntervalSince1970)) }
            return ids
        }[...]
        return decision.refusals.map { refusal in refusal.map { .failure($0) } ?? .success(ids.popFirst()!) }
    }

    /// Settlements and releases of entries no budget counts, one statement each.
    private static func applyUpdates(_ u: LedgerBatch.Split, _ s: PostgresConnections.Session) throws {
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

    /// The reservations, in one statement; ids matched back by request id (unique per request).
    private static func insert(_ r: [LedgerEntry], _ s: PostgresConnections.Session) throws -> [Int64] {
        guard !r.isEmpty else { return [] }
        let rows = try s.run("""
            INSERT INTO ledger (request_id, route, client, session, api_key, subject, email, email_domain, reserved_micros, created_at,
                                charges)
            SELECT * FROM unnest(\(r.map(\.requestID))::text[], \(r.map(\.route))::text[], \(r.map(\.client))::text[],
                                 \(r.map(\.session))::text[], \(r.map(\.keyID))::text[], \(r.map(\.subject))::text[],
                                 \(r.map(\.email))::text[], \(r.map(\.emailDomain))::text[], \(r.map(\.reservedMicros))::bigint[],
                                 \(r.map(\.createdAt))::bigint[], \(r.map { BudgetCharge.encode($0.charges) })::text[])
            RETURNING id, request_id
            """)
        var byRequest: [String: [Int64]] = [:]
        for row in rows {
            let (id, request) = try row.decode((Int64, String).self)
            byRequest[request, default: []].append(id)
        }
        for key in byRequest.keys { byRequest[key]?.sort() }
        return try r.map { e in
            guard let id = byRequest[e.requestID]?.first else { throw StoreError("a reservation came back without its id") }
            byRequest[e.requestID]?.removeFirst()
            return id
        }
    }

    private static func writeJournals(_ b: LedgerBatch, _ s: PostgresConnections.Session) throws {
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

    private static func writeCounters(_ b: LedgerBatch, _ s: PostgresConnections.Session) throws {
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
