import NIOCore
import NIOPosix
import NIOSSL
import TollgateUpstreamHTTP

/// Keep-alive connections to upstreams for one event loop. Only that loop touches it: no locks,
/// no thread hops. A request takes an idle connection or opens one, and gives it back when the
/// response is complete and the upstream allows reuse.
///
/// Bounded (`upstream_pool`): at most `maxConnections` connections per upstream endpoint are busy
/// (running a call or being opened); a call beyond waits in a FIFO queue of at most `maxWaiting`
/// and takes the next connection freed, and a call beyond that fails at once with ``UpstreamFailure/poolFull``
/// (a 503 for the client, its reservation released: nothing was sent). A waiting call keeps its
/// deadline: the sweep times it out like any other.
///
/// `@unchecked Sendable` on that invariant: every member is used only on `eventLoop` (the sweep
/// timer and connect callbacks run there too); the reference may cross threads only to reach it.
final class UpstreamPool: @unchecked Sendable {
    let eventLoop: EventLoop
    /// Idle connections kept per endpoint; more are closed when returned.
    let maxIdlePerEndpoint: Int
    private var idle: [ObjectIdentifier: [UpstreamConnection]] = [:]
    /// Connections per endpoint running a call or being opened.
    private var busy: [ObjectIdentifier: Int] = [:]
    /// Calls waiting for a connection, per endpoint, oldest first.
    private var waiting: [ObjectIdentifier: CircularBuffer<Exchange>] = [:]
    private(set) var maxConnections: Int
    private(set) var maxWaiting: Int
    /// Calls refused because the pool was full (metrics).
    private(set) var refusedFull = 0
    /// Exchanges in progress, checked against their deadlines by one periodic sweep per loop:
    /// cheaper than scheduling (and cancelling) a timer for every request.
    private var active: [Exchange] = []
    private var sweeper: RepeatedTask?
    static let sweepInterval = TimeAmount.milliseconds(20)

    init(eventLoop: EventLoop, maxIdlePerEndpoint: Int = 128, maxConnections: Int = 256, maxWaiting: Int = 1024) {
        self.eventLoop = eventLoop
        self.maxIdlePerEndpoint = min(maxIdlePerEndpoint, maxConnections)
        self.maxConnections = maxConnections
        self.maxWaiting = maxWaiting
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

    /// New limits (a reload); calls already busy or waiting keep their place.
    func setLimits(maxConnections: Int, maxWaiting: Int) {
        self.maxConnections = maxConnections
        self.maxWaiting = maxWaiting
        for key in waiting.keys { wakeWaiter(key) }
    }

    /// Removes a finished exchange from `active` (swap with the last), and from its wait queue.
    fileprivate func finished(_ exchange: Exchange) {
        if exchange.isWaiting {
            exchange.isWaiting = false
            let key = ObjectIdentifier(exchange.call.endpoint)
            if let i = waiting[key]?.firstIndex(where: { $0 === exchange }) { waiting[key]?.remove(at: i) }
        }
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
        let key = ObjectIdentifier(endpoint)
        if allowPooled, let conn = takeIdle(endpoint) {
            busy[key, default: 0] += 1
            run(exchange, on: conn)
            return
        }
        guard busy[key, default: 0] < maxConnections else {
            if waiting[key, default: []].count < maxWaiting {
                exchange.isWaiting = true
                waiting[key, default: []].append(exchange)
            } else {
                refusedFull += 1
                exchange.finish(.failure(.poolFull))
            }
            return
        }
        busy[key, default: 0] += 1
        connect(endpoint, timeout: exchange.call.connectTimeout).assumeIsolated().whenComplete { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let conn):
                if exchange.done {
                    self.free(conn)
                } else {
                    self.run(exchange, on: conn)
                }
            case .failure(let error):
                self.busy[key, default: 1] -= 1
                exchange.finish(.failure(.connect(Self.describe(error))))
                self.wakeWaiter(key)
            }
        }
    }

    /// A busy connection is done with its call: hand it to the oldest waiting call, or keep it idle
    /// (or close it), and count it free.
    private func free(_ conn: UpstreamConnection) {
        let key = ObjectIdentifier(conn.endpoint)
        if conn.isUsable, let next = nextWaiter(key) {
            run(next, on: conn)
            return
        }
        busy[key, default: 1] -= 1
        release(conn)
        wakeWaiter(key)
    }

    /// A busy connection was aborted mid-call (a timeout).
    fileprivate func lost(_ conn: UpstreamConnection) {
        let key = ObjectIdentifier(conn.endpoint)
        busy[key, default: 1] -= 1
        wakeWaiter(key)
    }

    /// A busy slot was given up without a reusable connection: let the oldest waiter open one.
    private func wakeWaiter(_ key: ObjectIdentifier) {
        guard busy[key, default: 0] < maxConnections, let next = nextWaiter(key) else { return }
        attempt(next, allowPooled: true)
    }

    private func nextWaiter(_ key: ObjectIdentifier) -> Exchange? {
        while let next = waiting[key]?.popFirst() {
            next.isWaiting = false
            if !next.done { return next }
        }
        return nil
    }

    private func run(_ exchange: Exchange, on conn: UpstreamConnection) {
        exchange.connection = conn
        let reused = conn.uses > 0
        conn.send(exchange.call) { [weak self] result in
            guard let self else { return }
            exchange.connection = nil
            let key = ObjectIdentifier(conn.endpoint)
            if case .failure(.closedBeforeResponse) = result, reused, exchange.call.retryable, !exchange.retried {
                exchange.retried = true
                self.busy[key, default: 1] -= 1
                self.attempt(exchange, allowPooled: false)
                return
            }
            // Give the connection back before the client's response is written: a pipelined
            // request may arrive during that write and want it.
            if case .success(let response) = result, response.keepAlive {
                self.free(conn)
            } else {
                conn.abort()
                self.busy[key, default: 1] -= 1
                self.wakeWaiter(key)
            }
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
        /// In the endpoint's wait queue.
        var isWaiting = false
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
            if case .failure(.timeout) = result, let conn = connection {
                conn.abort()  // its call's completion will not run: give its slot back here
                pool.lost(conn)
            }
            connection = nil
            completion(result)
        }
    }
}
