import NIOCore
import NIOPosix
import NIOSSL
import TollgateUpstreamHTTP

/// Keep-alive connections to upstreams for one event loop. Only that loop touches it: no locks,
/// no thread hops. A request takes an idle connection or opens one, and gives it back when the
/// response is complete and the upstream allows reuse.
///
/// `@unchecked Sendable` on that invariant: every member is used only on `eventLoop` (the sweep
/// timer and connect callbacks run there too); the reference may cross threads only to reach it.
final class UpstreamPool: @unchecked Sendable {
    let eventLoop: EventLoop
    /// Idle connections kept per endpoint; more are closed when returned.
    let maxIdlePerEndpoint: Int
    private var idle: [ObjectIdentifier: [UpstreamConnection]] = [:]
    /// Exchanges in progress, checked against their deadlines by one periodic sweep per loop:
    /// cheaper than scheduling (and cancelling) a timer for every request.
    private var active: [Exchange] = []
    private var sweeper: RepeatedTask?
    static let sweepInterval = TimeAmount.milliseconds(20)

    init(eventLoop: EventLoop, maxIdlePerEndpoint: Int = 128) {
        self.eventLoop = eventLoop
        self.maxIdlePerEndpoint = maxIdlePerEndpoint
    }

    /// Runs one exchange under `call.timeout` (connect included); `completion` runs once, on this loop.
    /// A stale pooled connection is replaced by a fresh one once, for retryable calls.
    func execute(_ call: UpstreamCall, completion: @escaping (Result<UpstreamResponse, UpstreamFailure>) -> Void) {
        let exchange = Exchange(call: call, deadline: .now() + call.timeout, pool: self, completion: completion)
        exchange.slot = active.count
        active.append(exchange)
        if sweeper == nil {
            sweeper = eventLoop.scheduleRepeatedTask(initialDelay: Self.sweepInterval, delay: Self.sweepInterval) { [weak self] task in
                self?.sweep(task)
            }
        }
        attempt(exchange, allowPooled: true)
    }

    /// Fails exchanges past their deadline with a timeout; stops when nothing is in progress.
    private func sweep(_ task: RepeatedTask) {
        guard !active.isEmpty else {
            task.cancel()
            sweeper = nil
            return
        }
        let now = NIODeadline.now()
        for exchange in active where exchange.deadline <= now {
            exchange.finish(.failure(.timeout))
        }
    }

    /// Removes a finished exchange from `active` (swap with the last).
    fileprivate func finished(_ exchange: Exchange) {
        let slot = exchange.slot
        guard slot >= 0, slot < active.count, active[slot] === exchange else { return }
        let last = active.removeLast()
        if slot < active.count {
            active[slot] = last
            last.slot = slot
        }
        exchange.slot = -1
    }

    /// Closes every idle connection (at shutdown).
    func closeAll() {
        for conns in idle.values { conns.forEach { $0.abort() } }
        idle.removeAll()
    }

    private func attempt(_ exchange: Exchange, allowPooled: Bool) {
        guard !exchange.done else { return }
        let endpoint = exchange.call.endpoint
        if allowPooled, let conn = takeIdle(endpoint) {
            run(exchange, on: conn)
            return
        }
        connect(endpoint, timeout: exchange.call.connectTimeout).assumeIsolated().whenComplete { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let conn):
                if exchange.done {
                    self.release(conn)
                } else {
                    self.run(exchange, on: conn)
                }
            case .failure(let error):
                exchange.finish(.failure(.connect(Self.describe(error))))
            }
        }
    }

    private func run(_ exchange: Exchange, on conn: UpstreamConnection) {
        exchange.connection = conn
        let reused = conn.uses > 0
        conn.send(exchange.call) { [weak self] result in
            guard let self else { return }
            exchange.connection = nil
            if case .failure(.closedBeforeResponse) = result, reused, exchange.call.retryable, !exchange.retried {
                exchange.retried = true
                self.attempt(exchange, allowPooled: false)
                return
            }
            // Give the connection back before the client's response is written: a pipelined
            // request may arrive during that write and want it.
            if case .success(let response) = result, response.keepAlive { self.release(conn) }
            exchange.finish(result)
        }
    }

    private func takeIdle(_ endpoint: UpstreamEndpoint) -> UpstreamConnection? {
        let key = ObjectIdentifier(endpoint)
        while let conn = idle[key]?.popLast() {
            if conn.isUsable { return conn }
        }
        return nil
    }

    private func release(_ conn: UpstreamConnection) {
        guard conn.isUsable else { return }
        let key = ObjectIdentifier(conn.endpoint)
        if idle[key, default: []].count >= maxIdlePerEndpoint {
            conn.abort()
            return
        }
        idle[key, default: []].append(conn)
    }

    private func forget(_ conn: UpstreamConnection) {
        let key = ObjectIdentifier(conn.endpoint)
        idle[key]?.removeAll { $0 === conn }
    }

    private func connect(_ endpoint: UpstreamEndpoint, timeout: TimeAmount) -> EventLoopFuture<UpstreamConnection> {
        let conn = UpstreamConnection(endpoint: endpoint)
        conn.onClose = { [weak self] c in self?.forget(c) }
        let bound = NIOLoopBound(conn, eventLoop: eventLoop)  // the new channel lives on this same loop
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                do {
                    if let ssl = endpoint.sslContext {
                        let handler = try NIOSSLClientHandler(context: ssl, serverHostname: endpoint.serverHostname)
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                    try channel.pipeline.syncOperations.addHandler(bound.value)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .map { _ in bound.value }
    }

    private static func describe(_ error: Error) -> String {
        if let e = error as? ChannelError, case .connectTimeout = e { return "connect timeout" }
        return String(describing: error).prefix(200).description
    }

    /// One client request's trip upstream, possibly over two connections (one retry).
    final class Exchange {
        let call: UpstreamCall
        let deadline: NIODeadline
        private unowned let pool: UpstreamPool
        private let completion: (Result<UpstreamResponse, UpstreamFailure>) -> Void
        /// Index in the pool's `active` list, -1 once finished.
        var slot = -1
        var connection: UpstreamConnection?
        var retried = false
        private(set) var done = false

        init(call: UpstreamCall, deadline: NIODeadline, pool: UpstreamPool,
             completion: @escaping (Result<UpstreamResponse, UpstreamFailure>) -> Void) {
            self.call = call
            self.deadline = deadline
            self.pool = pool
            self.completion = completion
        }

        func finish(_ result: Result<UpstreamResponse, UpstreamFailure>) {
            guard !done else { return }
            done = true
            pool.finished(self)
            if case .failure(.timeout) = result {
                connection?.abort()
            }
            connection = nil
            completion(result)
        }
    }
}
