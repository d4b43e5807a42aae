import Foundation
import Logging
import TollgateCore

/// Admin tokens and the audit log of admin API writes.
public protocol AdminStore: Sendable {
    func insertAdminToken(_ token: AdminTokenRecord) throws
    func adminToken(id: String) throws -> AdminTokenRecord?
    func adminTokens() throws -> [AdminTokenRecord]
    /// False when there is no such token or it was already revoked.
    func revokeAdminToken(id: String, at: Int64) throws -> Bool
    func appendAudit(_ entry: AuditEntry) throws
    /// The newest `limit` entries, newest first.
    func audit(limit: Int) throws -> [AuditEntry]
}

/// A store that outlives the process and that the CLI and the admin API can reach: SQLite (one
/// gateway) or PostgreSQL (several). Both pass the same conformance suite (Tests/TollgateStoreTests).
public protocol DurableStore: SpendLedger, APIKeyStore, OAuthClientStore, BanStore, AdminStore, UsageQueries {
    /// Writes what is batched and lets go of the database.
    func close()
}

extension SQLiteLedger: DurableStore {
    public func close() { commits.stop() }
}

/// Opens the store a config names.
public enum StoreOpener {
    /// The gateway's store (`store:`): memory, or a durable one. `secrets` holds the resolved
    /// secrets (the PostgreSQL password).
    public static func open(_ config: StoreConfig, secrets: [String: String], logger: Logger) throws -> any SpendLedger {
        switch config {
        case .memory: return MemoryLedger()
        case .sqlite(let path): return try SQLiteLedger(path: path)
        case .postgres(let pg): return try PostgresStore(config: pg, secrets: secrets, logger: logger)
        }
    }

    /// A durable store for the CLI; nil for `store: memory`, which nothing outside the process can reach.
    public static func openDurable(_ config: StoreConfig, secrets: [String: String], logger: Logger) throws -> (any DurableStore)? {
        switch config {
        case .memory: return nil
        case .sqlite(let path): return try SQLiteLedger(path: path)
        case .postgres(let pg): return try PostgresStore(config: pg, secrets: secrets, logger: logger)
        }
    }
}
