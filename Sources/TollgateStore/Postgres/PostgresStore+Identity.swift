import Foundation
import NIOCore
import PostgresNIO
import TollgateCore

/// Keys, OAuth clients, bans, admin tokens and the audit log in PostgreSQL. An operator change
/// locks its table (`EXCLUSIVE`: readers go on, other writers wait a moment) and takes
/// `MAX(version) + 1`, so versions become visible in the order they were taken: a gateway that has
/// seen version N has seen every change up to N. Use counts from gateways do not move versions.
extension PostgresStore: APIKeyStore, OAuthClientStore, BanStore, AdminStore {
    private static let keyColumns = """
        id, kind, name, owner, scopes, routes, hash, created_at, expires_at, max_uses, uses, last_used_at, revoked_at, replaced_by, version
        """

    public func insertKey(_ record: APIKeyRecord) throws {
        try connections.transaction { s in
            var r = record
            r.version = try Self.nextVersion(s, "api_keys")
            try Self.write(r, s, insert: true)
            try Self.announce(.keys, s)
        }
    }

    public func key(id: String) throws -> APIKeyRecord? {
        try connections.run("SELECT \(unescaped: Self.keyColumns) FROM api_keys WHERE id = \(id)").first.map(Self.record)
    }

    public func keys() throws -> [APIKeyRecord] {
        try connections.run("SELECT \(unescaped: Self.keyColumns) FROM api_keys ORDER BY created_at, id").map(Self.record)
    }

    public func keyChanges(after version: Int64) throws -> [APIKeyRecord] {
        try connections.run("SELECT \(unescaped: Self.keyColumns) FROM api_keys WHERE version > \(version) ORDER BY version").map(Self.record)
    }

    public func updateKey(id: String, _ change: @Sendable (inout APIKeyRecord) -> Void) throws -> Bool {
        try connections.transaction { s in
            let version = try Self.nextVersion(s, "api_keys")
            guard var record = try s.run("SELECT \(unescaped: Self.keyColumns) FROM api_keys WHERE id = \(id)").first.map(Self.record) else {
                return false
            }
            change(&record)
            record.id = id
            record.version = version
            try Self.write(record, s, insert: false)
            try Self.announce(.keys, s)
            return true
        }
    }

    public func addKeyUses(_ uses: [(id: String, count: Int64, lastUsedAt: Int64)]) throws {
        guard !uses.isEmpty else { return }
        try connections.run("""
            UPDATE api_keys AS k SET uses = k.uses + u.n, last_used_at = GREATEST(COALESCE(k.last_used_at, 0), u.at)
            FROM (SELECT id, SUM(n)::bigint AS n, MAX(at) AS at
                  FROM unnest(\(uses.map(\.id))::text[], \(uses.map(\.count))::bigint[], \(uses.map(\.lastUsedAt))::bigint[]) AS x(id, n, at)
                  GROUP BY id) AS u
            WHERE k.id = u.id
            """)
    }

    // MARK: OAuth clients

    public func insertClient(_ client: OAuthClientRecord) throws {
        try connections.transaction { s in
            let version = try Self.nextVersion(s, "oauth_clients")
            try s.run("""
                INSERT INTO oauth_clients (id, name, secret_hash, scopes, created_at, revoked_at, version)
                VALUES (\(client.id), \(client.name), \(ByteBuffer(bytes: client.secretHash)), \(client.scopes.joined(separator: " ")),
                        \(client.createdAt), \(client.revokedAt), \(version))
                """)
            try Self.announce(.clients, s)
        }
    }

    public func clients() throws -> [OAuthClientRecord] {
        try connections.run("SELECT id, name, secret_hash, scopes, created_at, revoked_at, version FROM oauth_clients ORDER BY created_at, id")
            .map(Self.client)
    }

    public func clientChanges(after version: Int64) throws -> [OAuthClientRecord] {
        try connections.run("""
            SELECT id, name, secret_hash, scopes, created_at, revoked_at, version FROM oauth_clients WHERE version > \(version) ORDER BY version
            """).map(Self.client)
    }

    public func revokeClient(id: String, at: Int64) throws -> Bool {
        try connections.transaction { s in
            let version = try Self.nextVersion(s, "oauth_clients")
            let revoked = try s.changed("UPDATE oauth_clients SET revoked_at = \(at), version = \(version) WHERE id = \(id) AND revoked_at IS NULL") > 0
            if revoked { try Self.announce(.clients, s) }
            return revoked
        }
    }

    // MARK: Bans

    public func addBan(_ ban: Ban) throws -> Ban {
        try connections.transaction { s in
            let version = try Self.nextVersion(s, "bans")
            let rows = try s.run("""
                INSERT INTO bans (kind, value, reason, created_at, expires_at, created_by, version)
                VALUES (\(ban.kind.rawValue), \(ban.value), \(ban.reason), \(ban.createdAt), \(ban.expiresAt), \(ban.createdBy), \(version))
                RETURNING id
                """)
            var stored = ban
            stored.id = try rows.first?.decode(Int64.self) ?? 0
            try Self.announce(.bans, s)
            return stored
        }
    }

    public func removeBan(id: Int64, at: Int64) throws -> Bool {
        try connections.transaction { s in
            let version = try Self.nextVersion(s, "bans")
            let removed = try s.changed("""
                UPDATE bans SET removed_at = \(at), version = \(version)
                WHERE id = \(id) AND removed_at IS NULL AND (expires_at IS NULL OR expires_at > \(at))
                """) > 0
            if removed { try Self.announce(.bans, s) }
            return removed
        }
    }

    public func activeBans(now: Int64) throws -> [Ban] {
        try connections.run("""
            SELECT id, kind, value, reason, created_at, expires_at, created_by FROM bans
            WHERE removed_at IS NULL AND (expires_at IS NULL OR expires_at > \(now)) ORDER BY id
            """).map { row in
            let (id, kind, value, reason, createdAt, expiresAt, createdBy) =
                try row.decode((Int64, String, String, String, Int64, Int64?, String).self)
            return Ban(id: id, kind: Ban.Kind(rawValue: kind) ?? .address, value: value, reason: reason, createdAt: createdAt,
                       expiresAt: expiresAt, createdBy: createdBy)
        }
    }

    public func banVersion() throws -> Int64 {
        try connections.run("SELECT COALESCE(MAX(version), 0)::bigint FROM bans").first?.decode(Int64.self) ?? 0
    }

    // MARK: Admin tokens and the audit log

    public func insertAdminToken(_ token: AdminTokenRecord) throws {
        try connections.run("""
            INSERT INTO admin_tokens (id, name, scopes, hash, created_at, revoked_at)
            VALUES (\(token.id), \(token.name), \(token.scopes.map(\.rawValue).joined(separator: " ")), \(ByteBuffer(bytes: token.hash)),
                    \(token.createdAt), \(token.revokedAt))
            """)
    }

    public func adminToken(id: String) throws -> AdminTokenRecord? {
        try connections.run("SELECT id, name, scopes, hash, created_at, revoked_at FROM admin_tokens WHERE id = \(id)").first.map(Self.adminToken)
    }

    public func adminTokens() throws -> [AdminTokenRecord] {
        try connections.run("SELECT id, name, scopes, hash, created_at, revoked_at FROM admin_tokens ORDER BY created_at, id").map(Self.adminToken)
    }

    public func revokeAdminToken(id: String, at: Int64) throws -> Bool {
        try connections.with { s in
            try s.changed("UPDATE admin_tokens SET revoked_at = \(at) WHERE id = \(id) AND revoked_at IS NULL") > 0
        }
    }

    public func appendAudit(_ entry: AuditEntry) throws {
        try connections.run("""
            INSERT INTO audit (at, actor, action, target, address, outcome)
            VALUES (\(entry.at), \(entry.actor), \(entry.action), \(entry.target), \(entry.address), \(entry.outcome))
            """)
    }

    public func audit(limit: Int) throws -> [AuditEntry] {
        try connections.run("SELECT at, actor, action, target, address, outcome FROM audit ORDER BY id DESC LIMIT \(Int64(limit))").map { row in
            let (at, actor, action, target, address, outcome) = try row.decode((Int64, String, String, String, String, String).self)
            return AuditEntry(at: at, actor: actor, action: action, target: target, address: address, outcome: outcome)
        }
    }

    // MARK: Rows

    /// Locks `table` against other writers until the transaction ends and returns its next version.
    private static func nextVersion(_ s: PostgresConnections.Session, _ table: String) throws -> Int64 {
        try s.run("LOCK TABLE \(unescaped: table) IN EXCLUSIVE MODE")
        return try s.run("SELECT COALESCE(MAX(version), 0)::bigint + 1 FROM \(unescaped: table)").first?.decode(Int64.self) ?? 1
    }

    private static func write(_ r: APIKeyRecord, _ s: PostgresConnections.Session, insert: Bool) throws {
        let scopes = r.scopes.joined(separator: " "), routes = r.routes.joined(separator: " "), hash = ByteBuffer(bytes: r.hash)
        if insert {
            try s.run("""
                INSERT INTO api_keys (\(unescaped: keyColumns))
                VALUES (\(r.id), \(r.kind.rawValue), \(r.name), \(r.owner), \(scopes), \(routes), \(hash), \(r.createdAt), \(r.expiresAt),
                        \(r.maxUses), \(r.uses), \(r.lastUsedAt), \(r.revokedAt), \(r.replacedBy), \(r.version))
                """)
        } else {
            try s.run("""
                UPDATE api_keys SET kind = \(r.kind.rawValue), name = \(r.name), owner = \(r.owner), scopes = \(scopes), routes = \(routes),
                    hash = \(hash), created_at = \(r.createdAt), expires_at = \(r.expiresAt), max_uses = \(r.maxUses), uses = \(r.uses),
                    last_used_at = \(r.lastUsedAt), revoked_at = \(r.revokedAt), replaced_by = \(r.replacedBy), version = \(r.version)
                WHERE id = \(r.id)
                """)
        }
    }

    private static func words(_ text: String) -> [String] { text.split(separator: " ").map(String.init) }

    private static func record(_ row: PostgresRow) throws -> APIKeyRecord {
        let (id, kind, name, owner, scopes, routes, hash, createdAt, expiresAt, maxUses, uses, lastUsedAt, revokedAt, replacedBy, version) =
            try row.decode((String, String, String, String, String, String, ByteBuffer, Int64, Int64?, Int64?, Int64, Int64?, Int64?,
                            String?, Int64).self)
        return APIKeyRecord(id: id, kind: APIKeyText.Kind(rawValue: kind) ?? .api, name: name, owner: owner, scopes: words(scopes),
                            routes: words(routes), hash: Array(buffer: hash), createdAt: createdAt, expiresAt: expiresAt,
                            maxUses: maxUses, uses: uses, lastUsedAt: lastUsedAt, revokedAt: revokedAt, replacedBy: replacedBy,
                            version: version)
    }

    private static func client(_ row: PostgresRow) throws -> OAuthClientRecord {
        let (id, name, hash, scopes, createdAt, revokedAt, version) =
            try row.decode((String, String, ByteBuffer, String, Int64, Int64?, Int64).self)
        return OAuthClientRecord(id: id, name: name, secretHash: Array(buffer: hash), scopes: words(scopes), createdAt: createdAt,
                                 revokedAt: revokedAt, version: version)
    }

    private static func adminToken(_ row: PostgresRow) throws -> AdminTokenRecord {
        let (id, name, scopes, hash, createdAt, revokedAt) = try row.decode((String, String, String, ByteBuffer, Int64, Int64?).self)
        return AdminTokenRecord(id: id, name: name, scopes: words(scopes).compactMap(AdminTokenRecord.Scope.init(rawValue:)),
                                hash: Array(buffer: hash), createdAt: createdAt, revokedAt: revokedAt)
    }
}
