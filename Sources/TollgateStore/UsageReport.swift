import Foundation
import TollgateCore

/// Reads the ledger for `tollgate usage`, the admin API and the console: spend, calls, cache savings
/// and refusals, grouped. The queries are the store's (``UsageQueries``); putting lines together is
/// the same for every store.
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

        init(key: String, verification: DomainVerification? = nil) {
            self.key = key
            (calls, spentMicros, openMicros, cacheHits, savedMicros, refusals) = (0, 0, 0, 0, 0, 0)
            self.verification = verification
        }
    }

    public struct DomainVerification: Sendable, Equatable {
        public var requested: Int64 = 0
        public var confirmed: Int64 = 0
        public var addresses: Int64 = 0
        public var blockedUntil: Int64?

        public init() {}
    }

    let source: any UsageQueries

    /// Opens an SQLite database for reading; fails if it does not exist.
    public init(path: String) throws {
        source = try SQLiteUsage(readOnlyPath: path)
    }

    /// Reads from a store that is already open (PostgreSQL, or the gateway's own SQLite store).
    public init(_ source: any UsageQueries) {
        self.source = source
    }

    /// Totals since `since` (Unix seconds), grouped. Days are UTC. Grouped by reason, only refusals
    /// are counted (calls and spend have no reason).
    public func lines(since: Int64, by grouping: Grouping) throws -> [Line] {
        if grouping == .domain { return try domainLines(since: since) }
        var lines: [String: Line] = [:]
        func edit(_ key: String, _ change: (inout Line) -> Void) {
            var l = lines[key] ?? Line(key: key)
            change(&l)
            lines[key] = l
        }
        if grouping != .reason {
            for t in try source.callTotals(by: grouping, since: since) {
                edit(t.key) { ($0.calls, $0.spentMicros, $0.openMicros) = (t.calls, t.spentMicros, t.openMicros) }
            }
        }
        let sinceDay = Self.day(since)
        if grouping == .route || grouping == .day {
            for h in try source.cacheHits(by: grouping, sinceDay: sinceDay) {
                edit(h.key) { $0.cacheHits += h.count; $0.savedMicros += h.savedMicros }
            }
        }
        if grouping == .key {
            // Refusals are not kept per key (a refused call often has none); uses are.
            lines[""] = nil
            for u in try source.keyUses() { edit(u.id) { $0.uses = u.uses } }
            return lines.values.sorted { $0.key < $1.key }
        }
        for r in try source.refusals(by: grouping, sinceDay: sinceDay) {
            edit(r.key) { $0.refusals += r.count; $0.refusalsByReason[r.reason, default: 0] += r.count }
        }
        return lines.values.sorted { $0.key < $1.key }
    }

    /// Per email domain: paid calls and spend of its verified sessions, links asked for and
    /// opened, distinct addresses (by hash), and whether the domain is banned now.
    private func domainLines(since: Int64) throws -> [Line] {
        var lines: [String: Line] = [:]
        func edit(_ key: String, _ change: (inout Line) -> Void) {
            var l = lines[key] ?? Line(key: key, verification: DomainVerification())
            change(&l)
            lines[key] = l
        }
        guard let d = try source.domainTotals(since: since, now: Int64(Date().timeIntervalSince1970)) else { return [] }
        for t in d.calls { edit(t.key) { ($0.calls, $0.spentMicros, $0.openMicros) = (t.calls, t.spentMicros, t.openMicros) } }
        for r in d.requests { edit(r.domain) { $0.verification?.requested = r.count; $0.verification?.addresses = r.addresses } }
        for c in d.confirmations { edit(c.domain) { $0.verification?.confirmed = c.count } }
        for b in d.bans { edit(b.domain) { $0.verification?.blockedUntil = b.until } }
        return lines.values.sorted { $0.key < $1.key }
    }

    /// Spend per route and client since `since`, for `tollgate budgets`.
    public func spend(since: Int64) throws -> [SpendRow] {
        try source.spend(since: since)
    }

    public static func day(_ seconds: Int64) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd"
        f.timeZone = TimeZone(identifier: "UTC")
        f.locale = Locale(identifier: "en_US_POSIX")
        return f.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }
}

/// Calls, settled spend and open reservations of one group.
public struct UsageTotals: Sendable {
    public var key: String
    public var calls: Int64
    public var spentMicros: Int64
    public var openMicros: Int64
}

/// What the domain grouping reads: ledger totals per domain, verification requests (with distinct
/// addresses) and confirmations per domain, and active domain bans (`until` 0: no end).
public struct DomainUsage: Sendable {
    public var calls: [UsageTotals] = []
    public var requests: [(domain: String, count: Int64, addresses: Int64)] = []
    public var confirmations: [(domain: String, count: Int64)] = []
    public var bans: [(domain: String, until: Int64)] = []
}

/// The queries behind ``UsageReport``, one implementation per store. Days are `YYYY-MM-DD`, UTC.
public protocol UsageQueries: Sendable {
    /// Per route, client, day (of `created_at`) or key, for ledger entries created at or after `since`.
    func callTotals(by grouping: UsageReport.Grouping, since: Int64) throws -> [UsageTotals]
    /// Cache hits and the money they saved per route or day, from `sinceDay` on.
    func cacheHits(by grouping: UsageReport.Grouping, sinceDay: String) throws -> [(key: String, count: Int64, savedMicros: Int64)]
    /// Every key's uses.
    func keyUses() throws -> [(id: String, uses: Int64)]
    /// Refusals per route, client, day or reason (`key` is the reason when grouped by reason).
    func refusals(by grouping: UsageReport.Grouping, sinceDay: String) throws -> [(key: String, reason: String, count: Int64)]
    /// nil when the store predates the two-step sign-up.
    func domainTotals(since: Int64, now: Int64) throws -> DomainUsage?
    func spend(since: Int64) throws -> [SpendRow]
}
