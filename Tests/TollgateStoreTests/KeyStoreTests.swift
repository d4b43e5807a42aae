import Foundation
import Testing
import TollgateCore
@testable import TollgateStore

/// The key, client and admin-token tables, as every durable store must behave (SQLite,
/// PostgreSQL): operator changes bump versions in order, gateway use counts do not.
@Suite struct KeyStoreTests {
    func record(_ id: String) -> APIKeyRecord {
        APIKeyRecord(id: id, kind: .api, name: "n", owner: "o", scopes: ["a", "b"], routes: ["r"], hash: [1, 2, 3], createdAt: 10,
                     expiresAt: 100, maxUses: 5)
    }

    @Test(arguments: try TestStores.durable("keys")) func changesAreVersionedAndUsesAreNot(s: any DurableStore) throws {
        try s.insertKey(record("k1"))
        try s.insertKey(record("k2"))
        #expect(try s.keyChanges(after: 0).map(\.id) == ["k1", "k2"])
        let v = try s.keyChanges(after: 0).map(\.version).max()!
        try s.addKeyUses([(id: "k1", count: 3, lastUsedAt: 50)])
        #expect(try s.keyChanges(after: v).isEmpty)
        #expect(try s.key(id: "k1")?.uses == 3 && s.key(id: "k1")?.lastUsedAt == 50)
        #expect(try s.updateKey(id: "k1") { $0.revokedAt = 60 })
        #expect(try !s.updateKey(id: "nope") { $0.revokedAt = 60 })
        let changed = try s.keyChanges(after: v)
        #expect(changed.map(\.id) == ["k1"] && changed[0].revokedAt == 60 && changed[0].uses == 3)
        var expected = record("k2")
        expected.version = try s.key(id: "k2")!.version
        #expect(try s.key(id: "k2") == expected)
        #expect(throws: (any Error).self) { try s.insertKey(record("k1")) }  // ids are unique
    }

    @Test(arguments: try TestStores.durable("keys")) func clientsAreRevokedOnce(s: any DurableStore) throws {
        try s.insertClient(OAuthClientRecord(id: "c1", name: "n", secretHash: [9], scopes: ["x"], createdAt: 1))
        #expect(try s.clients().map(\.scopes) == [["x"]])
        #expect(try s.revokeClient(id: "c1", at: 5))
        #expect(try !s.revokeClient(id: "c1", at: 6))
        #expect(try s.clientChanges(after: 1).first?.revokedAt == 5)
    }

    @Test(arguments: try TestStores.durable("keys")) func adminTokensAndTheAuditLog(s: any DurableStore) throws {
        try s.insertAdminToken(AdminTokenRecord(id: "t1", name: "ops", scopes: [.read, .keys], hash: [7], createdAt: 1))
        #expect(try s.adminToken(id: "t1")?.scopes == [.read, .keys])
        #expect(try s.revokeAdminToken(id: "t1", at: 2))
        #expect(try !s.revokeAdminToken(id: "t1", at: 3))
        #expect(try s.adminToken(id: "t1")?.revokedAt == 2)
        for i in 0..<3 {
            try s.appendAudit(AuditEntry(at: Int64(i), actor: "t1 (ops)", action: "keys.create", target: "k\(i)", address: "127.0.0.1", outcome: "ok"))
        }
        #expect(try s.audit(limit: 2).map(\.target) == ["k2", "k1"])
    }
}
