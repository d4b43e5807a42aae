import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import TollgateCore
import TollgateAdmin
import TollgateStandIn
import TollgateStore

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the sign-up page demo: the gateway, a stand-in paid API and the page.",
        discussion: "Uses examples/address-validation/tollgate.yaml. The stand-in's key is made up at start and known only to the gateway and the stand-in.")

    @Option(name: .shortAndLong, help: "Demo config.")
    var config = "examples/address-validation/tollgate.yaml"
    @Option(help: "Port of the stand-in paid API (must match the config's upstream url).")
    var upstreamPort = 9101

    func run() async throws {
        let logger = makeLogger("tollgate")
        // Made-up keys for this run only, unless the environment already has them.
        for name in ["ADDRESS_API_KEY", "PAGE_TOKEN_KEY", "CHALLENGE_KEY"] where ProcessInfo.processInfo.environment[name] == nil {
            var bytes = [UInt8](repeating: 0, count: 24)
            for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
            setenv(name, "demo_" + Hex.encode(bytes), 1)
        }
        let key = ProcessInfo.processInfo.environment["ADDRESS_API_KEY"]!
        let (gatewayConfig, secrets) = try loadForServing(path: config, logger: logger)

        let console = try demoConsole(gatewayConfig)
        let standIn = StandInServer(apiKey: key)
        try await standIn.start(host: "127.0.0.1", port: upstreamPort)
        let base = "http://\(gatewayConfig.listen.host == "0.0.0.0" ? "127.0.0.1" : gatewayConfig.listen.host):\(gatewayConfig.listen.port)"
        print("""

          Tollgate demo
            sign-up page:     \(base)/
            address lookup:   \(base)/api/address?q=10+Downing+Street&country=GB
            stand-in API:     http://127.0.0.1:\(upstreamPort)/_standin/stats  (calls that reached the "paid" API)
            spend so far:     tollgate usage --config \(config)\(console)
          Press Ctrl-C to stop.

        """)
        try await runGateway(config: gatewayConfig, secrets: secrets, logger: logger, alsoRun: [StandInService(server: standIn)])
    }
}

/// Keeps the stand-in running alongside the gateway and stops it on shutdown.
struct StandInService: Service {
    let server: StandInServer
    func run() async throws {
        try? await gracefulShutdown()
        await server.shutdown()
    }
}

/// With an admin listener in the demo's config: a read/write admin token for this run, so the
/// console can be opened at once (printed once, stored hashed, like `tollgate admin-tokens create`).
private func demoConsole(_ config: GatewayConfig) throws -> String {
    guard let admin = config.admin, case .sqlite(let path) = config.store else { return "" }
    let store = try SQLiteLedger(path: path)
    let text = APIKeyText.generate(.admin)
    try store.insertAdminToken(AdminTokenRecord(id: text.id, name: "demo console", scopes: [.read, .write],
                                                hash: AdminTokenHash.of(text.text), createdAt: Int64(Date().timeIntervalSince1970)))
    return """

        console:          http://\(admin)/console
                          log in with this run's admin token: \(text.text)
    """
}
