import ArgumentParser
import Foundation
import Logging
import TollgateCore
import TollgateStore

/// The config's durable store for a CLI command (SQLite or PostgreSQL); `store: memory` lives only
/// inside the running gateway, whose admin API is the way in.
func openStore(_ config: GatewayConfig) throws -> any DurableStore {
    var secrets: [String: String] = [:]
    if case .postgres(let pg) = config.store, let name = pg.passwordSecret, let reference = config.secrets[name] {
        switch SecretResolver(baseDirectory: config.baseDirectory).resolve([name: reference]) {
        case .success(let values): secrets = values
        case .failure(let error):
            for issue in error.issues { printErr(issue.description) }
            throw ExitCode(1)
        }
    }
    var logger = Logger(label: "tollgate.cli")
    logger.logLevel = .error
    guard let store = try StoreOpener.openDurable(config.store, secrets: secrets, logger: logger) else {
        throw ValidationError("store: memory cannot be reached from the CLI; use the admin API of the running gateway")
    }
    return store
}

/// The usage report of the config's store, for read-only commands; nil when the SQLite file does
/// not exist yet (the gateway has not run), or, with `mustExist`, an error saying so.
func openUsageReport(_ config: GatewayConfig, mustExist: Bool = false) throws -> UsageReport? {
    switch config.store {
    case .memory: throw ValidationError("store: memory keeps nothing the CLI can read")
    case .sqlite(let path): return mustExist || FileManager.default.fileExists(atPath: path) ? try UsageReport(path: path) : nil
    case .postgres: return UsageReport(try openStore(config))
    }
}
