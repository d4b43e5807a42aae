import Dispatch
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import Synchronization
import TollgateCore
import TollgateStore

/// The data plane: accepts client connections on the configured listener and serves them on
/// SwiftNIO event loops, one ``LoopContext`` per loop; reloads its config without a restart
/// (``reload()``): a new ``GatewayState`` is built beside the old one and handed to every loop,
/// requests already started finish under the generation they began with, and nothing listening
/// is closed.
public final class GatewayServer: @unchecked Sendable {
    private let current: NIOLockedValueBox<GatewayState>
    private let group: MultiThreadedEventLoopGroup
    private let contexts: [ObjectIdentifier: LoopContext]
    private let tls: ServerTLS?
    private var serverChannel: Channel?
    private var redirectChannel: Channel?
    private let logger: Logger
    private var watch: DispatchSourceTimer?
    private var storeListener: PostgresListener?
    /// Rate-limit usage shared with the other gateways (nil: one gateway, or a store that cannot share it).
    private(set) var rateSync: RateSync?
    private let metrics: GatewayMetrics
    private let listening = Atomic<Bool>(false)
    private let reloading = Mutex(false)
    private let reloads = ReloadCounters()
    private let rateAlerts = RateAlerts()
    /// The config file a reload reads (nil: started from a config in memory).
    private let configPath: String?

    /// Prepares the server; throws when a TLS file, the geo database or an upstream trust setting
    /// cannot be loaded.
    public init(config: GatewayConfig, secrets: [String: String], logger: Logger,
                threads: Int? = nil, configPath: String? = nil) throws {
        self.logger = logger
        self.configPath = configPath
        let state = try GatewayState(config: config, secrets: secrets, logger: logger)
        current = NIOLockedValueBox(state)
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads ?? config.workers ?? System.coreCount)
        var contexts: [ObjectIdentifier: LoopContext] = [:]
        for loop in group.makeIterator() {
            contexts[ObjectIdentifier(loop)] = LoopContext(eventLoop: loop, state: state)
        }
        self.contexts = contexts
        let box = current
        self.metrics = GatewayMetrics(current: { box.withLockedValue { $0 } }, contexts: Array(contexts.values), reloads: reloads,
                                      telemetry: state.telemetry)
        tls = try config.tls.map { try ServerTLS($0) }
    }

    /// The config generation serving new requests.
    var state: GatewayState { current.withLockedValue { $0 } }

    /// The config in force.
    public var config: GatewayConfig { state.config }

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

    /// The console's view of the last hour, gathered from every event loop.
    public func console() async -> ConsoleSnapshot {
        let now = Int64(NIODeadline.wallClockSeconds)
        var parts: [ConsoleSnapshot] = []
        for ctx in contexts.values {
            if let part = try? await ctx.eventLoop.submit({ ctx.console.snapshot(now: now) }).get() { parts.append(part) }
        }
        var snapshot = ConsoleTally.merge(parts, now: now)
        snapshot.alerts = rateAlerts.recent
        return snapshot
    }

    /// Runs the rate rules over the last hour and sends what changed (log, webhook, console).
    private func evaluateAlerts() async {
        let state = self.state
        guard !state.config.alerts.rules.isEmpty else { return }
        let snapshot = await console()
        let now = Int64(NIODeadline.wallClockSeconds)
        for (notice, body) in rateAlerts.evaluate(state.config.alerts.rules, snapshot: snapshot, now: now) {
            logger.warning("rate alert", metadata: ["rule": "\(notice.rule)", "state": "\(notice.state)", "text": "\(notice.text)"])
            if let ctx = contexts.values.first {
                let text = body.serialized
                ctx.eventLoop.execute { state.alerts.send(text, now: now, attempt: 0, pool: ctx.pool) }
            }
        }
    }

    /// Completed sign-ups the application reported (the admin API's `POST /v1/signups`).
    public func recordSignups(_ count: Int) async {
        guard let ctx = contexts.values.first else { return }
        try? await ctx.eventLoop.submit { for _ in 0..<count { ctx.console.recordSignup() } }.get()
    }

    /// True while the public listener is bound.
    public var isListening: Bool { listening.load(ordering: .relaxed) }

    /// The address actually bound (useful with port 0).
    public var localAddress: SocketAddress? { serverChannel?.localAddress }

    /// Binds the listener (and the HTTP redirect listener) and starts accepting.
    public func start() async throws {
        let state = self.state
        if let identity = state.identity, let first = contexts.values.first {
            try await identity.prepare()
            // The first JWKS fetch is waited for (bounded by its timeout), so tokens verify from the first request.
            try? await identity.start(on: first).get()
        }
        let contexts = self.contexts
        let tls = self.tls
        Self.warmConnectionTypes()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            // Out of descriptors, accept fails and the listening socket stays readable: pause
            // accepting instead of spinning on it.
            .serverChannelInitializer { [admission = state.admission, logger = state.logger] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptPause(admission: admission, logger: logger))
                }
            }
            .childChannelInitializer { channel in
                guard let loop = contexts[ObjectIdentifier(channel.eventLoop)] else {
                    return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
                }
                // Over a cap: closed before a byte is read, no handler added (over a client's own
                // cap, after being held unread for `refusal_delay`: see ConnectionAdmission).
                let peer = Peer(channel.remoteAddress, state: loop.state)
                let capped = peer.isTrustedProxy ? nil : peer.key
                let admission = loop.state.admission
                if let refusal = admission.admit(capped) {
                    let delay = loop.state.config.refusalDelay
                    if refusal == .perClient, delay > .zero, admission.hold() {
                        channel.closeFuture.whenComplete { _ in admission.releaseHeld() }
                        try? channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
                        channel.eventLoop.scheduleTask(in: TimeAmount(delay)) { channel.close(promise: nil) }
                    } else {
                        channel.close(promise: nil)
                    }
                    return channel.eventLoop.makeSucceededVoidFuture()
                }
                channel.closeFuture.whenComplete { _ in admission.release(capped) }
                do {
                    if let tls {
                        try ClientPipeline.secure(channel, context: tls.context, loop: loop, peer: peer)
                    } else {
                        try ClientPipeline.http1(channel, loop: loop, peer: peer, secure: false)
                    }
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        let listen = state.config.listen
        serverChannel = try await bootstrap.bind(host: listen.host, port: listen.port).get()
        if let redirect = state.config.tls?.redirectHTTP {
            redirectChannel = try await HTTPSRedirect.bind(redirect, group: group, httpsPort: localAddress?.port ?? listen.port)
        }
        listening.store(true, ordering: .relaxed)
        if case .postgres(let pg) = state.config.store, let shared = state.ledger as? any SharedRateUsage {
            state.logger.notice("store shared with other gateways", metadata: [
                "store": "\(pg.description)", "sync_interval": "\(pg.syncInterval)"])
            let sync = RateSync(store: shared, interval: .nanoseconds(pg.syncInterval.nanoseconds), current: current, logger: logger)
            sync.start()
            rateSync = sync
            metrics.rateSync.withLockedValue { $0 = sync }
        }
        state.access.start()
        rateAlerts.start(every: .milliseconds(Int(state.config.alerts.interval.milliseconds))) { [weak self] in
            await self?.evaluateAlerts()
        }
        watchLimitTables()
        watchStoreAndFiles()
        listenToStore()
    }

    /// Builds, once and on this thread, the generic types every client connection's pipeline
    /// uses, before two event loops can accept their first connections at the same moment. Two
    /// loops instantiating the same generic metadata for the first time at once crashed the Swift
    /// 6.3 runtime (a null dereference in `swift_getTypeByMangledName`, seen once in CI at the
    /// first request after start; the swiftlang/swift#37656 family of first-instantiation races).
    private static func warmConnectionTypes() {
        _ = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes))
        _ = [HTTPServerRequestPart.self, HTTPServerResponsePart.self] as [Any.Type]
        _ = NIOAny(HTTPServerRequestPart.end(nil))
        _ = [HTTP2Frame.self, HTTP2Frame.FramePayload.self] as [Any.Type]
    }

    // MARK: Reload

    /// Reads the config file again and applies it (``ReloadOutcome``): SIGHUP, `tollgate reload`
    /// and the admin API all come here. One reload at a time; a second one meanwhile is refused.
    public func reload() async -> ReloadOutcome { await reload(announce: true) }

    /// With `announce` (a reload asked of this gateway), a reload that applies also asks every
    /// other gateway on a shared store to reload its own file; one asked that way does not ask again.
    func reload(announce: Bool) async -> ReloadOutcome {
        let outcome = await reloadFromFile()
        if announce, case .applied = outcome, let store = state.ledger as? PostgresStore {
            let logger = self.logger
            DispatchQueue.global().async {
                do { try store.announceReload() } catch {
                    logger.warning("could not ask the other gateways to reload", metadata: ["error": "\(error)"])
                }
            }
        }
        return outcome
    }

    private func reloadFromFile() async -> ReloadOutcome {
        guard let configPath else { return refuse([issue("", "the gateway was not started from a config file")]) }
        guard reloading.withLock({ busy in defer { busy = true }; return !busy }) else {
            return refuse([issue("", "another reload is in progress; try again")])
        }
        defer { reloading.withLock { $0 = false } }
        let loaded: ConfigLoader.Loaded
        do {
            loaded = try ConfigLoader.load(path: configPath)
        } catch {
            return refuse(error.issues)
        }
        switch SecretResolver(baseDirectory: loaded.config.baseDirectory).resolve(loaded.config.secrets) {
        case .failure(let error): return refuse(error.issues)
        case .success(let secrets): return await apply(loaded.config, secrets: secrets, warnings: loaded.warnings)
        }
    }

    private func apply(_ config: GatewayConfig, secrets: [String: String], warnings: [ConfigIssue]) async -> ReloadOutcome {
        let old = state
        let restart = ReloadPlan.restartOnly(old.config, config)
        guard restart.isEmpty else { return refuse(restart) }
        let new: GatewayState
        do {
            new = try GatewayState(config: config, secrets: secrets, logger: logger, previous: old)
            if let files = config.tls { try tls?.replace(files) }
            if let identity = new.identity, identity !== old.identity, let first = contexts.values.first {
                try await identity.prepare()
                try? await identity.start(on: first).get()
            }
        } catch let error as ConfigError {
            return refuse(error.issues)
        } catch {
            return refuse([issue("", "\(error)")])
        }
        current.withLockedValue { $0 = new }
        for ctx in contexts.values {
            try? await ctx.eventLoop.submit {
                ctx.state = new
                ctx.pool.setLimits(maxConnections: config.upstreamMaxConnections, maxWaiting: config.upstreamMaxWaiting,
                                   idleTimeout: TimeAmount(config.upstreamIdleTimeout))
            }.get()
        }
        if old.identity !== new.identity { old.identity?.stop() }
        if old.accessLog !== new.accessLog { old.accessLog.drain() }
        reloads.applied.add(1, ordering: .relaxed)
        logger.notice("config reloaded", metadata: ["routes": "\(config.routes.count)", "warnings": "\(warnings.count)"])
        for warning in warnings { logger.warning("config", metadata: ["issue": "\(warning.description)"]) }
        return .applied(warnings: warnings)
    }

    private func refuse(_ issues: [ConfigIssue]) -> ReloadOutcome {
        reloads.refused.add(1, ordering: .relaxed)
        logger.error("config reload refused; the running config is unchanged",
                     metadata: ["issues": "\(issues.map(\.description).joined(separator: "; "))"])
        return .refused(errors: issues)
    }

    private func issue(_ path: String, _ message: String) -> ConfigIssue {
        ConfigIssue(severity: .error, path: path, line: nil, message: message)
    }

    // MARK: Watchers

    /// Twice a second (off the event loops): `tollgate budgets pause/resume` from the store; every
    /// 5 s: a changed geo database or TLS certificate file.
    private func watchStoreAndFiles() {
        let logger = self.logger
        let box = current
        let tls = self.tls
        let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
        timer.schedule(deadline: .now() + .milliseconds(500), repeating: .milliseconds(500))
        let ticks = Mutex(0)
        timer.setEventHandler {
            let state = box.withLockedValue { $0 }
            if ticks.withLock({ $0 += 1; return $0 % 10 == 0 }) {
                state.geo?.reloadIfChanged()
                tls?.reloadIfChanged(logger: logger)
            }
            Self.readPauses(state, logger: logger)
        }
        timer.resume()
        watch = timer
    }

    /// `tollgate budgets pause/resume` (from any gateway or CLI sharing the store).
    private static func readPauses(_ state: GatewayState, logger: Logger) {
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

    /// With a shared store: act on other gateways' announcements at once (the polls stay, for a
    /// notification lost while the listener was reconnecting). Work is handed to a queue: the
    /// announcement arrives on the store's event-loop thread.
    private func listenToStore() {
        guard let store = state.ledger as? PostgresStore else { return }
        let box = current, logger = self.logger
        let queue = DispatchQueue(label: "tollgate.store.notifications")
        storeListener = store.listen { [weak self] topic in
            if topic == .reload {
                logger.notice("config reload asked by another gateway")
                Task { _ = await self?.reload(announce: false) }
                return
            }
            queue.async {
                let state = box.withLockedValue { $0 }
                if topic == .bans || topic == .all { state.access.pollSoon() }
                if topic == .keys || topic == .clients || topic == .all { state.identity?.pollSoon() }
                if topic == .verification || topic == .all { state.verification?.feed?.pollSoon() }
                if topic == .pauses || topic == .all { Self.readPauses(state, logger: logger) }
            }
        }
    }

    /// Logs a warning when a rate-limit table was full of live keys and new clients had to share
    /// the overflow bucket (checked every 10 s, logged only when the count grew).
    private func watchLimitTables() {
        guard let loop = contexts.values.first?.eventLoop else { return }
        let logger = self.logger
        let box = current
        let reported = NIOLoopBoundBox.makeBoxSendingValue([ObjectIdentifier: Int](), eventLoop: loop)
        loop.scheduleRepeatedTask(initialDelay: .seconds(10), delay: .seconds(10)) { _ in
            for entry in box.withLockedValue({ $0 }).limiters.all {
                let id = ObjectIdentifier(entry.limiter)
                guard entry.limiter.overflowed > reported.value[id, default: 0] else { continue }
                reported.value[id] = entry.limiter.overflowed
                logger.warning("rate limit table full", metadata: [
                    "limit": "\(entry.name)", "overflowed_total": "\(entry.limiter.overflowed)", "tracked": "\(entry.limiter.count)"])
            }
        }
    }

    // MARK: Shutdown

    /// Stops accepting, lets in-flight requests finish for up to `grace`, then closes everything.
    public func shutdown(grace: Duration) async {
        listening.store(false, ordering: .relaxed)
        try? await serverChannel?.close()
        try? await redirectChannel?.close()
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
                ctx.accessLines.flush()
            }.get()
        }
        watch?.cancel()
        storeListener?.stop()
        rateSync?.stop()
        rateAlerts.stop()
        let state = self.state
        state.access.stop()
        state.identity?.stop()
        state.accessLog.drain()
        state.ledger.finish()
        try? await group.shutdownGracefully()
    }
}
