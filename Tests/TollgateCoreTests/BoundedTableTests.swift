import Testing
@testable import TollgateCore

@Suite struct BoundedTableTests {
    /// Values are their own expiry here.
    typealias Table = BoundedTable<Int, Int64>

    func insert(_ t: inout Table, _ key: Int, expires: Int64, now: Int64) -> Bool {
        t.insert(key, expires, now: now) { $0 }
    }

    @Test func neverHoldsMoreThanItsCapacity() {
        var t = Table(capacity: 3, sweepInterval: 10)
        for k in 0..<10 { _ = insert(&t, k, expires: 1_000, now: 0) }
        #expect(t.count == 3)
        let updated = t.update(0, 2_000)  // a key already present is never refused
        #expect(updated && t[0] == 2_000)
        let absent = t.update(99, 1)
        #expect(!absent)
    }

    @Test func aFullTableOfLiveEntriesRefusesWithoutSweeping() {
        var t = Table(capacity: 2, sweepInterval: 10)
        #expect(insert(&t, 1, expires: 100, now: 0) && insert(&t, 2, expires: 200, now: 0))
        #expect(!insert(&t, 3, expires: 300, now: 5))    // first refusal sweeps once: nothing expired
        #expect(t.swept == 0)
        #expect(!insert(&t, 3, expires: 300, now: 50))   // nothing can have expired before 100: no sweep
        #expect(insert(&t, 3, expires: 300, now: 100))   // key 1 expired at 100: swept, room made
        #expect(t.swept == 1 && t[1] == nil && t.count == 2)
    }

    @Test func sweepsAreSpacedBySweepInterval() {
        var t = Table(capacity: 2, sweepInterval: 1_000)
        _ = insert(&t, 1, expires: 10, now: 0)
        _ = insert(&t, 2, expires: 20, now: 0)
        #expect(!insert(&t, 3, expires: 5_000, now: 5))    // sweeps (nothing expired yet), sets the pace
        #expect(!insert(&t, 3, expires: 5_000, now: 500))  // both expired by now, but the last sweep is too recent
        #expect(insert(&t, 3, expires: 5_000, now: 1_005))
        #expect(t.count == 1 && t.swept == 2)
    }
}
