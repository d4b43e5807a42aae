import NIOCore
import TollgateUpstreamHTTP

/// One connection to an upstream, carrying one request at a time. Lives on one event loop.
final class UpstreamConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let endpoint: UpstreamEndpoint
    private(set) var channel: Channel?
    /// The handler's place in the pipeline (between `handlerAdded` and `handlerRemoved`): requests
    /// are written from here rather than entering the pipeline at its tail.
    private var context: ChannelHandlerContext?
    /// Set once the connection is closed or closing, as this handler last heard (it is open from
    /// the pipeline's set-up on: the connect promise succeeds before `channelActive` is fired).
    /// Kept here because the pool asks for every call, and NIO's `isActive` retains and checks its
    /// lifecycle state each time.
    private var closed = false
    /// Called when the connection closes, so the pool can forget it.
    var onClose: ((UpstreamConnection) -> Void)?
    /// Requests already carried; more than zero means it came from the pool.
    private(set) var uses = 0
    /// The pool's reaper tick at which this connection, idle, is closed.
    var idleUntilTick = 0
    /// The upstream's last `Keep-Alive: timeout=N` (seconds), if it sent one.
    private(set) var upstreamKeepAlive: Int?

    private var parser: UpstreamResponseParser?
    /// The call in progress and the pool to tell when it ends (a method call, not a closure: no
    /// allocation per call).
    private var pending: (pool: UpstreamPool, exchange: UpstreamPool.Exchange)?

    init(endpoint: UpstreamEndpoint) {
        self.endpoint = endpoint
    }

    var isUsable: Bool { !closed && pending == nil }

    /// Sends `exchange`'s request; `pool.completed(_:on:_:)` runs once with its outcome, on this
    /// connection's event loop.
    func send(_ exchange: UpstreamPool.Exchange, for pool: UpstreamPool) {
        guard let context, !closed else { return pool.completed(exchange, on: self, .failure(.closedBeforeResponse)) }
        uses += 1
        parser = UpstreamResponseParser(maxBodyBytes: exchange.call.maxResponseBytes, requestWasHEAD: exchange.call.isHEAD)
        pending = (pool, exchange)
        // No promise: a failed write surfaces as errorCaught or channelInactive, which fail the exchange.
        context.writeAndFlush(wrapOutboundOut(exchange.call.request), promise: nil)
    }

    /// Closes the connection; an exchange in progress is dropped without telling the pool.
    func abort() {
        pending = nil
        parser = nil
        closed = true
        channel?.close(promise: nil)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        channel = context.channel
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        closed = true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard parser != nil else {
            // Bytes nobody asked for: the connection cannot be trusted any more.
            closed = true
            context.close(promise: nil)
            return
        }
        do {
            if let response = try parser!.feed(&bytes) {
                finish(.success(response))
            }
        } catch {
            fail(Self.failure(error))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        if parser != nil {
            do {
                let response = try parser!.finish()
                finish(.success(response))
            } catch {
                fail(parser!.receivedAnything ? Self.failure(error) : .closedBeforeResponse)
            }
        }
        onClose?(self)
        onClose = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if parser != nil {
            fail(parser!.receivedAnything ? .invalidResponse("\(error)") : .closedBeforeResponse)
        }
        closed = true
        context.close(promise: nil)
    }

    private func finish(_ result: Result<UpstreamResponse, UpstreamFailure>) {
        let done = pending
        pending = nil
        parser = nil
        if case .success(let response) = result {
            if !response.keepAlive {
                closed = true
                channel?.close(promise: nil)
            } else if let seconds = response.keepAliveTimeout {
                upstreamKeepAlive = seconds
            }
        }
        if let done { done.pool.completed(done.exchange, on: self, result) }
    }

    private func fail(_ failure: UpstreamFailure) {
        guard pending != nil else { return }
        closed = true
        channel?.close(promise: nil)
        finish(.failure(failure))
    }

    private static func failure(_ error: UpstreamResponseParser.Failure) -> UpstreamFailure {
        switch error {
        case .bodyTooLarge: .responseTooLarge
        case .headTooLarge: .invalidResponse("head too large")
        case .malformed(let why): .invalidResponse(why)
        case .unexpectedEnd: .invalidResponse("connection closed mid-response")
        }
    }
}
