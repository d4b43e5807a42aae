import Foundation
import Synchronization
import Testing
import TollgateCore
@testable import TollgateStore

/// Budget totals several gateways share (``SharedBudgets``, PostgreSQL): gateways reserving at once
/// against one cap never pass it together, settlements give money back to every gateway, and a
/// refused reservation leaves no ledger row.
@Suite struct SharedBudgetTests {
    static func charge(_ budget: String = "daily@day", scope: String = "*", limit: Int64, slot: Int64 = 0,
                       window: (Int64, Int64) = (0, 86_400), enforced: Bool = true) -> BudgetCharge {
        BudgetCharge(budget: budget, scope: scope, slot: slot, windowStart: window.0, windowEnd: window.1, limit: limit, enforced: enforced)
    }

    static func entry(_ id: String, micros: Int64, _ charges: [BudgetCharge]) -> LedgerEntry {
        var e = LedgerEntry(requestID: id, route: "r", client: "c", reservedMicros: micros, createdAt: 10)
        e.charges = charges
        return e
    }

    /// Blocks until the store answers (gateway threads do not wait like this; tests may).
    static func reserve(_ store: any SpendLedger, _ e: LedgerEntry) -> Result<Int64, any Error> {
        let answer = Mutex<Result<Int64, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        store.reserve(e) { r in
            answer.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        return answer.withLock { $0! }
    }

    /// Three gateways, 4 threads each, reserving 7 at a time against 50 caps of 70 in turn (so 50
    /// caps are reached while the gateways race): exactly 10 fit under each, 500 in all.
    @Test func gatewaysTogetherNeverPassTheCap() throws {
        guard let config = try TestStores.postgresConfig() else { return }
        let gateways = try (0..<3).map { _ in try PostgresStore(config: config, secrets: [:], logger: TestStores.logger) }
        defer { gateways.forEach { $0.close() } }
        let caps = 50, perThread = 150
        let cap: @Sendable (Int) -> BudgetCharge = { i in Self.charge("cap\(i % caps)@day", limit: 70) }
        let accepted = Atomic<Int>(0), refused = Atomic<Int>(0)
        let group = DispatchGroup()
        for (g, store) in gateways.enumerated() {
            for t in 0..<4 {
                group.enter()
                Thread.detachNewThread {
                    defer { group.leave() }
                    for i in 0..<perThread {
                        switch Self.reserve(store, Self.entry("g\(g)-\(t)-\(i)", micros: 7, [cap(i)])) {
                        case .success: accepted.add(1, ordering: .relaxed)
                        case .failure(let e): if e is BudgetRefused { refused.add(1, ordering: .relaxed) }
                        }
                    }
                }
            }
        }
        group.wait()
        #expect(accepted.load(ordering: .relaxed) == caps * 10)
        #expect(refused.load(ordering: .relaxed) == 3 * 4 * perThread - caps * 10)
        gateways[0].flush()
        let rows = try gateways[0].connections.run("SELECT COUNT(*), COALESCE(SUM(reserved_micros), 0)::bigint FROM ledger").first!
            .decode((Int64, Int64).self)
        #expect(rows == (Int64(caps * 10), Int64(caps * 70)))
        let over = try gateways[1].connections.run("SELECT COUNT(*) FROM budget_spend WHERE micros <> 70").first!.decode(Int64.self)
        #expect(over == 0)
        #expect(gateways.contains { $0.latestTotal(cap(0).window) == 70 })
    }

    @Test func settlementsGiveBackToEveryGatewayAndAllChargesMustFit() throws {
        guard let config = try TestStores.postgresConfig() else { return }
        let a = try PostgresStore(config: config, secrets: [:], logger: TestStores.logger)
        let b = try PostgresStore(config: config, secrets: [:], logger: TestStores.logger)
        defer { a.close(); b.close() }
        let global = Self.charge(limit: 100)
        let perClient = { (c: String) in Self.charge("client@day", scope: c, limit: 60) }
        let first = try Self.reserve(a, Self.entry("1", micros: 50, [global, perClient("x")])).get()
        // The per-client cap refuses; the global total must not keep what the refused call would have taken.
        #expect(throws: BudgetRefused.self) { try Self.reserve(b, Self.entry("2", micros: 20, [global, perClient("x")])).get() }
        _ = try Self.reserve(b, Self.entry("3", micros: 50, [global, perClient("y")])).get()
        #expect(throws: BudgetRefused.self) { try Self.reserve(b, Self.entry("4", micros: 10, [global, perClient("z")])).get() }
        // The first call cost 20, not 50: 30 comes back, for the other gateway too.
        a.settle(id: first, costMicros: 20, status: 200, at: 11)
        a.settle(id: first, costMicros: 0, status: 200, at: 12)  // applied once only
        a.flush()
        // b refused on this total a moment ago and answers from that refusal for refusalMemory.
        Thread.sleep(forTimeInterval: PostgresBudgets.refusalMemory * 1.5)
        let five = try Self.reserve(b, Self.entry("5", micros: 30, [global, perClient("z")])).get()
        #expect(throws: BudgetRefused.self) { try Self.reserve(b, Self.entry("6", micros: 1, [global, perClient("w")])).get() }
        // Released: all of it comes back.
        b.release(id: five, status: nil, at: 13)
        b.flush()
        _ = try Self.reserve(a, Self.entry("7", micros: 30, [global])).get()
        #expect(throws: BudgetRefused.self) { try Self.reserve(a, Self.entry("8", micros: 1, [global])).get() }
        let spent = try a.connections.run("SELECT micros FROM budget_spend WHERE budget = 'daily@day'").first!.decode(Int64.self)
        #expect(spent == 100)
        // Shadow mode: counted over the cap, never refused.
        _ = try Self.reserve(a, Self.entry("9", micros: 5, [Self.charge(limit: 100, enforced: false)])).get()
        #expect(a.latestTotal(global.window) == 105)
    }

    /// Rolling windows sum their slots; slots that left the window no longer count.
    @Test func rollingWindowsSumTheirSlots() throws {
        guard let store = try TestStores.postgres() else { return }
        defer { store.close() }
        let at = { (slot: Int64) in Self.charge("roll@rolling:600s", limit: 30, slot: slot, window: (slot - 590, slot + 10)) }
        _ = try Self.reserve(store, Self.entry("a", micros: 20, [at(1000)])).get()
        _ = try Self.reserve(store, Self.entry("b", micros: 10, [at(1300)])).get()
        #expect(throws: BudgetRefused.self) { try Self.reserve(store, Self.entry("c", micros: 1, [at(1580)])).get() }
        // At 1600 the slot of 1000 has left the window: its 20 is free again.
        _ = try Self.reserve(store, Self.entry("d", micros: 20, [at(1600)])).get()
        #expect(throws: BudgetRefused.self) { try Self.reserve(store, Self.entry("e", micros: 1, [at(1610)])).get() }
    }

    /// Totals found in the ledger at start raise the shared ones, never lower them.
    @Test func raisingTotalsKeepsTheHigher() throws {
        guard let store = try TestStores.postgres() else { return }
        defer { store.close() }
        let c = Self.charge(limit: 100)
        _ = try Self.reserve(store, Self.entry("a", micros: 40, [c])).get()
        try store.raiseTotals([(c, 30)])
        #expect(throws: BudgetRefused.self) { try Self.reserve(store, Self.entry("b", micros: 61, [c])).get() }
        try store.raiseTotals([(c, 90)])
        #expect(throws: BudgetRefused.self) { try Self.reserve(store, Self.entry("c", micros: 11, [c])).get() }
        _ = try Self.reserve(store, Self.entry("d", micros: 10, [c])).get()
    }
}
