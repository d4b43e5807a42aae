import Foundation
import Testing
import Logging
import TollgateCore
@testable import TollgateStore

/// The stores the conformance suites run against, each one fresh: SQLite (a new file), and
/// PostgreSQL (a new database) when `TOLLGATE_TEST_POSTGRES` names a server — scripts/test starts
/// a private one and sets `TOLLGATE_REQUIRE_POSTGRES=1`, so there a missing server fails the run
/// instead of skipping the PostgreSQL cases.
enum TestStores {
    static func sqlite(_ name: String = "store") throws -> SQLiteLedger {
        try SQLiteLedger(path: FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString).db").path)
    }

    /// The server's config with a new, empty database; nil when no server is named.
    static func postgresConfig() throws -> PostgresStoreConfig? {
        let env = ProcessInfo.processInfo.environment
        guard let text = env["TOLLGATE_TEST_POSTGRES"], let url = URLComponents(string: text), let host = url.host else {
            if env["TOLLGATE_REQUIRE_POSTGRES"] == "1" { throw StoreError("TOLLGATE_TEST_POSTGRES is not set") }
            return nil
        }
        let server = PostgresStoreConfig(host: host, port: url.port ?? 5432, user: url.user ?? "tollgate", database: "postgres")
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let admin = try PostgresConnections(config: server, password: nil, logger: logger)
        defer { admin.shutdown() }
        try admin.run("CREATE DATABASE \(unescaped: name)")
        var config = server
        config.database = name
        return config
    }

    static func postgres() throws -> PostgresStore? {
        try postgresConfig().map { try PostgresStore(config: $0, secrets: [:], logger: logger) }
    }

    /// SQLite, and PostgreSQL when there is a server.
    static func durable(_ name: String = "store") throws -> [any DurableStore] {
        [try sqlite(name)] + [try postgres()].compactMap { $0 }
    }

    static var logger: Logger {
        var l = Logger(label: "tollgate.tests")
        l.logLevel = .error
        return l
    }
}

/// Opens the same store again, as a restarted gateway would: the same SQLite file or the same
/// PostgreSQL database.
struct StoreFactory: Sendable, CustomTestStringConvertible {
    let testDescription: String
    let open: @Sendable () throws -> any DurableStore

    static func all(_ name: String) throws -> [StoreFactory] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString).db").path
        var factories = [StoreFactory(testDescription: "sqlite") { try SQLiteLedger(path: path) }]
        if let config = try TestStores.postgresConfig() {
            factories.append(StoreFactory(testDescription: "postgres") {
                try PostgresStore(config: config, secrets: [:], logger: TestStores.logger)
            })
        }
        return factories
    }
}
