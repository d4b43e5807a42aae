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
    let budgets: PostgresBudgets
    /// Change notifications received by this store's listeners (``listen(_:)``).
    public let notificationsReceived = NotificationCounter()
    /// This store's name among the gateways on the database (one store per gateway process).
    public let instanceID: String

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
        let budgets = PostgresBudgets(leaseTTL: config.budgetLease)
        let gateway = UUID().uuidString
        self.budgets = budgets
        instanceID = gateway
        commits = GroupCommit(label: "tollgate.postgres.writer",
                              // While it holds leases, the once-a-second commit runs even with nothing
                              // else to write: leases retire, and dead gateways' leases are reclaimed.
                              idle: { budgets.inUse.load(ordering: .relaxed) && budgets.leases.ttl > 0 }) { batch in
            try connections.with { try Self.write(batch, budgets: budgets, gateway: gateway, $0) }
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
}
