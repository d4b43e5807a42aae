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
        discussion: """
            Uses examples/address-validation/tollgate.yaml, or the two-step sign-up with \
            --config examples/two-step-signup/tollgate.yaml (then a local mail catcher, scripts/mail_catcher.py, \
            receives the verification mails and lists them on a page). Keys are made up at start and known only \
            to the gateway and the stand-in.
            """)

    @Option(name: .shortAndLong, help: "Demo config.")
    var config = "examples/address-validation/tollgate.yaml"
    @Option(help: "Port of the stand-in paid API (must match the config's upstream url).")
    var upstreamPort = 9101
    @Option(help: "Port of the mail catcher's page, when the config sends mail to a loopback SMTP server.")
    var mailPagePort = 8025

    func run() async throws {
        let logger = makeLogger("tollgate")
        // Made-up keys for this run only, unless the environment already has them.
        let names = ["ADDRESS_API_KEY", "PAGE_TOKEN_KEY", "CHALLENGE_KEY", "VERIFY_KEY", "ADDRESS_HASH_KEY"]
        for name in names where ProcessInfo.processInfo.environment[name] == nil {
            var bytes = [UInt8](repeating: 0, count: 24)
            for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
            setenv(name, "demo_" + Hex.encode(bytes), 1)
        }
        let key = ProcessInfo.processInfo.environment["ADDRESS_API_KEY"]!
        let (gatewayConfig, secrets) = try loadForServing(path: config, logger: logger)

        let console = try demoConsole(gatewayConfig)
        let mail = try startMailCatcher(gatewayConfig, pagePort: mailPagePort)
        defer { mail?.process.terminate() }
        let standIn = StandInServer(apiKey: key)
        try await standIn.start(host: "127.0.0.1", port: upstreamPort)
        let base = "http://\(gatewayConfig.listen.host == "0.0.0.0" ? "127.0.0.1" : gatewayConfig.listen.host):\(gatewayConfig.listen.port)"
        print("""

          Tollgate demo
            sign-up page:     \(base)/
            address lookup:   \(base)/api/address?q=10+Downing+Street&country=GB
            stand-in API:     http://127.0.0.1:\(upstreamPort)/_standin/stats  (calls that reached the "paid" API)
            spend so far:     tollgate usage --config \(config)\(console)\(mail?.line ?? "")
          Press Ctrl-C to stop.

        """)
        fflush(nil)  // the banner first, also when the output is a pipe or a file
        try await runGateway(config: gatewayConfig, secrets: secrets, logger: logger, alsoRun: [StandInService(server: standIn)])
    }
}

/// With `mail:` sending to a loopback SMTP port (the two-step example): starts scripts/mail_catcher.py
/// there, whose page lists the caught messages so a person can click the link.
private func startMailCatcher(_ config: GatewayConfig, pagePort: Int) throws -> (process: Process, line: String)? {
    guard case .smtp(let smtp)? = config.mail?.transport, ["127.0.0.1", "localhost", "::1"].contains(smtp.host) else { return nil }
    let script = "scripts/mail_catcher.py"
    guard FileManager.default.fileExists(atPath: script) else {
        throw DemoError("the two-step demo needs \(script): run it from the repository (scripts/demo two-step)")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script, "--smtp-port", String(smtp.port), "--http-port", String(pagePort), "--exit-with-parent"]
    let ready = Pipe()
    process.standardOutput = ready
    try process.run()
    // It prints one line once both of its servers listen (or exits).
    var line = Data()
    while !line.contains(UInt8(ascii: "\n")) {
        let chunk = ready.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        line += chunk
    }
    guard process.isRunning, line.contains(UInt8(ascii: "{")) else {
        throw DemoError("the mail catcher did not start (pip install aiosmtpd, or run scripts/demo two-step)")
    }
    return (process, """

            verification mail: http://127.0.0.1:\(pagePort)/  (every message the gateway sent; open its link here)
        """)
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
    guard let admin = config.admin, case .sqlite = config.store else { return "" }
    let store = try openStore(config)
    let text = APIKeyText.generate(.admin)
    try store.insertAdminToken(AdminTokenRecord(id: text.id, name: "demo console", scopes: [.read, .write],
                                                hash: AdminTokenHash.of(text.text), createdAt: Int64(Date().timeIntervalSince1970)))
    return """

        console:          http://\(admin)/console
                          log in with this run's admin token: \(text.text)
    """
}

/// A demo that cannot start, said without the usage text.
struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
