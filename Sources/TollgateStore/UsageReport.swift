import Foundation
import GRDB
import TollgateCore

/// Reads the ledger for `tollgate usage`: spend, calls, cache savings and refusals, grouped.
public struct UsageReport: Sendable {
    public enum Grouping: String, Sendable, CaseIterable { case route, client, day }

    public struct Line: Sendable, Equatable {
        public var key: String
        public var calls: Int64
        public var spentMicros: Int64
        /// Reservations not yet settled (still counted, at their reserved amount).
        public var openMicros: Int64
        public var cacheHits: Int64
        public var savedMicros: Int64
        public var refusals: Int64
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

    /// Totals since `since` (Unix seconds), grouped. Days are UTC.
    public func lines(since: Int64, by grouping: Grouping) throws -> [Line] {
        try pool.read { db in
            let keyExpr: String
            switch grouping {
            case .route: keyExpr = "route"
            case .client: keyExpr = "client"
            case .day: keyExpr = "date(created_at, 'unixepoch')"
            }
            var lines: [String: Line] = [:]
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
            if grouping != .client {
                let sinceDay = Self.day(since)
                let counterKey = grouping == .route ? "route" : "day"
                for row in try Row.fetchAll(db, sql: """
                    SELECT \(counterKey) AS k, event, SUM(count) AS n, SUM(saved_micros) AS saved
                    FROM usage_counters WHERE day >= ? GROUP BY k, event
                    """, arguments: [sinceDay]) {
                    let key: String = row["k"]
                    var line = lines[key] ?? Line(key: key, calls: 0, spentMicros: 0, openMicros: 0, cacheHits: 0, savedMicros: 0, refusals: 0)
                    let event: String = row["event"]
                    let n: Int64 = row["n"]
                    if event == UsageEvent.cacheHit.rawValue {
                        line.cacheHits += n
                        line.savedMicros += row["saved"] as Int64
                    } else {
                        line.refusals += n
                    }
                    lines[key] = line
                }
            }
            return lines.values.sorted { $0.key < $1.key }
        }
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
