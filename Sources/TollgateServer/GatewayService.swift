import Logging
import ServiceLifecycle
import TollgateCore

/// Runs a ``GatewayServer`` under swift-service-lifecycle: on SIGTERM/SIGINT it stops accepting and
/// gives in-flight requests the configured grace period.
public struct GatewayService: Service {
    let server: GatewayServer
    let grace: Duration
    let logger: Logger

    public init(server: GatewayServer, grace: Duration, logger: Logger) {
        self.server = server
        self.grace = grace
        self.logger = logger
    }

    public func run() async throws {
        try await server.start()
        logger.info("listening", metadata: ["address": "\(server.localAddress.flatMap { a in a.ipAddress.map { "\($0):\(a.port ?? 0)" } } ?? "?")"])
        try? await gracefulShutdown()
        logger.info("shutting down", metadata: ["grace_ms": "\(grace.milliseconds)"])
        await server.shutdown(grace: grace)
        logger.info("stopped")
    }
}
