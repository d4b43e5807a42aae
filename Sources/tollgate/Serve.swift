import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import TollgateCore
import TollgateAdmin
import TollgateServer
import TollgateStore

extension GatewayServer: LiveGateway {}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway.",
        discussion: """
        Stops accepting on SIGTERM or SIGINT and lets in-flight requests finish for shutdown_grace. \
        On SIGHUP (or `tollgate reload`, or POST /v1/config/reload) reads the config file again and \
        applies it without dropping a request; an invalid config changes nothing and is logged.
        """)

    @OptionGroup var options: ConfigOption
    @Option(help: "Write the process id to this file (for `tollgate reload --pid-file`).") var pidFile: String?

    func run() async throws {
        let logger = makeLogger("tollgate")
        if let pidFile { try "\(getpid())\n".write(toFile: pidFile, atomically: true, encoding: .utf8) }
        let (config, secrets) = try loadForServing(path: options.config, logger: logger)
        try await runGateway(config: config, secrets: secrets, logger: logger, configPath: options.config)
    }
}

func makeLogger(_ label: String) -> Logger {
    LoggingSystem.bootstrap { JSONLogHandler(label: $0) }
    return Logger(label: label)
}

/// Loads the config and resolves its secrets, or explains why it cannot and exits 1.
func loadForServing(path: String, logger: Logger) throws -> (GatewayConfig, [String: String]) {
    let loaded: ConfigLoader.Loaded
    do {
        loaded = try ConfigLoader.load(path: path)
    } catch {
        for issue in error.issues { logger.error("config", metadata: ["issue": "\(issue.description)"]) }
        throw ExitCode(1)
    }
    for warning in loaded.warnings { logger.warning("config", metadata: ["issue": "\(warning.description)"]) }
    switch SecretResolver(baseDirectory: loaded.config.baseDirectory).resolve(loaded.config.secrets) {
    case .success(let secrets):
        return (loaded.config, secrets)
    case .failure(let error):
        for issue in error.issues { logger.error("missing secret", metadata: ["issue": "\(issue.description)"]) }
        throw ExitCode(1)
    }
}

/// Runs the gateway until SIGTERM/SIGINT, then drains.
func runGateway(config: GatewayConfig, secrets: [String: String], logger: Logger, configPath: String? = nil,
                alsoRun: [any Service] = []) async throws {
    let server: GatewayServer
    do {
        server = try GatewayServer(config: config, secrets: secrets, logger: logger, configPath: configPath)
    } catch {
        logger.error("cannot start", metadata: ["error": "\(error)"])
        throw ExitCode(1)
    }
    let hangUp = reloadOnHangUp(server, logger: logger)
    defer { hangUp.cancel() }
    let service = GatewayService(server: server, grace: config.shutdownGrace, logger: logger)
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: service)]
    if let address = config.admin {
        let admin = AdminAPI(config: config, store: server.store as? any DurableStore, secrets: secrets, live: server,
                             logger: Logger(label: "tollgate.admin"))
        services.append(.init(service: admin.application(at: address)))
    }
    let group = ServiceGroup(configuration: .init(
        services: services + alsoRun.map { .init(service: $0) },
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger))
    try await group.run()
}

/// SIGHUP reloads the config file (the signal is taken from its default action, which would end
/// the process).
func reloadOnHangUp(_ server: GatewayServer, logger: Logger) -> any DispatchSourceSignal {
    signal(SIGHUP, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
    source.setEventHandler {
        logger.info("SIGHUP: reloading the config")
        Task { _ = await server.reload() }
    }
    source.resume()
    return source
}
