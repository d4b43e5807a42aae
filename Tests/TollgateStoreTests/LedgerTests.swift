import Foundation
import Testing
import TollgateCore
@testable import TollgateStore

/// The ledger as every durable store must keep it (SQLite, PostgreSQL): reservations durable
/// before their callback, group commit, settlements once, counters, pauses, alerts, usage reports.
@Suite struct LedgerTests {
    func tempPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(UUID().uuidString).db").path
    }

    func reserve(_ ledger: any SpendLedger, _ entry: LedgerEntry) async throws -> Int64 {
        try await withCheckedThrowingContinuation { c in ledger.reserve(entry) { c.resume(with: $0) } }
    }

    @Test(arguments: try StoreFactory.all("ledger"))
    func reservationsAreDurableBeforeTheCallbackAndSurviveReopening(factory: StoreFactory) async throws {
        var ids: [Int64] = []
        do {
            let ledger = try factory.open()
            defer { ledger.close() }
            for i in 0..<5 {
                ids.append(try await reserve(ledger, LedgerEntry(requestID: "r\(i)", route: "lookup", client: "1.1.1.\(i)",
                                                                   reservedMicros: 10_000, createdAt: 1_000 + Int64(i))))
            }
            ledger.settle(id: ids[0], costMicros: 4_000, status: 200, at: 2_000)
            ledger.release(id: ids[1], status: nil, at: 2_000)
            ledger.flush()
        }
        // A new connection (as after a restart) sees settled, released and still-open entries.
        let reopened = try factory.open()
        let rows = try reopened.spend(since: 0).sorted { $0.createdAt < $1.createdAt }
        #expect(rows.map(\.micros) == [4_000, 10_000, 10_000, 10_000])
        #expect(rows.map(\.client) == ["1.1.1.0", "1.1.1.2", "1.1.1.3", "1.1.1.4"])
        #expect(try reopened.spend(since: 1_003).count == 2)
    }

    @Test(arguments: try TestStores.durable("ledger")) func concurrentReservationsAreGroupCommitted(ledger: any DurableStore) async throws {
        let ids = try await withThrowingTaskGroup(of: Int64.self) { group in
            for i in 0..<200 {
                group.addTask { try await self.reserve(ledger, LedgerEntry(requestID: "r\(i)", route: "r", client: "c",
                                                                              reservedMicros: 1, createdAt: 1)) }
            }
            return try await group.reduce(into: [Int64]()) { $0.append($1) }
        }
        #expect(Set(ids).count == 200)
        #expect(try ledger.spend(since: 0).count == 200)
    }

    @Test(arguments: try TestStores.durable("ledger")) func settlementsAreOnlyAppliedOnce(ledger: any DurableStore) async throws {
        let id = try await reserve(ledger, LedgerEntry(requestID: "r", route: "r", client: "c", reservedMicros: 9, createdAt: 1))
        ledger.release(id: id, status: nil, at: 2)
        ledger.settle(id: id, costMicros: 5, status: 200, at: 3)
        ledger.flush()
        #expect(try ledger.spend(since: 0).isEmpty)
    }

    @Test(arguments: try TestStores.durable("ledger")) func countersPausesAndAlerts(ledger: any DurableStore) throws {
        ledger.count(.cacheHit, route: "r", day: "2026-11-22", savedMicros: 5_000)
        ledger.count(.cacheHit, route: "r", day: "2026-11-22", savedMicros: 5_000)
        ledger.countRefusal(route: "r", client: "198.51.100.7", reason: "budget", day: "2026-11-22")
        ledger.countRefusal(route: "r", client: "198.51.100.7", reason: "rate_limit", day: "2026-11-22")
        ledger.countRefusal(route: "r", client: "198.51.100.8", reason: "rate_limit", day: "2026-11-22")
        ledger.flush()
        try ledger.setPaused("r", paused: true, at: 1)
        try ledger.setPaused("*", paused: true, at: 1)
        try ledger.setPaused("*", paused: false, at: 2)
        #expect(try ledger.pausedRoutes() == ["r"])
        #expect(try ledger.recordAlert(budget: "b", scope: "*", periodStart: 10, threshold: 50, at: 11))
        #expect(try !ledger.recordAlert(budget: "b", scope: "*", periodStart: 10, threshold: 50, at: 12))
        #expect(try ledger.recordAlert(budget: "b", scope: "*", periodStart: 20, threshold: 50, at: 21))
        let lines = try UsageReport(ledger).lines(since: 0, by: .route)
        #expect(lines.count == 1)
        #expect(lines[0].cacheHits == 2 && lines[0].savedMicros == 10_000 && lines[0].refusals == 3)
        #expect(lines[0].refusalsByReason == ["budget": 1, "rate_limit": 2])
        let byClient = try UsageReport(ledger).lines(since: 0, by: .client)
        #expect(byClient.map(\.key) == ["198.51.100.7", "198.51.100.8"] && byClient.map(\.refusals) == [2, 1])
        let byReason = try UsageReport(ledger).lines(since: 0, by: .reason)
        #expect(byReason.map(\.key) == ["budget", "rate_limit"] && byReason.map(\.refusals) == [1, 2])
    }

    /// Databases written before refusals had their own table kept them as `refused_*` counters.
    @Test func refusalsFromOlderCountersAreStillReported() throws {
        let path = tempPath()
        let ledger = try SQLiteLedger(path: path)
        try ledger.pool.write { db in
            try db.execute(sql: "INSERT INTO usage_counters (day, route, event, count, saved_micros) VALUES ('2026-11-22', 'r', 'refused_validation', 4, 0)")
        }
        let byReason = try UsageReport(path: path).lines(since: 0, by: .reason)
        #expect(byReason.map(\.key) == ["validation"] && byReason[0].refusals == 4)
        #expect(try UsageReport(path: path).lines(since: 0, by: .route)[0].refusalsByReason == ["validation": 4])
    }

    @Test(arguments: try TestStores.durable("ledger")) func usageReportGroups(ledger: any DurableStore) async throws {
        let day1: Int64 = 1_700_000_000 - 1_700_000_000 % 86_400
        for (route, client, at, cost) in [("a", "x", day1 + 10, 100), ("a", "y", day1 + 20, 200), ("b", "x", day1 + 86_400, 300)] {
            let id = try await reserve(ledger, LedgerEntry(requestID: "r", route: route, client: client, reservedMicros: 1_000, createdAt: at))
            ledger.settle(id: id, costMicros: Int64(cost), status: 200, at: at)
        }
        _ = try await reserve(ledger, LedgerEntry(requestID: "open", route: "b", client: "y", reservedMicros: 1_000, createdAt: day1 + 86_401))
        ledger.flush()
        let report = UsageReport(ledger)
        let byRoute = try report.lines(since: 0, by: .route)
        #expect(byRoute.map(\.key) == ["a", "b"])
        #expect(byRoute.map(\.calls) == [2, 2])
        #expect(byRoute.map { $0.spentMicros + $0.openMicros } == [300, 1_300])
        #expect(try report.lines(since: 0, by: .client).map(\.key) == ["x", "y"])
        #expect(try report.lines(since: 0, by: .day).count == 2)
    }
}

@Suite struct UseJournalTests {
    @Test(arguments: try StoreFactory.all("journal")) func tokenUsesAndSolvedChallengesSurviveARestart(factory: StoreFactory) throws {
        let config = PageTokens.Config(keys: ["K"], path: "/t", minAge: .zero, maxAge: .seconds(60), maxUses: 2,
                                       bindAddress: false, bindUserAgent: false, cookie: "s", maxTracked: 100)
        let now: Int64 = 1_800_000_000_000
        let token: String
        do {
            let ledger = try factory.open()
            defer { ledger.close() }
            let tokens = PageTokens(config: config, secrets: ["K": "key-0123456789"], journal: ledger, nowMillis: now)
            token = tokens.issue(session: "s", address: "", userAgent: "", nowMillis: now)
            #expect(tokens.verify(token, session: "s", address: "", userAgent: "", nowMillis: now + 1) == nil)
            #expect(tokens.verify(token, session: "s", address: "", userAgent: "", nowMillis: now + 2) == nil)
            ledger.recordSolved(challenge: "abc", expiresSeconds: now / 1000 + 60)
            ledger.recordSolved(challenge: "old", expiresSeconds: now / 1000 - 60)
            ledger.flush()
        }
        let reopened = try factory.open()
        let restarted = PageTokens(config: config, secrets: ["K": "key-0123456789"], journal: reopened, nowMillis: now + 3)
        #expect(restarted.verify(token, session: "s", address: "", userAgent: "", nowMillis: now + 3) == .usedUp)
        #expect(try reopened.solvedChallenges(nowSeconds: now / 1000).map(\.challenge) == ["abc"])
        #expect(try reopened.tokenUses(nowMillis: now + 61_000).isEmpty)
    }
}
