import Foundation
import Testing
import TollgateCore
@testable import TollgateStore

/// What every store keeps of the two-step sign-up (SQLite, PostgreSQL, memory): confirmations come back while
/// their link or session is live, requests are counted per domain, and domain bans are stored.
@Suite struct VerificationJournalTests {
    static func stores() throws -> [any SpendLedger & BanStore] {
        try TestStores.durable("verify") + [MemoryLedger()]
    }

    static func confirmation(_ n: UInt8, linkExpires: Int64, until: Int64) -> VerificationConfirmation {
        VerificationConfirmation(nonce: Data(repeating: n, count: 12), linkExpiresMillis: linkExpires, sessionTag: "s-\(n)",
                                 email: VerifiedEmail(addressHash: "e-\(n)", domain: "d\(n).test", untilMillis: until))
    }

    @Test(arguments: try stores()) func confirmationsComeBackWhileLive(store: any SpendLedger & BanStore) throws {
        store.recordConfirmation(Self.confirmation(1, linkExpires: 1_000, until: 5_000))
        store.recordConfirmation(Self.confirmation(2, linkExpires: 1_000, until: 1_500))
        store.recordConfirmation(Self.confirmation(3, linkExpires: 9_000, until: 500))
        store.flush()
        let live = try store.confirmations(nowMillis: 2_000).sorted { $0.sessionTag < $1.sessionTag }
        #expect(live == [Self.confirmation(1, linkExpires: 1_000, until: 5_000), Self.confirmation(3, linkExpires: 9_000, until: 500)])
        #expect(try store.confirmations(nowMillis: 10_000).isEmpty)
    }

    /// What a gateway following the others reads: every confirmation once, in order, in pages.
    @Test(arguments: try TestStores.durable("verify")) func confirmationsAreFollowedInOrder(store: any DurableStore) throws {
        for n in UInt8(1)...3 { store.recordConfirmation(Self.confirmation(n, linkExpires: 9_000, until: 9_000)) }
        store.flush()
        let first = try store.confirmations(after: 0, limit: 2)
        #expect(first.confirmations.map(\.sessionTag) == ["s-1", "s-2"] && first.cursor > 0)
        let second = try store.confirmations(after: first.cursor, limit: 2)
        #expect(second.confirmations.map(\.sessionTag) == ["s-3"] && second.cursor > first.cursor)
        store.recordConfirmation(Self.confirmation(1, linkExpires: 9_000, until: 9_000))  // the same link again: ignored
        store.recordConfirmation(Self.confirmation(4, linkExpires: 9_000, until: 9_000))
        store.flush()
        let third = try store.confirmations(after: second.cursor, limit: 10)
        #expect(third.confirmations == [Self.confirmation(4, linkExpires: 9_000, until: 9_000)])
        #expect(try store.confirmations(after: third.cursor, limit: 10).confirmations.isEmpty)
    }

    @Test(arguments: try stores()) func domainBansAreStored(store: any SpendLedger & BanStore) throws {
        let ban = try store.addBan(Ban(kind: .domain, value: "flood.test", reason: "r", createdAt: 1, expiresAt: nil, createdBy: "auto:domain-flood"))
        #expect(try store.activeBans(now: 2).map(\.kind) == [.domain])
        #expect(try store.removeBan(id: ban.id, at: 3))
    }

    @Test(arguments: try TestStores.durable("verify"))
    func usageByDomainCountsRequestsConfirmationsCallsAndBlocks(ledger: any DurableStore) async throws {
        let now = Int64(Date().timeIntervalSince1970)
        for (hash, domain) in [("e-a", "a.test"), ("e-a", "a.test"), ("e-b", "a.test"), ("e-c", "c.test")] {
            ledger.recordVerificationRequest(VerificationRequest(addressHash: hash, domain: domain, sessionTag: "s", at: now))
        }
        ledger.recordConfirmation(Self.confirmation(7, linkExpires: (now + 60) * 1000, until: (now + 600) * 1000))
        var entry = LedgerEntry(requestID: "r", route: "lookup", client: "c", reservedMicros: 5_000, createdAt: now)
        entry.email = "e-a"
        entry.emailDomain = "a.test"
        let id = try await withCheckedThrowingContinuation { c in ledger.reserve(entry) { c.resume(with: $0) } }
        ledger.settle(id: id, costMicros: 5_000, status: 200, at: now)
        _ = try ledger.addBan(Ban(kind: .domain, value: "c.test", reason: "r", createdAt: now, expiresAt: now + 100, createdBy: "t"))
        ledger.flush()
        let lines = Dictionary(uniqueKeysWithValues: try UsageReport(ledger).lines(since: now - 10, by: .domain).map { ($0.key, $0) })
        #expect(lines["a.test"]?.calls == 1 && lines["a.test"]?.spentMicros == 5_000)
        #expect(lines["a.test"]?.verification?.requested == 3 && lines["a.test"]?.verification?.addresses == 2)
        #expect(lines["d7.test"]?.verification?.confirmed == 1)
        #expect(lines["c.test"]?.verification?.blockedUntil == now + 100)
        #expect(lines["a.test"]?.verification?.blockedUntil == nil)
        #expect(try ledger.spend(since: 0).map(\.email) == ["e-a"])
    }
}
