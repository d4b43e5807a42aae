import Foundation
import GRDB
import TollgateCore

/// An operator's token for the admin API: `tg_adm_…`, stored only as its keyed hash.
public struct AdminTokenRecord: Sendable, Equatable {
    public enum Scope: String, Sendable, CaseIterable {
        /// Read every resource.
        case read
        /// Change budgets, pauses and other operator switches.
        case write
        /// Create, rotate and revoke API keys and OAuth clients.
        case keys
    }

    public var id: String
    public var name: String
    public var scopes: [Scope]
    public var hash: [UInt8]
    public var createdAt: Int64
    public var revokedAt: Int64?

    public init(id: String, name: String, scopes: [Scope], hash: [UInt8], createdAt: Int64, revokedAt: Int64? = nil) {
        self.id = id
        self.name = name
        self.scopes = scopes
        self.hash = hash
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}

/// One write through the admin API: who (the token's id and name), what, on what, when, from where.
public struct AuditEntry: Sendable, Equatable {
    public var at: Int64
    public var actor: String
    public var action: String
    public var target: String
    public var address: String
    public var outcome: String

    public init(at: Int64, actor: String, action: String, target: String, address: String, outcome: String) {
        self.at = at
        self.actor = actor
        self.action = action
        self.target = target
        self.address = address
        self.outcome = outcome
    }
}

extension SQLiteLedger: AdminStore {
    static let adminSchema = """
        CREATE TABLE admin_tokens (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            scopes TEXT NOT NULL,
            hash BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER
        );
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            address TEXT NOT NULL,
            outcome TEXT NOT NULL
        );
        CREATE INDEX audit_at ON audit(at);
        """

    public func insertAdminToken(_ token: AdminTokenRecord) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO admin_tokens (id, name, scopes, hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [token.id, token.name, token.scopes.map(\.rawValue).joined(separator: " "), Data(token.hash),
                                       token.createdAt, token.revokedAt])
        }
    }

    public func adminToken(id: String) throws -> AdminTokenRecord? {
        try pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM admin_tokens WHERE id = ?", arguments: [id]).map(Self.adminToken) }
    }

    public func adminTokens() throws -> [AdminTokenRecord] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM admin_tokens ORDER BY created_at, id").map(Self.adminToken) }
    }

    public func revokeAdminToken(id: String, at: Int64) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", arguments: [at, id])
            return db.changesCount > 0
        }
    }

    public func appendAudit(_ entry: AuditEntry) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO audit (at, actor, action, target, address, outcome) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [entry.at, entry.actor, entry.action, entry.target, entry.address, entry.outcome])
        }
    }

    /// The newest `limit` entries, newest first.
    public func audit(limit: Int) throws -> [AuditEntry] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit ORDER BY id DESC LIMIT ?", arguments: [limit]).map {
                AuditEntry(at: $0["at"], actor: $0["actor"], action: $0["action"], target: $0["target"], address: $0["address"],
                           outcome: $0["outcome"])
            }
        }
    }

    private static func adminToken(_ row: Row) -> AdminTokenRecord {
        AdminTokenRecord(id: row["id"], name: row["name"],
                         scopes: (row["scopes"] as String).split(separator: " ").compactMap { AdminTokenRecord.Scope(rawValue: String($0)) },
                         hash: [UInt8](row["hash"] as Data), createdAt: row["created_at"], revokedAt: row["revoked_at"])
    }
}
