import Foundation
import Testing
import TollgateCore
@testable import TollgateStore

/// Bans as every store must keep them (SQLite, PostgreSQL, memory):
/// adds and removes move the version, expired and removed bans are not active, a ban removed
/// twice is refused the second time.
@Suite struct BanStoreTests {
    static func stores() throws -> [any BanStore] {
        try TestStores.durable("bans") + [MemoryLedger()]
    }

    func ban(_ value: String, expires: Int64? = nil) -> Ban {
        Ban(kind: value.contains("/") ? .prefix : .address, value: value, reason: "r", createdAt: 10, expiresAt: expires, createdBy: "cli")
    }

    @Test(arguments: try stores()) func activeSetAndVersions(store: any BanStore) throws {
        let v0 = try store.banVersion()
        let a = try store.addBan(ban("203.0.113.7", expires: 100))
        let b = try store.addBan(ban("198.51.100.0/24"))
        #expect(a.id != b.id && a.id > 0)
        let v1 = try store.banVersion()
        #expect(v1 > v0)
        #expect(try store.activeBans(now: 50).map(\.value) == ["203.0.113.7", "198.51.100.0/24"])
        #expect(try store.activeBans(now: 100).map(\.value) == ["198.51.100.0/24"])  // expired at 100
        #expect(try store.removeBan(id: b.id, at: 60))
        #expect(try !store.removeBan(id: b.id, at: 61))
        #expect(try !store.removeBan(id: a.id, at: 200))  // already expired: nothing to end
        #expect(try store.banVersion() > v1)
        #expect(try store.activeBans(now: 50).map(\.id) == [a.id])
    }
}
