import Foundation
import GRDB
import TollgateCore

/// The embedded default store: an SQLite database in WAL mode (through GRDB), written by one
/// thread with group commit — every reservation that arrives while a transaction is being
/// committed goes into the next one, so many requests share one commit.
///
/// Durability: `synchronous = NORMAL` in WAL mode, so a committed reservation survives the gateway
/// being killed (`kill -9`); a power loss may lose the last commits.
public final class SQLiteLedger: SpendLedger, GroupCommitted, @unchecked Sendable {
    public let path: String
    let pool: DatabasePool
    let commits: GroupCommit

    /// Opens (creating and migrating) the database at `path`; another process opening the same
    /// file meanwhile waits for this one's migration (``SQLiteOpenLock``).
    public init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        config.busyMode = .timeout(5)
        let pool = try SQLiteOpenLock.holding(path) {
            let pool = try DatabasePool(path: path, configuration: config)
            try Self.migrator.migrate(pool)
            return pool
        }
        self.pool = pool
        commits = GroupCommit(label: "tollgate.ledger.writer") { batch in
            try pool.write { db in try Self.write(batch, db) }.map { .success($0) }
        }
    }

    /// The schema, as named steps; a step never changes once released.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: ledger, counters, pauses, alerts") { db in
            try db.execute(sql: """
                CREATE TABLE ledger (
                    id INTEGER PRIMARY KEY,
                    request_id TEXT NOT NULL,
                    route TEXT NOT NULL,
                    client TEXT NOT NULL,
                    reserved_micros INTEGER NOT NULL,
                    cost_micros INTEGER,
                    state TEXT NOT NULL DEFAULT 'reserved' CHECK (state IN ('reserved', 'settled', 'released')),
                    status INTEGER,
                    created_at INTEGER NOT NULL,
                    settled_at INTEGER
                );
                CREATE INDEX ledger_created_at ON ledger(created_at);
                CREATE TABLE usage_counters (
                    day TEXT NOT NULL,
                    route TEXT NOT NULL,
                    event TEXT NOT NULL,
                    count INTEGER NOT NULL,
                    saved_micros INTEGER NOT NULL,
                    PRIMARY KEY (day, route, event)
                );
                CREATE TABLE pauses (route TEXT PRIMARY KEY, paused_at INTEGER NOT NULL);
                CREATE TABLE alerts_fired (
                    budget TEXT NOT NULL,
                    scope TEXT NOT NULL,
                    period_start INTEGER NOT NULL,
                    threshold INTEGER NOT NULL,
                    fired_at INTEGER NOT NULL,
                    PRIMARY KEY (budget, scope, period_start, threshold)
                );
                """)
        }
        migrator.registerMigration("v2: page-token uses and solved challenges") { db in
            try db.execute(sql: """
                CREATE TABLE token_uses (nonce BLOB PRIMARY KEY, uses INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
                CREATE INDEX token_uses_expires ON token_uses(expires_ms);
                CREATE TABLE solved_challenges (challenge TEXT PRIMARY KEY, expires_s INTEGER NOT NULL);
                CREATE INDEX solved_challenges_expires ON solved_challenges(expires_s);
                """)
        }
        migrator.registerMigration("v3: session of each ledger entry") { db in
            try db.execute(sql: "ALTER TABLE ledger ADD COLUMN session TEXT NOT NULL DEFAULT ''")
        }
        migrator.registerMigration("v4: refusals by client and reason") { db in
            try db.execute(sql: """
                CREATE TABLE refusals (
                    day TEXT NOT NULL,
                    route TEXT NOT NULL,
                    client TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    count INTEGER NOT NULL,
                    PRIMARY KEY (day, route, client, reason)
                );
                """)
        }
        migrator.registerMigration("v5: API keys and OAuth clients") { db in
            try db.execute(sql: Self.identitySchema)
        }
        migrator.registerMigration("v6: the caller of each ledger entry") { db in
            try db.execute(sql: """
                ALTER TABLE ledger ADD COLUMN api_key TEXT NOT NULL DEFAULT '';
                ALTER TABLE ledger ADD COLUMN subject TEXT NOT NULL DEFAULT '';
                """)
        }
        migrator.registerMigration("v7: admin tokens and the audit log") { db in
            try db.execute(sql: Self.adminSchema)
        }
        migrator.registerMigration("v8: bans") { db in
            try db.execute(sql: Self.banSchema)
        }
        migrator.registerMigration("v9: verified email addresses") { db in
            try db.execute(sql: Self.verificationSchema)
        }
        return migrator
    }

    // MARK: Page-token uses and solved challenges

    public func tokenUses(nowMillis: Int64) throws -> [(nonce: Data, uses: Int, expiresMillis: Int64)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT nonce, uses, expires_ms FROM token_uses WHERE expires_ms > ?", arguments: [nowMillis])
                .map { (nonce: $0["nonce"], uses: $0["uses"], expiresMillis: $0["expires_ms"]) }
        }
    }

    public func solvedChallenges(nowSeconds: Int64) throws -> [(challenge: String, expiresSeconds: Int64)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT challenge, expires_s FROM solved_challenges WHERE expires_s >= ?", arguments: [nowSeconds])
                .map { (challenge: $0["challenge"], expiresSeconds: $0["expires_s"]) }
        }
    }

    public func spend(since: Int64) throws -> [SpendRow] {
        try pool.read { db in try Self.spend(db, since: since) }
    }

    /// Unreleased entries since `since`, unsettled ones at their reserved amount.
    static func spend(_ db: Database, since: Int64) throws -> [SpendRow] {
        try Row.fetchAll(db, sql: """
            SELECT route, client, session, api_key, subject, email, created_at, COALESCE(cost_micros, reserved_micros) AS micros
            FROM ledger WHERE state != 'released' AND created_at >= ?
            """, arguments: [since]).map {
            SpendRow(route: $0["route"], client: $0["client"], session: $0["session"], keyID: $0["api_key"], subject: $0["subject"],
                     email: $0["email"], createdAt: $0["created_at"], micros: $0["micros"])
        }
    }

    public func pausedRoutes() throws -> Set<String> {
        try pool.read { db in Set(try String.fetchAll(db, sql: "SELECT route FROM pauses")) }
    }

    public func setPaused(_ route: String, paused: Bool, at: Int64) throws {
        try pool.write { db in
            if paused {
                try db.execute(sql: "INSERT OR REPLACE INTO pauses (route, paused_at) VALUES (?, ?)", arguments: [route, at])
            } else {
                try db.execute(sql: "DELETE FROM pauses WHERE route = ?", arguments: [route])
            }
        }
    }

    public func recordAlert(budget: String, scope: String, periodStart: Int64, threshold: Int, at: Int64) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: """
                INSERT OR IGNORE INTO alerts_fired (budget, scope, period_start, threshold, fired_at) VALUES (?, ?, ?, ?, ?)
                """, arguments: [budget, scope, periodStart, threshold, at])
            return db.changesCount > 0
        }
    }

    // MARK: Group commit

    /// Writes one batch (in the caller's transaction); returns the new reservations' ids in order.
    static func write(_ batch: LedgerBatch, _ db: Database) throws -> [Int64] {
        var ids: [Int64] = []
        for entry in batch.reservations {
            try db.executeCached("""
                INSERT INTO ledger (request_id, route, client, session, api_key, subject, email, email_domain,
                                    reserved_micros, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [entry.requestID, entry.route, entry.client, entry.session, entry.keyID, entry.subject,
                                 entry.email, entry.emailDomain, entry.reservedMicros, entry.createdAt])
            ids.append(db.lastInsertedRowID)
        }
        for update in batch.updates {
            switch update {
            case .settle(let id, let cost, let status, let at):
                try db.executeCached("""
                    UPDATE ledger SET state = 'settled', cost_micros = ?, status = ?, settled_at = ? WHERE id = ? AND state = 'reserved'
                    """, [cost, status, at, id])
            case .release(let id, let status, let at):
                try db.executeCached("""
                    UPDATE ledger SET state = 'released', cost_micros = 0, status = ?, settled_at = ? WHERE id = ? AND state = 'reserved'
                    """, [status, at, id])
            }
        }
        for (nonce, entry) in batch.tokenUses {
            try db.executeCached("""
                INSERT INTO token_uses (nonce, uses, expires_ms) VALUES (?, ?, ?)
                ON CONFLICT (nonce) DO UPDATE SET uses = max(uses, excluded.uses)
                """, [nonce, entry.uses, entry.expires])
        }
        try write(batch.confirmations, batch.verificationRequests, db)
        for (challenge, expires) in batch.solved {
            try db.executeCached("INSERT OR IGNORE INTO solved_challenges (challenge, expires_s) VALUES (?, ?)", [challenge, expires])
        }
        if batch.includesCounters {
            let now = Int64(Date().timeIntervalSince1970)
            try db.executeCached("DELETE FROM token_uses WHERE expires_ms < ?", [now * 1000])
            try db.executeCached("DELETE FROM solved_challenges WHERE expires_s < ?", [now])
        }
        for (key, value) in batch.counters {
            try db.executeCached("""
                INSERT INTO usage_counters (day, route, event, count, saved_micros) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (day, route, event) DO UPDATE SET count = count + excluded.count,
                    saved_micros = saved_micros + excluded.saved_micros
                """, [key.day, key.route, key.event.rawValue, value.count, value.saved])
        }
        for (key, count) in batch.refusals {
            try db.executeCached("""
                INSERT INTO refusals (day, route, client, reason, count) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (day, route, client, reason) DO UPDATE SET count = count + excluded.count
                """, [key.day, key.route, key.client, key.reason, count])
        }
        return ids
    }
}

extension Database {
    /// Runs `sql` through this connection's statement cache: compiled once per connection, not
    /// once per row (the writer runs the same few statements for every row of every batch).
    func executeCached(_ sql: String, _ arguments: StatementArguments) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }
}
