import Dispatch
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import TollgateCore
import TollgateStore

/// The data plane: accepts client connections on the configured listener and serves them on
/// SwiftNIO event loops, one ``LoopContext`` per loop.
public final class GatewayServer: @unchecked Sendable {
    private let state: GatewayState
    private let group: MultiThreadedEventLoopGroup
    private let contexts: [ObjectIdentifier: LoopContext]
    private let sslContext: NIOSSLContext?
    private var serverChannel: Channel?
    private let logger: Logger
    private var pauseWatch: DispatchSourceTimer?
    private let metrics: GatewayMetrics
    private let listening = Atomic<Bool>(false)

    /// Prepares the server; throws when a TLS file or upstream trust setting cannot be loaded.
    public init(config: GatewayConfig, secrets: [String: String], logger: Logger,
                threads: Int? = nil) throws {
        self.logger = logger
        state = try GatewayState(config: config, secrets: secrets, logger: logger)
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads ?? config.workers ?? System.coreCount)
        var contexts: [ObjectIdentifier: LoopContext] = [:]
        for loop in group.makeIterator() {
            contexts[ObjectIdentifier(loop)] = LoopContext(eventLoop: loop, state: state)
        }
        self.contexts = contexts
        self.metrics = GatewayMetrics(state: state, contexts: Array(contexts.values))
        if let tls = config.tls {
            let certs = try NIOSSLCertificate.fromPEMFile(tls.certificate)
            let key = try NIOSSLPrivateKey(file: tls.privateKey, format: .pem)
            let configuration = TLSConfiguration.makeServerConfiguration(certificateChain: certs.map { .certificate($0) },
                                                                         privateKey: .privateKey(key))
            sslContext = try NIOSSLContext(configuration: configuration)
        } else {
            sslContext = nil
        }
    }

    /// The Prometheus text of the gateway's counters, gathered from every event loop.
    public func metricsText() async -> String {
        (try? await metrics.metrics(on: group.next()).get()) ?? ""
    }

    /// The budgets' running totals.
    public var spendBook: SpendBook { state.book }

    /// The store the gateway writes (the admin API shares it).
    public var store: any SpendLedger { state.ledger }

    /// Bans changed in the store (the admin API wrote them): reload them now.
    public func bansChanged() { state.access.storeChanged() }

    /// True while the public listener is bound.
    public var isListening: Bool { listening.load(ordering: .relaxed) }

    /// The address actually bound (useful with port 0).
    public var localAddress: SocketAddress? { serverChannel?.localAddress }

    /// Binds the listener and starts accepting.
    public func start() async throws {
        if let identity = state.identity, let first = contexts.values.first {
            try await identity.prepare()
            // The first JWKS fetch is waited for (bounded by its timeout), so tokens verify from the first request.
            try? await identity.start(on: first).get()
        }
        let contexts = self.contexts
        let sslContext = self.sslContext
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                guard let loop = contexts[ObjectIdentifier(channel.eventLoop)] else {
                    return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
                }
                // Over a cap: closed before a byte is read, no handler added.
                let peer = Peer(channel.remoteAddress, state: loop.state)
                let capped = peer.isTrustedProxy ? nil : peer.key
                if loop.state.admission.admit(capped) != nil {
                    channel.close(promise: nil)
                    return channel.eventLoop.makeSucceededVoidFuture()
                }
                let admission = loop.state.admission
                channel.closeFuture.whenComplete { _ in admission.release(capped) }
                do {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext { try sync.addHandler(NIOSSLServerHandler(context: sslContext)) }
                    try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
                    try sync.addHandler(ClientConnectionHandler(loop: loop, secureListener: sslContext != nil, peer: peer))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        let listen = state.config.listen
        serverChannel = try await bootstrap.bind(host: listen.host, port: listen.port).get()
        listening.store(true, ordering: .relaxed)
        state.access.start()
        watchLimitTables()
        watchPauses()
    }

    /// Picks up `tollgate budgets pause/resume` from the store twice a second (off the event loops),
    /// and a changed geo database file every 5 s.
    private func watchPauses() {
        let state = self.state
        let logger = self.logger
        let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
        timer.schedule(deadline: .now() + .milliseconds(500), repeating: .milliseconds(500))
        let ticks = Mutex(0)
        timer.setEventHandler {
            if ticks.withLock({ $0 += 1; return $0 % 10 == 0 }) { state.geo?.reloadIfChanged() }
            do {
                let paused = try state.ledger.pausedRoutes()
                if paused != state.book.paused {
                    state.book.setPaused(paused)
                    logger.warning("upstream calls paused", metadata: ["routes": "\(paused.sorted())"])
                }
            } catch {
                logger.error("cannot read pauses from the store", metadata: ["error": "\(error)"])
            }
        }
        timer.resume()
        pauseWatch = timer
    }

    /// Logs a warning when a rate-limit table was full of live keys and new clients had to share
    /// the overflow bucket (checked every 10 s, logged only when the count grew).
    private func watchLimitTables() {
        let limiters = state.limiters.all
        guard !limiters.isEmpty, let loop = contexts.values.first?.eventLoop else { return }
        let logger = self.logger
        let reported = NIOLoopBoundBox.makeBoxSendingValue([Int](repeating: 0, count: limiters.count), eventLoop: loop)
        loop.scheduleRepeatedTask(initialDelay: .seconds(10), delay: .seconds(10)) { _ in
            for (i, entry) in limiters.enumerated() where entry.limiter.overflowed > reported.value[i] {
                reported.value[i] = entry.limiter.overflowed
                logger.warning("rate limit table full", metadata: [
                    "limit": "\(entry.name)", "overflowed_total": "\(reported.value[i])", "tracked": "\(entry.limiter.count)"])
            }
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to `grace`, then closes everything.
    public func shutdown(grace: Duration) async {
        listening.store(false, ordering: .relaxed)
        try? await serverChannel?.close()
        for ctx in contexts.values {
            try? await ctx.eventLoop.submit { ctx.beginDrain() }.get()
        }
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            var busy = 0
            for ctx in contexts.values {
                busy += (try? await ctx.eventLoop.submit { ctx.inFlight + ctx.connections.count }.get()) ?? 0
            }
            if busy == 0 { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        for ctx in contexts.values {
            try? await ctx.eventLoop.submit {
                ctx.connections.values.forEach { $0.forceClose() }
                ctx.pool.closeAll()
                ctx.refusals.flush(to: ctx)
            }.get()
        }
        pauseWatch?.cancel()
        state.access.stop()
        state.identity?.stop()
        state.accessLog.drain()
        state.ledger.flush()
        try? await group.shutdownGracefully()
    }
}
