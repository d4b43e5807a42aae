import Foundation
import Synchronization
import Testing
import TollgateCore
@testable import TollgateStore

/// Budget leases (``BudgetLeases``) on PostgreSQL: gateways spending from leases never pass a cap
/// together and still use all of it; a lease gives back exactly what its calls did not spend; a
/// dead gateway's lease is reclaimed at what its rows hold; a row drawn from a lease that is gone
/// is never written.
@Suite struct BudgetLeaseTests {
    static let unit: Int64 = 10

    static func store(_ config: PostgresStoreConfig, lease: Duration = .milliseconds(500)) throws -> PostgresStore {
        var c = config
        c.budgetLease = lease
        return try PostgresStore(config: c, secrets: [:], logger: TestStores.logger)
    }

    static func entry(_ id: String, limit: Int64, micros: Int64 = unit) -> LedgerEntry {
        SharedBudgetTests.entry(id, micros: micros, [SharedBudgetTests.charge("global@month", limit: limit)])
    }

    static func spent(_ s: PostgresStore) throws -> Int64 {
        try s.connections.run("SELECT COALESCE(SUM(micros), 0)::bigint FROM budget_spend WHERE budget = 'global@month'").first!
            .decode(Int64.self)
    }

    /// What the ledger holds: settled at cost, reserved at the reserved amount, released at nothing.
    static func held(_ s: PostgresStore) throws -> Int64 {
        try s.connections.run("""
            SELECT COALESCE(SUM(CASE WHEN state = 'released' THEN 0 ELSE COALESCE(cost_micros, reserved_micros) END), 0)::bigint FROM ledger
            """).first!.decode(Int64.self)
    }

    static func leasedRows(_ s: PostgresStore) throws -> Int64 {
        try s.connections.run("SELECT COUNT(*) FROM ledger WHERE charges LIKE '%' || chr(31) || 'L%'").first!.decode(Int64.self)
    }

    /// Three gateways, four threads each, one unit at a time against a cap of 2 000 units: each
    /// thread goes on until refused three times in a row. Exactly the cap is accepted, most of it
    /// from leases, and once the gateways close no lease is left and the total is what the ledger holds.
    @Test func leasesNeverPassTheCapAndTheCapIsUsedUp() throws {
        guard let config = try TestStores.postgresConfig() else { return }
        let cap = 2_000 * Self.unit
        let gateways = try (0..<3).map { _ in try Self.store(config) }
        let accepted = Atomic<Int>(0)
        let group = DispatchGroup()
        for (g, store) in gateways.enumerated() {
            for t in 0..<4 {
                group.enter()
                Thread.detachNewThread {
                    defer { group.leave() }
                    var refusedInARow = 0
                    for i in 0..<3_000 where refusedInARow < 3 {
                        switch SharedBudgetTests.reserve(store, Self.entry("g\(g)-\(t)-\(i)", limit: cap)) {
                        case .success(let id):
                            // The call is made and billed what was reserved.
                            store.settle(id: id, costMicros: Self.unit, status: 200, at: 11)
                            accepted.add(1, ordering: .relaxed)
                            refusedInARow = 0
                        case .failure: refusedInARow += 1
                        }
                    }
                }
            }
        }
        group.wait()
        #expect(Int64(accepted.load(ordering: .relaxed)) * Self.unit == cap)
        let leased = try Self.leasedRows(gateways[0])
        #expect(leased > 1_000, "only \(leased) of 2000 reservations drew from leases")
        gateways.forEach { $0.close() }
        let check = try Self.store(config, lease: .zero)
        defer { check.close() }
        #expect(try Self.spent(check) == cap)
        #expect(try Self.held(check) == cap)
        #expect(try check.connections.run("SELECT COUNT(*) FROM budget_leases").first!.decode(Int64.self) == 0)
    }

    /// Calls drawn from leases settle for less, one is released, one costs more than reserved, one
    /// is still in flight when the gateway closes: the leases with nothing in flight end, the other
    /// gives back its room, and the shared total is exactly what the ledger holds.
    @Test func aLeaseGivesBackWhatItsCallsDidNotSpend() throws {
        guard let config = try TestStores.postgresConfig() else { return }
        let cap = 1_000 * Self.unit
        let a = try Self.store(config, lease: .seconds(60))
        var ids: [Int64] = []
        for i in 0..<40 { ids.append(try SharedBudgetTests.reserve(a, Self.entry("r\(i)", limit: cap)).get()) }
        #expect(try Self.leasedRows(a) > 20)
        // While the lease is held, the total counts it whole.
        #expect(try Self.spent(a) > Int64(ids.count) * Self.unit)
        for id in ids.prefix(10) { a.settle(id: id, costMicros: 4, status: 200, at: 11) }
        a.release(id: ids[10], status: nil, at: 11)
        a.settle(id: ids[11], costMicros: 25, status: 200, at: 11)
        for id in ids[12..<39] { a.settle(id: id, costMicros: Self.unit, status: 200, at: 11) }
        a.close()
        let check = try Self.store(config, lease: .zero)
        defer { check.close() }
        let held = try Self.held(check)
        #expect(held == 28 * Self.unit + 10 * 4 + 25)
        #expect(try Self.spent(check) == held)
        // Only the lease the last call drew on is left, holding exactly what its rows hold.
        let left = try check.connections.run("""
            SELECT l.granted, (SELECT SUM(COALESCE(cost_micros, reserved_micros))::bigint FROM ledger
                               WHERE charges LIKE '%' || chr(31) || 'L' || l.id) FROM budget_leases AS l
            """).map { try $0.decode((Int64, Int64).self) }
        #expect(left.count == 1 && left.first?.0 == left.first?.1)
    }

    /// A gateway that dies holding a lease: its lease stays counted until the database expiry
    /// (2 × 0.5 s + 2 s), then another gateway reclaims it at what the dead one's rows hold, and
    /// the cap can be used up to the last unit.
    @Test func aDeadGatewaysLeaseIsReclaimed() throws {
        guard let config = try TestStores.postgresConfig() else { return }
        let cap = 1_000 * Self.unit
        let dead = try Self.store(config)
        for i in 0..<20 { _ = try SharedBudgetTests.reserve(dead, Self.entry("d\(i)", limit: cap)).get() }
        #expect(try dead.connections.run("SELECT COUNT(*) FROM budget_leases").first!.decode(Int64.self) >= 1)
        let deadHeld = try Self.held(dead)
        // Killed: nothing more reaches the database from it, not even its give-back at close.
        dead.connections.shutdown()
        let live = try Self.store(config)
        defer { live.close() }
        _ = try SharedBudgetTests.reserve(live, Self.entry("l0", limit: cap)).get()
        #expect(try Self.spent(live) > deadHeld + Self.unit, "the dead gateway's lease should still count")
        let deadline = Date().addingTimeInterval(10)
        while try live.connections.run("SELECT COUNT(*) FROM budget_leases WHERE gateway = \(dead.instanceID)").first!
            .decode(Int64.self) > 0, Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(try live.connections.run("SELECT COUNT(*) FROM budget_leases WHERE gateway = \(dead.instanceID)").first!.decode(Int64.self) == 0)
        var n = 0, refused = 0
        while refused < 3, n < 2_000 {
            n += 1
            if case .failure = SharedBudgetTests.reserve(live, Self.entry("l\(n)", limit: cap)) { refused += 1 } else { refused = 0 }
        }
        live.flush()
        #expect(try Self.held(live) == cap)
    }

    /// A lease that vanished from the database (reclaimed while its gateway was cut off) takes no
    /// more rows: the reservation is answered with an error and leaves no row and no count.
    @Test func aRowIsNeverWrittenForALeaseThatIsGone() throws {
        guard let config = try TestStores.postgresConfig() else { return }
        let cap = 1_000 * Self.unit
        let a = try Self.store(config, lease: .seconds(60))
        defer { a.close() }
        for i in 0..<8 { _ = try SharedBudgetTests.reserve(a, Self.entry("a\(i)", limit: cap)).get() }
        #expect(try Self.leasedRows(a) > 0)
        let rows = try a.connections.run("SELECT COUNT(*) FROM ledger").first!.decode(Int64.self)
        try a.connections.run("DELETE FROM budget_leases")
        let answer = SharedBudgetTests.reserve(a, Self.entry("gone", limit: cap))
        #expect(throws: StoreError.self) { try answer.get() }
        #expect(try a.connections.run("SELECT COUNT(*) FROM ledger").first!.decode(Int64.self) == rows)
        // The next one goes to the shared total and is accepted.
        _ = try SharedBudgetTests.reserve(a, Self.entry("after", limit: cap)).get()
    }

    /// A call outlives its lease's database expiry: the lease is reclaimed with the call counted
    /// at its reserved amount, and when the call settles for less, the difference goes back to
    /// the shared total (the lease is gone, so nothing else would take it).
    @Test func aCallSettledAfterItsLeaseWasReclaimedIsCountedAtItsCost() throws {
        guard let config = try TestStores.postgresConfig() else { return }
        let cap = 1_000 * Self.unit
        let a = try Self.store(config)
        defer { a.close() }
        var ids: [Int64] = []
        for i in 0..<8 { ids.append(try SharedBudgetTests.reserve(a, Self.entry("a\(i)", limit: cap)).get()) }
        #expect(try Self.leasedRows(a) > 0)
        for id in ids.dropLast() { a.settle(id: id, costMicros: Self.unit, status: 200, at: 11) }
        let deadline = Date().addingTimeInterval(10)
        while try a.connections.run("SELECT COUNT(*) FROM budget_leases").first!.decode(Int64.self) > 0, Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(try a.connections.run("SELECT COUNT(*) FROM budget_leases").first!.decode(Int64.self) == 0)
        a.settle(id: ids.last!, costMicros: 3, status: 200, at: 12)
        a.flush()
        #expect(try Self.held(a) == 7 * Self.unit + 3)
        #expect(try Self.spent(a) == Self.held(a))
    }

    /// Once a cap is spent, a flood of reservations on it is refused from the last refusal for
    /// ``PostgresBudgets/refusalMemory`` at a time, not with one budget call per commit; room
    /// given back is found once that memory lapses.
    @Test func aFloodOnASpentBudgetCostsOneBudgetCallPerRefusalMemory() throws {
        guard let store = try TestStores.postgres() else { return }
        defer { store.close() }
        let cap = 10 * Self.unit
        var ids: [Int64] = []
        for i in 0..<10 { ids.append(try SharedBudgetTests.reserve(store, Self.entry("a\(i)", limit: cap)).get()) }
        #expect(throws: BudgetRefused.self) { try SharedBudgetTests.reserve(store, Self.entry("full", limit: cap)).get() }
        let before = store.budgets.calls.load(ordering: .relaxed)
        let start = Date()
        var refused = 0
        for i in 0..<300 {
            if case .failure(let e) = SharedBudgetTests.reserve(store, Self.entry("f\(i)", limit: cap)), e is BudgetRefused { refused += 1 }
        }
        let elapsed = Date().timeIntervalSince(start)
        let calls = store.budgets.calls.load(ordering: .relaxed) - before
        #expect(refused == 300)
        #expect(Double(calls) <= elapsed / PostgresBudgets.refusalMemory + 3, "\(calls) budget calls for 300 refusals in \(elapsed) s")
        store.release(id: ids[0], status: nil, at: 11)
        store.flush()
        Thread.sleep(forTimeInterval: PostgresBudgets.refusalMemory * 1.5)
        _ = try SharedBudgetTests.reserve(store, Self.entry("back", limit: cap)).get()
    }
}
