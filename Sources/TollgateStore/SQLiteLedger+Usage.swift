import Foundation
import GRDB
import TollgateCore

/// ``UsageQueries`` on an SQLite database: the gateway's own store, or a read-only view of its
/// file for the CLI.
struct SQLiteUsage: UsageQueries {
    let pool: DatabasePool

    init(pool: DatabasePool) { self.pool = pool }

    init(readOnlyPath path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw NSError(domain: "tollgate", code: 1, userInfo: [NSLocalizedDescriptionKey: "no usage database at \(path) (has the gateway run with this config?)"])
        }
        var config = Configuration()
        config.readonly = true
        pool = try DatabasePool(path: path, configuration: config)
    }

    func callTotals(by grouping: UsageReport.Grouping, since: Int64) throws -> [UsageTotals] {
        let keyExpr = grouping == .day ? "date(created_at, 'unixepoch')" : grouping == .key ? "api_key" : grouping.rawValue
        return try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT \(keyExpr) AS k,
                       SUM(CASE WHEN state != 'released' THEN 1 ELSE 0 END) AS calls,
                       SUM(CASE WHEN state = 'settled' THEN cost_micros ELSE 0 END) AS spent,
                       SUM(CASE WHEN state = 'reserved' THEN reserved_micros ELSE 0 END) AS open
                FROM ledger WHERE created_at >= ? GROUP BY k
                """, arguments: [since]).map(Self.totals)
        }
    }

    func cacheHits(by grouping: UsageReport.Grouping, sinceDay: String) throws -> [(key: String, count: Int64, savedMicros: Int64)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT \(grouping.rawValue) AS k, SUM(count) AS n, SUM(saved_micros) AS saved
                FROM usage_counters WHERE day >= ? AND event = ? GROUP BY k
                """, arguments: [sinceDay, UsageEvent.cacheHit.rawValue]).map { (key: $0["k"], count: $0["n"], savedMicros: $0["saved"]) }
        }
    }

    func keyUses() throws -> [(id: String, uses: Int64)] {
        try pool.read { db in
            guard try db.tableExists("api_keys") else { return [] }
            return try Row.fetchAll(db, sql: "SELECT id, uses FROM api_keys").map { (id: $0["id"], uses: $0["uses"]) }
        }
    }

    /// The refusals table, and (databases from before it) refused_* counters, which knew route, day
    /// and reason but not the client.
    func refusals(by grouping: UsageReport.Grouping, sinceDay: String) throws -> [(key: String, reason: String, count: Int64)] {
        var sql = "SELECT \(grouping.rawValue) AS k, reason, SUM(count) AS n FROM refusals WHERE day >= ? GROUP BY k, reason"
        if grouping != .client {
            sql = """
                SELECT k, reason, SUM(n) AS n FROM (
                    SELECT \(grouping.rawValue) AS k, reason, count AS n FROM refusals WHERE day >= ?1
                    UNION ALL
                    SELECT \(grouping == .reason ? "substr(event, 9)" : grouping.rawValue) AS k, substr(event, 9) AS reason, count AS n
                    FROM usage_counters WHERE day >= ?1 AND event LIKE 'refused_%'
                ) GROUP BY k, reason
                """
        }
        return try pool.read { db in
            try Row.fetchAll(db, sql: sql, arguments: [sinceDay]).map { (key: $0["k"], reason: $0["reason"], count: $0["n"]) }
        }
    }

    func domainTotals(since: Int64, now: Int64) throws -> DomainUsage? {
        try pool.read { db in
            guard try db.tableExists("verification_requests") else { return nil }
            var d = DomainUsage()
            d.calls = try Row.fetchAll(db, sql: """
                SELECT email_domain AS k,
                       SUM(CASE WHEN state != 'released' THEN 1 ELSE 0 END) AS calls,
                       SUM(CASE WHEN state = 'settled' THEN cost_micros ELSE 0 END) AS spent,
                       SUM(CASE WHEN state = 'reserved' THEN reserved_micros ELSE 0 END) AS open
                FROM ledger WHERE created_at >= ? AND email_domain != '' GROUP BY k
                """, arguments: [since]).map(Self.totals)
            d.requests = try Row.fetchAll(db, sql: """
                SELECT domain AS k, COUNT(*) AS n, COUNT(DISTINCT address_hash) AS a FROM verification_requests
                WHERE requested_at >= ? GROUP BY k
                """, arguments: [since]).map { (domain: $0["k"], count: $0["n"], addresses: $0["a"]) }
            d.confirmations = try Row.fetchAll(db, sql: """
                SELECT domain AS k, COUNT(*) AS n FROM verification_confirmations WHERE confirmed_at >= ? GROUP BY k
                """, arguments: [since]).map { (domain: $0["k"], count: $0["n"]) }
            d.bans = try Row.fetchAll(db, sql: """
                SELECT value AS k, MAX(COALESCE(expires_at, 0)) AS until, MIN(COALESCE(expires_at, 0)) AS forever FROM bans
                WHERE kind = 'domain' AND removed_at IS NULL AND (expires_at IS NULL OR expires_at > ?) GROUP BY k
                """, arguments: [now]).map { (domain: $0["k"], until: ($0["forever"] as Int64) == 0 ? 0 : $0["until"]) }
            return d
        }
    }

    func spend(since: Int64) throws -> [SpendRow] {
        try pool.read { db in try SQLiteLedger.spend(db, since: since) }
    }

    private static func totals(_ row: Row) -> UsageTotals {
        UsageTotals(key: row["k"], calls: row["calls"], spentMicros: row["spent"], openMicros: row["open"])
    }
}

extension SQLiteLedger: UsageQueries {
    private var usage: SQLiteUsage { SQLiteUsage(pool: pool) }

    public func callTotals(by grouping: UsageReport.Grouping, since: Int64) throws -> [UsageTotals] {
        try usage.callTotals(by: grouping, since: since)
    }

    public func cacheHits(by grouping: UsageReport.Grouping, sinceDay: String) throws -> [(key: String, count: Int64, savedMicros: Int64)] {
        try usage.cacheHits(by: grouping, sinceDay: sinceDay)
    }

    public func keyUses() throws -> [(id: String, uses: Int64)] { try usage.keyUses() }

    public func refusals(by grouping: UsageReport.Grouping, sinceDay: String) throws -> [(key: String, reason: String, count: Int64)] {
        try usage.refusals(by: grouping, sinceDay: sinceDay)
    }

    public func domainTotals(since: Int64, now: Int64) throws -> DomainUsage? { try usage.domainTotals(since: since, now: now) }
}
