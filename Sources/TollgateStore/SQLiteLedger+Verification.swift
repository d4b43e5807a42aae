import Foundation
import GRDB
import TollgateCore

/// Verified email addresses in the SQLite store, as keyed hashes and domains only: the store is
/// never a mailing list. Confirmations are written with the next group commit (milliseconds
/// behind); requests with the counters (at most a second behind).
extension SQLiteLedger {
    static let verificationSchema = """
        CREATE TABLE verification_confirmations (
            nonce BLOB PRIMARY KEY,
            link_expires_ms INTEGER NOT NULL,
            session_tag TEXT NOT NULL,
            address_hash TEXT NOT NULL,
            domain TEXT NOT NULL,
            verified_until_ms INTEGER NOT NULL,
            confirmed_at INTEGER NOT NULL
        );
        CREATE INDEX verification_confirmations_expiry ON verification_confirmations(link_expires_ms, verified_until_ms);
        CREATE TABLE verification_requests (
            id INTEGER PRIMARY KEY,
            address_hash TEXT NOT NULL,
            domain TEXT NOT NULL,
            session_tag TEXT NOT NULL,
            requested_at INTEGER NOT NULL
        );
        CREATE INDEX verification_requests_domain ON verification_requests(domain, requested_at);
        ALTER TABLE ledger ADD COLUMN email TEXT NOT NULL DEFAULT '';
        ALTER TABLE ledger ADD COLUMN email_domain TEXT NOT NULL DEFAULT '';
        CREATE TABLE bans_v9 (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('address', 'prefix', 'key', 'session', 'domain')),
            value TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER,
            created_by TEXT NOT NULL,
            removed_at INTEGER,
            version INTEGER NOT NULL
        );
        INSERT INTO bans_v9 SELECT id, kind, value, reason, created_at, expires_at, created_by, removed_at, version FROM bans;
        DROP TABLE bans;
        ALTER TABLE bans_v9 RENAME TO bans;
        CREATE INDEX bans_active ON bans(removed_at, expires_at);
        """

    public func confirmations(nowMillis: Int64) throws -> [VerificationConfirmation] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT nonce, link_expires_ms, session_tag, address_hash, domain, verified_until_ms
                FROM verification_confirmations WHERE link_expires_ms > ? OR verified_until_ms > ?
                """, arguments: [nowMillis, nowMillis]).map(Self.confirmation)
        }
    }

    /// In insertion order (the table's rowid): one gateway writes an SQLite file, so the order
    /// rows were inserted in is the order they were committed in.
    public func confirmations(after cursor: Int64, limit: Int) throws -> (confirmations: [VerificationConfirmation], cursor: Int64) {
        try pool.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT rowid AS seq, nonce, link_expires_ms, session_tag, address_hash, domain, verified_until_ms
                FROM verification_confirmations WHERE rowid > ? ORDER BY rowid LIMIT ?
                """, arguments: [cursor, limit])
            return (rows.map(Self.confirmation), rows.last.map { $0["seq"] } ?? cursor)
        }
    }

    private static func confirmation(_ row: Row) -> VerificationConfirmation {
        VerificationConfirmation(nonce: row["nonce"], linkExpiresMillis: row["link_expires_ms"], sessionTag: row["session_tag"],
                                 email: VerifiedEmail(addressHash: row["address_hash"], domain: row["domain"],
                                                      untilMillis: row["verified_until_ms"]))
    }

    static func write(_ confirmations: [VerificationConfirmation], _ requests: [VerificationRequest], _ db: Database) throws {
        let now = Int64(Date().timeIntervalSince1970)
        for c in confirmations {
            try db.executeCached("""
                INSERT OR IGNORE INTO verification_confirmations
                    (nonce, link_expires_ms, session_tag, address_hash, domain, verified_until_ms, confirmed_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, [c.nonce, c.linkExpiresMillis, c.sessionTag, c.email.addressHash, c.email.domain,
                                 c.email.untilMillis, now])
        }
        for r in requests {
            try db.executeCached("""
                INSERT INTO verification_requests (address_hash, domain, session_tag, requested_at) VALUES (?, ?, ?, ?)
                """, [r.addressHash, r.domain, r.sessionTag, r.at])
        }
        if !requests.isEmpty {
            try db.executeCached("DELETE FROM verification_confirmations WHERE link_expires_ms < ? AND verified_until_ms < ?",
                           [now * 1000, now * 1000])
        }
    }
}
