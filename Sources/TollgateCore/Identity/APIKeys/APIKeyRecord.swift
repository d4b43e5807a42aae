/// A key as the store holds it: never the key itself, only its keyed hash.
public struct APIKeyRecord: Sendable, Equatable {
    public var id: String
    public var kind: APIKeyText.Kind
    public var name: String
    /// Who the key belongs to; the caller's subject (the id when empty).
    public var owner: String
    public var scopes: [String]
    /// Routes the key may call; empty means every route that accepts its kind.
    public var routes: [String]
    public var hash: [UInt8]
    /// Unix seconds.
    public var createdAt: Int64
    public var expiresAt: Int64?
    public var maxUses: Int64?
    /// Uses recorded in the store (the gateway adds its own since then).
    public var uses: Int64
    public var lastUsedAt: Int64?
    public var revokedAt: Int64?
    /// The key that replaced this one in a rotation.
    public var replacedBy: String?
    /// Bumped on every change an operator makes; the gateway's change feed reads past it.
    public var version: Int64

    public init(id: String, kind: APIKeyText.Kind, name: String, owner: String, scopes: [String], routes: [String] = [],
                hash: [UInt8], createdAt: Int64, expiresAt: Int64? = nil, maxUses: Int64? = nil, uses: Int64 = 0,
                lastUsedAt: Int64? = nil, revokedAt: Int64? = nil, replacedBy: String? = nil, version: Int64 = 0) {
        self.id = id
        self.kind = kind
        self.name = name
        self.owner = owner
        self.scopes = scopes
        self.routes = routes
        self.hash = hash
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.maxUses = maxUses
        self.uses = uses
        self.lastUsedAt = lastUsedAt
        self.revokedAt = revokedAt
        self.replacedBy = replacedBy
        self.version = version
    }

    public enum Status: String, Sendable {
        case active
        case revoked
        case expired
        /// Its use limit is reached.
        case exhausted
    }

    /// The key's state at `now` (Unix seconds) with `uses` uses counted in all.
    public func status(now: Int64, uses: Int64) -> Status {
        if revokedAt != nil { return .revoked }
        if let expiresAt, now >= expiresAt { return .expired }
        if let maxUses, uses >= maxUses { return .exhausted }
        return .active
    }

    public var subject: String { owner.isEmpty ? id : owner }
}

/// Where keys live: the SQLite store by default, a PostgreSQL one for clusters. Every write bumps
/// the key's `version` so that gateways following ``changes(after:)`` see it.
public protocol APIKeyStore: Sendable {
    func insertKey(_ record: APIKeyRecord) throws
    func key(id: String) throws -> APIKeyRecord?
    func keys() throws -> [APIKeyRecord]
    /// Keys changed after `version`, oldest change first.
    func keyChanges(after version: Int64) throws -> [APIKeyRecord]
    /// Applies `change` to key `id` and bumps its version; false when there is no such key.
    func updateKey(id: String, _ change: @Sendable (inout APIKeyRecord) -> Void) throws -> Bool
    /// Adds uses counted by a gateway (not an operator change: the version stays).
    func addKeyUses(_ uses: [(id: String, count: Int64, lastUsedAt: Int64)]) throws
}
