import Foundation
import GRDB
import TollgateCore

/// API keys and OAuth clients in the SQLite store. Operator changes (create, rotate, revoke,
/// reactivate) bump a row's `version`, taken from one counter per table, so the gateway's change
/// feed reads `WHERE version > last seen`; use counts from the gateway do not.
extension SQLiteLedger: APIKeyStore, OAuthClientStore {
    static let identitySchema = """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('api', 'install')),
            name TEXT NOT NULL,
            owner TEXT NOT NULL,
            scopes TEXT NOT NULL,
            routes TEXT NOT NULL,
            hash BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER,
            max_uses INTEGER,
            uses INTEGER NOT NULL DEFAULT 0,
            last_used_at INTEGER,
            revoked_at INTEGER,
            replaced_by TEXT,
            version INTEGER NOT NULL
        );
        CREATE INDEX api_keys_version ON api_keys(version);
        CREATE TABLE oauth_clients (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            secret_hash BLOB NOT NULL,
            scopes TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER,
            version INTEGER NOT NULL
        );
        CREATE INDEX oauth_clients_version ON oauth_clients(version);
        """

    public func insertKey(_ record: APIKeyRecord) throws {
        try pool.write { db in
            var r = record
            r.version = try Self.nextVersion(db, "api_keys")
            try Self.write(r, db, insert: true)
        }
    }

    public func key(id: String) throws -> APIKeyRecord? {
        try pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM api_keys WHERE id = ?", arguments: [id]).map(Self.record) }
    }

    public func keys() throws -> [APIKeyRecord] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM api_keys ORDER BY created_at, id").map(Self.record) }
    }

    public func keyChanges(after version: Int64) throws -> [APIKeyRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM api_keys WHERE version > ? ORDER BY version", arguments: [version]).map(Self.record)
        }
    }

    public func updateKey(id: String, _ change: @Sendable (inout APIKeyRecord) -> Void) throws -> Bool {
        try pool.write { db in
            guard var record = try Row.fetchOne(db, sql: "SELECT * FROM api_keys WHERE id = ?", arguments: [id]).map(Self.record) else {
                return false
            }
            change(&record)
            record.id = id
            record.version = try Self.nextVersion(db, "api_keys")
            try Self.write(record, db, insert: false)
            return true
        }
    }

    public func addKeyUses(_ uses: [(id: String, count: Int64, lastUsedAt: Int64)]) throws {
        guard !uses.isEmpty else { return }
        try pool.write { db in
            for use in uses {
                try db.execute(sql: "UPDATE api_keys SET uses = uses + ?, last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
                               arguments: [use.count, use.lastUsedAt, use.id])
            }
        }
    }

    // MARK: OAuth clients

    public func insertClient(_ client: OAuthClientRecord) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO oauth_clients (id, name, secret_hash, scopes, created_at, revoked_at, version)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [client.id, client.name, Data(client.secretHash), client.scopes.joined(separator: " "),
                                 client.createdAt, client.revokedAt, try Self.nextVersion(db, "oauth_clients")])
        }
    }

    public func clients() throws -> [OAuthClientRecord] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM oauth_clients ORDER BY created_at, id").map(Self.client) }
    }

    public func clientChanges(after version: Int64) throws -> [OAuthClientRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM oauth_clients WHERE version > ? ORDER BY version", arguments: [version]).map(Self.client)
        }
    }

    public func revokeClient(id: String, at: Int64) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "UPDATE oauth_clients SET revoked_at = ?, version = ? WHERE id = ? AND revoked_at IS NULL",
                           arguments: [at, try Self.nextVersion(db, "oauth_clients"), id])
            return db.changesCount > 0
        }
    }

    // MARK: Rows

    private static func nextVersion(_ db: Database, _ table: String) throws -> Int64 {
        (try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(version), 0) FROM \(table)") ?? 0) + 1
    }

    private static func write(_ r: APIKeyRecord, _ db: Database, insert: Bool) throws {
        let args: StatementArguments = [r.kind.rawValue, r.name, r.owner, r.scopes.joined(separator: " "), r.routes.joined(separator: " "),
                                        Data(r.hash), r.createdAt, r.expiresAt, r.maxUses, r.uses, r.lastUsedAt, r.revokedAt,
                                        r.replacedBy, r.version, r.id]
        if insert {
            try db.execute(sql: """
                INSERT INTO api_keys (kind, name, owner, scopes, routes, hash, created_at, expires_at, max_uses, uses,
                                      last_used_at, revoked_at, replaced_by, version, id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: args)
        } else {
            try db.execute(sql: """
                UPDATE api_keys SET kind = ?, name = ?, owner = ?, scopes = ?, routes = ?, hash = ?, created_at = ?, expires_at = ?,
                    max_uses = ?, uses = ?, last_used_at = ?, revoked_at = ?, replaced_by = ?, version = ? WHERE id = ?
                """, arguments: args)
        }
    }

    private static func words(_ text: String) -> [String] { text.split(separator: " ").map(String.init) }

    private static func record(_ row: Row) -> APIKeyRecord {
        APIKeyRecord(id: row["id"], kind: APIKeyText.Kind(rawValue: row["kind"]) ?? .api, name: row["name"], owner: row["owner"],
                     scopes: words(row["scopes"]), routes: words(row["routes"]), hash: [UInt8](row["hash"] as Data),
                     createdAt: row["created_at"], expiresAt: row["expires_at"], maxUses: row["max_uses"], uses: row["uses"],
                     lastUsedAt: row["last_used_at"], revokedAt: row["revoked_at"], replacedBy: row["replaced_by"],
                     version: row["version"])
    }

    private static func client(_ row: Row) -> OAuthClientRecord {
        OAuthClientRecord(id: row["id"], name: row["name"], secretHash: [UInt8](row["secret_hash"] as Data),
                          scopes: words(row["scopes"]), createdAt: row["created_at"], revokedAt: row["revoked_at"],
                          version: row["version"])
    }
}
