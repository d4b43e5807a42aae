import Foundation
import GRDB
import TollgateCore

/// Bans in the SQLite store. A ban is never deleted: removing one sets `removed_at`, so the table
/// is also the history of who banned what, when and why. Every add and remove takes the next
/// `version`, and gateways reload the active set when `MAX(version)` moves.
extension SQLiteLedger: BanStore {
    static let banSchema = """
        CREATE TABLE bans (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('address', 'prefix', 'key', 'session')),
            value TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER,
            created_by TEXT NOT NULL,
            removed_at INTEGER,
            version INTEGER NOT NULL
        );
        CREATE INDEX bans_active ON bans(removed_at, expires_at);
        """

    public func addBan(_ ban: Ban) throws -> Ban {
        try pool.write { db in
            let version = try Self.nextBanVersion(db)
            try db.execute(sql: """
                INSERT INTO bans (kind, value, reason, created_at, expires_at, created_by, version)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [ban.kind.rawValue, ban.value, ban.reason, ban.createdAt, ban.expiresAt, ban.createdBy, version])
            var stored = ban
            stored.id = db.lastInsertedRowID
            return stored
        }
    }

    public func removeBan(id: Int64, at: Int64) throws -> Bool {
        try pool.write { db in
            let version = try Self.nextBanVersion(db)
            try db.execute(sql: """
                UPDATE bans SET removed_at = ?, version = ?
                WHERE id = ? AND removed_at IS NULL AND (expires_at IS NULL OR expires_at > ?)
                """, arguments: [at, version, id, at])
            return db.changesCount > 0
        }
    }

    public func activeBans(now: Int64) throws -> [Ban] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM bans WHERE removed_at IS NULL AND (expires_at IS NULL OR expires_at > ?) ORDER BY id
                """, arguments: [now]).map(Self.ban)
        }
    }

    public func banVersion() throws -> Int64 {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(version), 0) FROM bans") ?? 0 }
    }

    private static func nextBanVersion(_ db: Database) throws -> Int64 {
        (try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(version), 0) FROM bans") ?? 0) + 1
    }

    private static func ban(_ row: Row) -> Ban {
        Ban(id: row["id"], kind: Ban.Kind(rawValue: row["kind"]) ?? .address, value: row["value"], reason: row["reason"],
            createdAt: row["created_at"], expiresAt: row["expires_at"], createdBy: row["created_by"])
    }
}

/// Bans in memory (`store: memory`): in force until the process ends.
extension MemoryLedger: BanStore {
    public func addBan(_ ban: Ban) throws -> Ban {
        bans.withLock { b in
            var stored = ban
            stored.id = Int64(b.all.count + 1)
            b.all.append(stored)
            b.version += 1
            return stored
        }
    }

    public func removeBan(id: Int64, at: Int64) throws -> Bool {
        bans.withLock { b in
            guard let i = b.all.firstIndex(where: { $0.id == id && $0.isActive(at: at) }) else { return false }
            b.all.remove(at: i)
            b.version += 1
            return true
        }
    }

    public func activeBans(now: Int64) throws -> [Ban] {
        bans.withLock { b in b.all.filter { $0.isActive(at: now) } }
    }

    public func banVersion() throws -> Int64 { bans.withLock { $0.version } }
}
