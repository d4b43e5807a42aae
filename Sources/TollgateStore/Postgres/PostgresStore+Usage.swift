import Foundation
import PostgresNIO
import TollgateCore

/// ``UsageQueries`` in PostgreSQL: the SQLite store's queries in PostgreSQL's dialect (sums cast
/// back to `BIGINT`, days from `to_timestamp` in UTC).
extension PostgresStore: UsageQueries {
    private static let totals = """
        COUNT(*) FILTER (WHERE state <> 'released')::bigint,
        COALESCE(SUM(cost_micros) FILTER (WHERE state = 'settled'), 0)::bigint,
        COALESCE(SUM(reserved_micros) FILTER (WHERE state = 'reserved'), 0)::bigint
        """

    public func callTotals(by grouping: UsageReport.Grouping, since: Int64) throws -> [UsageTotals] {
        let key = switch grouping {
        case .day: "to_char(to_timestamp(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        case .key: "api_key"
        case .client: "client"
        default: "route"
        }
        return try connections.run("""
            SELECT \(unescaped: key), \(unescaped: Self.totals) FROM ledger WHERE created_at >= \(since) GROUP BY 1
            """).map(Self.usageTotals)
    }

    public func cacheHits(by grouping: UsageReport.Grouping, sinceDay: String) throws -> [(key: String, count: Int64, savedMicros: Int64)] {
        let key = grouping == .day ? "day" : "route"
        return try connections.run("""
            SELECT \(unescaped: key), SUM(count)::bigint, SUM(saved_micros)::bigint FROM usage_counters
            WHERE day >= \(sinceDay) AND event = \(UsageEvent.cacheHit.rawValue) GROUP BY 1
            """).map { row in
            let (key, count, saved) = try row.decode((String, Int64, Int64).self)
            return (key: key, count: count, savedMicros: saved)
        }
    }

    public func keyUses() throws -> [(id: String, uses: Int64)] {
        try connections.run("SELECT id, uses FROM api_keys").map { row in
            let (id, uses) = try row.decode((String, Int64).self)
            return (id: id, uses: uses)
        }
    }

    public func refusals(by grouping: UsageReport.Grouping, sinceDay: String) throws -> [(key: String, reason: String, count: Int64)] {
        let key = switch grouping {
        case .client: "client"
        case .day: "day"
        case .reason: "reason"
        default: "route"
        }
        return try connections.run("""
            SELECT \(unescaped: key), reason, SUM(count)::bigint FROM refusals WHERE day >= \(sinceDay) GROUP BY 1, 2
            """).map { row in
            let (key, reason, count) = try row.decode((String, String, Int64).self)
            return (key: key, reason: reason, count: count)
        }
    }

    public func domainTotals(since: Int64, now: Int64) throws -> DomainUsage? {
        var d = DomainUsage()
        d.calls = try connections.run("""
            SELECT email_domain, \(unescaped: Self.totals) FROM ledger WHERE created_at >= \(since) AND email_domain <> '' GROUP BY 1
            """).map(Self.usageTotals)
        d.requests = try connections.run("""
            SELECT domain, COUNT(*), COUNT(DISTINCT address_hash) FROM verification_requests WHERE requested_at >= \(since) GROUP BY 1
            """).map { row in
            let (domain, count, addresses) = try row.decode((String, Int64, Int64).self)
            return (domain: domain, count: count, addresses: addresses)
        }
        d.confirmations = try connections.run("""
            SELECT domain, COUNT(*) FROM verification_confirmations WHERE confirmed_at >= \(since) GROUP BY 1
            """).map { row in
            let (domain, count) = try row.decode((String, Int64).self)
            return (domain: domain, count: count)
        }
        d.bans = try connections.run("""
            SELECT value, CASE WHEN bool_or(expires_at IS NULL) THEN 0 ELSE MAX(expires_at) END::bigint FROM bans
            WHERE kind = 'domain' AND removed_at IS NULL AND (expires_at IS NULL OR expires_at > \(now)) GROUP BY 1
            """).map { row in
            let (domain, until) = try row.decode((String, Int64).self)
            return (domain: domain, until: until)
        }
        return d
    }

    private static func usageTotals(_ row: PostgresRow) throws -> UsageTotals {
        let (key, calls, spent, open) = try row.decode((String, Int64, Int64, Int64).self)
        return UsageTotals(key: key, calls: calls, spentMicros: spent, openMicros: open)
    }
}
