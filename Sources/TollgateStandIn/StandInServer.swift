import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A stand-in for a paid third-party API, for the demo and the tests. It requires the key, answers an
/// address-validation request with JSON that includes fields a gateway should strip, counts every
/// call, and can be told to misbehave (`POST /_standin/mode`).
///
/// Control endpoints (no key needed, not counted): `GET /_standin/stats`, `GET /_standin/last`,
/// `POST /_standin/reset`, `POST /_standin/mode` with `{"mode": "slow", "delay_ms": 2000}`.
public final class StandInServer: @unchecked Sendable {
    public struct TLSFiles: Sendable {
        public var certificate: String
        public var privateKey: String
        public init(certificate: String, privateKey: String) {
            self.certificate = certificate
            self.privateKey = privateKey
        }
    }

    private let group: MultiThreadedEventLoopGroup
    private let state: StandInState
    private let tls: TLSFiles?
    private var channel: Channel?

    public init(apiKey: String, tls: TLSFiles? = nil, threads: Int = 1) {
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        self.state = StandInState(apiKey: apiKey)
        self.tls = tls
    }

    /// Binds and starts serving; returns the bound address.
    @discardableResult
    public func start(host: String, port: Int) async throws -> SocketAddress {
        let state = self.state
        var sslContext: NIOSSLContext?
        if let tls {
            let certs = try NIOSSLCertificate.fromPEMFile(tls.certificate)
            let key = try NIOSSLPrivateKey(file: tls.privateKey, format: .pem)
            sslContext = try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: certs.map { .certificate($0) },
                                                                                    privateKey: .privateKey(key)))
        }
        let ssl = sslContext
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                do {
                    if let ssl { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: ssl)) }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
                    try channel.pipeline.syncOperations.addHandler(StandInHandler(state: state))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: host, port: port).get()
        self.channel = channel
        return channel.localAddress!
    }

    public func shutdown() async {
        try? await channel?.close()
        try? await group.shutdownGracefully()
    }
}
