import Synchronization

/// A client registered for the OAuth 2.0 client-credentials grant (`tollgate clients create`). The
/// secret is stored only as its keyed hash (``APIKeyHasher``) and shown once.
public struct OAuthClientRecord: Sendable, Equatable {
    public var id: String
    public var name: String
    public var secretHash: [UInt8]
    /// The most a token for this client may carry; a request asks for a subset.
    public var scopes: [String]
    public var createdAt: Int64
    public var revokedAt: Int64?
    public var version: Int64

    public init(id: String, name: String, secretHash: [UInt8], scopes: [String], createdAt: Int64,
                revokedAt: Int64? = nil, version: Int64 = 0) {
        self.id = id
        self.name = name
        self.secretHash = secretHash
        self.scopes = scopes
        self.createdAt = createdAt
        self.revokedAt = revokedAt
        self.version = version
    }

    /// A new client id (`tgc_` + 16 base62) and secret (`tg_cs_` + 32 base62, ≥ 190 bits).
    public static func newCredentials() -> (id: String, secret: String) {
        ("tgc_" + APIKeyText.randomBase62(16), "tg_cs_" + APIKeyText.randomBase62(32))
    }
}

public protocol OAuthClientStore: Sendable {
    func insertClient(_ client: OAuthClientRecord) throws
    func clients() throws -> [OAuthClientRecord]
    func clientChanges(after version: Int64) throws -> [OAuthClientRecord]
    /// False when there is no such client or it was already revoked.
    func revokeClient(id: String, at: Int64) throws -> Bool
}

/// The gateway's in-memory copy of the registered clients, fed like ``APIKeyIndex``.
public final class OAuthClientIndex: Sendable {
    private let clients = Mutex<[String: OAuthClientRecord]>([:])
    private let version = Atomic<Int64>(0)

    public init(records: [OAuthClientRecord] = []) { apply(records) }

    public var appliedVersion: Int64 { version.load(ordering: .relaxed) }

    public func apply(_ records: [OAuthClientRecord]) {
        guard !records.isEmpty else { return }
        clients.withLock { table in for r in records { table[r.id] = r } }
        let highest = records.map(\.version).max() ?? 0
        if highest > version.load(ordering: .relaxed) { version.store(highest, ordering: .relaxed) }
    }

    public func client(_ id: String) -> OAuthClientRecord? { clients.withLock { $0[id] } }
}
