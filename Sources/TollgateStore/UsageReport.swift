import Foundation
import GRDB
import TollgateCore

/// Reads the ledger for `tollgate usage`: spend, calls, cache savings and refusals, grouped.
public struct UsageReport: Sendable {
    public enum Grouping: String, Sendable, CaseIterable { case route, client, day, reason, key, domain }

    public struct Line: Sendable, Equatable {
        public var key: String
        public var calls: Int64
        public var spentMicros: Int64
        /// Reservations not yet settled (still counted, at their reserved amount).
        public var openMicros: Int64
        public var cacheHits: Int64
        public var savedMicros: Int64
        public var refusals: Int64
        /// Refusals by the policy or stage that made them.
        public var refusalsByReason: [String: Int64] = [:]
        /// Grouped by key: the key's uses on every route (paid or not), from the key store.
        public var uses: Int64?
        /// Grouped by domain: links asked for, links opened, distinct addresses, and the end of an
        /// active domain ban (Unix seconds; 0 for one without an end).
        public var verification: DomainVerification?
    }

    public struct DomainVerification: Sendable, Equatable {
        public var requested: Int64 = 0
        public var confirmed: Int64 = 0
        public var addresses: Int64 = 0
        public var blockedUntil: Int64?

        public init() {}
    }

    let pool: DatabasePool

    /// Opens the database for reading; fails if it does not exist.
    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw NSError(domain: "tollgate", code: 1, userInfo: [NSLocalizedDescriptionKey: "no usage database at \(path) (has the gateway run with this config?)"])
        }
        var config = Configuration()
        config.readonly = true
        pool = try DatabasePool(path: path, configuration: config)
    }

    /// Totals since `since` (Unix seconds), grouped. Days are UTC. Grouped by reason, only refusals
    /// are counted (calls and spend have no reason).
    public func lines(since: Int64, by grouping: Grouping) throws -> [Line] {
        try pool.read { db in
            var lines: [String: Line] = [:]
            func line(_ key: String) -> Line {
                lines[key] ?? Line(key: key, calls: 0, spentMicros: 0, openMicros: 0, cacheHits: 0, savedMicros: 0, refusals: 0)
            }
            if grouping == .domain { return try domainLines(db, since: since) }
            if grouping != .reason {
                let keyExpr = grouping == .day ? "date(created_at, 'unixepoch')" : grouping == .key ? "api_key" : grouping.rawValue
                for row in try Row.fetchAll(db, sql: """
                    SELECT \(keyExpr) AS k,
                           SUM(CASE WHEN state != 'released' THEN 1 ELSE 0 END) AS calls,
                           SUM(CASE WHEN state = 'settled' THEN cost_micros ELSE 0 END) AS spent,
                           SUM(CASE WHEN state = 'reserved' THEN reserved_micros ELSE 0 END) AS open
                    FROM ledger WHERE created_at >= ? GROUP BY k
                    """, arguments: [since]) {
                    let key: String = row["k"]
                    lines[key] = Line(key: key, calls: row["calls"], spentMicros: row["spent"], openMicros: row["open"],
                                      cacheHits: 0, savedMicros: 0, refusals: 0)
                }
            }
            let sinceDay = Self.day(since)
            if grouping == .route || grouping == .day {
                for row in try Row.fetchAll(db, sql: """
                    SELECT \(grouping.rawValue) AS k, SUM(count) AS n, SUM(saved_micros) AS saved
                    FROM usage_counters WHERE day >= ? AND event = ? GROUP BY k
                    """, arguments: [sinceDay, UsageEvent.cacheHit.rawValue]) {
                    let key: String = row["k"]
                    var l = line(key)
                    l.cacheHits += row["n"] as Int64
                    l.savedMicros += row["saved"] as Int64
                    lines[key] = l
                }
            }
            if grouping == .key {
                // Refusals are not kept per key (a refused call often has none); uses are.
                lines["" as String] = nil
                if try db.tableExists("api_keys") {
                    for row in try Row.fetchAll(db, sql: "SELECT id, uses FROM api_keys") {
                        let key: String = row["id"]
                        var l = line(key)
                        l.uses = row["uses"]
                        lines[key] = l
                    }
                }
                return lines.values.sorted { $0.key < $1.key }
            }
            // Refusals: the refusals table, and (databases from before it) refused_* counters, which
            // knew route, day and reason but not the client.
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
            for row in try Row.fetchAll(db, sql: sql, arguments: [sinceDay]) {
                let key: String = row["k"]
                let n: Int64 = row["n"]
                var l = line(key)
                l.refusals += n
                l.refusalsByReason[row["reason"] as String, default: 0] += n
                lines[key] = l
            }
            return lines.values.sorted { $0.key < $1.key }
        }
    }

    /// Per email domain: paid calls and spend of its verified sessions, links asked for and
    /// opened, distinct addresses (by hash), and whether the domain is banned now.
    private func domainLines(_ db: Database, since: Int64) throws -> [Line] {
        var lines: [String: Line] = [:]
        func line(_ key: String) -> Line {
            lines[key] ?? Line(key: key, calls: 0, spentMicros: 0, openMicros: 0, cacheHits: 0, savedMicros: 0, refusals: 0,
                               verification: DomainVerification())
        }
        guard try db.tableExists("verification_requests") else { return [] }
        for row in try Row.fetchAll(db, sql: """
            SELECT email_domain AS k,
                   SUM(CASE WHEN state != 'released' THEN 1 ELSE 0 END) AS calls,
                   SUM(CASE WHEN state = 'settled' THEN cost_micros ELSE 0 END) AS spent,
                   SUM(CASE WHEN state = 'reserved' THEN reserved_micros ELSE 0 END) AS open
            FROM ledger WHERE created_at >= ? AND email_domain != '' GROUP BY k
            """, arguments: [since]) {
            var l = line(row["k"])
            (l.calls, l.spentMicros, l.openMicros) = (row["calls"], row["spent"], row["open"])
            lines[l.key] = l
        }
        for row in try Row.fetchAll(db, sql: """
            SELECT domain AS k, COUNT(*) AS n, COUNT(DISTINCT address_hash) AS a FROM verification_requests
            WHERE requested_at >= ? GROUP BY k
            """, arguments: [since]) {
            var l = line(row["k"])
            l.verification?.requested = row["n"]
            l.verification?.addresses = row["a"]
            lines[l.key] = l
        }
        for row in try Row.fetchAll(db, sql: """
            SELECT domain AS k, COUNT(*) AS n FROM verification_confirmations WHERE confirmed_at >= ? GROUP BY k
            """, arguments: [since]) {
            var l = line(row["k"])
            l.verification?.confirmed = row["n"]
            lines[l.key] = l
        }
        let now = Int64(Date().timeIntervalSince1970)
        for row in try Row.fetchAll(db, sql: """
            SELECT value AS k, MAX(COALESCE(expires_at, 0)) AS until, MIN(COALESCE(expires_at, 0)) AS forever FROM bans
            WHERE kind = 'domain' AND removed_at IS NULL AND (expires_at IS NULL OR expires_at > ?) GROUP BY k
            """, arguments: [now]) {
            var l = line(row["k"])
            l.verification?.blockedUntil = (row["forever"] as Int64) == 0 ? 0 : row["until"]
            lines[l.key] = l
        }
        return lines.values.sorted { $0.key < $1.key }
    }

    /// Spend per route and client since `since`, for `tollgate budgets`.
    public func spend(since: Int64) throws -> [SpendRow] {
        try pool.read { db in try SQLiteLedger.spend(db, since: since) }
    }

    public static func day(_ seconds: Int64) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd"
        f.timeZone = TimeZone(identifier: "UTC")
        f.locale = Locale(identifier: "en_US_POSIX")
        return f.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }
}
