import Foundation
import Logging
import NIOCore
import TollgateCore

/// Everything the data plane needs that is fixed at start: routes, upstream endpoints, file bodies.
/// Immutable, shared by all event loops.
final class GatewayState: Sendable {
    let config: GatewayConfig
    let routes: RouteTable<Route>
    let endpoints: [String: UpstreamEndpoint]
    let files: [String: ByteBuffer]
    let accessLog: AccessLog
    let logger: Logger
    let limiters: LimiterRegistry

    init(config: GatewayConfig, secrets: [String: String], logger: Logger) throws {
        self.config = config
        self.limiters = LimiterRegistry(maxKeys: config.rateLimitMaxKeys)
        self.routes = GatewayRoutes.table(config: config, secrets: secrets, limiters: limiters)
        self.endpoints = try UpstreamEndpoint.forRoutes(config.routes)
        var files: [String: ByteBuffer] = [:]
        for route in config.routes {
            if case .file(let path, _) = route.target {
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw ConfigError(issues: [ConfigIssue(severity: .error, path: "routes.\(route.name).file", line: nil,
                                                           message: "cannot read \(path)")])
                }
                files[route.name] = ByteBuffer(bytes: data)
            }
        }
        self.files = files
        self.accessLog = AccessLog(sink: config.accessLog == .off ? nil : LogSink.standardOutput)
        self.logger = logger
    }

    /// Whether `address` (bytes) is a configured trusted proxy.
    func isTrustedProxy(_ address: [UInt8]) -> Bool {
        config.clientIdentity.isTrusted(address)
    }
}

/// State owned by one event loop: its upstream pool, its id generator, its open client connections.
/// Touched only from that loop.
final class LoopContext {
    let eventLoop: EventLoop
    let state: GatewayState
    let pool: UpstreamPool
    var requestIDs = RequestIDGenerator()
    /// Open client connections, so shutdown can ask each to finish and close.
    var connections: [ObjectIdentifier: ClientConnectionHandler] = [:]
    /// Requests whose response has not been written yet.
    var inFlight = 0
    /// Set at shutdown: connections close after their current response.
    var draining = false

    init(eventLoop: EventLoop, state: GatewayState) {
        self.eventLoop = eventLoop
        self.state = state
        self.pool = UpstreamPool(eventLoop: eventLoop)
    }

    func beginDrain() {
        draining = true
        for handler in connections.values { handler.drain() }
    }
}
