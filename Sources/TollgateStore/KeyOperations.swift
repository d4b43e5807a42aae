import Foundation
import TollgateCore

/// The operator's key and client operations, shared by the CLI (`tollgate keys`, `tollgate
/// clients`) and the admin API, so both do exactly the same thing to the store. A running gateway
/// picks every change up through its change feed.
public enum KeyOperations {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        /// No such key or client (the admin API answers 404).
        public let notFound: Bool
    }

    /// Makes a key; returns its record and its text, which exists nowhere else afterwards.
    public static func create(_ store: any APIKeyStore, hasher: APIKeyHasher, kind: APIKeyText.Kind, name: String, owner: String,
                              scopes: [String], routes: [String], lifetime: Duration?, maxUses: Int64?,
                              now: Int64) throws -> (record: APIKeyRecord, key: String) {
        let text = APIKeyText.generate(kind)
        let record = APIKeyRecord(id: text.id, kind: text.kind, name: name, owner: owner, scopes: scopes, routes: routes,
                                  hash: hasher.hash(text.text), createdAt: now, expiresAt: lifetime.map { now + $0.components.seconds },
                                  maxUses: maxUses)
        try store.insertKey(record)
        return (try store.key(id: text.id) ?? record, text.text)
    }

    /// A successor with the same owner, scopes and routes; the old key expires after `overlap`.
    public static func rotate(_ store: any APIKeyStore, hasher: APIKeyHasher, id: String, overlap: Duration,
                              now: Int64) throws -> (record: APIKeyRecord, key: String, oldEnds: Int64) {
        guard let old = try store.key(id: id) else { throw Failure(description: "no key with id \(id)", notFound: true) }
        guard old.revokedAt == nil else {
            throw Failure(description: "key \(id) is revoked; reactivate it or create a new one", notFound: false)
        }
        let text = APIKeyText.generate(old.kind)
        var successor = old
        successor.id = text.id
        successor.hash = hasher.hash(text.text)
        successor.createdAt = now
        successor.uses = 0
        successor.lastUsedAt = nil
        successor.replacedBy = nil
        if let e = old.expiresAt { successor.expiresAt = now + max(0, e - old.createdAt) }
        try store.insertKey(successor)
        let end = now + overlap.components.seconds
        _ = try store.updateKey(id: id) { r in
            r.expiresAt = min(r.expiresAt ?? end, end)
            r.replacedBy = text.id
        }
        return (try store.key(id: text.id) ?? successor, text.text, end)
    }

    public static func revoke(_ store: any APIKeyStore, id: String, now: Int64) throws -> APIKeyRecord {
        guard try store.updateKey(id: id, { $0.revokedAt = $0.revokedAt ?? now }), let r = try store.key(id: id) else {
            throw Failure(description: "no key with id \(id)", notFound: true)
        }
        return r
    }

    /// Lifts a revocation; `lifetime` sets a new expiry from now, `addUses` raises the use limit.
    public static func reactivate(_ store: any APIKeyStore, id: String, lifetime: Duration?, addUses: Int64?,
                                  now: Int64) throws -> APIKeyRecord {
        let newExpiry = lifetime.map { now + $0.components.seconds }
        guard try store.updateKey(id: id, { r in
            r.revokedAt = nil
            if let newExpiry { r.expiresAt = newExpiry }
            if let addUses, let m = r.maxUses { r.maxUses = max(m, r.uses) + addUses }
        }), let r = try store.key(id: id) else {
            throw Failure(description: "no key with id \(id)", notFound: true)
        }
        return r
    }

    /// Registers an OAuth client; returns its id and secret (shown once).
    public static func createClient(_ store: any OAuthClientStore, hasher: APIKeyHasher, name: String, scopes: [String],
                                    now: Int64) throws -> (id: String, secret: String) {
        let (id, secret) = OAuthClientRecord.newCredentials()
        try store.insertClient(OAuthClientRecord(id: id, name: name, secretHash: hasher.hash(secret), scopes: scopes, createdAt: now))
        return (id, secret)
    }

    /// A key as the CLI and the admin API show it (never the key itself).
    public static func describe(_ r: APIKeyRecord, now: Int64) -> JSONValue {
        var members = [JSONMember("id", .string(r.id)), JSONMember("kind", .string(r.kind.rawValue)), JSONMember("name", .string(r.name)),
                       JSONMember("owner", .string(r.owner)), JSONMember("scopes", .array(r.scopes.map { .string($0) })),
                       JSONMember("routes", .array(r.routes.map { .string($0) })),
                       JSONMember("state", .string(r.status(now: now, uses: r.uses).rawValue)),
                       JSONMember("uses", .number(String(r.uses))), JSONMember("created_at", .string(SpendControl.iso8601(r.createdAt)))]
        func optional(_ key: String, _ v: Int64?, time: Bool = true) {
            members.append(JSONMember(key, v.map { time ? .string(SpendControl.iso8601($0)) : .number(String($0)) } ?? .null))
        }
        optional("max_uses", r.maxUses, time: false)
        optional("expires_at", r.expiresAt)
        optional("last_used_at", r.lastUsedAt)
        optional("revoked_at", r.revokedAt)
        members.append(JSONMember("replaced_by", r.replacedBy.map { .string($0) } ?? .null))
        return .object(members)
    }

    public static func describe(_ c: OAuthClientRecord) -> JSONValue {
        .object([JSONMember("client_id", .string(c.id)), JSONMember("name", .string(c.name)),
                 JSONMember("scopes", .array(c.scopes.map { .string($0) })),
                 JSONMember("created_at", .string(SpendControl.iso8601(c.createdAt))),
                 JSONMember("revoked_at", c.revokedAt.map { .string(SpendControl.iso8601($0)) } ?? .null)])
    }
}
