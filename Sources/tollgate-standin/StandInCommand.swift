import ArgumentParser
import Foundation
import TollgateStandIn

@main
struct StandInCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tollgate-standin",
        abstract: "A stand-in paid API for Tollgate's demo and tests.",
        discussion: """
        Requires the key from the environment variable STANDIN_API_KEY (as X-Api-Key, ?key=, Bearer or Basic), \
        answers GET/POST /v2/validate and GET /v2/places/{id}, and counts every call.
        Control: GET /_standin/stats, GET /_standin/last, POST /_standin/reset, POST /_standin/mode {"mode": "slow", "delay_ms": 2000}.
        """)

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port = 9101
    @Option(help: "PEM certificate chain, to serve HTTPS.") var tlsCert: String?
    @Option(help: "PEM private key, to serve HTTPS.") var tlsKey: String?

    func run() async throws {
        guard let key = ProcessInfo.processInfo.environment["STANDIN_API_KEY"], !key.isEmpty else {
            throw ValidationError("set STANDIN_API_KEY to the key the stand-in should require")
        }
        var tls: StandInServer.TLSFiles?
        if let tlsCert, let tlsKey { tls = .init(certificate: tlsCert, privateKey: tlsKey) }
        let server = StandInServer(apiKey: key, tls: tls)
        let address = try await server.start(host: host, port: port)
        FileHandle.standardOutput.write(Data("{\"msg\":\"listening\",\"port\":\(address.port ?? 0)}\n".utf8))
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}
